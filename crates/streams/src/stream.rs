//! Read-only questions to Redis about one stream that several commands ask: does it exist,
//! which groups read it, what do they hold pending, how many entries lie in an id range.

use redis::aio::ConnectionLike;
use redis::Value;

use crate::error::{Error, Result};
use crate::reply::{self, Fields};

/// How many entries one `XRANGE` of a counting scan fetches.
const COUNT_CHUNK: usize = 10_000;

/// True when `key` holds a stream, false when it does not exist.
///
/// # Errors
/// [`Error::NotAStream`] for a key of another type; Redis errors.
pub(crate) async fn exists<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> Result<bool> {
    let kind: String = redis::cmd("TYPE")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, "TYPE", key))?;
    match kind.as_str() {
        "none" => Ok(false),
        "stream" => Ok(true),
        _ => Err(Error::NotAStream {
            key: key.to_string(),
            kind,
        }),
    }
}

/// The length of a stream, 0 when it does not exist.
///
/// # Errors
/// [`Error::NotAStream`] for a key of another type; Redis errors.
pub(crate) async fn len<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> Result<u64> {
    if !exists(conn, key).await? {
        return Ok(0);
    }
    redis::cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, "XLEN", key))
}

/// The server's clock in Unix milliseconds (`TIME`): the clock `*` ids are made from, so
/// ages computed against it do not depend on this host's clock.
pub(crate) async fn server_time_ms<C: ConnectionLike + Send>(conn: &mut C) -> Result<u64> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, "TIME", ""))?;
    Ok(secs * 1000 + micros / 1000)
}

/// One row of `XINFO GROUPS`: a consumer group's state on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// Its consumers.
    pub consumers: u64,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// The last id delivered to it.
    pub last_delivered_id: String,
    /// Entries it has read (Redis ≥ 7.0); `None` before, or when Redis cannot tell.
    pub entries_read: Option<u64>,
    /// Entries not delivered to it yet (Redis ≥ 7.0); `None` before, or when Redis cannot
    /// tell (after some deletions).
    pub lag: Option<u64>,
}

/// Every consumer group of a stream (`XINFO GROUPS`): the one decoder of group state.
///
/// # Errors
/// Redis errors, `ERR no such key` for a missing stream among them.
pub async fn groups<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> Result<Vec<GroupInfo>> {
    let value: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, "XINFO GROUPS", key))?;
    decode_groups(value)
}

/// Decodes an `XINFO GROUPS` reply (RESP2 flat arrays or RESP3 maps), for callers that sent
/// the command themselves (in a pipeline, a transaction, a synchronous connection).
///
/// # Errors
/// [`Error::Reply`] when the reply does not have the documented shape.
pub fn decode_groups(value: Value) -> Result<Vec<GroupInfo>> {
    const CMD: &str = "XINFO GROUPS";
    reply::array(CMD, value)?
        .into_iter()
        .map(|item| {
            let f = Fields::decode(CMD, item)?;
            Ok(GroupInfo {
                name: f.need_text(CMD, "name")?,
                consumers: f.need_uint(CMD, "consumers")?,
                pending: f.need_uint(CMD, "pending")?,
                last_delivered_id: f.need_text(CMD, "last-delivered-id")?,
                entries_read: f.uint("entries-read"),
                lag: f.uint("lag"),
            })
        })
        .collect()
}

/// Entries of `key` the slowest group has not acknowledged: its pending entries plus its lag.
/// A stream without groups counts its whole length (nothing has consumed it), and so does a
/// group whose lag Redis cannot compute (after deletions): the safe side. 0 for a stream
/// that does not exist.
///
/// # Errors
/// [`Error::NotAStream`] for a key of another type; Redis errors.
pub async fn backlog<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> Result<u64> {
    let length = len(conn, key).await?;
    if length == 0 {
        return Ok(0);
    }
    let groups = match groups(conn, key).await {
        Ok(groups) => groups,
        // Deleted between the two commands: nothing is buffered.
        Err(Error::Command { reply, .. }) if reply.code() == Some("ERR") => return Ok(0),
        Err(error) => return Err(error),
    };
    Ok(unacknowledged(
        length,
        groups.iter().map(|g| (g.pending, g.lag)),
    ))
}

/// What [`backlog`] computes from a stream's length and its groups' (pending, lag).
pub(crate) fn unacknowledged(length: u64, groups: impl Iterator<Item = (u64, Option<u64>)>) -> u64 {
    if length == 0 {
        return 0;
    }
    groups
        .map(|(pending, lag)| lag.map_or(length, |lag| (pending + lag).min(length)))
        .max()
        .unwrap_or(length)
}

/// The groups of `key` to look at: all of them, or the one named, which must exist.
///
/// # Errors
/// [`Error::NoSuchGroup`] when a group is named and the stream has none by that name.
pub(crate) async fn select_groups<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: Option<&str>,
) -> Result<Vec<GroupInfo>> {
    let all = if exists(conn, key).await? {
        groups(conn, key).await?
    } else {
        Vec::new()
    };
    let Some(wanted) = group else {
        return Ok(all);
    };
    let selected: Vec<GroupInfo> = all.into_iter().filter(|g| g.name == wanted).collect();
    if selected.is_empty() {
        return Err(Error::NoSuchGroup {
            stream: key.to_string(),
            group: wanted.to_string(),
        });
    }
    Ok(selected)
}

