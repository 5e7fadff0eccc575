//! Connections to Redis: a pool for request/response traffic, dedicated connections for
//! blocking reads and for the ops commands, and the classification of Redis errors.
//!
//! Redis is one server (standalone, with or without replicas), a Redis Cluster, or a master
//! watched by Sentinel: [`RedisConfig::url`] with several comma-separated node URLs, or one
//! seed URL with [`RedisConfig::cluster`], selects the cluster client (redis-rs
//! `cluster-async`); a `redis+sentinel://` or `rediss+sentinel://` URL selects the
//! [`sentinel`] client, which finds the master through the sentinels and follows it after a
//! failover. Callers see one [`Pool`], [`PooledConnection`] and [`Connection`] in every
//! case, each implementing `redis::aio::ConnectionLike`; the cluster client follows
//! `MOVED`/`ASK` redirections and failovers by itself. What callers must still do on a
//! cluster is never send a command or a pipeline whose keys hash to different slots
//! ([`Pipelines`] groups pipelines per slot).
//!
//! Pooled connections are multiplexed (redis-rs `MultiplexedConnection`, and a cluster
//! connection multiplexes one connection per node): a dropped future does not cancel a
//! command the server already received, so callers must treat a timed-out XADD as "maybe
//! stored" and answer non-success (the client retries, and a stamped metric written twice
//! is the same InfluxDB point).

pub mod liveness;
mod pool;
pub mod raw;
pub mod sentinel;

use std::time::Duration;

use deadpool_redis::{Manager, Runtime};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::AsyncConnectionConfig;
use serde::{Deserialize, Serialize};

pub use self::pool::{Connection, Link, Pipelines, Pool, PoolError, PooledConnection};
pub use self::sentinel::{Census, SentinelUrl, SentinelView};

/// The default Redis URL.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";

/// How to reach Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` or `rediss://…`; for Redis Cluster, several
    /// node URLs separated by commas (any reachable one is enough to find the others); for
    /// Sentinel, `redis+sentinel://[user:password@]host:port[,host:port…]/master_name`
    /// (`rediss+sentinel://` with TLS, see [`SentinelUrl`]). Serialised with its passwords
    /// masked.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: String,
    /// Use the Redis Cluster client even with one URL (a seed node of the cluster).
    pub cluster: bool,
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
            cluster: false,
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
    #[error("invalid Redis URL '{url}': {reason}")]
    Url {
        /// The URL, password masked.
        url: String,
        /// What redis-rs said.
        reason: redis::RedisError,
    },
    /// The Sentinel URL does not parse.
    #[error("invalid Redis Sentinel URL '{url}': {reason}")]
    SentinelUrl {
        /// The URL, passwords masked.
        url: String,
        /// What is wrong.
        reason: sentinel::UrlError,
    },
    /// No master could be found or reached through the sentinels.
    #[error(transparent)]
    Sentinel(#[from] sentinel::Error),
    /// The pool could not be built.
    #[error("cannot build the Redis connection pool: {0}")]
    Pool(String),
    /// Connecting failed.
    #[error("cannot connect to Redis at {url}: {reason}")]
    Connect {
        /// The URL, password masked.
        url: String,
        /// What redis-rs said.
        reason: redis::RedisError,
    },
}

/// A `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Masks the password of a Redis URL so it can be logged: `redis://u:***@host:6379/`.
/// A comma-separated list of node URLs is masked URL by URL; a Sentinel URL also has every
/// query value masked (`?sentinel_password=***`).
pub fn redact_url(url: &str) -> String {
    if sentinel::is_sentinel(url) {
        return sentinel::redact(url);
    }
    if url.contains(',') {
        return url.split(',').map(redact_one).collect::<Vec<_>>().join(",");
    }
    redact_one(url)
}

/// Serialises a URL (or a comma-separated list of them) with its passwords masked, for
/// configurations that are printed (`redline config check`).
///
/// # Errors
/// The serializer's.
pub fn serialize_redacted<S: serde::Serializer>(
    url: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url))
}

