//! `redline consumers`: list each group's consumers and remove idle ones holding nothing.
//!
//! Invariant: a consumer is removed only while it holds no pending entry. `XGROUP
//! DELCONSUMER` drops a consumer's pending entries from the group, and those entries would
//! then never be delivered again, so the check and the removal run as one script: the
//! consumer cannot read an entry in between.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Script, Value};
use redline_core::keys::StreamKeys;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pending::saturating_ms;
use crate::reply::{self, Fields};
use crate::stream;

/// Removes consumer ARGV[2] of group ARGV[1] on stream KEYS[1] if it holds nothing pending
/// and has been idle at least ARGV[3] ms. Returns 1 removed, 0 gone already, -1 it holds
/// entries, -2 it was active meanwhile.
const PRUNE_SCRIPT: &str = r"
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] == ARGV[2] then
    if f['pending'] ~= 0 then return -1 end
    if f['idle'] < tonumber(ARGV[3]) then return -2 end
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    return 1
  end
end
return 0
";

/// The consumers of the selected groups, and those removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumersReport {
    /// Consumers still in their group after this call.
    pub consumers: Vec<ConsumerInfo>,
    /// Consumers removed by `prune_idle` (empty without it).
    pub removed: Vec<ConsumerInfo>,
    /// The idle threshold used for pruning, in ms; `None` when not pruning.
    pub prune_idle_ms: Option<u64>,
}

/// One consumer of one group, as `XINFO CONSUMERS` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerInfo {
    /// The stream key.
    pub stream: String,
    /// The group.
    pub group: String,
    /// The consumer name.
    pub name: String,
    /// Entries it holds unacknowledged.
    pub pending: u64,
    /// Milliseconds since its last attempted interaction (read, claim).
    pub idle_ms: u64,
    /// Milliseconds since its last successful interaction (Redis ≥ 7.2), `None` before.
    pub inactive_ms: Option<u64>,
}

/// Lists the consumers of `group` (or of every group) on every partition; with
/// `prune_idle`, removes each that holds nothing pending and has been idle at least that
/// long.
///
/// # Errors
/// [`Error::NoSuchGroup`] when `group` is missing on a partition; Redis errors.
pub async fn consumers<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    group: Option<&str>,
    prune_idle: Option<Duration>,
) -> Result<ConsumersReport> {
    let prune_idle_ms = prune_idle.map(saturating_ms);
    let mut report = ConsumersReport {
        consumers: Vec::new(),
        removed: Vec::new(),
        prune_idle_ms,
    };
    let script = Script::new(PRUNE_SCRIPT);
    for key in keys.partitions() {
        for info in stream::select_groups(conn, key, group).await? {
            for consumer in list(conn, key, &info.name).await? {
                // Only candidates go to the script, which checks again atomically.
                let candidate =
                    prune_idle_ms.filter(|idle| consumer.pending == 0 && consumer.idle_ms >= *idle);
                let removed = match candidate {
                    Some(idle) => {
                        let outcome: i64 = script
                            .key(key)
                            .arg(&info.name)
                            .arg(&consumer.name)
                            .arg(idle)
                            .invoke_async(conn)
                            .await
                            .map_err(|e| {
                                Error::in_group(e, "XGROUP DELCONSUMER", key, &info.name)
                            })?;
                        outcome == 1
                    }
                    None => false,
                };
                if removed {
                    report.removed.push(consumer);
                } else {
                    report.consumers.push(consumer);
                }
            }
        }
    }
    Ok(report)
}

/// `XINFO CONSUMERS key group`.
async fn list<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
) -> Result<Vec<ConsumerInfo>> {
    const CMD: &str = "XINFO CONSUMERS";
    let value: Value = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await
        .map_err(|e| Error::in_group(e, CMD, key, group))?;
    reply::array(CMD, value)?
        .into_iter()
        .map(|item| {
            let f = Fields::decode(CMD, item)?;
            Ok(ConsumerInfo {
                stream: key.to_string(),
                group: group.to_string(),
                name: f.need_text(CMD, "name")?,
                pending: f.need_uint(CMD, "pending")?,
                idle_ms: f.need_uint(CMD, "idle")?,
                inactive_ms: f.uint("inactive"),
            })
        })
        .collect()
}
