//! Pooled Redis connections for request/response commands (XPENDING, XACK, XCLAIM,
//! XAUTOCLAIM, XGROUP, the dead-letter XADD), and the one error type they share. The pool
//! is a standalone pool or a Redis Cluster connection ([`redline_core::redis::Pool`]); every
//! command here names one key, so none crosses a cluster slot.
//!
//! The blocking `XREADGROUP` never uses this pool: it has its own connection without a
//! response timeout (see [`crate::reader`]).

use redline_core::redis::{Pool, PoolError, PooledConnection as Connection};

/// A Redis command issued through the pool failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No connection could be checked out (Redis down, pool exhausted, connect timeout).
    #[error("no Redis connection: {0}")]
    Pool(PoolError),
    /// Redis answered an error or the connection broke during the command.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// Redis answered something the command does not document.
    #[error(transparent)]
    Reply(#[from] crate::batch::ReplyError),
    /// Reading the stream's state failed.
    #[error(transparent)]
    Streams(#[from] redline_streams::Error),
}

impl From<PoolError> for Error {
    fn from(error: PoolError) -> Self {
        Self::Pool(error)
    }
}

/// A `Result` with this module's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks a connection out of `pool`.
///
/// # Errors
/// [`Error::Pool`] when Redis cannot be reached.
pub(crate) async fn get(pool: &Pool) -> Result<Connection> {
    Ok(pool.get().await?)
}
