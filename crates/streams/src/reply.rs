//! Decoding Redis replies: `XINFO`-style field lists (RESP2 flat arrays or RESP3 maps),
//! scalars, and stream entry ids.

use std::fmt;

use redis::Value;

use crate::error::{Error, Result};

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them: the one type for entry
/// ids wherever redline compares or writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id {
    /// Milliseconds part (the server's clock when the id was generated with `*`).
    pub ms: u64,
    /// Sequence within that millisecond.
    pub seq: u64,
}

impl Id {
    /// Parses `<ms>-<seq>` or `<ms>` (sequence 0), as Redis accepts them.
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The smallest id greater than this one (`None` after the largest possible id).
    pub fn next(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => Some(Self {
                ms: self.ms.checked_add(1)?,
                seq: 0,
            }),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Ids given by the user, checked and written canonically (`5` → `5-0`).
///
/// # Errors
/// [`Error::InvalidId`] naming the first that does not parse.
pub(crate) fn canonical_ids(ids: &[String]) -> Result<Vec<String>> {
    ids.iter()
        .map(|id| {
            Id::parse(id)
                .map(|id| id.to_string())
                .ok_or_else(|| Error::invalid_id(id))
        })
        .collect()
}

/// A value as text: bulk strings (lossy UTF-8), simple strings and integers.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A value as a non-negative integer: integers and numeric strings.
pub(crate) fn uint(value: &Value) -> Option<u64> {
    match value {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(_) | Value::SimpleString(_) => text(value)?.parse().ok(),
        _ => None,
    }
}

/// The elements of an array reply (`Nil` is an empty array).
pub(crate) fn array(command: &'static str, value: Value) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(Error::reply(
            command,
            format!("expected an array, got {other:?}"),
        )),
    }
}

/// The (name, value) pairs of an `XINFO` reply or a stream entry's field list.
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<(String, Value)>);

impl Fields {
    /// Reads a RESP2 flat array `[k1, v1, k2, v2, …]` or a RESP3 map.
    pub(crate) fn decode(command: &'static str, value: Value) -> Result<Self> {
        let pairs = match value {
            Value::Map(pairs) => pairs,
            Value::Array(items) => {
                if items.len() % 2 != 0 {
                    return Err(Error::reply(command, "odd number of field-list elements"));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    pairs.push((k, v));
                }
                pairs
            }
            other => {
                return Err(Error::reply(
                    command,
                    format!("expected fields, got {other:?}"),
                ))
            }
        };
        pairs
            .into_iter()
            .map(|(k, v)| {
                text(&k)
                    .map(|k| (k, v))
                    .ok_or_else(|| Error::reply(command, "a field name is not a string"))
            })
            .collect::<Result<_>>()
            .map(Self)
    }

    /// The raw value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// `name` as text; `None` when absent or nil.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.get(name).and_then(text)
    }

    /// `name` as an integer; `None` when absent, nil or not a number.
    pub(crate) fn uint(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(uint)
    }

    /// `name` as text, required.
    pub(crate) fn need_text(&self, command: &'static str, name: &str) -> Result<String> {
        self.text(name)
            .ok_or_else(|| Error::reply(command, format!("no '{name}' field")))
    }

    /// `name` as an integer, required.
    pub(crate) fn need_uint(&self, command: &'static str, name: &str) -> Result<u64> {
        self.uint(name)
            .ok_or_else(|| Error::reply(command, format!("no numeric '{name}' field")))
    }
}

/// One stream entry of an `XRANGE` reply: `[id, [field, value, …]]`.
pub(crate) fn entry(command: &'static str, value: Value) -> Result<(String, Fields)> {
    let mut parts = array(command, value)?.into_iter();
    let id = parts
        .next()
        .as_ref()
        .and_then(text)
        .ok_or_else(|| Error::reply(command, "an entry has no id"))?;
    let fields = match parts.next() {
        None | Some(Value::Nil) => Fields::default(), // deleted entry in an XCLAIM-style reply
        Some(fields) => Fields::decode(command, fields)?,
    };
    Ok((id, fields))
}

/// The entries of an `XRANGE` / `XREVRANGE` reply.
pub(crate) fn entries(command: &'static str, value: Value) -> Result<Vec<(String, Fields)>> {
    array(command, value)?
        .into_iter()
        .map(|item| entry(command, item))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_order_and_step() {
        let id = Id::parse("1700000000000-7").unwrap();
        assert_eq!(id.to_string(), "1700000000000-7");
        assert_eq!(id.next().unwrap().to_string(), "1700000000000-8");
        assert_eq!(Id::parse("5").unwrap().to_string(), "5-0");
        assert!(Id::parse("5-0").unwrap() < Id::parse("5-1").unwrap());
        assert!(Id::parse("5-99").unwrap() < Id::parse("6-0").unwrap());
        let last_seq = Id {
            ms: 3,
            seq: u64::MAX,
        };
        assert_eq!(last_seq.next().unwrap().to_string(), "4-0");
        assert_eq!(
            Id {
                ms: u64::MAX,
                seq: u64::MAX
            }
            .next(),
            None
        );
        for bad in [
            "",
            "-",
            "a-1",
            "1-",
            "1-2-3",
            "+",
            "1 -2",
            "99999999999999999999",
        ] {
            assert_eq!(Id::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn canonical_ids_name_the_bad_one() {
        let ids = ["1".to_string(), "2-3".to_string()];
        assert_eq!(canonical_ids(&ids).unwrap(), ["1-0", "2-3"]);
        let err = canonical_ids(&["x".to_string()]).unwrap_err();
        assert!(err.to_string().starts_with("invalid stream entry id 'x'"));
    }

    #[test]
    fn fields_read_resp2_and_resp3() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let flat = Value::Array(vec![bulk("name"), bulk("g"), bulk("lag"), Value::Nil]);
        let fields = Fields::decode("XINFO", flat).unwrap();
        assert_eq!(fields.text("name").as_deref(), Some("g"));
        assert_eq!(fields.uint("lag"), None);
        let map = Value::Map(vec![(bulk("pending"), Value::Int(3))]);
        assert_eq!(
            Fields::decode("XINFO", map).unwrap().uint("pending"),
            Some(3)
        );
    }
}
