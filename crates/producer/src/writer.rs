//! Pipelined XADD: one entry per metric, each into its series' partition, answered only
//! after Redis replied to every command of the batch.
//!
//! A request is stored in rounds of at most [`PIPELINE_BYTES`] of lines, one after the
//! other on one connection, so the memory of storing it (commands, and the bytes redis-rs
//! packs them into) is bounded by that, not by the request: [`STORE_MEMORY`]. On a
//! standalone Redis a round is one pipeline; on Redis Cluster it is one pipeline per
//! partition (a pipeline may not cross slots), sent concurrently, each to its partition's
//! master. With `wait_replicas`, on this pooled path each round's pipelines end with a
//! `WAIT`, so each round's writes are confirmed over the connection that carried them: on a
//! cluster, a master failing over between two rounds is reached over a new connection, and
//! a `WAIT` there would confirm nothing of the earlier rounds (a `WAIT` only after the last
//! round once answered 204 so for writes the promoted replica never got). The producer's
//! own connection to a standalone Redis (`writer::raw`) waits once, after the last round: it
//! carries every round, and a failover breaks it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use redline_core::{
    entry,
    keys::StreamKeys,
    line::Metric,
    redis::{Pipelines, Pool},
    series, telemetry,
};

mod raw;

/// The bench's `line` section: the XADDs the standalone path packs for `lines` to `key` with
/// database `db`, appended to `out`.
#[doc(hidden)]
pub fn bench_pack_xadds<'l>(
    out: &mut Vec<u8>,
    key: &str,
    db: &str,
    lines: impl Iterator<Item = &'l str>,
) {
    let packer = raw::Packer::new(
        key,
        &Target {
            db: Some(db.to_string()),
            rp: None,
        },
    );
    for line in lines {
        packer.pack(out, line);
    }
}

/// The `xadd` fuzz target (`fuzz/`): the producer's own XADD packing against redis-rs's on
/// arbitrary keys, lines and targets; panics when a byte differs.
#[doc(hidden)]
pub fn fuzz_pack_xadd(key: &str, line: &str, db: Option<String>, rp: Option<String>) {
    let target = Target { db, rp };
    let mut ours = Vec::new();
    raw::pack_xadd(&mut ours, key, line, &target);
    assert_eq!(ours, xadd(key, line, &target).get_packed_command());
}

/// Most bytes of lines one round of XADDs carries.
pub const PIPELINE_BYTES: usize = 256 * 1024;

/// What storing one request holds at most besides its metrics: one round's commands
/// (arguments plus their bookkeeping, about 2.5 times the lines) and the packed bytes sent.
pub const STORE_MEMORY: usize = 4 * PIPELINE_BYTES;

/// Why a batch was not (fully) stored. Some entries may have been stored anyway; the
/// client retries, and stamped metrics written twice are the same InfluxDB point.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis cannot be reached or did not answer in time.
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis is at `maxmemory` (`OOM`): nothing more fits until consumers drain and trim.
    #[error("Redis is full (maxmemory reached; consumers must drain it): {0}")]
    Full(String),
    /// Redis cannot persist writes (`MISCONF`: its disk is full or failing) and refuses them
    /// until it can.
    #[error("Redis cannot persist writes (its disk is full or failing) and refuses them until it can: {0}")]
    Unpersisted(String),
    /// Redis refuses writes while fewer replicas than its `min-replicas-to-write` are
    /// connected (`NOREPLICAS`); nothing was stored by the refused commands.
    #[error("Redis refuses writes while fewer replicas than its min-replicas-to-write are connected: {0}")]
    TooFewReplicas(String),
    /// Redis refused the write for another reason (e.g. the key holds another type).
    #[error("Redis refused the write: {0}")]
    Refused(String),
    /// The buffer limit is reached under `buffer_full = block`; nothing was stored.
    #[error(transparent)]
    BufferFull(#[from] crate::buffer::Full),
    /// The request alone holds more metrics than `buffer_limit` (under `block`): it could
    /// never be stored, however long the client waits. Nothing was stored.
    #[error("request of {metrics} metrics is larger than the buffer limit of {limit} (--buffer-limit); split it into smaller requests")]
    TooLarge {
        /// Metrics in the request.
        metrics: usize,
        /// The configured limit.
        limit: u64,
    },
    /// Fewer replicas than `wait_replicas` confirmed the write in `wait_timeout`.
    #[error("only {confirmed} of {wanted} replicas confirmed the write within {timeout:?}; it is stored on the primary, retry to be sure")]
    Replicas {
        /// Replicas that confirmed.
        confirmed: u64,
        /// Replicas asked for.
        wanted: u32,
        /// How long the producer waited.
        timeout: Duration,
    },
}

