//! Whether a pooled connection may be handed out again without a `PING` first.
//!
//! deadpool checks a connection each time it is checked out (`recycle`), and
//! deadpool-redis does that with a `PING` round trip. On a busy Redis that round trip
//! queues behind every other client's commands: a consumer worker acking a 5,000-entry
//! batch waited for its `PING` behind the other worker's 5,000-entry read, then again for
//! its `XACK`, and a third of its time went to waiting so (measured on the drain bench).
//!
//! A `PING` only proves that the connection answered a moment ago. A reply to any command
//! proves the same, so a connection that answered within [`PROVEN_FOR`], and has met no
//! error that says it is gone (dropped, refused, timed out, unreadable), is handed out
//! without one; a connection that met such an error is never handed out again; one that has
//! been quiet for longer is pinged as before, and so is every connection of a pool in which
//! another one was found gone since it last answered (after a Redis restart, one command
//! meets the loss, not one per pooled connection). A connection that dies in the second after
//! its last reply fails its next command, as it would if it died right after a `PING`, and
//! is then replaced: every caller already retries a failed command.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{Metrics, Object, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// How long a reply vouches for a connection.
pub const PROVEN_FOR: Duration = Duration::from_secs(1);

/// What a connection's replies and errors say about it.
#[derive(Debug, Clone)]
pub struct Liveness {
    /// When the server last answered on it (an error reply counts: the server answered).
    last_reply: Instant,
    /// Set by an error after which the connection must not be used again.
    broken: bool,
    /// Connections of its pool found gone so far: a loss on one (Redis restarted, the
    /// network broke) makes every other one unproven until it answers again.
    losses: Arc<AtomicU64>,
    /// `losses` when this one last answered.
    seen: u64,
}

/// What to do with a connection before handing it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It met an error that says it is gone: replace it.
    Broken,
    /// It answered within the window, and no connection of its pool was lost since: hand
    /// it out.
    Proven,
    /// It has been quiet for longer, or another was lost since: ask it (`PING`).
    Unknown,
}

impl Liveness {
    /// A connection that just answered its handshake, of a pool counting its `losses`.
    pub(crate) fn new(losses: Arc<AtomicU64>) -> Self {
        Self {
            last_reply: Instant::now(),
            broken: false,
            seen: losses.load(Ordering::SeqCst),
            losses,
        }
    }

    /// Records that it just answered (a command, or the `PING` of a check).
    pub(crate) fn answered(&mut self) {
        self.seen = self.losses.load(Ordering::SeqCst);
        self.last_reply = Instant::now();
    }

    /// Records what a command's outcome says about the connection.
    pub(crate) fn note<T>(&mut self, reply: &RedisResult<T>) {
        match reply {
            Err(error) if is_gone(error) => {
                if !self.broken {
                    self.losses.fetch_add(1, Ordering::SeqCst);
                }
                self.broken = true;
            }
            _ => self.answered(),
        }
    }

    /// What to do with it now, if a reply vouches for it for `proven_for`.
    pub(crate) fn verdict(&self, proven_for: Duration) -> Verdict {
        if self.broken {
            Verdict::Broken
        } else if self.seen == self.losses.load(Ordering::SeqCst)
            && self.last_reply.elapsed() < proven_for
        {
            Verdict::Proven
        } else {
            Verdict::Unknown
        }
    }
}

/// True for an error after which the connection cannot be trusted: it is gone, or a
/// reply went missing or could not be read, so the next reply may be another command's.
pub(crate) fn is_gone(error: &RedisError) -> bool {
    error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_io_error()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

/// A Redis connection that remembers its [`Liveness`].
#[derive(Clone)]
pub struct Tracked {
    conn: MultiplexedConnection,
    liveness: Liveness,
}

impl Tracked {
    /// `conn`, which just answered its handshake, of a pool counting its `losses`.
    pub(crate) fn new(conn: MultiplexedConnection, losses: Arc<AtomicU64>) -> Self {
        Self {
            conn,
            liveness: Liveness::new(losses),
        }
    }

    /// What to do with it before handing it out again (see [`Liveness::verdict`]).
    pub(crate) fn verdict(&self, proven_for: Duration) -> Verdict {
        self.liveness.verdict(proven_for)
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("liveness", &self.liveness)
            .finish_non_exhaustive()
    }
}

impl ConnectionLike for Tracked {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let reply = self.conn.req_packed_command(cmd).await;
            self.liveness.note(&reply);
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
            self.liveness.note(&reply);
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// deadpool-redis' manager, with the `PING` of its recycle only when [`Liveness`] asks.
pub struct Manager {
    inner: deadpool_redis::Manager,
    proven_for: Duration,
    /// Its connections found gone so far.
    losses: Arc<AtomicU64>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("proven_for", &self.proven_for)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Wraps `inner`; a reply vouches for a connection for `proven_for` (zero: a `PING`
    /// at every checkout, as deadpool-redis does).
    pub(crate) fn new(inner: deadpool_redis::Manager, proven_for: Duration) -> Self {
        Self {
            inner,
            proven_for,
            losses: Arc::default(),
        }
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = Tracked;
    type Error = RedisError;

    async fn create(&self) -> Result<Tracked, RedisError> {
        let conn = self.inner.create().await?;
        Ok(Tracked::new(conn, self.losses.clone()))
    }

    async fn recycle(&self, tracked: &mut Tracked, metrics: &Metrics) -> RecycleResult<RedisError> {
        match tracked.verdict(self.proven_for) {
            Verdict::Broken => Err(RecycleError::message("the connection broke")),
            Verdict::Proven => Ok(()),
            Verdict::Unknown => {
                // UNWATCH + PING, as deadpool-redis does; a failure discards the connection.
                let checked = self.inner.recycle(&mut tracked.conn, metrics).await;
                if checked.is_ok() {
                    tracked.liveness.answered();
                }
                checked
            }
        }
    }
}

/// The pool of standalone connections.
pub type Pool = deadpool::managed::Pool<Manager>;

/// A connection checked out of a deadpool of `M`'s connections (a standalone [`Pool`], or
/// the Sentinel one); it returns to the pool on drop.
pub struct Pooled<M: deadpool::managed::Manager>(pub(crate) Object<M>);

impl<M: deadpool::managed::Manager> std::fmt::Debug for Pooled<M>
where
    M::Type: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<M> ConnectionLike for Pooled<M>
where
    M: deadpool::managed::Manager,
    M::Type: ConnectionLike,
{
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

#[cfg(test)]
mod tests;
