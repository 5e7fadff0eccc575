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
use redline_core::redis::{Connection, RedisConfig};
use tokio::time::Instant;

use crate::batch::{self, Message, ReplyError};

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
    conn: Option<Connection>,
    /// Per partition, the id after which own pending entries are still to be re-read;
    /// `None` once that partition's history is exhausted.
    history: Vec<Option<String>>,
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
        let history = vec![Some("0".to_string()); keys.len()];
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
        self.history = vec![Some("0".to_string()); self.keys.len()];
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
            self.conn = Some(self.redis.blocking_connection().await?);
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
        let cluster = self.conn.as_ref().is_some_and(Connection::is_cluster);
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
                let id = if history {
                    self.history[index]
                        .clone()
                        .unwrap_or_else(|| "0".to_string())
                } else {
                    ">".to_string()
                };
                let mut cmd = self.command(want);
                cmd.arg("STREAMS").arg(&self.keys[index]).arg(&id);
                let reply = self.query(&cmd, self.redis.response_timeout).await?;
                let deliveries = (!history).then_some(1);
                let messages: Vec<Message> = parse_read(reply, &self.keys, deliveries)?
                    .into_iter()
                    .flat_map(|(_, messages)| messages)
                    .collect();
                let got = messages.len();
                if history {
                    // Fewer than asked: nothing of this consumer is pending past the cursor.
                    self.history[index] = match messages.last() {
                        Some(last) if got == want => Some(last.id.clone()),
                        _ => None,
                    };
                }
                budget -= got.min(budget);
                if got == want {
                    full.push(index);
                }
                out.extend(messages);
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
        let reply = self
            .query(&cmd, block + self.redis.response_timeout)
            .await?;
        Ok(parse_read(reply, &self.keys, Some(1))?
            .into_iter()
            .flat_map(|(_, messages)| messages)
            .collect())
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

    async fn query(&mut self, cmd: &redis::Cmd, patience: Duration) -> Result<Value, Error> {
        let Some(conn) = self.conn.as_mut() else {
            unreachable!("try_read connects before querying");
        };
        match tokio::time::timeout(patience, cmd.query_async::<Value>(conn)).await {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(Error::Timeout(patience)),
        }
    }
}