/// Where a request's metrics go.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Database (v1 `db`) or bucket (v2 `bucket`).
    pub db: Option<String>,
    /// Retention policy (v1 `rp`).
    pub rp: Option<String>,
}

/// Stores metrics in Redis. Cheap to clone: the pool and the buffer are shared.
#[derive(Clone)]
pub struct Writer {
    pool: Pool,
    keys: StreamKeys,
    buffer: Arc<crate::buffer::Buffer>,
    /// `WAIT numreplicas timeout` after each batch, when replicas are asked for.
    wait: Option<(u32, Duration)>,
    /// The producer's own connections, on a standalone Redis over plain TCP or a Unix
    /// socket; `None`: rounds go through the pool.
    raw: Option<Arc<raw::Raw>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer for `config`'s Redis and stream; connects lazily.
    ///
    /// # Errors
    /// A bad Redis URL.
    pub fn new(config: &crate::Config) -> Result<Self, redline_core::redis::Error> {
        Ok(Self {
            pool: config.redis.pool()?,
            keys: config.keys(),
            buffer: Arc::new(crate::buffer::Buffer::new(
                config.buffer_limit,
                config.buffer_full,
                config.keys(),
            )),
            wait: (config.wait_replicas > 0).then_some((config.wait_replicas, config.wait_timeout)),
            raw: raw::Raw::new(&config.redis).map(Arc::new),
        })
    }

