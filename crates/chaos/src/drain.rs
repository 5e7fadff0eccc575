//! The drain after the faults: polls Redis until the group has read every entry and holds
//! nothing pending, and reads the group's progress for the progress line.

use std::time::{Duration, Instant};

use redis::Value;

use crate::stack::redis_conn;

/// The metric stream (the consumers' and producer's default `--stream`).
pub(crate) const STREAM: &str = "redline:metrics";

/// The dead-letter stream of [`STREAM`].
pub(crate) const DLQ: &str = "redline:metrics:dlq";

/// The consumers' group (their default `--group`).
pub(crate) const GROUP: &str = "redline";

/// The group's state as Redis tells it.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupState {
    /// Entries delivered and not acknowledged.
    pub(crate) pending: u64,
    /// Whether the group has been delivered the stream's last entry.
    pub(crate) caught_up: bool,
    /// Entries in the dead-letter stream.
    pub(crate) dead_letters: u64,
}

/// Reads the group's state; `None` while Redis does not answer (down, hung, loading).
pub(crate) fn group_state(url: &str) -> Option<GroupState> {
    let mut conn = redis_conn(url).ok()?;
    let stream: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(STREAM)
        .query(&mut conn)
        .ok()?;
    let last_generated = field(&stream, "last-generated-id").and_then(text);
    let groups: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(STREAM)
        .query(&mut conn)
        .ok()?;
    let Value::Array(groups) = groups else {
        return None;
    };
    let group = groups
        .iter()
        .find(|g| field(g, "name").and_then(text).as_deref() == Some(GROUP))?;
    let number = |name: &str| match field(group, name) {
        Some(Value::Int(n)) => Some(*n as u64),
        _ => None,
    };
    let last_delivered = field(group, "last-delivered-id").and_then(text);
    let dead_letters: u64 = redis::cmd("XLEN").arg(DLQ).query(&mut conn).ok()?;
    Some(GroupState {
        pending: number("pending")?,
        caught_up: last_generated.is_some() && last_delivered == last_generated,
        dead_letters,
    })
}

/// Waits until the group caught up and holds nothing pending, for at most `timeout`;
/// the last state seen and whether it drained.
pub(crate) fn wait(url: &str, timeout: Duration) -> (Option<GroupState>, bool) {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    let mut said = Instant::now();
    loop {
        let state = group_state(url);
        if let Some(s) = &state {
            if s.caught_up && s.pending == 0 {
                return (state, true);
            }
        }
        if state.is_some() {
            last = state;
        }
        if Instant::now() >= deadline {
            return (last, false);
        }
        if said.elapsed() >= Duration::from_secs(5) {
            said = Instant::now();
            match &last {
                Some(s) => eprintln!(
                    "draining: {} pending, caught up: {}, {} dead letters",
                    s.pending, s.caught_up, s.dead_letters
                ),
                None => eprintln!("draining: Redis does not answer yet"),
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The value of `name` in an XINFO reply (a flat array of names and values, or a map).
fn field<'a>(reply: &'a Value, name: &str) -> Option<&'a Value> {
    match reply {
        Value::Array(items) => items
            .chunks(2)
            .find(|pair| text(&pair[0]).as_deref() == Some(name))
            .and_then(|pair| pair.get(1)),
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some(name))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// A string reply as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