fn redact_one(url: &str) -> String {
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

    /// The node URLs: the comma-separated parts of [`RedisConfig::url`], trimmed.
    pub fn nodes(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|node| !node.is_empty())
            .collect()
    }

    /// True when this is a Redis Cluster: several node URLs, or [`RedisConfig::cluster`]
    /// (and not a Sentinel URL, whose commas separate sentinels).
    pub fn is_cluster(&self) -> bool {
        !self.is_sentinel() && (self.cluster || self.nodes().len() > 1)
    }

    /// True for a `redis+sentinel://` or `rediss+sentinel://` URL.
    pub fn is_sentinel(&self) -> bool {
        sentinel::is_sentinel(&self.url)
    }

    /// The parsed Sentinel URL.
    ///
    /// # Errors
    /// [`Error::SentinelUrl`] naming what is wrong, also when [`RedisConfig::cluster`] is set.
    pub fn sentinel_url(&self) -> Result<SentinelUrl> {
        let invalid = |reason| Error::SentinelUrl {
            url: redact_url(&self.url),
            reason,
        };
        if self.cluster {
            return Err(invalid(sentinel::UrlError::WithCluster));
        }
        SentinelUrl::parse(&self.url).map_err(invalid)
    }

    /// A resolver of the master for a Sentinel URL.
    fn resolver(&self) -> Result<sentinel::Resolver> {
        sentinel::Resolver::new(self.sentinel_url()?, self.connect_timeout).map_err(|reason| {
            Error::Url {
                url: redact_url(&self.url),
                reason,
            }
        })
    }

    /// What each sentinel says about the master (`None` unless this is a Sentinel URL).
    ///
    /// # Errors
    /// [`Error::SentinelUrl`] for a bad URL; sentinels that do not answer are in the census.
    pub async fn census(&self) -> Result<Option<Census>> {
        if !self.is_sentinel() {
            return Ok(None);
        }
        Ok(Some(self.resolver()?.census().await))
    }

    /// Checks the URL(s) without connecting.
    ///
    /// # Errors
    /// [`Error::Url`] naming the first URL that does not parse, [`Error::SentinelUrl`] for a
    /// Sentinel URL.
    pub fn check(&self) -> Result<()> {
        if self.is_sentinel() {
            return self.resolver().map(drop);
        }
        if self.is_cluster() {
            self.cluster_client(Some(self.response_timeout)).map(drop)
        } else {
            self.client().map(drop)
        }
    }

    /// A client for a standalone Redis (checks the URL, does not connect). With a list of
    /// cluster nodes, it is a client of the first one. A Sentinel URL names no one node:
    /// use [`RedisConfig::connect`].
    ///
    /// # Errors
    /// [`Error::Url`] when the URL does not parse.
    pub fn client(&self) -> Result<redis::Client> {
        let url = self.nodes().first().copied().unwrap_or(self.url.as_str());
        redis::Client::open(url).map_err(|source| Error::Url {
            url: redact_url(url),
            reason: source,
        })
    }

    /// A Redis Cluster client over every node URL, with this configuration's timeouts
    /// (`response_timeout` also bounds a request's retries and redirections).
    fn cluster_client(&self, response_timeout: Option<Duration>) -> Result<ClusterClient> {
        let nodes = self.nodes();
        for node in &nodes {
            redis::IntoConnectionInfo::into_connection_info(*node).map_err(|source| {
                Error::Url {
                    url: redact_url(node),
                    reason: source,
                }
            })?;
        }
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(self.connect_timeout)
            // The driver's default waits at least 1.28 s between retries; a failover
            // (`cluster-node-timeout` + election) is usually over within a few seconds.
            .min_retry_wait(50)
            .max_retry_wait(1000);
        if let Some(timeout) = response_timeout {
            builder = builder.response_timeout(timeout);
        }
        builder.build().map_err(|source| Error::Url {
            url: redact_url(&self.url),
            reason: source,
        })
    }

    /// A connection pool. Connections are made lazily, so this succeeds while Redis is
    /// down; `pool.get()` then fails fast with a transient error and later calls reconnect.
    ///
    /// On a cluster the "pool" is one shared cluster connection (itself multiplexed over one
    /// connection per node, reconnecting and following the slot map by itself), made on the
    /// first `get()`.
    ///
    /// # Errors
    /// [`Error::Url`] or [`Error::Pool`] for a bad configuration.
    pub fn pool(&self) -> Result<Pool> {
        if self.is_sentinel() {
            let manager = sentinel::pool::Manager::new(
                self.resolver()?,
                self.connection_config(Some(self.response_timeout)),
            );
            return sentinel::pool::Pool::builder(manager)
                .max_size(self.pool_size.max(1))
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(self.response_timeout))
                // A lookup through the sentinels, then a connection and ROLE on the master.
                .create_timeout(Some(self.connect_timeout * 5))
                .recycle_timeout(Some(self.connect_timeout))
                .build()
                .map(Pool::Sentinel)
                .map_err(|e| Error::Pool(e.to_string()));
        }
        if self.is_cluster() {
            let client = self.cluster_client(Some(self.response_timeout))?;
            return Ok(Pool::cluster(client, self.connect_timeout * 2));
        }
        self.standalone_pool(liveness::PROVEN_FOR)
    }

    /// The pool of a standalone Redis; a reply vouches for a connection for `proven_for`
    /// (see [`liveness`]).
    fn standalone_pool(&self, proven_for: Duration) -> Result<Pool> {
        let manager = Manager::new_with_config(
            self.url.as_str(),
            self.connection_config(Some(self.response_timeout)),
        )
        .map_err(|source| Error::Url {
            url: redact_url(&self.url),
            reason: source,
        })?;
        liveness::Pool::builder(liveness::Manager::new(manager, proven_for))
            .max_size(self.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.response_timeout))
            .create_timeout(Some(self.connect_timeout * 2))
            .recycle_timeout(Some(self.connect_timeout))
            .build()
            .map(Pool::Standalone)
            .map_err(|e| Error::Pool(e.to_string()))
    }

    /// A dedicated connection with the response timeout, e.g. for the ops commands.
    ///
    /// # Errors
    /// [`Error::Url`] for a bad URL, [`Error::Connect`] when Redis cannot be reached.
    pub async fn connect(&self) -> Result<Connection> {
        self.dedicated(Some(self.response_timeout)).await
    }

    /// A dedicated connection without a response timeout, for `XREADGROUP … BLOCK`, which
    /// must not share a multiplexed connection with short commands.
    ///
    /// # Errors
    /// [`Error::Connect`] when Redis cannot be reached.
    pub async fn blocking_connection(&self) -> Result<Connection> {
        self.dedicated(None).await
    }

    async fn dedicated(&self, response_timeout: Option<Duration>) -> Result<Connection> {
        let connect_error = |reason| Error::Connect {
            url: redact_url(&self.url),
            reason,
        };
        if self.is_sentinel() {
            let resolver = self.resolver()?;
            let master = sentinel::pool::Master::connect(
                &resolver,
                &self.connection_config(response_timeout),
            )
            .await?;
            return Ok(Connection::Sentinel(master));
        }
        if self.is_cluster() {
            let client = self.cluster_client(response_timeout)?;
            // Connecting asks every seed for the slot map; bound it as a pool would.
            let connected =
                tokio::time::timeout(self.connect_timeout * 2, client.get_async_connection())
                    .await
                    .unwrap_or_else(|_| {
                        Err(redis::RedisError::from(std::io::Error::from(
                            std::io::ErrorKind::TimedOut,
                        )))
                    });
            return connected.map(Connection::Cluster).map_err(connect_error);
        }
        let client = self.client()?;
        client
            .get_multiplexed_async_connection_with_config(&self.connection_config(response_timeout))
            .await
            .map(Connection::Standalone)
            .map_err(connect_error)
    }
}

