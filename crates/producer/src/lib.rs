//! redline-producer: accepts InfluxDB line protocol, validates it, and stores one Redis
//! stream entry per metric.
//!
//! Guarantee: a request is answered 204 only after Redis replied to every XADD of that
//! request. When Redis cannot be reached the answer is 503 with `Retry-After`, never
//! 204, and the next request reconnects by itself.
//!
//! - [`http`]: the InfluxDB-compatible HTTP API (`/write`, `/api/v2/write`, `/query`,
//!   `/ping`) and the probes (`/health`, `/ready`, `/metrics`);
//! - [`tcp`]: newline-delimited line protocol over TCP (`tcp_listen`), backpressure by not
//!   reading while Redis is slow;
//! - [`ingest`]: request body → metrics, naming the first bad line;
//! - [`writer`]: pipelined XADD into the right partition.
//!
//! Where each invariant is enforced:
//! - 204 only after Redis answered every XADD (and `WAIT`, with `wait_replicas`):
//!   [`writer`]; any failure becomes one refusal answered through `refusal.rs`;
//! - a request the buffer cannot take stores nothing of it (503 or 413): [`buffer`];
//! - an unauthorised request is refused before its body is read: [`auth`];
//! - body size, read time and concurrency are bounded: `limits.rs`;
//! - one bad line never costs the good ones; the first bad line is named: [`ingest`];
//! - TCP never drops a line it read: it stops reading while Redis cannot take them: [`tcp`].

use std::{net::SocketAddr, time::Duration};

use redline_core::{keys::StreamKeys, redis::RedisConfig, Shutdown};
use serde::{Deserialize, Serialize};

pub mod auth;
pub mod budget;
pub mod buffer;
pub mod http;
pub mod ingest;
mod limits;
mod params;
mod query;
mod refusal;
mod reply;
mod server;
pub mod tcp;
pub mod tls;
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
    /// Address accepting newline-delimited line protocol over TCP; none when unset.
    pub tcp_listen: Option<SocketAddr>,
    /// Database stored with every metric received over TCP; none when unset.
    pub tcp_db: Option<String>,
    /// Database of a v1 `/write` that names none; without it such a write gets 400
    /// `database is required`, as InfluxDB answers.
    pub default_db: Option<String>,
    /// Most TCP connections served at once; further clients wait in the listen backlog.
    pub tcp_max_connections: usize,
    /// Tokens that may write over HTTP; none = no authentication.
    pub auth_tokens: auth::Tokens,
    /// Also require a token for `GET /metrics`.
    pub auth_metrics: bool,
    /// Longest line in bytes; longer lines are refused by number.
    pub max_line_length: usize,
    /// Most fields on one line.
    pub max_fields: usize,
    /// Bound on receiving one request body.
    #[serde(with = "redline_core::units::duration")]
    pub read_timeout: Duration,
    /// Most write requests served at once; one more is answered 503.
    pub max_concurrent_requests: usize,
    /// Most write requests parsed and stored at once (CPU work); the others wait their turn
    /// holding only their body.
    pub max_concurrent_writes: usize,
    /// One memory budget for everything held for HTTP requests: bodies, inflated gzip,
    /// parsed metrics, pipelines. A request that does not fit waits up to
    /// `enqueue_timeout`, then gets 503; one that alone needs more than half of it gets 413.
    #[serde(with = "redline_core::units::size")]
    pub max_inflight_bytes: u64,
    /// How long a request may wait for room in the memory budget.
    #[serde(with = "redline_core::units::duration")]
    pub enqueue_timeout: Duration,
    /// PEM certificate chain for HTTPS; plain HTTP when unset (set with `tls_key`).
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<std::path::PathBuf>,
}

