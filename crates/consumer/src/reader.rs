//! Reading the group: this consumer's own pending entries first, then new ones.
//!
//! - On start, and after any read error (the reply of an XREADGROUP that Redis executed may
//!   have been lost with the connection), the reader re-reads the entries the group still
//!   counts as delivered to this consumer (`XREADGROUP … STREAMS key… 0…`, paging by the last
//!   id seen) until none are left. Each re-read raises their delivery count, which is how a
//!   batch that kills its consumer ends in the dead-letter stream instead of a crash loop.
//! - Then it reads new entries: `XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS key… >…`.
//!
//! `BLOCK` runs on a dedicated connection without a response timeout (pooled connections
//! have one, and a multiplexed connection would queue short commands behind the block).
//! A dropped future does not cancel the command on the server, so the reader never
//! abandons a read except on shutdown; entries a cancelled read took stay pending and are
//! re-read on restart or claimed. Any error drops the connection; the next read reconnects.
//! <https://redis.io/docs/latest/commands/xreadgroup/>

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;
use redline_core::redis::RedisConfig;

use crate::batch::{self, Message, ReplyError};

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
    conn: Option<MultiplexedConnection>,
    /// Per partition, the id after which own pending entries are still to be re-read;
    /// `None` once that partition's history is exhausted.
    history: Vec<Option<String>>,
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
        }
    }

    /// Reads up to `count` entries per partition: own pending ones without waiting while any
    /// are left, else new ones, waiting up to `block` for the first.
    ///
    /// # Errors
    /// Any failure; the connection is dropped and the history re-read on the next call.
    pub(crate) async fn read(&mut self, count: usize, block: Duration) -> Result<Read, Error> {
        let result = self.try_read(count.max(1), block).await;
        if result.is_err() {
            self.conn = None;
            self.history = vec![Some("0".to_string()); self.keys.len()];
        }
        result
    }

    async fn try_read(&mut self, count: usize, block: Duration) -> Result<Read, Error> {
        let patience = self.redis.response_timeout;
        if self.conn.is_none() {
            self.conn = Some(self.redis.blocking_connection().await?);
        }
        if self.history.iter().any(Option::is_some) {
            let messages = self.read_history(count, patience).await?;
            if !messages.is_empty() {
                return Ok(Read {
                    messages,
                    history: true,
                });
            }
        }
        let mut cmd = self.command(count);
        // BLOCK 0 would wait forever: round up to at least 1 ms.
        let block_ms = block.as_millis().clamp(1, u128::from(u32::MAX));
        cmd.arg("BLOCK")
            .arg(block_ms as u64)
            .arg("STREAMS")
            .arg(&self.keys);
        for _ in &self.keys {
            cmd.arg(">");
        }
        let reply = self.query(&cmd, block + patience).await?;
        let messages = parse_read(reply, &self.keys, Some(1))?
            .into_iter()
            .flat_map(|(_, messages)| messages)
            .collect();
        Ok(Read {
            messages,
            history: false,
        })
    }

    /// Re-reads own pending entries after each partition's cursor; a partition whose reply
    /// is empty is done.
    async fn read_history(
        &mut self,
        count: usize,
        patience: Duration,
    ) -> Result<Vec<Message>, Error> {
        let open: Vec<usize> = (0..self.keys.len())
            .filter(|&i| self.history[i].is_some())
            .collect();
        let mut cmd = self.command(count);
        cmd.arg("STREAMS");
        for &i in &open {
            cmd.arg(&self.keys[i]);
        }
        for &i in &open {
            cmd.arg(self.history[i].as_deref().unwrap_or("0"));
        }
        let reply = self.query(&cmd, patience).await?;
        let mut replied = vec![false; self.keys.len()];
        let mut out = Vec::new();
        for (index, messages) in parse_read(reply, &self.keys, None)? {
            if let Some(last) = messages.last() {
                self.history[index] = Some(last.id.clone());
                replied[index] = true;
            }
            out.extend(messages);
        }
        for i in open {
            if !replied[i] {
                self.history[i] = None;
            }
        }
        if !out.is_empty() {
            tracing::info!(entries = out.len(), consumer = %self.consumer,
                "Re-reading entries still pending for this consumer.");
        }
        Ok(out)
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