/// Longest Redis error text put in a log line or an HTTP answer.
const DESCRIBE_LIMIT: usize = 300;

/// A Redis error as one bounded line: a failed pipeline of 5,000 XADDs lists every
/// failed command, which would make a log line (and an HTTP answer) of hundreds of KiB.
pub fn describe(e: &redis::RedisError) -> String {
    let text = e.to_string().replace('\n', " ");
    match text.char_indices().nth(DESCRIBE_LIMIT) {
        Some((cut, _)) => format!("{}… ({} bytes more)", &text[..cut], text.len() - cut),
        None => text,
    }
}

/// True when Redis refused a command because it is at `maxmemory` (`OOM command not allowed
/// when used memory > 'maxmemory'`): with `noeviction`, until consumers drain and trim.
/// A pipeline counts when any of its commands was refused so (the first ones of a request
/// may fit, the rest not).
pub fn is_oom(e: &redis::RedisError) -> bool {
    refused_with(e, &[OOM])
}

/// True when Redis refused a write because it cannot persist it (`MISCONF Errors writing to
/// the AOF file: No space left on device`, or a failed RDB save under
/// `stop-writes-on-bgsave-error`): a full or failing disk under Redis. It refuses every
/// write, reads of a group included (XREADGROUP, XACK), until it can persist again, which it
/// finds out by itself (it retries its AOF every second): an outage, not a verdict. A
/// pipeline counts as for [`is_oom`].
pub fn is_unpersisted(e: &redis::RedisError) -> bool {
    refused_with(e, &[MISCONF])
}

