//! The errors of every ops command, each a one-line message for a terminal.

use redline_core::redis::is_transient;

/// Why an ops command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Redis URL or configuration is unusable.
    #[error(transparent)]
    Config(#[from] redline_core::redis::Error),
    /// No connection could be made.
    #[error("cannot reach Redis at {url}: {}", one_line(.reason))]
    Connect {
        /// The URL, password masked.
        url: String,
        /// What redis-rs said.
        reason: redis::RedisError,
    },
    /// The connection failed or timed out during a command.
    #[error("cannot reach Redis: {}", one_line(.0))]
    Redis(redis::RedisError),
    /// Redis answered a command with an error.
    #[error("Redis refused {command}{}: {}", on_key(.key), refusal(.reply))]
    Command {
        /// The command, e.g. `XINFO GROUPS`.
        command: &'static str,
        /// The key it ran on; empty for a command on no key (`TIME`).
        key: String,
        /// What Redis said. The message quotes it, so it is not also the `source()`: a
        /// chain printed whole would say it twice.
        reply: redis::RedisError,
    },
    /// The named consumer group does not exist on a stream (or the stream does not exist).
    #[error("no consumer group '{group}' on stream '{stream}'")]
    NoSuchGroup {
        /// The stream key.
        stream: String,
        /// The group asked for.
        group: String,
    },
    /// A key redline expects to be a stream holds another type.
    #[error("'{key}' is a Redis {kind}, not a stream")]
    NotAStream {
        /// The key.
        key: String,
        /// What `TYPE` answered.
        kind: String,
    },
    /// A stream entry id given by the user does not parse.
    #[error("invalid stream entry id '{id}': expected <ms> or <ms>-<seq>, e.g. 1700000000000-0")]
    InvalidId {
        /// The id as given (truncated).
        id: String,
    },
    /// A bare entry id that is pending in several partitions (ids repeat across them).
    #[error("entry id '{id}' is pending in several partitions ({}): name one as STREAM/ID or with --partition N", .streams.join(", "))]
    AmbiguousId {
        /// The id.
        id: String,
        /// The partitions where it is pending.
        streams: Vec<String>,
    },
    /// `STREAM/ID` or `--partition N` names no partition of this stream.
    #[error("'{stream}' is not a partition of this stream; the partitions are: {}", .known.join(", "))]
    NoSuchPartition {
        /// What was named.
        stream: String,
        /// The partition keys.
        known: Vec<String>,
    },
    /// The dead letter asked for is not in the dead-letter stream.
    #[error("no dead letter '{id}' in '{dlq}'")]
    NoSuchDeadLetter {
        /// The id asked for.
        id: String,
        /// The dead-letter stream key.
        dlq: String,
    },
    /// Redis answered with a shape this tool does not understand.
    #[error("unexpected reply to {command}: {detail}")]
    Reply {
        /// The command.
        command: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Classifies a failed `command` on `key`: connection trouble or a refusal.
    pub(crate) fn redis(source: redis::RedisError, command: &'static str, key: &str) -> Self {
        if is_transient(&source) {
            Self::Redis(source)
        } else {
            Self::Command {
                command,
                key: key.to_string(),
                reply: source,
            }
        }
    }

    /// As [`Error::redis`], turning Redis' `NOGROUP` into [`Error::NoSuchGroup`].
    pub(crate) fn in_group(
        source: redis::RedisError,
        command: &'static str,
        key: &str,
        group: &str,
    ) -> Self {
        if source.code() == Some("NOGROUP") {
            Self::NoSuchGroup {
                stream: key.to_string(),
                group: group.to_string(),
            }
        } else {
            Self::redis(source, command, key)
        }
    }

    /// True when the command line asked for something that cannot be (a bad id, an
    /// ambiguous one, a partition that does not exist): a usage error.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::InvalidId { .. } | Self::AmbiguousId { .. } | Self::NoSuchPartition { .. }
        )
    }

    /// An unexpected reply shape.
    pub(crate) fn reply(command: &'static str, detail: impl Into<String>) -> Self {
        Self::Reply {
            command,
            detail: detail.into(),
        }
    }

    /// An id the user gave that does not parse; quotes at most 64 characters of it.
    pub(crate) fn invalid_id(id: &str) -> Self {
        let id = match id.char_indices().nth(64) {
            Some((cut, _)) => format!("{}…", &id[..cut]),
            None => id.to_string(),
        };
        Self::InvalidId { id }
    }
}

/// ` on '<key>'`, or nothing for a command on no key (`TIME`).
fn on_key(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" on '{key}'")
    }
}

/// What Redis answered, as it writes it (`NOAUTH Authentication required.`), with a hint
/// where the fix is on our side.
fn refusal(error: &redis::RedisError) -> String {
    let text = match (error.code(), error.detail()) {
        (Some(code), Some(detail)) => format!("{code} {}", fold(detail)),
        _ => one_line(error),
    };
    match error.code() {
        Some("NOAUTH" | "WRONGPASS") => {
            format!(
                "{text} (give the credentials in --redis-url: redis://USER:PASSWORD@HOST:PORT/)"
            )
        }
        _ => text,
    }
}

/// A redis-rs error on one line: its message with line breaks folded into spaces.
fn one_line(error: &redis::RedisError) -> String {
    fold(&error.to_string())
}

/// `text` with every run of whitespace, line breaks included, made one space.
fn fold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_group_and_the_stream() {
        let error = Error::NoSuchGroup {
            stream: "redline:metrics".into(),
            group: "x".into(),
        };
        assert_eq!(
            error.to_string(),
            "no consumer group 'x' on stream 'redline:metrics'"
        );
    }

    #[test]
    fn long_ids_are_truncated() {
        let Error::InvalidId { id } = Error::invalid_id(&"9".repeat(200)) else {
            unreachable!("invalid_id builds InvalidId")
        };
        assert_eq!(id.chars().count(), 65);
    }
}
