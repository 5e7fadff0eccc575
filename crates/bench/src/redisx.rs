//! What the harness asks Redis directly: INFO figures, stream ids, a consumer group's
//! progress, pre-filling a stream, and the XREADGROUP + XACK baseline loop.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::{Connection, Value};

use crate::workload;

/// A stream entry id (`redline_streams::Id`).
pub(crate) use redline_streams::Id as StreamId;

/// An id in a reply.
fn id_of(value: &Value) -> Option<StreamId> {
    StreamId::parse(&text(value)?)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// A field of `INFO <section>` as a number.
pub(crate) fn info(conn: &mut Connection, section: &str, field: &str) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(conn)
        .unwrap_or_else(|e| panic!("INFO {section}: {e}"));
    info_field(&info, field).unwrap_or_else(|| panic!("INFO {section} has no {field}"))
}

fn info_field(info: &str, field: &str) -> Option<f64> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Redis's `used_memory` in bytes.
pub(crate) fn used_memory(conn: &mut Connection) -> f64 {
    info(conn, "memory", "used_memory")
}

/// CPU seconds the Redis server used so far (user + system, all threads).
pub(crate) fn cpu_seconds(conn: &mut Connection) -> f64 {
    info(conn, "cpu", "used_cpu_sys") + info(conn, "cpu", "used_cpu_user")
}

/// XLEN.
pub(crate) fn xlen(conn: &mut Connection, key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(key)
        .query(conn)
        .unwrap_or_else(|e| panic!("XLEN {key}: {e}"))
}

/// Deletes `key` (unlinked: freed in the background).
pub(crate) fn unlink(conn: &mut Connection, key: &str) {
    let _: () = redis::cmd("UNLINK")
        .arg(key)
        .query(conn)
        .unwrap_or_else(|e| panic!("UNLINK {key}: {e}"));
}

/// A consumer group's progress, from XINFO GROUPS.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    /// Entries delivered and not acknowledged.
    pub(crate) pending: u64,
    /// Entries not delivered yet (`None` when Redis cannot tell).
    pub(crate) lag: Option<u64>,
    /// Entries delivered so far (`entries-read`).
    pub(crate) read: u64,
    /// The id of the last delivered entry.
    pub(crate) last_delivered: StreamId,
}

impl Progress {
    /// Entries delivered and acknowledged.
    pub(crate) fn acked(&self) -> u64 {
        self.read.saturating_sub(self.pending)
    }

    /// True when nothing is pending and nothing is left to deliver.
    pub(crate) fn done(&self) -> bool {
        self.pending == 0 && self.lag == Some(0)
    }
}

/// Parses the XINFO GROUPS reply for `group` (with `redline_streams`' one decoder).
pub(crate) fn parse_progress(reply: &Value, group: &str) -> Option<Progress> {
    let groups = redline_streams::decode_groups(reply.clone()).ok()?;
    let g = groups.into_iter().find(|g| g.name == group)?;
    Some(Progress {
        pending: g.pending,
        lag: g.lag,
        read: g.entries_read.unwrap_or(0),
        last_delivered: StreamId::parse(&g.last_delivered_id)?,
    })
}

/// A flat `[k, v, …]` array or a map as a map.
fn fields(value: &Value) -> Option<HashMap<String, &Value>> {
    match value {
        Value::Array(flat) => flat
            .chunks_exact(2)
            .map(|kv| Some((text(&kv[0])?, &kv[1])))
            .collect(),
        Value::Map(map) => map.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => None,
    }
}

/// The group's progress, or `None` before the group exists.
pub(crate) fn progress(conn: &mut Connection, key: &str, group: &str) -> Option<Progress> {
    let reply: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query(conn)
        .ok()?;
    parse_progress(&reply, group)
}

/// The acknowledged frontier: every entry id `<=` the returned one has been delivered
/// and acknowledged. From one MULTI/EXEC of XINFO GROUPS and XPENDING (summary form), so
/// both describe the same instant. Sound for a single consumer, which reads in id order.
pub(crate) fn acked_frontier(reply: &Value, group: &str) -> Option<StreamId> {
    let Value::Array(replies) = reply else {
        return None;
    };
    let progress = parse_progress(replies.first()?, group)?;
    let Value::Array(summary) = replies.get(1)? else {
        return None;
    };
    if int(summary.first())? == 0 {
        return Some(progress.last_delivered);
    }
    let min = id_of(summary.get(1)?)?;
    // Everything before the oldest pending entry is acknowledged.
    Some(if min.seq > 0 {
        StreamId {
            ms: min.ms,
            seq: min.seq - 1,
        }
    } else {
        StreamId {
            ms: min.ms.saturating_sub(1),
            seq: u64::MAX,
        }
    })
}

/// The pipeline [`acked_frontier`] parses.
pub(crate) fn frontier_pipe(key: &str, group: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .cmd("XPENDING")
        .arg(key)
        .arg(group);
    pipe
}

