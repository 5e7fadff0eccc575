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

/// Gives consumer `to` of `group` the entries idle for at least `min_idle`: those in `ids`
/// (`XCLAIM`, on every partition), or with no ids every such entry (`XAUTOCLAIM`).
///
/// # Errors
/// [`Error::NoSuchGroup`] when `group` is missing on a partition, [`Error::InvalidId`] for a
/// malformed id; Redis errors.
pub async fn claim<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    group: &str,
    to: &str,
    min_idle: Duration,
    ids: &[String],
) -> Result<ClaimReport> {
    let ids = reply::canonical_ids(ids)?;
    let min_idle_ms = saturating_ms(min_idle);
    let mut report = ClaimReport {
        group: group.to_string(),
        to: to.to_string(),
        moved: 0,
        claimed: Vec::new(),
        not_claimed: Vec::new(),
        deleted: 0,
    };
    for key in keys.partitions() {
        // Names a missing group or stream clearly before any claim is made.
        stream::select_groups(conn, key, Some(group)).await?;
    }
    for key in keys.partitions() {
        let claimed = if ids.is_empty() {
            autoclaim(conn, key, group, to, min_idle_ms, &mut report.deleted).await?
        } else {
            xclaim(conn, key, group, to, min_idle_ms, &ids).await?
        };
        report
            .claimed
            .extend(claimed.into_iter().map(|id| ClaimedEntry {
                stream: key.clone(),
                id,
            }));
    }
    report.moved = report.claimed.len() as u64;
    report.not_claimed = ids
        .into_iter()
        .filter(|id| !report.claimed.iter().any(|c| &c.id == id))
        .collect();
    Ok(report)
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
