//! Batches: the messages one delivery handles, how Redis replies become them, and "size or
//! interval": a batch goes out when it holds `batch_size` entries or `flush_interval` after
//! its first entry arrived, whichever comes first (as Telegraf's `metric_batch_size` and
//! `flush_interval`).

use std::time::Duration;

use redis::Value;
use redline_core::entry::{self, Entry};
use redline_core::Shutdown;
use tokio::time::Instant;

use crate::entry_id::EntryId;
use crate::reader::{self, Reader};

/// One stream entry handed to this consumer.
#[derive(Debug, PartialEq)]
pub(crate) struct Message {
    /// Index of its stream in the partition keys.
    pub(crate) stream: usize,
    /// The entry id.
    pub(crate) id: EntryId,
    /// What the entry holds.
    pub(crate) body: Body,
    /// Deliveries, when the read itself tells: 1 for a first delivery (`XREADGROUP … >`);
    /// `None` for re-read or claimed entries, whose count only XPENDING knows.
    pub(crate) deliveries: Option<u64>,
}

/// A stream entry that is not a redline metric.
#[derive(Debug, PartialEq)]
pub(crate) struct Invalid {
    /// Why it does not decode.
    pub(crate) error: entry::Error,
    /// Its `lp` field, lossily as text, when there is one.
    pub(crate) lp: Option<String>,
    /// Its `db` field, lossily as text, when there is one.
    pub(crate) db: Option<String>,
    /// Its `rp` field, lossily as text, when there is one.
    pub(crate) rp: Option<String>,
    /// Every field of the entry as a JSON object (names and values lossily as text),
    /// so that `redline dlq show` tells what it was.
    pub(crate) raw: String,
}

/// The content of a stream entry.
#[derive(Debug, PartialEq)]
pub(crate) enum Body {
    /// A redline metric.
    Metric(Entry),
    /// Not a redline metric; dead-lettered with its reason and its fields kept (boxed: rare,
    /// and a batch moves its messages several times).
    Invalid(Box<Invalid>),
    /// The id is pending but the stream no longer holds the entry (XDEL): nothing to write.
    Deleted,
}

impl Body {
    /// The body of an entry with `fields`, `(name, value)` pairs. Only `lp`, `db` and `rp`
    /// matter; other fields, whatever their names (Redis allows any bytes), are ignored.
    fn from_fields(fields: impl Iterator<Item = (Value, Value)>) -> Self {
        let (mut lp, mut db, mut rp) = (None, None, None);
        // Fields of no meaning here; kept only for the dead letter of an undecodable entry
        // (a metric has none, so this stays an empty, unallocated Vec).
        let mut others = Vec::new();
        for (name, value) in fields {
            let slot = match &name {
                Value::BulkString(bytes) => field_slot(bytes),
                Value::SimpleString(text) => field_slot(text.as_bytes()),
                _ => None,
            };
            match slot {
                Some(Field::Lp) => lp = Some(value),
                Some(Field::Db) => db = Some(value),
                Some(Field::Rp) => rp = Some(value),
                None => others.push((name, value)),
            }
        }
        Self::from_parts(lp, db, rp, &others)
    }

    /// The body of an entry whose `lp`, `db` and `rp` fields are given, with `others`, the
    /// fields of no meaning here (kept only for the dead letter of an undecodable entry).
    pub(crate) fn from_parts(
        lp: Option<Value>,
        db: Option<Value>,
        rp: Option<Value>,
        others: &[(Value, Value)],
    ) -> Self {
        match Entry::from_values(lp, db, rp) {
            Ok(entry) => Self::Metric(entry),
            Err(refused) => {
                let entry::Undecodable { error, lp, db, rp } = *refused;
                let mut raw = serde_json::Map::new();
                let named = [
                    (entry::FIELD_LP, &lp),
                    (entry::FIELD_DB, &db),
                    (entry::FIELD_RP, &rp),
                ];
                for (name, value) in named {
                    if let Some(value) = value {
                        raw.insert(name.to_string(), lossy(value).into());
                    }
                }
                for (name, value) in others {
                    raw.insert(lossy(name), lossy(value).into());
                }
                Self::Invalid(Box::new(Invalid {
                    error,
                    lp: lp.as_ref().map(lossy),
                    db: db.as_ref().map(lossy),
                    rp: rp.as_ref().map(lossy),
                    raw: serde_json::Value::Object(raw).to_string(),
                }))
            }
        }
    }
}

/// The fields of a redline entry.
pub(crate) enum Field {
    Lp,
    Db,
    Rp,
}

/// Which redline field `name` is, if any.
pub(crate) fn field_slot(name: &[u8]) -> Option<Field> {
    match name {
        n if n == entry::FIELD_LP.as_bytes() => Some(Field::Lp),
        n if n == entry::FIELD_DB.as_bytes() => Some(Field::Db),
        n if n == entry::FIELD_RP.as_bytes() => Some(Field::Rp),
        _ => None,
    }
}

