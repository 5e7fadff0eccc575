//! `redline claim`: hand pending entries to another consumer.
//!
//! Claims use `JUSTID`, which leaves the delivery counter alone: moving an entry is not a
//! delivery. The new owner reads it from its own pending list (`XREADGROUP … 0`), and that
//! read counts. <https://redis.io/docs/latest/commands/xclaim/>

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Value;
use redline_core::keys::StreamKeys;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pending::saturating_ms;
use crate::reply;
use crate::stream;

/// How many pending entries one `XAUTOCLAIM` call takes at most.
const AUTOCLAIM_COUNT: usize = 1000;

/// What a claim moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimReport {
    /// The group.
    pub group: String,
    /// The consumer that now holds the entries.
    pub to: String,
    /// How many entries changed owner.
    pub moved: u64,
    /// Those entries.
    pub claimed: Vec<ClaimedEntry>,
    /// Ids asked for that were not moved: not pending in the group on any partition, or not
    /// idle for `min_idle` yet. Empty without ids.
    pub not_claimed: Vec<String>,
    /// Pending entries whose stream entry had been deleted; `XAUTOCLAIM` dropped them from
    /// the pending list, as there is nothing left to deliver.
    pub deleted: u64,
}

/// One claimed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimedEntry {
    /// The stream key.
    pub stream: String,
    /// The entry id.
    pub id: String,
}

/// Hands `group`'s pending entries idle at least `min_idle` to consumer `to`: those in
/// `ids`, or with no ids every one, over every partition (or only `partition`). An id is
/// `ID` or `STREAM/ID`; a bare id that is pending in several partitions (ids repeat across
/// partitions) is refused, naming them.
///
/// # Errors
/// [`Error::InvalidId`], [`Error::AmbiguousId`], [`Error::NoSuchPartition`],
/// [`Error::NoSuchGroup`]; Redis errors.
pub async fn claim<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    group: &str,
    to: &str,
    min_idle: Duration,
    ids: &[String],
    partition: Option<usize>,
) -> Result<ClaimReport> {
    let streams: Vec<&String> = match partition {
        Some(n) => vec![keys
            .partitions()
            .get(n)
            .ok_or_else(|| Error::NoSuchPartition {
                stream: format!("partition {n}"),
                known: keys.partitions().to_vec(),
            })?],
        None => keys.partitions().iter().collect(),
    };
    let min_idle_ms = saturating_ms(min_idle);
    let mut report = ClaimReport {
        group: group.to_string(),
        to: to.to_string(),
        moved: 0,
        claimed: Vec::new(),
        not_claimed: Vec::new(),
        deleted: 0,
    };
    for key in &streams {
        // Names a missing group or stream clearly before any claim is made.
        stream::select_groups(conn, key, Some(group)).await?;
    }
    if ids.is_empty() {
        for key in streams {
            let claimed = autoclaim(conn, key, group, to, min_idle_ms, &mut report.deleted).await?;
            report.add(key, claimed);
        }
    } else {
        let (placed, unplaced) = place(conn, keys, &streams, group, ids).await?;
        report.not_claimed = unplaced;
        for (key, ids) in placed {
            let claimed = xclaim(conn, &key, group, to, min_idle_ms, &ids).await?;
            report
                .not_claimed
                .extend(ids.into_iter().filter(|id| !claimed.contains(id)));
            report.add(&key, claimed);
        }
    }
    report.moved = report.claimed.len() as u64;
    Ok(report)
}

impl ClaimReport {
    fn add(&mut self, key: &str, ids: Vec<String>) {
        self.claimed.extend(ids.into_iter().map(|id| ClaimedEntry {
            stream: key.to_string(),
            id,
        }));
    }
}

