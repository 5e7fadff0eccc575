//! `redline dlq list | show | replay | purge`: inspect, re-inject and drop dead letters.
//!
//! Invariant: a replayed dead letter leaves the dead-letter stream only once it is back in
//! its metric stream partition, so a replay interrupted at any point loses nothing.
//!
//! - On a standalone Redis both happen in one step (one script: it checks the letter is
//!   still there, `XADD`s, then `XDEL`s), so two replays racing re-inject each letter once.
//! - On Redis Cluster the dead-letter stream and the partition hash to different slots and
//!   Redis refuses the script (`CROSSSLOT`). Replay then runs `XADD` to the partition, and
//!   only after Redis confirmed it, `XDEL` of the letter. A crash between the two leaves the
//!   letter in place, and a later replay re-injects it again; two replays racing may both
//!   re-inject it. Either way the metric is written twice with its fixed timestamp, which
//!   InfluxDB stores as one point: a duplicate at worst, never a loss.

use redis::aio::ConnectionLike;
use redis::{Script, Value};
use redline_core::entry::{Entry, FIELD_LP};
use redline_core::keys::StreamKeys;
use redline_core::line::{self, Precision};
use redline_core::series;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::reply::{self, Fields};
use crate::stream;

mod letter;

pub use letter::{
    DeadLetter, NewLetter, DLQ_CONSUMER, DLQ_DELIVERIES, DLQ_FAILED_AT_MS, DLQ_GROUP, DLQ_RAW,
    DLQ_REASON, DLQ_SOURCE_ID, DLQ_SOURCE_STREAM,
};

/// How many dead letters one `XRANGE` of a replay fetches.
const REPLAY_CHUNK: usize = 500;

/// KEYS[1] dead-letter stream, KEYS[2] metric stream; ARGV[1] the letter's id, ARGV[2..]
/// the metric's field-value pairs. Returns the new entry id, or nil when the letter is gone.
/// `XADD` runs before `XDEL`: if it fails, the letter stays (scripts do not roll back).
const REPLAY_SCRIPT: &str = r"
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
";

/// The first dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlqList {
    /// The dead-letter stream key.
    pub dlq: String,
    /// How many dead letters there are in all.
    pub length: u64,
    /// The oldest `count` of them; this array is what `redline dlq list --json` prints.
    pub letters: Vec<DeadLetter>,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Dead letters put back into a metric stream and removed from the dead-letter stream.
    pub replayed: u64,
    /// Dead letters left where they were, each with why.
    pub failed: Vec<ReplayFailure>,
}

/// A dead letter that was not replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayFailure {
    /// Its id.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// What a purge removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// How many dead letters were deleted.
    pub removed: u64,
}

/// The oldest `count` dead letters and the total.
///
/// # Errors
/// Redis errors; [`Error::NotAStream`] when the key holds another type.
pub async fn dlq_list<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    count: usize,
) -> Result<DlqList> {
    const CMD: &str = "XRANGE";
    let dlq = keys.dlq();
    let length = stream::len(conn, &dlq).await?;
    let value: Value = redis::cmd(CMD)
        .arg(&dlq)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, CMD, &dlq))?;
    let letters = reply::entries(CMD, value)?
        .into_iter()
        .map(|(id, f)| DeadLetter::decode(id, &f))
        .collect();
    Ok(DlqList {
        dlq,
        length,
        letters,
    })
}

/// The dead letter `id`.
///
/// # Errors
/// [`Error::InvalidId`], [`Error::NoSuchDeadLetter`]; Redis errors.
pub async fn dlq_show<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    id: &str,
) -> Result<DeadLetter> {
    let id = canonical(id)?;
    let dlq = keys.dlq();
    match stream::entry(conn, &dlq, &id).await? {
        Some(fields) => Ok(DeadLetter::decode(id, &fields)),
        None => Err(Error::NoSuchDeadLetter { id, dlq }),
    }
}

/// Re-injects dead letters into the metric stream partition of their series, each removed
/// from the dead-letter stream in the same step: those in `ids`, or with `None` every
/// letter present when the replay starts. `progress(done, total)` is called after each.
///
/// A letter without an `lp` field is left in place and reported in
/// [`ReplayReport::failed`], as is an id that is not in the dead-letter stream.
///
/// # Errors
/// [`Error::InvalidId`]; Redis errors (letters replayed until then stay replayed).
pub async fn dlq_replay<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    ids: Option<&[String]>,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplayReport> {
    let dlq = keys.dlq();
    let mut script = Replay {
        script: Script::new(REPLAY_SCRIPT),
        atomic: true,
    };
    let mut report = ReplayReport {
        replayed: 0,
        failed: Vec::new(),
    };
    let mut done = 0;
    if let Some(ids) = ids {
        let ids = reply::canonical_ids(ids)?;
        let total = ids.len() as u64;
        for id in ids {
            match stream::entry(conn, &dlq, &id).await? {
                Some(fields) => {
                    replay_one(conn, keys, &mut script, id, &fields, &mut report).await?;
                }
                None => report.failed.push(ReplayFailure {
                    id,
                    reason: "not in the dead-letter stream".into(),
                }),
            }
            done += 1;
            progress(done, total);
        }
        return Ok(report);
    }
    // Every letter up to the newest one present now; letters arriving meanwhile wait.
    let total = stream::len(conn, &dlq).await?;
    let Some((newest, _)) = range(conn, &dlq, "+", "-", 1, "XREVRANGE").await?.pop() else {
        return Ok(report);
    };
    let mut cursor = "-".to_string();
    loop {
        let chunk = range(conn, &dlq, &cursor, &newest, REPLAY_CHUNK, "XRANGE").await?;
        let full = chunk.len() == REPLAY_CHUNK;
        for (id, fields) in chunk {
            cursor = format!("({id}");
            replay_one(conn, keys, &mut script, id, &fields, &mut report).await?;
            done += 1;
            progress(done, total.max(done));
        }
        if !full {
            return Ok(report);
        }
    }
}

