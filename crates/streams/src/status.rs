//! `redline status`: each metric stream's length, ids and memory, each group's consumers,
//! pending entries, lag and oldest pending entry, and the dead-letter count; under Sentinel,
//! the master in use and what each sentinel says of it ([`sentinel_status`]).

use redis::aio::ConnectionLike;
use redis::Value;
use redline_core::keys::StreamKeys;
use redline_core::redis::{Connection, RedisConfig, SentinelView};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::rates::GroupRate;
use crate::reply::{self, Fields, Id};
use crate::stream::{self, GroupInfo, PendingQuery};

/// When Redis cannot tell a group's lag, at most this many entries are counted to find it;
/// past that the lag is reported unknown rather than scanning a huge backlog.
const LAG_COUNT_LIMIT: u64 = 100_000;

/// The state of every metric stream and the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// One per partition, in partition order.
    pub streams: Vec<StreamStatus>,
    /// The dead-letter stream key.
    pub dlq_key: String,
    /// How many dead letters it holds.
    pub dlq_length: u64,
    /// Each group's write rate and time to drain its backlog, from what its consumer
    /// processes report (see [`crate::rates`]).
    pub rates: Vec<GroupRate>,
    /// Under Sentinel only: the master this report was read from and what each sentinel
    /// says (set by [`sentinel_status`]; absent from the JSON otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelStatus>,
}

/// The master in use under Sentinel, and what each sentinel says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentinelStatus {
    /// The name the sentinels know the master by.
    pub master_name: String,
    /// The master the connection reached (`host:port`), checked master with `ROLE`.
    pub master: String,
    /// True when every sentinel answered and named that master.
    pub agree: bool,
    /// One per sentinel of the URL, in its order: the master it names, or why none.
    pub sentinels: Vec<SentinelView>,
}

/// Under Sentinel, the master `conn` reached and what every sentinel says of it; `None` for
/// a standalone Redis or a cluster.
///
/// # Errors
/// [`Error::Config`] for a bad Sentinel URL (sentinels that do not answer are reported, not
/// errors).
pub async fn sentinel_status(
    config: &RedisConfig,
    conn: &Connection,
) -> Result<Option<SentinelStatus>> {
    let (Some(census), Some(master)) = (config.census().await?, conn.master()) else {
        return Ok(None);
    };
    let agree = census.answered() == census.sentinels.len() && census.masters() == [master];
    Ok(Some(SentinelStatus {
        master_name: census.master_name,
        master: master.to_string(),
        agree,
        sentinels: census.sentinels,
    }))
}

/// One metric stream (partition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamStatus {
    /// The stream key.
    pub key: String,
    /// False when the key does not exist yet (no producer wrote, no group was created).
    pub exists: bool,
    /// Entries in the stream.
    pub length: u64,
    /// The lowest entry id, `None` when empty.
    pub first_id: Option<String>,
    /// The highest entry id, `None` when empty.
    pub last_id: Option<String>,
    /// The last id Redis generated (may be deleted or trimmed since).
    pub last_generated_id: Option<String>,
    /// `MEMORY USAGE` of the key in bytes; `None` when Redis does not allow the command.
    pub memory_bytes: Option<u64>,
    /// Every consumer group, whoever created it.
    pub groups: Vec<GroupStatus>,
}

impl StreamStatus {
    /// Entries the slowest group has not acknowledged, as [`crate::backlog`] counts them.
    pub fn backlog(&self) -> u64 {
        crate::stream::unacknowledged(self.length, self.groups.iter().map(|g| (g.pending, g.lag)))
    }
}

/// One consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    /// The group name.
    pub name: String,
    /// Consumers known to the group.
    pub consumers: u64,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group; `None` when it cannot be determined
    /// cheaply (Redis < 7, or deletions after a large backlog).
    pub lag: Option<u64>,
    /// The last id delivered to any consumer of the group.
    pub last_delivered_id: String,
    /// Redis' logical read counter of the group (Redis ≥ 7).
    pub entries_read: Option<u64>,
    /// The lowest pending id.
    pub oldest_pending_id: Option<String>,
    /// How old that entry is: the server's clock minus the id's millisecond part.
    pub oldest_pending_age_ms: Option<u64>,
    /// Since when that entry was last delivered, in ms (`XPENDING` idle).
    pub oldest_pending_idle_ms: Option<u64>,
}