/// The partition of each asked-for id: the one `STREAM/ID` names, the only one of
/// `streams`, or the one where the group holds it pending. Ids pending nowhere come back
/// apart (they cannot be moved).
async fn place<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    streams: &[&String],
    group: &str,
    ids: &[String],
) -> Result<(Vec<(String, Vec<String>)>, Vec<String>)> {
    let mut placed: Vec<(String, Vec<String>)> = Vec::new();
    let mut unplaced = Vec::new();
    let mut put = |key: &str, id: String| match placed.iter_mut().find(|(k, _)| k == key) {
        Some((_, ids)) => ids.push(id),
        None => placed.push((key.to_string(), vec![id])),
    };
    for spec in ids {
        if let Some((stream, id)) = spec.rsplit_once('/') {
            if !keys.partitions().iter().any(|k| k == stream) {
                return Err(Error::NoSuchPartition {
                    stream: stream.to_string(),
                    known: keys.partitions().to_vec(),
                });
            }
            put(stream, canonical(id)?);
            continue;
        }
        let id = canonical(spec)?;
        if let [only] = streams {
            put(only, id);
            continue;
        }
        let mut holders = Vec::new();
        for key in streams {
            if is_pending(conn, key, group, &id).await? {
                holders.push((*key).clone());
            }
        }
        match holders.as_slice() {
            [] => unplaced.push(id),
            [one] => put(one, id),
            _ => {
                return Err(Error::AmbiguousId {
                    id,
                    streams: holders,
                })
            }
        }
    }
    Ok((placed, unplaced))
}

fn canonical(id: &str) -> Result<String> {
    Ok(reply::canonical_ids(&[id.to_string()])?.remove(0))
}

/// Whether `group` holds entry `id` of `key` pending.
async fn is_pending<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
    id: &str,
) -> Result<bool> {
    const CMD: &str = "XPENDING";
    let value: Value = redis::cmd(CMD)
        .arg(key)
        .arg(group)
        .arg(id)
        .arg(id)
        .arg(1)
        .query_async(conn)
        .await
        .map_err(|e| Error::in_group(e, CMD, key, group))?;
    Ok(!reply::array(CMD, value)?.is_empty())
}

async fn xclaim<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
    to: &str,
    min_idle_ms: u64,
    ids: &[String],
) -> Result<Vec<String>> {
    const CMD: &str = "XCLAIM";
    let value: Value = redis::cmd(CMD)
        .arg(key)
        .arg(group)
        .arg(to)
        .arg(min_idle_ms)
        .arg(ids)
        .arg("JUSTID")
        .query_async(conn)
        .await
        .map_err(|e| Error::in_group(e, CMD, key, group))?;
    id_list(CMD, value)
}

/// `XAUTOCLAIM … JUSTID` from `0-0` until Redis answers the cursor `0-0` again.
async fn autoclaim<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
    to: &str,
    min_idle_ms: u64,
    deleted: &mut u64,
) -> Result<Vec<String>> {
    const CMD: &str = "XAUTOCLAIM";
    let mut cursor = "0-0".to_string();
    let mut claimed = Vec::new();
    loop {
        let value: Value = redis::cmd(CMD)
            .arg(key)
            .arg(group)
            .arg(to)
            .arg(min_idle_ms)
            .arg(&cursor)
            .arg("COUNT")
            .arg(AUTOCLAIM_COUNT)
            .arg("JUSTID")
            .query_async(conn)
            .await
            .map_err(|e| Error::in_group(e, CMD, key, group))?;
        // [next cursor, [claimed ids], [deleted ids] (Redis ≥ 7)]
        let mut parts = reply::array(CMD, value)?.into_iter();
        let next = parts
            .next()
            .as_ref()
            .and_then(reply::text)
            .ok_or_else(|| Error::reply(CMD, "no cursor"))?;
        claimed.extend(id_list(CMD, parts.next().unwrap_or(Value::Nil))?);
        *deleted += id_list(CMD, parts.next().unwrap_or(Value::Nil))?.len() as u64;
        if next == "0-0" {
            return Ok(claimed);
        }
        cursor = next;
    }
}

fn id_list(command: &'static str, value: Value) -> Result<Vec<String>> {
    reply::array(command, value)?
        .iter()
        .map(|id| reply::text(id).ok_or_else(|| Error::reply(command, "an id is not a string")))
        .collect()
}