/// Parses an XREADGROUP reply, nil or `[[key, entries], …]` (RESP2) or a map (RESP3), into
/// messages per partition index.
fn parse_read(
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
mod tests {
    use redline_testkit::RedisServer;

    use super::*;

    /// Four partitions: `busy` entries in partition 0, 5 in each other one.
    async fn partitions(redis: &RedisServer, busy: usize) -> Vec<String> {
        let mut conn = redis.conn().await;
        let keys: Vec<String> = (0..4).map(|i| format!("s:{{{i}}}")).collect();
        let mut pipe = redis::pipe();
        for (i, key) in keys.iter().enumerate() {
            pipe.cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg("g")
                .arg("0")
                .arg("MKSTREAM")
                .ignore();
            for n in 0..if i == 0 { busy } else { 5 } {
                pipe.xadd(key, "*", &[("lp", format!("m v={n}i {n}"))])
                    .ignore();
            }
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
        keys
    }

    fn reader(redis: &RedisServer, keys: Vec<String>) -> Reader {
        let config = RedisConfig {
            url: redis.url(),
            ..RedisConfig::default()
        };
        Reader::new(config, keys, "g".into(), "c".into())
    }

    fn per_partition(read: &Read) -> Vec<usize> {
        let mut counts = vec![0; 4];
        for message in &read.messages {
            counts[message.stream] += 1;
        }
        counts
    }

    #[tokio::test]
    async fn a_busy_partition_does_not_starve_the_quiet_ones() {
        let redis = RedisServer::start(&[]);
        let keys = partitions(&redis, 1000).await;
        let mut reader = reader(&redis, keys);
        let block = Duration::from_millis(10);

        let first = reader.read(100, block).await.unwrap();
        assert!(!first.history);
        // An equal share of 25 each; what the quiet ones leave goes to the busy one.
        assert_eq!(per_partition(&first), [85, 5, 5, 5]);
        let second = reader.read(100, block).await.unwrap();
        assert_eq!(per_partition(&second), [100, 0, 0, 0]);
        assert!(second.messages.iter().all(|m| m.deliveries == Some(1)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_read_never_returns_more_than_it_asked_for() {
        let redis = RedisServer::start(&[]);
        let keys = partitions(&redis, 5).await;
        let mut reader = reader(&redis, keys.clone());
        // Drain what is there, so that the next read blocks.
        while !reader
            .read(100, Duration::from_millis(10))
            .await
            .unwrap()
            .messages
            .is_empty()
        {}
        let read = tokio::spawn(async move { reader.read(3, Duration::from_secs(10)).await });
        let mut conn = redis.conn().await;
        redline_testkit::wait_until("the reader blocks", Duration::from_secs(10), || {
            let mut conn = conn.clone();
            async move {
                let info: String = redis::cmd("INFO")
                    .arg("clients")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                info.contains("blocked_clients:1")
            }
        })
        .await;
        // Entries arrive in every partition at once (blocked clients are served after EXEC).
        // Redis 7.0 answers a blocked reader with the first ready stream alone; from 7.2 the
        // command runs again over every stream, COUNT each, which is what this guards.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in &keys {
            for n in 0..3 {
                pipe.xadd(key, "*", &[("lp", format!("m v={n}i {n}"))])
                    .ignore();
            }
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
        let read = redline_testkit::within("the blocked read", Duration::from_secs(20), read)
            .await
            .unwrap()
            .unwrap();
        assert!(
            (1..=3).contains(&read.messages.len()),
            "{} entries for a read of 3",
            read.messages.len()
        );
    }

    #[tokio::test]
    async fn own_pending_entries_come_back_first_then_new_ones() {
        let redis = RedisServer::start(&[]);
        let keys = partitions(&redis, 5).await;
        let mut first = reader(&redis, keys.clone());
        let read = first.read(100, Duration::from_millis(10)).await.unwrap();
        assert_eq!(per_partition(&read), [5, 5, 5, 5]);

        // The same consumer again (a restart): its 20 pending entries, none new.
        let mut again = reader(&redis, keys);
        let history = again.read(8, Duration::from_millis(10)).await.unwrap();
        assert!(history.history);
        assert_eq!(history.messages.len(), 8);
        let mut seen = history.messages.len();
        loop {
            let read = again.read(8, Duration::from_millis(10)).await.unwrap();
            if !read.history {
                assert!(read.messages.is_empty());
                break;
            }
            seen += read.messages.len();
        }
        assert_eq!(seen, 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_cluster_a_blocked_reader_sees_entries_of_every_partition() {
        let cluster = redline_testkit::RedisCluster::start(3, 0, &[]);
        let mut conn = cluster.conn().await;
        let keys: Vec<String> = (0..4).map(|i| format!("s:{{{i}}}")).collect();
        for key in &keys {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg("g")
                .arg("$")
                .arg("MKSTREAM")
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
        }
        let config = RedisConfig {
            url: cluster.url(),
            ..RedisConfig::default()
        };
        let mut reader = Reader::new(config, keys.clone(), "g".into(), "c".into());
        // Nothing yet: the reader blocks, one partition at a time.
        let read = tokio::spawn(async move { reader.read(100, Duration::from_secs(10)).await });
        for key in [&keys[3], &keys[1]] {
            redis::cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("lp")
                .arg("m v=1i 1")
                .query_async::<String>(&mut conn)
                .await
                .unwrap();
        }
        let read = redline_testkit::within("the blocked read", Duration::from_secs(20), read)
            .await
            .unwrap()
            .unwrap();
        assert!(!read.history);
        assert!(!read.messages.is_empty());
        assert!(read.messages.iter().all(|m| m.stream == 3 || m.stream == 1));
    }
}