/// The summary form of `XPENDING key group`.
#[derive(Debug, Default)]
pub(crate) struct PendingSummary {
    /// (consumer, how many entries it holds), for consumers holding any.
    pub(crate) consumers: Vec<(String, u64)>,
}

/// `XPENDING key group`: `[count, lowest id, highest id, [[consumer, count], …]]`.
pub(crate) async fn pending_summary<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
) -> Result<PendingSummary> {
    const CMD: &str = "XPENDING";
    let value: Value = redis::cmd(CMD)
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await
        .map_err(|e| Error::in_group(e, CMD, key, group))?;
    let parts = reply::array(CMD, value)?.into_iter();
    // [count, lowest id, highest id, consumers]: only the consumers are used.
    let mut parts = parts.skip(3);
    let consumers = match parts.next() {
        None | Some(Value::Nil) => Vec::new(),
        Some(list) => reply::array(CMD, list)?
            .into_iter()
            .map(|pair| {
                let mut pair = reply::array(CMD, pair)?.into_iter();
                let name = pair.next().as_ref().and_then(reply::text);
                let count = pair.next().as_ref().and_then(reply::uint);
                name.zip(count)
                    .ok_or_else(|| Error::reply(CMD, "a consumer row is not [name, count]"))
            })
            .collect::<Result<_>>()?,
    };
    Ok(PendingSummary { consumers })
}

/// One row of the extended form of `XPENDING`.
#[derive(Debug, Clone)]
pub(crate) struct PendingId {
    pub(crate) id: String,
    pub(crate) consumer: String,
    pub(crate) idle_ms: u64,
    pub(crate) deliveries: u64,
}

/// Which pending entries the extended `XPENDING` lists.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingQuery<'a> {
    pub(crate) min_idle_ms: Option<u64>,
    pub(crate) count: usize,
    pub(crate) consumer: Option<&'a str>,
}

/// `XPENDING key group [IDLE ms] - + count [consumer]`, lowest ids first.
pub(crate) async fn pending_entries<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
    query: PendingQuery<'_>,
) -> Result<Vec<PendingId>> {
    const CMD: &str = "XPENDING";
    let mut cmd = redis::cmd(CMD);
    cmd.arg(key).arg(group);
    if let Some(idle) = query.min_idle_ms {
        cmd.arg("IDLE").arg(idle);
    }
    cmd.arg("-").arg("+").arg(query.count);
    if let Some(consumer) = query.consumer {
        cmd.arg(consumer);
    }
    let value: Value = cmd
        .query_async(conn)
        .await
        .map_err(|e| Error::in_group(e, CMD, key, group))?;
    reply::array(CMD, value)?
        .into_iter()
        .map(|row| {
            let row = reply::array(CMD, row)?;
            match row.as_slice() {
                [id, consumer, idle, deliveries] => Some(PendingId {
                    id: reply::text(id).unwrap_or_default(),
                    consumer: reply::text(consumer).unwrap_or_default(),
                    idle_ms: reply::uint(idle).unwrap_or_default(),
                    deliveries: reply::uint(deliveries).unwrap_or_default(),
                })
                .filter(|p| !p.id.is_empty()),
                _ => None,
            }
            .ok_or_else(|| Error::reply(CMD, "a row is not [id, consumer, idle, deliveries]"))
        })
        .collect()
}

/// The field list of entry `id` of `key`, `None` when there is no such entry.
pub(crate) async fn entry<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    id: &str,
) -> Result<Option<Fields>> {
    const CMD: &str = "XRANGE";
    let value: Value = redis::cmd(CMD)
        .arg(key)
        .arg(id)
        .arg(id)
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, CMD, key))?;
    Ok(reply::entries(CMD, value)?
        .into_iter()
        .next()
        .map(|(_, f)| f))
}

/// How many entries of `key` lie between `start` and `end` (`XRANGE` syntax: `-`, `+`,
/// `(id` for exclusive), counted in chunks; `None` once more than `limit` were seen.
pub(crate) async fn count_range<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    start: &str,
    end: &str,
    limit: Option<u64>,
) -> Result<Option<u64>> {
    const CMD: &str = "XRANGE";
    let mut cursor = start.to_string();
    let mut counted = 0u64;
    loop {
        let value: Value = redis::cmd(CMD)
            .arg(key)
            .arg(&cursor)
            .arg(end)
            .arg("COUNT")
            .arg(COUNT_CHUNK)
            .query_async(conn)
            .await
            .map_err(|e| Error::redis(e, CMD, key))?;
        let chunk = reply::entries(CMD, value)?;
        counted += chunk.len() as u64;
        if limit.is_some_and(|limit| counted > limit) {
            return Ok(None);
        }
        match chunk.last() {
            Some((last, _)) if chunk.len() == COUNT_CHUNK => cursor = format!("({last}"),
            _ => return Ok(Some(counted)),
        }
    }
}