/// Reports the state of every partition of `keys` and the dead-letter count.
///
/// # Errors
/// Redis errors, and [`Error::NotAStream`] when a key holds another type.
pub async fn status<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
) -> Result<StatusReport> {
    let now_ms = stream::server_time_ms(conn).await?;
    let mut streams = Vec::with_capacity(keys.count());
    for key in keys.partitions() {
        streams.push(stream_status(conn, key, now_ms).await?);
    }
    let dlq_key = keys.dlq();
    let dlq_length = stream::len(conn, &dlq_key).await?;
    let reports = crate::rates::read(conn, keys, now_ms).await?;
    Ok(StatusReport {
        rates: crate::rates::by_group(&streams, &reports),
        streams,
        dlq_key,
        dlq_length,
        sentinel: None,
    })
}

async fn stream_status<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    now_ms: u64,
) -> Result<StreamStatus> {
    let mut status = StreamStatus {
        key: key.to_string(),
        exists: false,
        length: 0,
        first_id: None,
        last_id: None,
        last_generated_id: None,
        memory_bytes: None,
        groups: Vec::new(),
    };
    if !stream::exists(conn, key).await? {
        return Ok(status);
    }
    const CMD: &str = "XINFO STREAM";
    let value: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, CMD, key))?;
    let info = Fields::decode(CMD, value)?;
    let entry_id = |name: &str| match info.get(name) {
        Some(v @ Value::Array(_)) => reply::entry(CMD, v.clone()).ok().map(|(id, _)| id),
        _ => None,
    };
    status.exists = true;
    status.length = info.need_uint(CMD, "length")?;
    status.first_id = entry_id("first-entry");
    status.last_id = entry_id("last-entry");
    status.last_generated_id = info.text("last-generated-id");
    status.memory_bytes = memory_usage(conn, key).await?;
    for group in stream::groups(conn, key).await? {
        let group = group_status(conn, &status, group, now_ms).await?;
        status.groups.push(group);
    }
    Ok(status)
}

/// `MEMORY USAGE key`; `None` when the server refuses it (some managed Redis do).
async fn memory_usage<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> Result<Option<u64>> {
    match redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .query_async::<Option<u64>>(conn)
        .await
    {
        Ok(bytes) => Ok(bytes),
        Err(e) => match Error::redis(e, "MEMORY USAGE", key) {
            Error::Command { .. } => Ok(None),
            other => Err(other),
        },
    }
}

async fn group_status<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &StreamStatus,
    group: GroupInfo,
    now_ms: u64,
) -> Result<GroupStatus> {
    let key = stream.key.as_str();
    let (mut oldest_id, mut age, mut idle) = (None, None, None);
    if group.pending > 0 {
        let oldest = stream::pending_entries(
            conn,
            key,
            &group.name,
            PendingQuery {
                min_idle_ms: None,
                count: 1,
                consumer: None,
            },
        )
        .await?;
        if let Some(first) = oldest.into_iter().next() {
            age = Id::parse(&first.id).map(|id| now_ms.saturating_sub(id.ms));
            idle = Some(first.idle_ms);
            oldest_id = Some(first.id);
        }
    }
    let lag = match group.lag {
        Some(lag) => Some(lag),
        None => lag_by_counting(conn, stream, &group.last_delivered_id).await?,
    };
    Ok(GroupStatus {
        name: group.name,
        consumers: group.consumers,
        pending: group.pending,
        lag,
        last_delivered_id: group.last_delivered_id,
        entries_read: group.entries_read,
        oldest_pending_id: oldest_id,
        oldest_pending_age_ms: age,
        oldest_pending_idle_ms: idle,
    })
}

/// Entries after `last_delivered`: free at either end of the stream, else counted up to
/// [`LAG_COUNT_LIMIT`].
async fn lag_by_counting<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &StreamStatus,
    last_delivered: &str,
) -> Result<Option<u64>> {
    let parse = |id: &Option<String>| id.as_deref().and_then(Id::parse);
    let (Some(first), Some(last)) = (parse(&stream.first_id), parse(&stream.last_id)) else {
        return Ok(Some(0)); // empty stream
    };
    let Some(delivered) = Id::parse(last_delivered) else {
        return Ok(None);
    };
    if delivered >= last {
        return Ok(Some(0));
    }
    if delivered < first {
        return Ok(Some(stream.length));
    }
    let start = format!("({delivered}");
    stream::count_range(conn, &stream.key, &start, "+", Some(LAG_COUNT_LIMIT)).await
}