fn lossy(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// A Redis reply that does not have the shape its command documents.
#[derive(Debug, thiserror::Error)]
#[error("unexpected {command} reply: {reply}")]
pub(crate) struct ReplyError {
    /// The command.
    pub(crate) command: &'static str,
    /// The reply, shortened.
    pub(crate) reply: String,
}

impl ReplyError {
    pub(crate) fn new(command: &'static str, reply: &Value) -> Self {
        let mut reply = format!("{reply:?}");
        if reply.len() > 200 {
            let mut end = 200;
            while !reply.is_char_boundary(end) {
                end -= 1;
            }
            reply.truncate(end);
            reply.push('…');
        }
        Self { command, reply }
    }
}

/// Parses a list of stream entries, `[[id, [field, value, …] | nil], …]`, as XREADGROUP and
/// XAUTOCLAIM return them, into messages of stream `stream`.
///
/// The reply is taken apart, not copied: ids and field values move into the messages (a
/// batch is thousands of entries; copying each line twice showed in profiles).
pub(crate) fn parse_entries(
    command: &'static str,
    stream: usize,
    deliveries: Option<u64>,
    value: Value,
) -> Result<Vec<Message>, ReplyError> {
    let Value::Array(items) = value else {
        return Err(ReplyError::new(command, &value));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let pair = match item {
            Value::Array(pair) if pair.len() == 2 => pair,
            other => return Err(ReplyError::new(command, &other)),
        };
        let mut pair = pair.into_iter();
        let (Some(id), Some(fields)) = (pair.next(), pair.next()) else {
            unreachable!("the pair has two elements");
        };
        let id = into_text(id)
            .and_then(|text| EntryId::new(&text).ok_or(Value::BulkString(text.into_bytes())))
            .map_err(|id| ReplyError::new(command, &id))?;
        let body = match fields {
            // The stream no longer holds the entry (XDEL): nothing to write.
            Value::Nil => Body::Deleted,
            Value::Array(flat) if flat.len().is_multiple_of(2) => {
                let mut flat = flat.into_iter();
                Body::from_fields(std::iter::from_fn(move || {
                    Some((flat.next()?, flat.next()?))
                }))
            }
            Value::Map(map) => Body::from_fields(map.into_iter()),
            other => return Err(ReplyError::new(command, &other)),
        };
        out.push(Message {
            stream,
            id,
            body,
            deliveries,
        });
    }
    Ok(out)
}

/// A bulk or simple string as text, taken without a copy; the value back when it is not.
fn into_text(value: Value) -> Result<String, Value> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).map_err(|e| Value::BulkString(e.into_bytes()))
        }
        Value::SimpleString(s) => Ok(s),
        other => Err(other),
    }
}

/// A bulk or simple string as text.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// What [`collect`] gathered: the batch, and the read error that ended it early, if any.
#[derive(Debug)]
pub(crate) struct Collected {
    /// The batch; may be empty.
    pub(crate) messages: Vec<Message>,
    /// The read failure that cut the batch short; the messages before it are still valid.
    pub(crate) error: Option<reader::Error>,
}

/// Reads one batch: up to `batch_size` messages, waiting at most `flush_interval` after the
/// first one for more. Returns empty after `flush_interval` with nothing to read, at once
/// with what it has on shutdown, and with the messages so far plus the error on a failure.
/// Re-read pending entries (after a restart) go out at once: they are old already.
pub(crate) async fn collect(
    reader: &mut Reader,
    batch_size: usize,
    flush_interval: Duration,
    shutdown: &Shutdown,
) -> Collected {
    let mut messages = Vec::new();
    let mut first_at: Option<Instant> = None;
    loop {
        let block = match first_at {
            None => flush_interval,
            Some(at) => flush_interval.saturating_sub(at.elapsed()),
        };
        if first_at.is_some() && block.is_zero() {
            break;
        }
        let count = batch_size - messages.len();
        let read = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            read = reader.read(count, block) => read,
        };
        match read {
            Err(error) => {
                return Collected {
                    messages,
                    error: Some(error),
                }
            }
            Ok(read) => {
                let empty = read.messages.is_empty();
                append(&mut messages, read.messages);
                if empty || read.history || messages.len() >= batch_size {
                    break;
                }
                first_at.get_or_insert_with(Instant::now);
            }
        }
    }
    Collected {
        messages,
        error: None,
    }
}

/// Moves `more` to the end of `messages`; into an empty `messages` without a copy (a batch
/// is most often one read of one partition, and copying 5,000 messages cost a few percent of
/// the consumer's CPU).
pub(crate) fn append(messages: &mut Vec<Message>, more: Vec<Message>) {
    if messages.is_empty() {
        *messages = more;
    } else {
        messages.extend(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_decode_with_deleted_and_foreign_ones() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("lp"), bulk("m v=1 1"), bulk("db"), bulk("x")]),
            ]),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
            Value::Array(vec![
                bulk("3-0"),
                Value::Array(vec![bulk("foo"), bulk("bar")]),
            ]),
        ]);
        let messages = parse_entries("XREADGROUP", 1, Some(1), reply).unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(
            messages[0].body,
            Body::Metric(Entry {
                lp: "m v=1 1".into(),
                db: Some("x".into()),
                rp: None
            })
        );
        assert_eq!((messages[0].stream, messages[0].id.as_str()), (1, "1-0"));
        assert_eq!(messages[1].body, Body::Deleted);
        assert!(matches!(
            &messages[2].body,
            Body::Invalid(invalid) if matches!(**invalid, Invalid {
                error: entry::Error::MissingLine,
                lp: None,
                ..
            })
        ));
    }

    #[test]
    fn malformed_replies_are_errors() {
        let error = parse_entries("XAUTOCLAIM", 0, None, Value::Int(3)).unwrap_err();
        assert!(error.to_string().contains("XAUTOCLAIM"), "{error}");
        let odd = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("lp")]),
        ])]);
        assert!(parse_entries("XREADGROUP", 0, None, odd).is_err());
    }
}
