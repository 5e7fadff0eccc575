//! Connections to Redis: a pool for request/response traffic, dedicated connections for
//! blocking reads, and the classification of Redis errors.
//!
//! Pooled connections are multiplexed (redis-rs `MultiplexedConnection`): a dropped future
//! does not cancel a command the server already received, so callers must treat a
//! timed-out XADD as "maybe stored" and answer non-success (the client retries, and a
//! stamped metric written twice is the same InfluxDB point).

use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use redis::AsyncConnectionConfig;
use serde::{Deserialize, Serialize};

/// The default Redis URL.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";

/// How to reach Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` or `rediss://…`.
    pub url: String,
    /// Most pooled connections at once.
    pub pool_size: usize,
    /// Bound on establishing a TCP connection to Redis.
    #[serde(with = "crate::units::duration")]
    pub connect_timeout: Duration,
    /// Bound on one command or pipeline's reply; a request that waits longer fails as
    /// transient.
    #[serde(with = "crate::units::duration")]
    pub response_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_string(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(10),
        }
    }
}

/// A Redis connection problem, with the URL's password already removed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse.
    #[error("invalid Redis URL '{url}': {source}")]
    Url {
        /// The URL, password masked.
        url: String,
        /// What redis-rs said.
        source: redis::RedisError,
    },
    /// The pool could not be built.
    #[error("cannot build the Redis connection pool: {0}")]
    Pool(String),
    /// Connecting failed.
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        /// The URL, password masked.
        url: String,
        /// What redis-rs said.
        source: redis::RedisError,
    },
}

/// A `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Masks the password of a Redis URL so it can be logged: `redis://u:***@host:6379/`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://***@{host}")
            }
        }
        None => url.to_string(),
    }
}

impl RedisConfig {
    fn connection_config(&self, response_timeout: Option<Duration>) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(response_timeout)
    }

    /// A client for this configuration (checks the URL, does not connect).
    ///
    /// # Errors
    /// [`Error::Url`] when the URL does not parse.
    pub fn client(&self) -> Result<redis::Client> {
        redis::Client::open(self.url.as_str()).map_err(|source| Error::Url {
            url: redact_url(&self.url),
            source,
        })
    }

    /// A connection pool. Connections are made lazily, so this succeeds while Redis is
    /// down; `pool.get()` then fails fast with a transient error and later calls reconnect.
    ///
    /// # Errors
    /// [`Error::Url`] or [`Error::Pool`] for a bad configuration.
    pub fn pool(&self) -> Result<Pool> {
        let manager = Manager::new_with_config(
            self.url.as_str(),
            self.connection_config(Some(self.response_timeout)),
        )
        .map_err(|source| Error::Url {
            url: redact_url(&self.url),
            source,
        })?;
        Pool::builder(manager)
            .max_size(self.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.response_timeout))
            .create_timeout(Some(self.connect_timeout * 2))
            .recycle_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| Error::Pool(e.to_string()))
    }

    /// A dedicated connection without a response timeout, for `XREADGROUP … BLOCK`, which
    /// must not share a multiplexed connection with short commands.
    ///
    /// # Errors
    /// [`Error::Connect`] when Redis cannot be reached.
    pub async fn blocking_connection(&self) -> Result<redis::aio::MultiplexedConnection> {
        let client = self.client()?;
        client
            .get_multiplexed_async_connection_with_config(&self.connection_config(None))
            .await
            .map_err(|source| Error::Connect {
                url: redact_url(&self.url),
                source,
            })
    }
}

/// True when a Redis error means "try again later" (connection refused or dropped, timeout,
/// loading, failover, cluster redirection in progress) rather than a bad command.
pub fn is_transient(e: &redis::RedisError) -> bool {
    e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_io_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_url("redis://user:s3cret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact_url("rediss://tok@host/"), "rediss://***@host/");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
    }
}
