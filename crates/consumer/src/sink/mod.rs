//! Sinks: where batches go. A sink either accepts a whole write or says why not, and how
//! the consumer should treat the failure (Vector's Delivered / Errored / Rejected).
//!
//! - [`influxdb::InfluxSink`]: InfluxDB 1.x `POST /write`, gzip, per database and
//!   retention policy;
//! - [`influxdb2::Influx2Sink`]: InfluxDB 2.x `POST /api/v2/write`, token, org, per bucket;
//! - [`file::FileSink`]: appends lines to a file and fsyncs before accepting, rotating it
//!   by size between batches;
//! - [`stdout::StdoutSink`]: prints lines.

pub mod file;
pub mod influxdb;
pub mod influxdb2;
pub mod stdout;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use redline_core::entry::Entry;
use serde::{Deserialize, Serialize};

pub use file::FileSink;
pub use influxdb::InfluxSink;
pub use influxdb2::Influx2Sink;
pub use stdout::StdoutSink;

/// The InfluxDB URL when none is configured.
pub const DEFAULT_INFLUX_URL: &str = "http://127.0.0.1:8086";
/// The InfluxDB request timeout when none is configured.
pub const DEFAULT_INFLUX_TIMEOUT: Duration = Duration::from_secs(10);

/// How the InfluxDB sinks encode a request body (Telegraf's `content_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentEncoding {
    /// `Content-Encoding: gzip` (fast level): about a fifth of the bytes on the wire, for
    /// some CPU on both ends.
    #[default]
    Gzip,
    /// The plain body: for an InfluxDB on the same host or a fast LAN, where the CPU gzip
    /// costs on both ends is worth more than the bandwidth it saves.
    Identity,
}

impl ContentEncoding {
    /// The `Content-Encoding` header's value.
    pub fn header(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Identity => "identity",
        }
    }
}

/// Which sink the consumer writes to, with its settings. In TOML, a `[sink]` table whose
/// `kind` is `influxdb`, `influxdb2`, `file` or `stdout`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// InfluxDB 1.x: `POST {url}/write?db=…&rp=…&precision=ns`.
    Influxdb {
        /// Base URL, e.g. `http://127.0.0.1:8086` or `https://…` (system CAs, or SSL_CERT_FILE).
        #[serde(default = "default_influx_url")]
        url: String,
        /// The database for entries that name none. An entry without a database while
        /// this is unset is dead-lettered.
        #[serde(default)]
        db: Option<String>,
        /// Bound on one HTTP request (connect, send, answer).
        #[serde(
            default = "default_influx_timeout",
            with = "redline_core::units::duration"
        )]
        timeout: Duration,
        /// On `404 database not found`, run `CREATE DATABASE` and retry, as Telegraf does.
        #[serde(default = "default_true")]
        create_database: bool,
        /// User for HTTP basic authentication.
        #[serde(default)]
        username: Option<String>,
        /// Password for HTTP basic authentication; never logged or printed by `Debug`.
        #[serde(default)]
        password: Option<String>,
        /// Request body encoding.
        #[serde(default)]
        content_encoding: ContentEncoding,
    },
    /// InfluxDB 2.x: `POST {url}/api/v2/write?org=…&bucket=…&precision=ns`.
    Influxdb2 {
        /// Base URL, e.g. `http://127.0.0.1:8086` or `https://…` (system CAs, or SSL_CERT_FILE).
        #[serde(default = "default_influx_url")]
        url: String,
        /// API token, sent as `Authorization: Token …`; never logged or printed by `Debug`.
        token: String,
        /// Organization name.
        org: String,
        /// The bucket for entries that name none. An entry without a bucket while this is
        /// unset is dead-lettered.
        #[serde(default)]
        bucket: Option<String>,
        /// Bound on one HTTP request (connect, send, answer).
        #[serde(
            default = "default_influx_timeout",
            with = "redline_core::units::duration"
        )]
        timeout: Duration,
        /// Request body encoding.
        #[serde(default)]
        content_encoding: ContentEncoding,
    },
    /// Appends line protocol to a file, fsynced before each ack.
    File {
        /// The file; created when missing, always appended to.
        path: PathBuf,
        /// Size after which the file is rotated (between batches, never inside one);
        /// 0 = never.
        #[serde(default, with = "redline_core::units::size")]
        max_size: u64,
        /// Rotated files kept (`<path>.1` newest … `<path>.N` oldest) when rotating.
        #[serde(default = "default_max_files")]
        max_files: u32,
    },
    /// Prints line protocol on standard output.
    #[default]
    Stdout,
}

fn default_influx_url() -> String {
    DEFAULT_INFLUX_URL.to_string()
}

