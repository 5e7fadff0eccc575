//! Connections to the master under Sentinel: [`Master`] (one connection, verified master
//! when made) and a deadpool of them ([`Manager`], [`Pooled`]) that follows the master.
//!
//! Invariants:
//! - a connection is made only through the sentinels, and handed out only after `ROLE`
//!   answered master on it (`Resolver::connect` in [`super`]);
//! - every connection belongs to a generation. When one meets a sign that the master moved
//!   (`READONLY`: it was demoted; the connection dropped, refused or broken: the master died
//!   or the sentinels had it closed), the generation ends: no connection of it is reused,
//!   each fails its recycle, and the next one is made through the sentinels again, so the
//!   pool never keeps writing to a demoted master that still answers `PING`;
//! - a connection that answered within [`liveness::PROVEN_FOR`] goes out again without a
//!   `PING` (see [`liveness`]); a quieter one is pinged first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use redis::aio::ConnectionLike;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::{Error, Resolver};
use crate::redis::liveness::{self, Tracked, Verdict};

/// A connection to the master the sentinels named, checked master when made.
#[derive(Clone)]
pub struct Master {
    /// The connection, remembering what its replies say about it.
    conn: Tracked,
    /// The master's `host:port`.
    address: String,
    /// The generation this connection belongs to, and the pool's current one (`None` for a
    /// dedicated connection, which is dropped on any error anyway).
    generation: Option<(u64, Arc<AtomicU64>)>,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Master {
    /// A dedicated connection to the master `resolver` finds.
    pub(crate) async fn connect(
        resolver: &Resolver,
        config: &AsyncConnectionConfig,
    ) -> Result<Self, Error> {
        let (conn, address) = resolver.connect(config).await?;
        Ok(Self {
            // A lost connection ends its generation, which retires the pool's others.
            conn: Tracked::new(conn, Arc::default()),
            address,
            generation: None,
        })
    }

    /// The master's address, `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// True once this connection's generation has ended.
    fn is_stale(&self) -> bool {
        self.generation
            .as_ref()
            .is_some_and(|(mine, current)| current.load(Ordering::SeqCst) != *mine)
    }

    /// Ends this connection's generation when a reply says the master may have moved: the
    /// command failed so, or a reply (a pipeline's included) is a `READONLY` error, which
    /// redis-rs hands up as a value and turns into an error only later.
    fn note(&self, reply: Result<&[Value], &RedisError>) {
        // A dedicated connection is dropped by its owner on any error.
        let Some((mine, current)) = &self.generation else {
            return;
        };
        let moved = match reply {
            Err(error) => master_moved(error),
            Ok(values) => values.iter().any(is_readonly),
        };
        if moved
            && current
                .compare_exchange(*mine, mine + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            tracing::info!(master = %self.address,
                "The Redis master may have moved; reconnecting through the sentinels.");
        }
    }
}

/// The code of a `READONLY` error: a replica refusing a write.
const READONLY: &str = "READONLY";

/// True for a `READONLY` error reply, or an array of replies holding one.
fn is_readonly(value: &Value) -> bool {
    match value {
        Value::ServerError(error) => error.code() == READONLY,
        Value::Array(values) => values.iter().any(is_readonly),
        _ => false,
    }
}

/// True for an error after which this node may not be the master any more: it refuses
/// writes as a replica (`READONLY`), or the connection is gone.
fn master_moved(error: &RedisError) -> bool {
    error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_io_error()
        || error.is_timeout()
        || error.code() == Some(READONLY)
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == READONLY))
}

impl ConnectionLike for Master {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let reply = self.conn.req_packed_command(cmd).await;
            self.note(reply.as_ref().map(std::slice::from_ref));
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let reply = self.conn.req_packed_commands(cmd, offset, count).await;
            self.note(reply.as_deref());
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// Makes and recycles pooled [`Master`] connections.
pub struct Manager {
    resolver: Arc<Resolver>,
    config: AsyncConnectionConfig,
    /// The current generation; connections of an older one are not reused.
    generation: Arc<AtomicU64>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("master_name", &self.resolver.master_name())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Manager {
    pub(crate) fn new(resolver: Resolver, config: AsyncConnectionConfig) -> Self {
        Self {
            resolver: Arc::new(resolver),
            config,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = Master;
    type Error = Error;

    async fn create(&self) -> Result<Master, Error> {
        // Read before connecting: if the generation ends meanwhile, this one is stale too.
        let generation = self.generation.load(Ordering::SeqCst);
        let mut master = Master::connect(&self.resolver, &self.config).await?;
        master.generation = Some((generation, self.generation.clone()));
        Ok(master)
    }

    async fn recycle(&self, master: &mut Master, _: &Metrics) -> RecycleResult<Error> {
        if master.is_stale() {
            return Err(RecycleError::message(
                "the master may have moved: reconnecting through the sentinels",
            ));
        }
        match master.conn.verdict(liveness::PROVEN_FOR) {
            Verdict::Broken => return Err(RecycleError::message("the connection broke")),
            Verdict::Proven => return Ok(()),
            Verdict::Unknown => {}
        }
        redis::cmd("PING")
            .query_async::<String>(&mut master.conn)
            .await
            .map(drop)
            .map_err(|reason| {
                RecycleError::Backend(Error::Connect {
                    master: self.resolver.master_name().to_string(),
                    address: master.address.clone(),
                    reason,
                })
            })
    }
}

/// The pool of connections to the master.
pub type Pool = deadpool::managed::Pool<Manager>;

/// A connection checked out of a [`Pool`]; it returns to the pool on drop.
pub type Pooled = liveness::Pooled<Manager>;

impl liveness::Pooled<Manager> {
    /// The master's address, `host:port`.
    pub fn address(&self) -> &str {
        self.0.address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readonly_and_lost_connections_mean_the_master_may_have_moved() {
        let readonly = RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        assert!(master_moved(&readonly));
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(master_moved(&dropped));
        let wrongtype = RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(!master_moved(&wrongtype));
    }

    #[test]
    fn a_readonly_reply_is_found_in_a_pipeline_or_a_transaction() {
        let readonly = || {
            redis::parse_redis_value(b"-READONLY You can't write against a read only replica.\r\n")
                .unwrap()
        };
        assert!(is_readonly(&readonly()));
        assert!(is_readonly(&Value::Array(vec![Value::Okay, readonly()])));
        assert!(!is_readonly(&Value::Array(vec![Value::Okay, Value::Nil])));
    }
}
