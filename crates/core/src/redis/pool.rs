//! One abstraction over standalone Redis, Redis Cluster and a master under Sentinel: [`Pool`] hands out
//! [`PooledConnection`]s, [`RedisConfig::connect`](super::RedisConfig::connect) and
//! [`RedisConfig::blocking_connection`](super::RedisConfig::blocking_connection) make a
//! dedicated [`Connection`]; all of them implement `redis::aio::ConnectionLike`, so the
//! producer, the consumer and the ops commands issue the same commands to either.
//!
//! On a cluster every command and every pipeline must stay within one hash slot (redis-rs
//! refuses a pipeline that crosses slots, Redis a command or script that does: `CROSSSLOT`).
//! redline's keys are one slot each (`<stream>:{n}` by its hash tag, `<stream>:dlq`), so the
//! rule is: one key per command, and one partition per pipeline. [`Pipelines`] builds
//! pipelines that way on a cluster and a single pipeline on a standalone Redis.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::Mutex;

use super::{liveness, sentinel};

/// Where pooled connections come from.
#[derive(Clone)]
pub enum Pool {
    /// A standalone Redis: a deadpool of multiplexed connections (deadpool-redis' manager,
    /// pinging only connections that have been quiet, see [`liveness`]).
    Standalone(liveness::Pool),
    /// A Redis Cluster: one shared cluster connection, made on first use.
    Cluster(Arc<ClusterPool>),
    /// A master under Sentinel: a deadpool of connections made through the sentinels,
    /// following the master (see [`sentinel::pool`]).
    Sentinel(sentinel::pool::Pool),
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Standalone(pool) => f.debug_tuple("Standalone").field(pool).finish(),
            Self::Cluster(_) => f.write_str("Cluster"),
            Self::Sentinel(pool) => f.debug_tuple("Sentinel").field(pool).finish(),
        }
    }
}

/// The shared connection of a cluster "pool".
///
/// A redis-rs `ClusterConnection` is a cheap handle on one multiplexed connection per node,
/// which reconnects and refreshes the slot map by itself: sharing one is what a pool of them
/// would amount to. (deadpool-redis' cluster pool has no connect or response timeouts.)
pub struct ClusterPool {
    client: ClusterClient,
    /// Bound on making the connection (reaching a seed and reading the slot map).
    create_timeout: Duration,
    /// `None` until the first successful connect; never reset, the driver reconnects.
    shared: Mutex<Option<ClusterConnection>>,
}

/// No connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The standalone pool failed (Redis down, pool exhausted, connect timeout).
    #[error(transparent)]
    Standalone(#[from] deadpool::managed::PoolError<redis::RedisError>),
    /// The cluster could not be reached (no seed answered, or its slot map is incomplete).
    #[error("cannot connect to the Redis Cluster: {0}")]
    Cluster(redis::RedisError),
    /// No master could be had through the sentinels, or the pool timed out.
    #[error("{}", sentinel_pool_error(.0))]
    Sentinel(deadpool::managed::PoolError<sentinel::Error>),
}

/// A Sentinel pool's error without deadpool's wording around the cause.
fn sentinel_pool_error(error: &deadpool::managed::PoolError<sentinel::Error>) -> String {
    use deadpool::managed::{PoolError, TimeoutType};
    match error {
        PoolError::Backend(error) => error.to_string(),
        PoolError::Timeout(TimeoutType::Create) => {
            "no Redis master connection within the connect timeout (sentinels or master slow)"
                .to_string()
        }
        other => format!("no Redis master connection: {other}"),
    }
}