/// The last id XADD generated in `key` (XINFO STREAM).
pub(crate) fn last_generated(reply: &Value) -> Option<StreamId> {
    fields(reply)?
        .get("last-generated-id")
        .and_then(|v| id_of(v))
}

/// Polls every `every` until `done(progress)` or `timeout`; returns the last progress.
///
/// # Panics
/// On timeout, after calling `check` (which panics with a process's log if it died).
pub(crate) fn wait_progress(
    conn: &mut Connection,
    key: &str,
    group: &str,
    every: Duration,
    timeout: Duration,
    mut check: impl FnMut(),
    done: impl Fn(&Progress) -> bool,
) -> Progress {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = progress(conn, key, group) {
            if done(&p) {
                return p;
            }
        }
        check();
        assert!(
            Instant::now() < deadline,
            "group {group} on {key} not done within {timeout:?}: {:?}",
            progress(conn, key, group)
        );
        std::thread::sleep(every);
    }
}

/// XADDs `count` entries (`lp` cycling through `lines`, `db` = the workload's) into `key`,
/// pipelined 10,000 at a time.
pub(crate) fn prefill(conn: &mut Connection, key: &str, count: u64, lines: &[String]) {
    const CHUNK: u64 = 10_000;
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        let mut pipe = redis::pipe();
        for i in done..done + n {
            let lp = &lines[(i % lines.len() as u64) as usize];
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("lp")
                .arg(lp.as_str())
                .arg("db")
                .arg(workload::DB)
                .ignore();
        }
        let () = pipe
            .query(conn)
            .unwrap_or_else(|e| panic!("XADD into {key}: {e}"));
        done += n;
    }
}

/// Creates `group` on `key` at the oldest entry.
pub(crate) fn create_group(conn: &mut Connection, key: &str, group: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query(conn)
        .unwrap_or_else(|e| panic!("XGROUP CREATE {key} {group}: {e}"));
}

/// The baseline: as fast as a client can relay entries through a group, reading `batch`
/// entries per XREADGROUP and acknowledging them with one XACK pipelined with the next
/// read (one round trip per batch). Returns the entries relayed; stops at the first empty
/// read.
pub(crate) fn read_ack_loop(conn: &mut Connection, key: &str, group: &str, batch: u64) -> u64 {
    let read = || {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg("baseline")
            .arg("COUNT")
            .arg(batch)
            .arg("STREAMS")
            .arg(key)
            .arg(">");
        cmd
    };
    let mut relayed = 0;
    let mut reply: Value = read()
        .query(conn)
        .unwrap_or_else(|e| panic!("XREADGROUP: {e}"));
    loop {
        // Touch every id and line, as a consumer must, and keep the ids for XACK.
        let (ids, bytes) = entry_ids(&reply);
        if ids.is_empty() {
            return relayed;
        }
        std::hint::black_box(bytes);
        relayed += ids.len() as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("XACK").arg(key).arg(group).arg(&ids).ignore();
        pipe.add_command(read());
        let (next,): (Value,) = pipe
            .query(conn)
            .unwrap_or_else(|e| panic!("XACK + XREADGROUP: {e}"));
        reply = next;
    }
}

/// The ids of an XREADGROUP reply and the total length of their field values.
fn entry_ids(reply: &Value) -> (Vec<&[u8]>, usize) {
    let mut ids = Vec::new();
    let mut bytes = 0;
    let streams: Vec<&Value> = match reply {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => pair.get(1),
                _ => None,
            })
            .collect(),
        Value::Map(map) => map.iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    for entries in streams {
        let Value::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            let Value::Array(pair) = entry else { continue };
            if let (Some(Value::BulkString(id)), Some(Value::Array(values))) =
                (pair.first(), pair.get(1))
            {
                ids.push(id.as_slice());
                for value in values {
                    if let Value::BulkString(b) = value {
                        bytes += b.len();
                    }
                }
            }
        }
    }
    (ids, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn the_frontier_is_just_before_the_oldest_pending_entry() {
        let group = Value::Array(vec![
            bulk("name"),
            bulk("g"),
            bulk("consumers"),
            Value::Int(1),
            bulk("pending"),
            Value::Int(2),
            bulk("last-delivered-id"),
            bulk("20-3"),
            bulk("entries-read"),
            Value::Int(9),
            bulk("lag"),
            Value::Int(0),
        ]);
        let summary = Value::Array(vec![Value::Int(2), bulk("20-0"), bulk("20-3"), Value::Nil]);
        let reply = Value::Array(vec![Value::Array(vec![group.clone()]), summary]);
        assert_eq!(
            acked_frontier(&reply, "g"),
            Some(StreamId {
                ms: 19,
                seq: u64::MAX
            })
        );
        let none_pending = Value::Array(vec![Value::Int(0), Value::Nil, Value::Nil, Value::Nil]);
        let reply = Value::Array(vec![Value::Array(vec![group]), none_pending]);
        assert_eq!(
            acked_frontier(&reply, "g"),
            Some(StreamId { ms: 20, seq: 3 })
        );
    }
}