/// True when Redis refused a write because fewer replicas than its `min-replicas-to-write`
/// are connected (`NOREPLICAS Not enough good replicas to write.`): it refuses every write,
/// reads of a group included, until they are back. A pipeline counts as for [`is_oom`].
pub fn is_short_of_replicas(e: &redis::RedisError) -> bool {
    refused_with(e, &[NOREPLICAS])
}

/// Redis's error code at `maxmemory`.
const OOM: &str = "OOM";
/// Redis's error code when it cannot persist (its disk full or failing).
const MISCONF: &str = "MISCONF";
/// Redis's error code when fewer replicas than `min-replicas-to-write` are connected.
const NOREPLICAS: &str = "NOREPLICAS";
/// Redis's error code while a script runs past `busy-reply-threshold` (`BUSY Redis is busy
/// running a script…`), to every command until the script ends or is killed.
const BUSY: &str = "BUSY";

/// Whether Redis answered `e`, or any command of a pipeline, with one of `codes` (the
/// pipeline's errors are copied out once, however many codes are asked about).
fn refused_with(e: &redis::RedisError, codes: &[&str]) -> bool {
    e.code().is_some_and(|code| codes.contains(&code))
        || e.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, error)| codes.contains(&error.code()))
        })
}

/// True when a Redis error means "try again later" (connection refused or dropped, timeout,
/// loading, failover, cluster redirection in progress, out of memory, a disk it cannot
/// persist to, replicas missing, a script running too long) rather than a bad command.
pub fn is_transient(e: &redis::RedisError) -> bool {
    refused_with(e, &[OOM, MISCONF, NOREPLICAS, BUSY])
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
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
        assert_eq!(
            redact_url("redis://:pw@a:1,redis://:pw@b:2"),
            "redis://:***@a:1,redis://:***@b:2"
        );
    }

    #[test]
    fn several_urls_or_the_flag_mean_a_cluster() {
        let mut config = RedisConfig {
            url: "redis://127.0.0.1:7000, redis://127.0.0.1:7001".into(),
            ..RedisConfig::default()
        };
        assert_eq!(
            config.nodes(),
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert!(config.is_cluster());
        assert!(config.check().is_ok());
        config.url = "redis://127.0.0.1:7000".into();
        assert!(!config.is_cluster());
        config.cluster = true;
        assert!(config.is_cluster());
        config.url = "redis://127.0.0.1:7000,nonsense".into();
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("'nonsense'"), "{error}");
    }

    #[test]
    fn a_sentinel_url_is_no_cluster_and_refuses_the_cluster_flag() {
        let mut config = RedisConfig {
            url: "redis+sentinel://u:pw@a:26379,b:26379/mymaster?sentinel_password=spw".into(),
            ..RedisConfig::default()
        };
        assert!(config.is_sentinel());
        assert!(!config.is_cluster());
        assert!(config.check().is_ok());
        assert_eq!(
            redact_url(&config.url),
            "redis+sentinel://u:***@a:26379,b:26379/mymaster?sentinel_password=***"
        );
        config.cluster = true;
        let error = config.check().unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid Redis Sentinel URL 'redis+sentinel://u:***@a:26379,b:26379/mymaster?sentinel_password=***': \
             it cannot be used with --redis-cluster: Sentinel watches one master, Redis Cluster fails over by itself"
        );
        config.cluster = false;
        config.url = "redis+sentinel://a:26379".into();
        let error = config.check().unwrap_err().to_string();
        assert!(error.ends_with("it names no master: add /MASTER_NAME after the sentinels (the name in `sentinel monitor`)"), "{error}");
    }
}