impl Pool {
    pub(super) fn cluster(client: ClusterClient, create_timeout: Duration) -> Self {
        Self::Cluster(Arc::new(ClusterPool {
            client,
            create_timeout,
            shared: Mutex::new(None),
        }))
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A connection.
    ///
    /// # Errors
    /// [`PoolError`] when Redis cannot be reached; a later call tries again.
    pub async fn get(&self) -> Result<PooledConnection, PoolError> {
        match self {
            Self::Standalone(pool) => Ok(PooledConnection::Standalone(liveness::Pooled(
                pool.get().await?,
            ))),
            Self::Sentinel(pool) => pool
                .get()
                .await
                .map(|conn| PooledConnection::Sentinel(liveness::Pooled(conn)))
                .map_err(PoolError::Sentinel),
            Self::Cluster(pool) => {
                let mut shared = pool.shared.lock().await;
                if let Some(conn) = shared.as_ref() {
                    return Ok(PooledConnection::Cluster(conn.clone()));
                }
                let conn =
                    tokio::time::timeout(pool.create_timeout, pool.client.get_async_connection())
                        .await
                        .unwrap_or_else(|_| Err(timed_out()))
                        .map_err(PoolError::Cluster)?;
                *shared = Some(conn.clone());
                Ok(PooledConnection::Cluster(conn))
            }
        }
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// A standalone connection of type `S`, a handle on a cluster connection, or a connection
/// of type `M` to a master under Sentinel: the one shape of [`PooledConnection`] and
/// [`Connection`].
#[derive(Clone)]
pub enum Link<S, M> {
    /// A standalone Redis.
    Standalone(S),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
    /// The master under Sentinel.
    Sentinel(M),
}

/// A connection from a [`Pool`]; a standalone or Sentinel one returns to the pool on drop.
pub type PooledConnection = Link<liveness::Pooled<liveness::Manager>, sentinel::pool::Pooled>;

/// A dedicated connection (not pooled): for blocking reads and the ops commands.
pub type Connection = Link<MultiplexedConnection, sentinel::pool::Master>;

impl<S, M> std::fmt::Debug for Link<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // redis-rs' cluster connection is not `Debug`.
        f.write_str(match self {
            Self::Standalone(_) => "Link::Standalone",
            Self::Cluster(_) => "Link::Cluster",
            Self::Sentinel(_) => "Link::Sentinel",
        })
    }
}

impl<S, M> Link<S, M> {
    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl Link<liveness::Pooled<liveness::Manager>, sentinel::pool::Pooled> {
    /// Under Sentinel, the master's address (`host:port`) this connection goes to.
    pub fn master(&self) -> Option<&str> {
        match self {
            Self::Sentinel(conn) => Some(conn.address()),
            _ => None,
        }
    }
}

impl Link<MultiplexedConnection, sentinel::pool::Master> {
    /// Under Sentinel, the master's address (`host:port`) this connection goes to.
    pub fn master(&self) -> Option<&str> {
        match self {
            Self::Sentinel(conn) => Some(conn.address()),
            _ => None,
        }
    }
}

impl<S: ConnectionLike + Send, M: ConnectionLike + Send> ConnectionLike for Link<S, M> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            Self::Sentinel(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Sentinel(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
            Self::Sentinel(conn) => conn.get_db(),
        }
    }
}

/// Pipelines that never cross a hash slot: one per partition on a cluster, one in all on a
/// standalone Redis (where a single round trip is cheapest).
///
/// Put only commands on the partition's own key into its pipeline (`WAIT`, which has no
/// key, is fine: it goes with the pipeline to that partition's master).
#[derive(Default)]
pub struct Pipelines {
    /// One pipeline per partition (true on a cluster), else one in all.
    split: bool,
    /// (partition, its pipeline), in order of first use.
    pipes: Vec<(usize, Pipeline)>,
}

impl Pipelines {
    /// Pipelines for a cluster (`split`: one per partition) or a standalone Redis (one).
    pub fn new(split: bool) -> Self {
        Self {
            split,
            pipes: Vec::new(),
        }
    }

    /// The pipeline for commands on partition `partition`'s key.
    pub fn partition(&mut self, partition: usize) -> &mut Pipeline {
        let slot = if self.split { partition } else { 0 };
        let index = match self.pipes.iter().position(|(p, _)| *p == slot) {
            Some(index) => index,
            None => {
                self.pipes.push((slot, redis::pipe()));
                self.pipes.len() - 1
            }
        };
        &mut self.pipes[index].1
    }

    /// Appends `cmd` to every pipeline (e.g. `WAIT`, so each master waits for its replicas).
    pub fn each(&mut self, cmd: &Cmd) {
        for (_, pipe) in &mut self.pipes {
            pipe.add_command(cmd.clone());
        }
    }

    /// True when no command was added.
    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// Runs the pipelines, those of a cluster concurrently (each goes to its slot's master),
    /// and returns each one's reply in the order they were first used. Fails with the first
    /// error; the other pipelines may have run.
    ///
    /// # Errors
    /// Any Redis error of any pipeline.
    pub async fn query<T: FromRedisValue + Send + 'static>(
        self,
        conn: &mut PooledConnection,
    ) -> RedisResult<Vec<T>> {
        match conn {
            PooledConnection::Cluster(cluster) if self.pipes.len() > 1 => {
                // The set aborts what is still running if this future is dropped.
                let mut tasks = tokio::task::JoinSet::new();
                for (index, (_, pipe)) in self.pipes.into_iter().enumerate() {
                    let mut conn = cluster.clone();
                    tasks.spawn(async move { (index, pipe.query_async::<T>(&mut conn).await) });
                }
                let mut replies: Vec<Option<T>> = Vec::new();
                replies.resize_with(tasks.len(), || None);
                while let Some(joined) = tasks.join_next().await {
                    let (index, reply) = joined.map_err(|join| {
                        redis::RedisError::from(std::io::Error::other(join.to_string()))
                    })?;
                    replies[index] = Some(reply?);
                }
                Ok(replies.into_iter().flatten().collect())
            }
            _ => {
                let mut replies = Vec::with_capacity(self.pipes.len());
                for (_, pipe) in self.pipes {
                    replies.push(pipe.query_async::<T>(conn).await?);
                }
                Ok(replies)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_split_per_partition_only_on_a_cluster() {
        let mut one = Pipelines::new(false);
        one.partition(0).cmd("XADD").arg("s:{0}");
        one.partition(3).cmd("XADD").arg("s:{3}");
        assert_eq!(one.pipes.len(), 1);
        assert_eq!(one.pipes[0].1.len(), 2);

        let mut split = Pipelines::new(true);
        split.partition(3).cmd("XADD").arg("s:{3}");
        split.partition(0).cmd("XADD").arg("s:{0}");
        split.partition(3).cmd("XADD").arg("s:{3}");
        split.each(&redis::cmd("WAIT"));
        let shape: Vec<(usize, usize)> = split
            .pipes
            .iter()
            .map(|(p, pipe)| (*p, pipe.len()))
            .collect();
        assert_eq!(shape, [(3, 3), (0, 2)]);
        assert!(!split.is_empty());
        assert!(Pipelines::new(true).is_empty());
    }
}
