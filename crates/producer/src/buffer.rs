//! The buffer limit: how many entries the slowest group has not acknowledged yet, and what
//! to do when a request would take that past `buffer_limit`.
//!
//! Unacknowledged entries of a group on one partition are its pending entries plus its lag
//! (entries not delivered yet), both from XINFO GROUPS; the slowest group decides. A
//! partition without groups counts its whole length: nothing has consumed it. Where Redis
//! cannot compute a lag (after deletions) the stream length stands in, which errs on the
//! safe side.
//!
//! Policies: `block` (default) refuses the whole request with 503 + `Retry-After` and stores
//! nothing of it; `drop_oldest` (Telegraf's behaviour) trims the oldest entries to make
//! room, counts every dropped entry and logs at warn.

use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redline_core::{keys::StreamKeys, telemetry};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// What to do when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BufferFull {
    /// Answer 503 with Retry-After; store nothing of the request.
    #[default]
    Block,
    /// Drop the oldest unacknowledged entries (Telegraf's behaviour), counting each.
    #[value(name = "drop_oldest", alias = "drop-oldest")]
    DropOldest,
}

impl std::str::FromStr for BufferFull {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(value, true)
    }
}

/// How long a measured backlog is trusted before it is measured again.
const REFRESH: Duration = Duration::from_millis(100);

/// Tracks the backlog; one per producer.
#[derive(Debug)]
pub struct Buffer {
    limit: u64,
    policy: BufferFull,
    keys: StreamKeys,
    /// Last measured backlog per partition and when; the lock also makes one request
    /// measure while the others wait for its figure.
    measured: Mutex<Option<(Instant, Vec<u64>)>>,
}

/// The request must be refused: the buffer is full under `block`.
#[derive(Debug, thiserror::Error)]
#[error("buffer full: {backlog} entries not yet acknowledged by the slowest consumer group (buffer limit {limit}); retry later")]
pub struct Full {
    /// Unacknowledged entries.
    pub backlog: u64,
    /// The configured limit.
    pub limit: u64,
}

impl Buffer {
    /// A buffer of `limit` entries (0 = unlimited) under `policy`.
    pub fn new(limit: u64, policy: BufferFull, keys: StreamKeys) -> Self {
        Self {
            limit,
            policy,
            keys,
            measured: Mutex::new(None),
        }
    }

    /// The most entries one request may add: the limit under `block` (a larger request
    /// could never fit); `None` without a limit or under `drop_oldest`.
    pub fn largest_request(&self) -> Option<u64> {
        (self.is_limited() && self.policy == BufferFull::Block).then_some(self.limit)
    }

    /// True when a limit is set.
    pub fn is_limited(&self) -> bool {
        self.limit > 0
    }

    /// Makes room for `incoming[p]` entries per partition `p`, or refuses.
    ///
    /// # Errors
    /// `Ok(Err(Full))` under `block` when the request does not fit; `Err` when Redis fails.
    pub async fn admit<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        incoming: &[u64],
    ) -> redline_streams::Result<Result<(), Full>> {
        if !self.is_limited() {
            return Ok(Ok(()));
        }
        let mut measured = self.measured.lock().await;
        let fresh = measured
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < REFRESH);
        if !fresh {
            let mut per_partition = Vec::with_capacity(self.keys.count());
            for key in self.keys.partitions() {
                per_partition.push(redline_streams::backlog(conn, key).await?);
            }
            *measured = Some((Instant::now(), per_partition));
        }
        let Some((_, backlog)) = measured.as_mut() else {
            unreachable!("measured just above");
        };
        let total: u64 = backlog.iter().sum();
        let adding: u64 = incoming.iter().sum();
        metrics::gauge!(telemetry::BUFFER_ENTRIES).set(total as f64);
        if total + adding <= self.limit {
            for (b, n) in backlog.iter_mut().zip(incoming) {
                *b += n;
            }
            return Ok(Ok(()));
        }
        match self.policy {
            BufferFull::Block => {
                metrics::counter!(telemetry::UNAVAILABLE, "cause" => "buffer_full").increment(1);
                Ok(Err(Full {
                    backlog: total,
                    limit: self.limit,
                }))
            }
            BufferFull::DropOldest => {
                let share = self.limit.div_ceil(self.keys.count() as u64);
                for (index, key) in self.keys.partitions().iter().enumerate() {
                    let keep = share.saturating_sub(incoming[index]);
                    if backlog[index] > keep {
                        let dropped = drop_oldest(conn, key, keep).await?;
                        backlog[index] = keep;
                        if dropped > 0 {
                            metrics::counter!(telemetry::DROPPED).increment(dropped);
                            tracing::warn!(stream = %key, dropped, limit = self.limit, "Buffer full: dropped the oldest unacknowledged metrics.");
                        }
                    }
                    backlog[index] += incoming[index];
                }
                Ok(Ok(()))
            }
        }
    }
}

/// Trims `key` to its newest `keep` entries, returning how many entries that removed
/// beyond the ones every group had already acknowledged.
async fn drop_oldest<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    keep: u64,
) -> redline_streams::Result<u64> {
    let unacked = redline_streams::backlog(conn, key).await?;
    let redis_error = |e| redline_streams::Error::Redis(e);
    let len: u64 = redis::cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(redis_error)?;
    let removed: u64 = redis::cmd("XTRIM")
        .arg(key)
        .arg("MAXLEN")
        .arg("=")
        .arg(keep)
        .query_async(conn)
        .await
        .map_err(redis_error)?;
    // Entries every group had acknowledged were not metrics waiting for delivery.
    let acked = len.saturating_sub(unacked);
    Ok(removed.saturating_sub(acked))
}

#[cfg(test)]
mod tests;