/// The default HTTP listen address (loopback; InfluxDB's 8086 + 100).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8186";
/// The default bound on concurrent TCP connections.
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 256;
/// The default bound on receiving one request body.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on write requests served at once: a connection's fixed cost; their
/// memory is bounded by the budget.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;
/// The default bound on write requests parsed and stored at once.
pub const DEFAULT_MAX_CONCURRENT_WRITES: usize = 16;
/// The default memory budget for HTTP requests: sized for a small pod.
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 64 * 1024 * 1024;
/// The default wait for room in the memory budget: shorter than clients' own timeouts
/// (Telegraf's is 5 s), so they get a 503 to retry rather than a timeout.
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_secs(2);

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
            tcp_listen: None,
            tcp_db: None,
            default_db: None,
            tcp_max_connections: DEFAULT_TCP_MAX_CONNECTIONS,
            auth_tokens: auth::Tokens::default(),
            auth_metrics: false,
            max_line_length: redline_core::line::DEFAULT_MAX_LINE_LENGTH,
            max_fields: redline_core::line::DEFAULT_MAX_FIELDS,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_concurrent_writes: DEFAULT_MAX_CONCURRENT_WRITES,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
            tls_cert: None,
            tls_key: None,
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
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        reason: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// Only one of `tls_cert` and `tls_key` is set.
    #[error("HTTPS needs both a certificate and a key (--tls-cert and --tls-key)")]
    TlsIncomplete,
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the producer until `shutdown`: binds (HTTP, and TCP when `tcp_listen` is set),
/// serves, then finishes in-flight requests and TCP reads (bounded by `shutdown_timeout`)
/// and returns.
///
/// # Errors
/// [`Error::Bind`] when an address is taken, [`Error::Redis`] for a bad Redis URL.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<()> {
    let listener = bind(config.listen).await?;
    let tcp = match config.tcp_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    serve_all(listener, tcp, config, shutdown).await
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|reason| Error::Bind { addr, reason })
}

/// Like [`run`], on a listener the caller bound (tests bind port 0), without TCP.
///
/// # Errors
/// As [`run`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> Result<()> {
    serve_all(listener, None, config, shutdown).await
}

async fn serve_all(
    listener: tokio::net::TcpListener,
    tcp: Option<tokio::net::TcpListener>,
    config: Config,
    shutdown: Shutdown,
) -> Result<()> {
    redline_core::telemetry::register_producer(config.buffer_limit);
    let writer = writer::Writer::new(&config)?;
    // One memory budget for HTTP requests and TCP reads.
    let budget = budget::Budget::new(config.max_inflight_bytes, config.enqueue_timeout);
    // The TCP source; it stops on `shutdown` and is awaited before returning.
    let tcp = tcp.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, db = ?config.tcp_db, "Accepting line protocol over TCP.");
            if !config.auth_tokens.is_empty() && !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "The TCP listener has no authentication (auth tokens guard HTTP only): \
                     keep it on loopback or a trusted network."
                );
            }
        }
        let settings = tcp::Settings {
            db: config.tcp_db.clone(),
            max_connections: config.tcp_max_connections,
            // As InfluxDB 1.x (Telegraf's socket_writer speaks its line protocol).
            limits: redline_core::line::Limits {
                max_line_length: config.max_line_length,
                max_fields: config.max_fields,
                allow_unsigned: false,
            },
            shutdown_timeout: config.shutdown_timeout,
        };
        tokio::spawn(tcp::run(
            listener,
            writer.clone(),
            budget.clone(),
            settings,
            shutdown.clone(),
        ))
    });
    let result = serve_http(listener, writer, budget, &config, shutdown.clone()).await;
    if let Some(tcp) = tcp {
        // Also when HTTP failed: the TCP source must stop with the process.
        shutdown.trigger();
        if let Err(error) = tcp.await {
            tracing::error!(%error, "The TCP source failed.");
        }
    }
    result
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    writer: writer::Writer,
    budget: budget::Budget,
    config: &Config,
    shutdown: Shutdown,
) -> Result<()> {
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        (None, None) => None,
        _ => return Err(Error::TlsIncomplete),
    };
    tracing::info!(
        %addr,
        redis = %redline_core::redis::redact_url(&config.redis.url),
        stream = %config.stream,
        partitions = config.partitions,
        auth_tokens = config.auth_tokens.len(),
        https = tls.is_some(),
        "Producer listening."
    );
    auth::warn_if_open(addr, &config.auth_tokens);
    let app = http::router(http::State::new(writer, budget, config));
    let deadline = config.shutdown_timeout;
    let server = server::serve(listener, app, tls, shutdown.clone());
    let server = tokio::spawn(server);
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
