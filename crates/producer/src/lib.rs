//! redline-producer: accepts InfluxDB line protocol, validates it, and stores one Redis
//! stream entry per metric.
//!
//! Guarantee: a request is answered 204 only after Redis replied to every XADD of that
//! request. When Redis cannot be reached the answer is 503 with `Retry-After`, never
//! 204, and the next request reconnects by itself.
//!
//! - [`http`]: the InfluxDB-compatible HTTP API (`/write`, `/api/v2/write`, `/ping`,
//!   `/health`, `/metrics`);
//! - [`ingest`]: request body → metrics, naming the first bad line;
//! - [`writer`]: pipelined XADD into the right partition.

use std::{net::SocketAddr, time::Duration};

use redline_core::{keys::StreamKeys, redis::RedisConfig, Shutdown};
use serde::{Deserialize, Serialize};

pub mod buffer;
pub mod http;
pub mod ingest;
pub mod writer;

/// The producer's configuration; `Default` holds the documented defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How to reach Redis.
    pub redis: RedisConfig,
    /// Base name of the metric stream.
    pub stream: String,
    /// Number of stream partitions (1 = the bare stream key).
    pub partitions: u32,
    /// HTTP listen address; loopback unless told otherwise.
    pub listen: SocketAddr,
    /// Largest accepted request body, after gzip decoding (InfluxDB's default: 25 MB).
    #[serde(with = "redline_core::units::size")]
    pub max_body_size: u64,
    /// Most entries the slowest consumer group may have unacknowledged; 0 = no limit
    /// (Redis's `maxmemory` with `noeviction` is then the bound).
    pub buffer_limit: u64,
    /// What to do when a request would pass `buffer_limit`.
    pub buffer_full: buffer::BufferFull,
    /// Replicas that must confirm each write (Redis `WAIT`) before the 204; 0 = none.
    pub wait_replicas: u32,
    /// How long to wait for those replicas.
    #[serde(with = "redline_core::units::duration")]
    pub wait_timeout: Duration,
    /// The `Retry-After` sent with a 503.
    #[serde(with = "redline_core::units::duration")]
    pub retry_after: Duration,
    /// Bound on finishing in-flight requests after a shutdown signal.
    #[serde(with = "redline_core::units::duration")]
    pub shutdown_timeout: Duration,
}

/// The default HTTP listen address (loopback; InfluxDB's 8086 + 100).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8186";

impl Default for Config {
    fn default() -> Self {
        Self {
            redis: RedisConfig::default(),
            stream: redline_core::keys::DEFAULT_STREAM.to_string(),
            partitions: 1,
            // A constant that parses.
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            max_body_size: 25_000_000,
            buffer_limit: 0,
            buffer_full: buffer::BufferFull::Block,
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// The stream keys this producer writes to.
    pub fn keys(&self) -> StreamKeys {
        StreamKeys::new(&self.stream, self.partitions)
    }
}

/// Why the producer could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Redis configuration is unusable.
    #[error(transparent)]
    Redis(#[from] redline_core::redis::Error),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the producer until `shutdown`: binds, serves, then finishes in-flight requests
/// (bounded by `shutdown_timeout`) and returns.
///
/// # Errors
/// [`Error::Bind`] when the address is taken, [`Error::Redis`] for a bad Redis URL.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    serve(listener, config, shutdown).await
}

/// Like [`run`], on a listener the caller bound (tests bind port 0).
///
/// # Errors
/// As [`run`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> Result<()> {
    let writer = writer::Writer::new(&config)?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(
        %addr,
        redis = %redline_core::redis::redact_url(&config.redis.url),
        stream = %config.stream,
        partitions = config.partitions,
        "Producer listening."
    );
    let app = http::router(http::State::new(writer, &config));
    let deadline = config.shutdown_timeout;
    let graceful = {
        let shutdown = shutdown.clone();
        async move { shutdown.wait().await }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(server);
    tokio::select! {
        res = &mut server => return flatten(res),
        () = shutdown.wait() => {}
    }
    match tokio::time::timeout(deadline, &mut server).await {
        Ok(res) => flatten(res),
        Err(_) => {
            tracing::warn!(timeout = ?deadline, "In-flight requests did not finish in time; closing them.");
            server.abort();
            Ok(())
        }
    }
}

fn flatten(res: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<()> {
    match res {
        Ok(inner) => inner.map_err(Error::Serve),
        Err(join) => Err(Error::Serve(std::io::Error::other(join.to_string()))),
    }
}
