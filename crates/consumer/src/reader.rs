//! Reading the group: this consumer's own pending entries first, then new ones, from every
//! partition, fairly.
//!
//! - On start, and after any read error (the reply of an XREADGROUP that Redis executed may
//!   have been lost with the connection), the reader re-reads the entries the group still
//!   counts as delivered to this consumer (`XREADGROUP … STREAMS key 0`, paging by the last
//!   id seen) until none are left. Each re-read raises their delivery count, which is how a
//!   batch that kills its consumer ends in the dead-letter stream instead of a crash loop.
//! - Then it reads new entries (`XREADGROUP GROUP g c COUNT n STREAMS key >`).
//!
//! Fairness: every command names one partition (on Redis Cluster the partitions are
//! different slots, and a multi-key XREADGROUP would be refused with `CROSSSLOT`). A read
//! sweeps the partitions without blocking, each getting an equal share of the batch; what a
//! quiet partition leaves unused is shared again among the busy ones (max-min fair), and the
//! partition that goes first rotates from read to read. So no partition starves while
//! another is busy, and a read returns at most `count` entries. Only when a whole sweep
//! finds nothing does the reader block: on a standalone Redis with one `XREADGROUP … BLOCK`
//! over every partition (allowed there), on a cluster on one partition at a time for at most
//! [`BLOCK_SLICE`], rotating and sweeping again in between, so an entry arriving on another
//! partition waits at most that long.
//!
//! `BLOCK` runs on a dedicated connection without a response timeout (pooled connections
//! have one, and a multiplexed connection would queue short commands behind the block).
//! A dropped future does not cancel the command on the server, so the reader never
//! abandons a read except on shutdown; entries a cancelled read took stay pending and are
//! re-read on restart or claimed. Any error drops the connection; the next read reconnects.
//! <https://redis.io/docs/latest/commands/xreadgroup/>

use std::time::Duration;

use redis::Value;
use redline_core::redis::{raw, Connection, RedisConfig};
use tokio::time::Instant;

use crate::batch::{self, Message, ReplyError};
use crate::entry_id::EntryId;
use crate::resp;

/// On a cluster, the longest a blocking read waits on one partition before the reader
/// sweeps every partition again.
pub(crate) const BLOCK_SLICE: Duration = Duration::from_millis(100);