fn default_influx_timeout() -> Duration {
    DEFAULT_INFLUX_TIMEOUT
}

fn default_true() -> bool {
    true
}

/// Rotated files the file sink keeps when none is configured.
pub const DEFAULT_FILE_MAX_FILES: u32 = 5;

fn default_max_files() -> u32 {
    DEFAULT_FILE_MAX_FILES
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Influxdb {
                url,
                db,
                timeout,
                create_database,
                username,
                password,
                content_encoding,
            } => f
                .debug_struct("Influxdb")
                .field("url", url)
                .field("db", db)
                .field("timeout", timeout)
                .field("create_database", create_database)
                .field("username", username)
                .field("password", &password.as_ref().map(|_| "***"))
                .field("content_encoding", content_encoding)
                .finish(),
            Self::Influxdb2 {
                url,
                token: _,
                org,
                bucket,
                timeout,
                content_encoding,
            } => f
                .debug_struct("Influxdb2")
                .field("url", url)
                .field("token", &"***")
                .field("org", org)
                .field("bucket", bucket)
                .field("timeout", timeout)
                .field("content_encoding", content_encoding)
                .finish(),
            Self::File {
                path,
                max_size,
                max_files,
            } => f
                .debug_struct("File")
                .field("path", path)
                .field("max_size", max_size)
                .field("max_files", max_files)
                .finish(),
            Self::Stdout => f.write_str("Stdout"),
        }
    }
}

/// Why a sink did not accept a write, classified by what the consumer does next: an
/// outage (nothing counted, the batch waits), a verdict on a route (counted, dead-lettered
/// after `max_deliveries`) or a verdict on points (isolated and dead-lettered at once), as
/// Vector's Errored / Rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// An outage: the sink could not be reached, broke the connection, asked to be left
    /// alone (429, 503) or failed in a way that says nothing about the points (an unexpected
    /// 5xx such as InfluxDB's `engine: error writing WAL entry: … no space left on device`, a
    /// full disk). Retried with backoff for as long as it lasts and never counted against
    /// `max_deliveries`, so an outage of any length dead-letters nothing.
    #[error("sink unavailable: {0}")]
    Unavailable(String),
    /// No answer within the sink's timeout: an outage (nothing counted) that may also mean
    /// the write is too big to finish in time, so the next attempt sends smaller writes.
    #[error("sink timed out: {0}")]
    TimedOut(String),
    /// The sink refuses the credentials (HTTP 401). An outage when every route of an
    /// attempt gets it (a wrong password or token); a refusal of this route alone when
    /// another route of the same attempt was answered.
    #[error("sink refuses the credentials: {0}")]
    Unauthorized(String),
    /// The sink refuses this route (database, retention policy) for a reason that has
    /// nothing to do with the points and does not go away by waiting: no permission (403),
    /// a database that does not exist and cannot be created, an unknown retention policy,
    /// no database at all. Counted as a delivery; the entries are retried later and
    /// dead-lettered with this reason after `max_deliveries`. Other routes are not held back.
    #[error("sink refuses the route: {0}")]
    Refused(String),
    /// The sink refused the points for good (a 4xx about them: parse error, type conflict).
    /// The consumer isolates them by splitting the write and dead-letters them with `reason`.
    #[error("sink rejected the write: {reason}")]
    Rejected {
        /// What the sink said, e.g. InfluxDB's error text.
        reason: String,
        /// True when the cause applies to every point of the write (e.g. a partial write
        /// that dropped every point), so splitting the write cannot isolate anything.
        whole: bool,
    },
}

