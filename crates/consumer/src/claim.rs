//! Reclaiming what dead consumers held: every `interval`, `XAUTOCLAIM` hands this consumer
//! the group's entries idle longer than `min_idle`, a chunk of `batch_size` at a time, and
//! each chunk goes through the same delivery as a read batch.
//!
//! A live consumer keeps the entries it is retrying fresh (see [`crate::deliver`]), so only
//! entries whose consumer died, hung or was stopped mid-batch become idle long enough.
//! XAUTOCLAIM raises their delivery count, which is what ends a batch that kills every
//! consumer taking it. Redis 7 also drops ids whose entries were deleted from the pending
//! list and reports them apart; they need nothing more.
//! <https://redis.io/docs/latest/commands/xautoclaim/>

use std::time::Duration;

use redis::Value;
use redline_core::redis::Pool;
use tokio::time::Instant;

use crate::batch::{self, Message, ReplyError};
use crate::conn;

/// How often to look for idle entries: half of `min_idle` (so an entry waits at most 1.5 ×
/// `min_idle`), at most every 100 ms and at least every 5 s.
pub(crate) fn interval(min_idle: Duration) -> Duration {
    (min_idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Runs XAUTOCLAIM passes over every partition.
pub(crate) struct Claimer {
    keys: Vec<String>,
    group: String,
    consumer: String,
    min_idle: Duration,
    count: usize,
    interval: Duration,
    /// When the next pass starts.
    next_pass: Instant,
    /// The pass in progress: partition index and XAUTOCLAIM cursor.
    cursor: Option<(usize, String)>,
}

impl Claimer {
    /// A claimer whose first pass is due at once.
    pub(crate) fn new(
        keys: Vec<String>,
        group: String,
        consumer: String,
        min_idle: Duration,
        count: usize,
    ) -> Self {
        Self {
            keys,
            group,
            consumer,
            min_idle,
            count: count.max(1),
            interval: interval(min_idle),
            next_pass: Instant::now(),
            cursor: None,
        }
    }

    /// True while a pass is in progress or when the next one is due.
    pub(crate) fn is_due(&self) -> bool {
        self.cursor.is_some() || Instant::now() >= self.next_pass
    }

    /// The next chunk of claimed entries; empty when the pass is over.
    ///
    /// # Errors
    /// A [`conn::Error`]; the pass ends and the next one starts after `interval`.
    pub(crate) async fn next(&mut self, pool: &Pool) -> conn::Result<Vec<Message>> {
        let result = self.step(pool).await;
        if result.is_err() {
            self.end_pass();
        }
        result
    }

    async fn step(&mut self, pool: &Pool) -> conn::Result<Vec<Message>> {
        let mut conn = conn::get(pool).await?;
        loop {
            let (index, cursor) = self.cursor.take().unwrap_or((0, "0-0".to_string()));
            let key = &self.keys[index];
            let reply = redis::cmd("XAUTOCLAIM")
                .arg(key)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(u64::try_from(self.min_idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&cursor)
                .arg("COUNT")
                .arg(self.count)
                .query_async::<Value>(&mut conn)
                .await;
            let (next, messages) = match reply {
                Ok(reply) => parse(index, reply)?,
                // The stream or group is gone (Redis lost its data): nothing to claim here.
                Err(e) if e.code() == Some("NOGROUP") => ("0-0".to_string(), Vec::new()),
                Err(e) => return Err(e.into()),
            };
            if next != "0-0" {
                self.cursor = Some((index, next));
            } else if index + 1 < self.keys.len() {
                self.cursor = Some((index + 1, "0-0".to_string()));
            }
            if !messages.is_empty() {
                metrics::counter!(redline_core::telemetry::RECLAIMED)
                    .increment(messages.len() as u64);
                tracing::info!(entries = messages.len(), stream = %key, consumer = %self.consumer,
                    min_idle = ?self.min_idle, "Claimed entries idle longer than min_idle.");
                return Ok(messages);
            }
            if self.cursor.is_none() {
                self.end_pass();
                return Ok(Vec::new());
            }
        }
    }

    fn end_pass(&mut self) {
        self.cursor = None;
        self.next_pass = Instant::now() + self.interval;
    }
}

/// Parses `[next-cursor, entries, deleted-ids]`.
fn parse(index: usize, reply: Value) -> Result<(String, Vec<Message>), ReplyError> {
    const COMMAND: &str = "XAUTOCLAIM";
    let Value::Array(items) = reply else {
        return Err(ReplyError::new(COMMAND, &reply));
    };
    let mut items = items.into_iter();
    let (Some(next), Some(entries)) = (items.next(), items.next()) else {
        return Err(ReplyError::new(COMMAND, &Value::Nil));
    };
    let next = batch::text(&next).ok_or_else(|| ReplyError::new(COMMAND, &next))?;
    // Entries deleted from the stream come back as nil pairs on Redis 6.2 and are left out
    // on Redis 7 (listed in the third element, already dropped from the pending list).
    let entries = match entries {
        Value::Array(list) => Value::Array(list.into_iter().filter(|e| *e != Value::Nil).collect()),
        other => other,
    };
    Ok((next, batch::parse_entries(COMMAND, index, None, entries)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pass_interval_follows_min_idle_within_bounds() {
        assert_eq!(interval(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(
            interval(Duration::from_millis(50)),
            Duration::from_millis(100)
        );
    }
}