/// A read failed; the connection is dropped and own pending entries are re-read next time.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No connection to Redis.
    #[error(transparent)]
    Connect(#[from] redline_core::redis::Error),
    /// Redis answered an error or the connection broke.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No answer in time (the network dropped the connection silently).
    #[error("XREADGROUP got no answer within {0:?}")]
    Timeout(Duration),
    /// The answer has an unexpected shape.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

impl Error {
    /// True when the stream or the group does not exist (Redis lost its data, or an operator
    /// deleted them): the group must be created again.
    pub(crate) fn is_no_group(&self) -> bool {
        matches!(self, Self::Redis(e) if e.code() == Some("NOGROUP"))
    }
}

/// What one read returned.
#[derive(Debug)]
pub(crate) struct Read {
    /// The messages, in stream order per partition.
    pub(crate) messages: Vec<Message>,
    /// True when they are this consumer's own pending entries, re-read.
    pub(crate) history: bool,
}

/// Reads the group's entries for one consumer.
pub(crate) struct Reader {
    redis: RedisConfig,
    keys: Vec<String>,
    group: String,
    consumer: String,
    /// The dedicated blocking connection: `None` before the first read and after an error.
    conn: Option<Link>,
    /// Per partition, the id after which own pending entries are still to be re-read;
    /// `None` once that partition's history is exhausted.
    history: Vec<Option<EntryId>>,
    /// The partition that goes first in the next sweep; rotates.
    next: usize,
    /// On a cluster, the partition the next blocking read waits on; rotates.
    next_block: usize,
}

impl Reader {
    /// A reader of `keys` as `consumer` of `group`; it starts with the consumer's own
    /// pending entries.
    pub(crate) fn new(
        redis: RedisConfig,
        keys: Vec<String>,
        group: String,
        consumer: String,
    ) -> Self {
        let history = vec![Some(EntryId::START); keys.len()];
        Self {
            redis,
            keys,
            group,
            consumer,
            conn: None,
            history,
            next: 0,
            next_block: 0,
        }
    }

    /// Makes the next read start with this consumer's own pending entries again.
    pub(crate) fn rewind(&mut self) {
        self.history = vec![Some(EntryId::START); self.keys.len()];
    }

    /// Reads up to `count` entries over all partitions: own pending ones without waiting
    /// while any are left, else new ones, waiting up to `block` for the first.
    ///
    /// # Errors
    /// Any failure; the connection is dropped and the history re-read on the next call.
    pub(crate) async fn read(&mut self, count: usize, block: Duration) -> Result<Read, Error> {
        let result = self.try_read(count.max(1), block).await;
        if result.is_err() {
            self.conn = None;
            self.rewind();
        }
        result
    }

    async fn try_read(&mut self, count: usize, block: Duration) -> Result<Read, Error> {
        let deadline = Instant::now() + block;
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        if self.history.iter().any(Option::is_some) {
            let messages = self.sweep(count, true).await?;
            if !messages.is_empty() {
                tracing::info!(entries = messages.len(), consumer = %self.consumer,
                    "Re-reading entries still pending for this consumer.");
                return Ok(Read {
                    messages,
                    history: true,
                });
            }
        }
        let cluster = self.conn.as_ref().is_some_and(Link::is_cluster);
        loop {
            let messages = self.sweep(count, false).await?;
            if !messages.is_empty() {
                return Ok(Read {
                    messages,
                    history: false,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let messages = if cluster && self.keys.len() > 1 {
                let index = self.next_block;
                self.next_block = (index + 1) % self.keys.len();
                self.block(&[index], count, left.min(BLOCK_SLICE)).await?
            } else {
                // COUNT applies per stream: block on at most `count` partitions (rotating)
                // with a whole share each, so that a read never returns more than `count`.
                let n = self.keys.len();
                let watched = count.min(n);
                let first = self.next_block;
                self.next_block = (first + watched) % n;
                let indexes: Vec<usize> = (0..watched).map(|i| (first + i) % n).collect();
                self.block(&indexes, count / watched, left).await?
            };
            if !messages.is_empty() || Instant::now() >= deadline {
                return Ok(Read {
                    messages,
                    history: false,
                });
            }
        }
    }

    /// Reads without blocking, one command per partition, up to `count` in all, shared
    /// max-min fairly: every partition asks for an equal share of what is left, and those
    /// that filled theirs ask again for what the others left. `history`: own pending entries
    /// after each partition's cursor (partitions whose history is exhausted are skipped),
    /// else new entries.
    async fn sweep(&mut self, count: usize, history: bool) -> Result<Vec<Message>, Error> {
        let n = self.keys.len();
        let first = self.next;
        self.next = (self.next + 1) % n;
        let mut active: Vec<usize> = (0..n)
            .map(|i| (first + i) % n)
            .filter(|&i| !history || self.history[i].is_some())
            .collect();
        let mut budget = count;
        let mut out = Vec::new();
        while budget > 0 && !active.is_empty() {
            let share = budget.div_ceil(active.len());
            let mut full = Vec::with_capacity(active.len());
            for index in active {
                let want = share.min(budget);
                if want == 0 {
                    break;
                }
                let mut cmd = self.command(want);
                cmd.arg("STREAMS").arg(&self.keys[index]);
                if history {
                    cmd.arg(self.history[index].unwrap_or(EntryId::START));
                } else {
                    cmd.arg(">");
                }
                let deliveries = (!history).then_some(1);
                let patience = self.redis.response_timeout;
                let messages = flatten(self.query(&cmd, patience, deliveries).await?);
                let got = messages.len();
                if history {
                    // Fewer than asked: nothing of this consumer is pending past the cursor.
                    self.history[index] = match messages.last() {
                        Some(last) if got == want => Some(last.id),
                        _ => None,
                    };
                }
                budget -= got.min(budget);
                if got == want {
                    full.push(index);
                }
                batch::append(&mut out, messages);
            }
            active = full;
        }
        Ok(out)
    }

    /// `XREADGROUP … COUNT count BLOCK ms STREAMS key… >…` over the partitions `indexes`
    /// (several only on a standalone Redis).
    async fn block(
        &mut self,
        indexes: &[usize],
        count: usize,
        block: Duration,
    ) -> Result<Vec<Message>, Error> {
        let mut cmd = self.command(count);
        // BLOCK 0 would wait forever: round up to at least 1 ms.
        let block_ms = block.as_millis().clamp(1, u128::from(u32::MAX));
        cmd.arg("BLOCK").arg(block_ms as u64).arg("STREAMS");
        for &i in indexes {
            cmd.arg(&self.keys[i]);
        }
        for _ in indexes {
            cmd.arg(">");
        }
        let patience = block + self.redis.response_timeout;
        Ok(flatten(self.query(&cmd, patience, Some(1)).await?))
    }

    fn command(&self, count: usize) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        cmd
    }

    /// The reader's connection: its own for a standalone Redis over plain TCP or a Unix
    /// socket ([`raw::Conn`]), redis-rs's otherwise.
    async fn connect(&self) -> Result<Link, Error> {
        let Some(info) = raw::Conn::for_url(&self.redis) else {
            return Ok(Link::Driver(self.redis.blocking_connection().await?));
        };
        raw::Conn::connect(&info, self.redis.connect_timeout)
            .await
            .map(Link::Raw)
            .map_err(|reason| {
                Error::Connect(redline_core::redis::Error::Connect {
                    url: redline_core::redis::redact_url(&self.redis.url),
                    reason,
                })
            })
    }

    /// Sends one XREADGROUP and reads its reply into messages per partition index.
    async fn query(
        &mut self,
        cmd: &redis::Cmd,
        patience: Duration,
        deliveries: Option<u64>,
    ) -> Result<Vec<(usize, Vec<Message>)>, Error> {
        let timeout = |_| Error::Timeout(patience);
        match self.conn.as_mut() {
            Some(Link::Raw(conn)) => {
                let reply = tokio::time::timeout(patience, conn.call(cmd))
                    .await
                    .map_err(timeout)??;
                resp::decode_read(reply, &self.keys, deliveries)
            }
            Some(Link::Driver(conn)) => {
                let reply = tokio::time::timeout(patience, cmd.query_async::<Value>(conn))
                    .await
                    .map_err(timeout)??;
                Ok(parse_read(reply, &self.keys, deliveries)?)
            }
            None => unreachable!("try_read connects before querying"),
        }
    }
}

/// The reader's connection.
enum Link {
    /// Its own, replies decoded by [`resp`].
    Raw(raw::Conn),
    /// redis-rs's (TLS, Sentinel, Cluster).
    Driver(Connection),
}

impl Link {
    fn is_cluster(&self) -> bool {
        matches!(self, Self::Driver(conn) if conn.is_cluster())
    }
}

/// The messages of a read, partition after partition (a read of one partition, the common
/// case, handed on without a copy).
fn flatten(read: Vec<(usize, Vec<Message>)>) -> Vec<Message> {
    let mut all = Vec::new();
    for (_, more) in read {
        batch::append(&mut all, more);
    }
    all
}

/// Parses an XREADGROUP reply, nil or `[[key, entries], …]` (RESP2) or a map (RESP3), into
/// messages per partition index.
pub(crate) fn parse_read(
    reply: Value,
    keys: &[String],
    deliveries: Option<u64>,
) -> Result<Vec<(usize, Vec<Message>)>, ReplyError> {
    const COMMAND: &str = "XREADGROUP";
    let streams: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    match (pair.next(), pair.next()) {
                        (Some(key), Some(entries)) => Ok((key, entries)),
                        _ => Err(ReplyError::new(COMMAND, &Value::Nil)),
                    }
                }
                other => Err(ReplyError::new(COMMAND, &other)),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(map) => map,
        other => return Err(ReplyError::new(COMMAND, &other)),
    };
    streams
        .into_iter()
        .map(|(key, entries)| {
            let index = batch::text(&key)
                .and_then(|k| keys.iter().position(|known| *known == k))
                .ok_or_else(|| ReplyError::new(COMMAND, &key))?;
            Ok((
                index,
                batch::parse_entries(COMMAND, index, deliveries, entries)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