impl SinkError {
    /// True for an outage: nothing is counted and the batch waits for the sink.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::TimedOut(_))
    }

    /// The label of `redline_sink_retries_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::TimedOut(_) => "timeout",
            Self::Unauthorized(_) => "unauthorized",
            Self::Refused(_) => "refused",
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// What the workers last learnt about the sink, for `/ready`: the outage they are waiting
/// out, if any. Set by a delivery that met an outage, cleared by any accepted write. Clones
/// share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    outage: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Health {
    /// Records that the sink is in an outage, and why.
    pub(crate) fn set_outage(&self, error: &SinkError) {
        *self.lock() = Some(error.to_string());
    }

    /// Records that the sink accepted a write.
    pub(crate) fn clear(&self) {
        let mut outage = self.lock();
        if outage.is_some() {
            *outage = None;
        }
    }

    /// The outage being waited out, if any.
    pub(crate) fn outage(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic while holding the lock cannot leave the Option half-written.
        self.outage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A sink that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file sink's file cannot be opened for appending.
    #[error("cannot open '{path}' for appending: {source}")]
    File {
        /// The path as configured.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The InfluxDB URL is neither `http://` nor `https://`.
    #[error("invalid InfluxDB URL '{url}': expected http://host:port or https://host:port")]
    Url {
        /// The URL as configured.
        url: String,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The InfluxDB token holds characters an HTTP header cannot carry (it is not quoted).
    #[error("invalid InfluxDB token: it must be visible ASCII without line breaks")]
    Token,
}

/// Where batches are written. A write accepts every entry of `batch` or fails: a sink never
/// reports success for entries it did not durably take (the consumer acks on `Ok`).
pub trait Sink: Send {
    /// A short name for logs: `influxdb`, `influxdb2`, `file`, `stdout`.
    fn name(&self) -> &'static str;

    /// Writes `batch`, in order.
    ///
    /// # Errors
    /// A [`SinkError`] saying whether to retry, count a delivery, or dead-letter.
    fn write(&mut self, batch: &[&Entry]) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// One sink behind a lock, for workers that must take turns: a file or stdout is written by
/// one batch at a time, so batches never interleave (and a file's fsync covers whole
/// batches). Clones share the sink.
pub struct Shared<S> {
    name: &'static str,
    sink: std::sync::Arc<tokio::sync::Mutex<S>>,
}

impl<S: Sink> Shared<S> {
    /// `sink`, shareable.
    pub fn new(sink: S) -> Self {
        Self {
            name: sink.name(),
            sink: std::sync::Arc::new(tokio::sync::Mutex::new(sink)),
        }
    }
}

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            sink: self.sink.clone(),
        }
    }
}

impl<S: Sink> Sink for Shared<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn write(&mut self, batch: &[&Entry]) -> Result<(), SinkError> {
        self.sink.lock().await.write(batch).await
    }
}

/// The entries' lines, each followed by `\n`.
pub(crate) fn lines<'a, I>(batch: I) -> Vec<u8>
where
    I: IntoIterator<Item = &'a Entry>,
    I::IntoIter: Clone,
{
    let batch = batch.into_iter();
    let len = batch.clone().map(|e| e.lp.len() + 1).sum();
    let mut out = Vec::with_capacity(len);
    for entry in batch {
        out.extend_from_slice(entry.lp.as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn influxdb_settings_take_defaults_and_hide_the_password() {
        let config: SinkConfig =
            serde_json::from_str(r#"{"kind":"influxdb","db":"telegraf","password":"s3cret"}"#)
                .unwrap();
        let SinkConfig::Influxdb {
            url,
            db,
            timeout,
            create_database,
            ..
        } = &config
        else {
            panic!("not influxdb: {config:?}");
        };
        assert_eq!(url, DEFAULT_INFLUX_URL);
        assert_eq!(db.as_deref(), Some("telegraf"));
        assert_eq!(*timeout, DEFAULT_INFLUX_TIMEOUT);
        assert!(create_database);
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn unknown_sink_keys_are_refused() {
        let error = serde_json::from_str::<SinkConfig>(r#"{"kind":"file","path":"x","pth":"y"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("pth"), "{error}");
        let file: SinkConfig = serde_json::from_str(r#"{"kind":"file","path":"m.lp"}"#).unwrap();
        assert_eq!(
            file,
            SinkConfig::File {
                path: "m.lp".into(),
                max_size: 0,
                max_files: DEFAULT_FILE_MAX_FILES,
            }
        );
        let rotated: SinkConfig = serde_json::from_str(
            r#"{"kind":"file","path":"m.lp","max_size":"1MiB","max_files":3}"#,
        )
        .unwrap();
        assert!(matches!(
            rotated,
            SinkConfig::File {
                max_size: 1_048_576,
                max_files: 3,
                ..
            }
        ));
    }

    #[test]
    fn influxdb2_settings_need_a_token_and_org_and_hide_the_token() {
        let config: SinkConfig = serde_json::from_str(
            r#"{"kind":"influxdb2","token":"s3cret","org":"acme","bucket":"telegraf"}"#,
        )
        .unwrap();
        let SinkConfig::Influxdb2 {
            url,
            org,
            bucket,
            timeout,
            ..
        } = &config
        else {
            panic!("not influxdb2: {config:?}");
        };
        assert_eq!(url, DEFAULT_INFLUX_URL);
        assert_eq!(org, "acme");
        assert_eq!(bucket.as_deref(), Some("telegraf"));
        assert_eq!(*timeout, DEFAULT_INFLUX_TIMEOUT);
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let error = serde_json::from_str::<SinkConfig>(r#"{"kind":"influxdb2","org":"acme"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("token"), "{error}");
    }
}