/// How letters are moved back: the atomic script, until Redis answers `CROSSSLOT` (a
/// cluster), then `XADD` followed by `XDEL`.
struct Replay {
    script: Script,
    /// False once the script was refused for crossing slots.
    atomic: bool,
}

/// Replays one letter whose fields were just read.
async fn replay_one<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    replay: &mut Replay,
    id: String,
    fields: &Fields,
    report: &mut ReplayReport,
) -> Result<()> {
    let letter = DeadLetter::decode(id, fields);
    let Some(lp) = letter.lp else {
        report.failed.push(ReplayFailure {
            id: letter.id,
            reason: format!("dead letter has no '{FIELD_LP}' field"),
        });
        return Ok(());
    };
    let target = keys.partition(partition_of(&lp, keys.count()));
    let entry = Entry {
        lp,
        db: letter.db,
        rp: letter.rp,
    };
    let dlq = keys.dlq();
    let new_id: Option<String> = if replay.atomic {
        let mut invocation = replay.script.key(&dlq);
        invocation.key(target).arg(&letter.id);
        for (field, value) in entry.fields() {
            invocation.arg(field).arg(value);
        }
        match invocation.invoke_async(conn).await {
            Ok(new_id) => new_id,
            Err(e) if e.code() == Some("CROSSSLOT") => {
                replay.atomic = false;
                replay_in_two_steps(conn, &dlq, target, &letter.id, &entry).await?
            }
            Err(e) => return Err(Error::redis(e, "XADD", target)),
        }
    } else {
        replay_in_two_steps(conn, &dlq, target, &letter.id, &entry).await?
    };
    match new_id {
        Some(_) => report.replayed += 1,
        None => report.failed.push(ReplayFailure {
            id: letter.id,
            reason: "removed from the dead-letter stream meanwhile".into(),
        }),
    }
    Ok(())
}

/// `XADD` of `entry` to `target`, then, once Redis confirmed it, `XDEL` of letter `id`: for
/// Redis Cluster, where the two keys are different slots (see the module's invariant).
/// Returns the new entry id; the letter counts as replayed even if a racing replay deleted
/// it first (the metric was re-injected by both: the same point twice).
async fn replay_in_two_steps<C: ConnectionLike + Send>(
    conn: &mut C,
    dlq: &str,
    target: &str,
    id: &str,
    entry: &Entry,
) -> Result<Option<String>> {
    let new_id: String = redis::cmd("XADD")
        .arg(target)
        .arg("*")
        .arg(entry.fields())
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, "XADD", target))?;
    redis::cmd("XDEL")
        .arg(dlq)
        .arg(id)
        .query_async::<u64>(conn)
        .await
        .map_err(|e| Error::redis(e, "XDEL", dlq))?;
    Ok(Some(new_id))
}

/// The partition of a line: by its series key as the producer computes it (tags sorted),
/// or, for a line that does not parse, by its text up to the first unescaped space.
fn partition_of(lp: &str, partitions: usize) -> usize {
    if partitions <= 1 {
        return 0;
    }
    let parsed = line::parse(lp, Precision::Nanoseconds, 0);
    if parsed.len() == 1 {
        series::partition(parsed.metric(0).series_key(), partitions)
    } else {
        series::partition(series::key_of_line(lp), partitions)
    }
}

/// Deletes the dead letters in `ids`, or with `None` all of them (`XTRIM MAXLEN 0`, which
/// keeps the key and any group reading it).
///
/// # Errors
/// [`Error::InvalidId`]; Redis errors.
pub async fn dlq_purge<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    ids: Option<&[String]>,
) -> Result<PurgeReport> {
    let dlq = keys.dlq();
    let removed = match ids {
        Some([]) => 0,
        Some(ids) => {
            let ids = reply::canonical_ids(ids)?;
            redis::cmd("XDEL")
                .arg(&dlq)
                .arg(&ids)
                .query_async(conn)
                .await
                .map_err(|e| Error::redis(e, "XDEL", &dlq))?
        }
        None => {
            stream::exists(conn, &dlq).await?;
            redis::cmd("XTRIM")
                .arg(&dlq)
                .arg("MAXLEN")
                .arg(0)
                .query_async(conn)
                .await
                .map_err(|e| Error::redis(e, "XTRIM", &dlq))?
        }
    };
    Ok(PurgeReport { removed })
}

fn canonical(id: &str) -> Result<String> {
    reply::Id::parse(id)
        .map(|id| id.to_string())
        .ok_or_else(|| Error::invalid_id(id))
}

async fn range<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    start: &str,
    end: &str,
    count: usize,
    command: &'static str,
) -> Result<Vec<(String, Fields)>> {
    let value: Value = redis::cmd(command)
        .arg(key)
        .arg(start)
        .arg(end)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, command, key))?;
    reply::entries(command, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_goes_to_the_partition_of_its_series() {
        let sorted = "cpu,a=1,b=2 v=1 5";
        let unsorted = "cpu,b=2,a=1 v=1 5";
        let expected = series::partition("cpu,a=1,b=2", 8);
        assert_eq!(partition_of(sorted, 8), expected);
        assert_eq!(partition_of(unsorted, 8), expected);
        assert_eq!(
            partition_of("not line protocol", 8),
            series::partition("not", 8)
        );
        assert_eq!(partition_of(sorted, 1), 0);
    }
}
