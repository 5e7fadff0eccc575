//! A narrow RESP2 decoder for the one reply the consumer reads in bulk: XREADGROUP's.
//!
//! redis-rs parses every reply into a tree of `redis::Value`s, one allocation per string and
//! per array, through a general parser; for a batch of 5,000 entries that was most of the
//! consumer's CPU. The reader's own connection ([`crate::reader`]) hands the reply's bytes
//! here instead, and [`decode_read`] reads them straight into [`Message`]s: one allocation
//! for the id and one per field value, nothing else.
//!
//! Invariants:
//! - the result is the one redis-rs plus [`crate::reader::parse_read`] give for the same
//!   bytes: anything not of the common shape (an error reply, a non-UTF-8 id, a key the reader
//!   did not ask for, a value that is not a bulk string…) is handed to exactly that general
//!   path, and a differential property test (`resp::tests`) and the `resp` fuzz target
//!   compare both on arbitrary replies;
//! - [`Frame`] says a reply is whole only when every byte of it has arrived, whatever the
//!   split into reads, and never reads past it (the next reply's bytes stay untouched).

use redis::Value;

use redline_core::redis::raw::{bulk_end, length, Frame, Malformed};

use crate::batch::{field_slot, Body, Field, Message};
use crate::entry_id::EntryId;
use crate::reader;

/// What a whole XREADGROUP reply holds, per partition index of `keys`: the fast path for the
/// common shape, redis-rs's parser and [`reader::parse_read`] for anything else.
///
/// # Errors
/// Redis's error reply as redis-rs reports it, or the [`crate::batch::ReplyError`] of a reply of the
/// wrong shape.
pub(crate) fn decode_read(
    reply: &[u8],
    keys: &[String],
    deliveries: Option<u64>,
) -> Result<Vec<(usize, Vec<Message>)>, reader::Error> {
    match fast(reply, keys, deliveries) {
        Some(read) => Ok(read),
        None => general(reply, keys, deliveries),
    }
}

/// The general path: redis-rs's parser, then the reader's reply parser.
pub(crate) fn general(
    reply: &[u8],
    keys: &[String],
    deliveries: Option<u64>,
) -> Result<Vec<(usize, Vec<Message>)>, reader::Error> {
    let value = redis::parse_redis_value(reply)?.extract_error()?;
    Ok(reader::parse_read(value, keys, deliveries)?)
}

/// Reads RESP2 elements in order from a whole reply.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// An array header: its length, -1 for a nil array.
    fn array(&mut self) -> Option<i64> {
        if self.buf.get(self.pos) != Some(&b'*') {
            return None;
        }
        let (n, after) = length(self.buf, self.pos + 1).ok()??;
        self.pos = after;
        Some(n)
    }

    /// A bulk string (not nil).
    fn bulk(&mut self) -> Option<&'a [u8]> {
        if self.buf.get(self.pos) != Some(&b'$') {
            return None;
        }
        let (n, after) = length(self.buf, self.pos + 1).ok()??;
        let end = bulk_end(self.buf, after, n).ok()??;
        self.pos = end;
        Some(&self.buf[after..end - 2])
    }

    fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// The common shape, `*-1` or `[[key, [[id, [name, value, …] | nil], …]], …]` with bulk
/// strings only; `None` for anything else.
fn fast(
    reply: &[u8],
    keys: &[String],
    deliveries: Option<u64>,
) -> Option<Vec<(usize, Vec<Message>)>> {
    let mut c = Cursor { buf: reply, pos: 0 };
    let streams = c.array()?;
    if streams < 0 {
        return c.at_end().then(Vec::new);
    }
    let mut out = Vec::with_capacity(usize::try_from(streams).ok()?.min(keys.len()));
    for _ in 0..streams {
        if c.array()? != 2 {
            return None;
        }
        let key = c.bulk()?;
        let stream = keys.iter().position(|k| k.as_bytes() == key)?;
        let entries = usize::try_from(c.array()?).ok()?;
        // Bounded by what arrived: each entry takes more than 8 bytes.
        let mut messages = Vec::with_capacity(entries.min(reply.len() / 8));
        for _ in 0..entries {
            if c.array()? != 2 {
                return None;
            }
            let id = EntryId::new(std::str::from_utf8(c.bulk()?).ok()?)?;
            let fields = c.array()?;
            let body = if fields < 0 {
                Body::Deleted
            } else if fields % 2 != 0 {
                return None;
            } else {
                body(&mut c, fields / 2)?
            };
            messages.push(Message {
                stream,
                id,
                body,
                deliveries,
            });
        }
        out.push((stream, messages));
    }
    c.at_end().then_some(out)
}

/// The body of an entry of `pairs` field/value pairs, as [`Body`] reads them from values.
fn body(c: &mut Cursor<'_>, pairs: i64) -> Option<Body> {
    let (mut lp, mut db, mut rp) = (None, None, None);
    let mut others = Vec::new();
    let bytes = |b: &[u8]| Value::BulkString(b.to_vec());
    for _ in 0..pairs {
        let (name, value) = (c.bulk()?, c.bulk()?);
        match field_slot(name) {
            Some(Field::Lp) => lp = Some(bytes(value)),
            Some(Field::Db) => db = Some(bytes(value)),
            Some(Field::Rp) => rp = Some(bytes(value)),
            None => others.push((bytes(name), bytes(value))),
        }
    }
    Some(Body::from_parts(lp, db, rp, &others))
}

/// The `resp` fuzz target's check on arbitrary bytes (the first byte sets the size of the
/// pieces they arrive in); panics when an invariant of this module breaks.
pub(crate) fn fuzz(data: &[u8]) {
    let keys = ["s:0".to_string(), "s:1".to_string()];
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut frame = Frame::default();
    let mut have = 0;
    let len = loop {
        match frame.complete(&data[..have]) {
            Ok(Some(len)) => break len,
            Ok(None) if have < data.len() => have = (have + step).min(data.len()),
            Ok(None) | Err(Malformed) => return,
        }
    };
    assert!(len <= have, "a frame of {len} bytes out of {have} received");
    let reply = &data[..len];
    let ours = decode_read(reply, &keys, Some(1)).map_err(|e| e.to_string());
    let theirs = general(reply, &keys, Some(1)).map_err(|e| e.to_string());
    assert_eq!(ours, theirs, "{reply:?}");
}

#[cfg(test)]
mod tests;