    /// The most metrics one [`Writer::store`] takes: the buffer limit under `block`.
    pub fn largest_request(&self) -> Option<usize> {
        self.buffer
            .largest_request()
            .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX))
    }

    /// Whether Redis answers PING through the pool; under Sentinel, the master's address.
    ///
    /// # Errors
    /// What is wrong, as one line: no connection (under Sentinel, why no master was
    /// found), or no answer to PING.
    pub async fn ping(&self) -> Result<Option<String>, String> {
        let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| {
                format!(
                    "Redis does not answer PING: {}",
                    redline_core::redis::describe(&e)
                )
            })?;
        Ok(conn.master().map(str::to_string))
    }

    /// XADDs every metric, in rounds of [`PIPELINE_BYTES`], returning how many Redis
    /// confirmed. `metrics` is walked twice when there are several partitions: once to
    /// count what each receives (for the buffer limit), once to store.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis is down or slow, [`Error::Full`] when Redis is at
    /// `maxmemory`, [`Error::BufferFull`] when the buffer limit refuses the batch,
    /// [`Error::Replicas`] when too few replicas confirmed, [`Error::Refused`] otherwise.
    /// Rounds before the failing one are stored: the client retries, and a stamped metric
    /// stored twice is one InfluxDB point.
    pub async fn store<'m, I>(&self, metrics: I, target: &Target) -> Result<usize, Error>
    where
        I: ExactSizeIterator<Item = Metric<'m>> + Clone,
    {
        let count = metrics.len();
        if count == 0 {
            return Ok(0);
        }
        let started = Instant::now();
        if let Some(limit) = self.buffer.largest_request() {
            if count as u64 > limit {
                return Err(Error::TooLarge {
                    metrics: count,
                    limit,
                });
            }
        }
        let partitions = self.keys.count();
        let mut incoming = vec![0_u64; partitions];
        if partitions == 1 {
            incoming[0] = count as u64;
        } else {
            for metric in metrics.clone() {
                incoming[series::partition(metric.series_key(), partitions)] += 1;
            }
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        self.buffer
            .admit(&mut conn, &incoming)
            .await
            .map_err(from_streams)??;
        if let Some(raw) = &self.raw {
            drop(conn);
            return self
                .store_raw(raw, metrics, target, &incoming, started)
                .await;
        }
        let stored = self.store_pooled(&mut conn, metrics, target).await;
        // Once per request, whatever its end (the raw path records its own).
        metrics::histogram!(telemetry::XADD_SECONDS).record(started.elapsed().as_secs_f64());
        stored.map(|()| count)
    }

    /// [`Writer::store`]'s rounds through the pool: each round's pipelines, ending with a
    /// `WAIT` when replicas are asked for.
    async fn store_pooled<'m, I>(
        &self,
        conn: &mut redline_core::redis::PooledConnection,
        metrics: I,
        target: &Target,
    ) -> Result<(), Error>
    where
        I: ExactSizeIterator<Item = Metric<'m>>,
    {
        let partitions = self.keys.count();
        let mut metrics = metrics;
        loop {
            let mut pipes = Pipelines::new(self.pool.is_cluster());
            let mut bytes = 0;
            while bytes < PIPELINE_BYTES {
                let Some(metric) = metrics.next() else { break };
                let partition = if partitions == 1 {
                    0
                } else {
                    series::partition(metric.series_key(), partitions)
                };
                bytes += metric.line().len();
                pipes
                    .partition(partition)
                    .add_command(xadd(self.keys.partition(partition), metric.line(), target))
                    .ignore();
            }
            if let Some((replicas, timeout)) = self.wait {
                // Every round's own WAIT, on each connection the round wrote over: a WAIT
                // covers only what its connection wrote, and on a cluster a master that
                // failed over since an earlier round is reached over another connection.
                let millis = u64::try_from(timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                pipes.each(redis::cmd("WAIT").arg(replicas).arg(millis));
            }
            let replies = pipes.query::<Vec<u64>>(conn).await.map_err(classify)?;
            if let Some((wanted, timeout)) = self.wait {
                // Each pipeline's one reply is its WAIT; the least-replicated master decides.
                let confirmed = replies
                    .iter()
                    .map(|reply| reply.first().copied().unwrap_or(0))
                    .min()
                    .unwrap_or(0);
                if confirmed < u64::from(wanted) {
                    return Err(Error::Replicas {
                        confirmed,
                        wanted,
                        timeout,
                    });
                }
            }
            if metrics.len() == 0 {
                return Ok(());
            }
        }
    }
}

/// `XADD key * lp <line> [db <db>] [rp <rp>]`: an entry's fields as `entry::Entry::fields`
/// lays them out, written into a command sized up front (a request is thousands of these;
/// growing each one's buffer, and cloning `db` into an `Entry` per metric, showed in
/// profiles).
fn xadd(key: &str, line: &str, target: &Target) -> redis::Cmd {
    let (db, rp) = (target.db.as_deref(), target.rp.as_deref());
    let size = key.len() + line.len() + db.map_or(0, str::len) + rp.map_or(0, str::len) + 16;
    let mut cmd = redis::Cmd::with_capacity(9, size);
    cmd.arg("XADD")
        .arg(key)
        .arg("*")
        .arg(entry::FIELD_LP)
        .arg(line);
    if let Some(db) = db {
        cmd.arg(entry::FIELD_DB).arg(db);
    }
    if let Some(rp) = rp {
        cmd.arg(entry::FIELD_RP).arg(rp);
    }
    cmd
}

/// A failure of the backlog measure, classified as a Redis failure is.
fn from_streams(e: redline_streams::Error) -> Error {
    match e {
        redline_streams::Error::Redis(e) | redline_streams::Error::Command { reply: e, .. } => {
            classify(e)
        }
        other => Error::Refused(other.to_string()),
    }
}

fn classify(e: redis::RedisError) -> Error {
    let text = redline_core::redis::describe(&e);
    if redline_core::redis::is_oom(&e) {
        Error::Full(text)
    } else if redline_core::redis::is_unpersisted(&e) {
        Error::Unpersisted(text)
    } else if redline_core::redis::is_short_of_replicas(&e) {
        Error::TooFewReplicas(text)
    } else if redline_core::redis::is_transient(&e) {
        Error::Unavailable(text)
    } else {
        Error::Refused(text)
    }
}
