//! Sinks: where batches go. A sink either accepts a whole write or says why not, and how
//! the consumer should treat the failure (Vector's Delivered / Errored / Rejected).
//!
//! - [`influxdb::InfluxSink`]: InfluxDB through its v1 (`/write`) or v2 (`/api/v2/write`)
//!   API, the API as data ([`InfluxApi`]);
//! - [`file::FileSink`]: appends lines to a file and fsyncs before accepting, rotating it
//!   by size between batches;
//! - [`stdout::StdoutSink`]: prints lines.
//!
//! Every write is one route ([`Route`]: database, retention policy): the deliverer groups a
//! batch by route once, and a sink never regroups.

mod config;
pub mod file;
pub mod influxdb;
pub mod stdout;

use std::future::Future;
use std::path::PathBuf;

use redline_core::entry::Entry;
use redline_core::series::key_of_line;

pub use config::{
    ContentEncoding, InfluxApi, InfluxConfig, SinkConfig, DEFAULT_FILE_MAX_FILES,
    DEFAULT_INFLUX_TIMEOUT, DEFAULT_INFLUX_URL, DEFAULT_PING_PATH,
};
pub use file::FileSink;
pub use influxdb::InfluxSink;
pub use stdout::StdoutSink;

/// Where a write goes: the database (or bucket) and retention policy its entries name;
/// `None` is the sink's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Route<'a> {
    /// The database or bucket.
    pub db: Option<&'a str>,
    /// The retention policy.
    pub rp: Option<&'a str>,
}

impl<'a> Route<'a> {
    /// The route of `entry`.
    pub fn of(entry: &'a Entry) -> Self {
        Self {
            db: entry.db.as_deref(),
            rp: entry.rp.as_deref(),
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
    #[error("cannot open '{path}' for appending: {reason}")]
    File {
        /// The path as configured.
        path: PathBuf,
        /// What the OS said.
        reason: std::io::Error,
    },
    /// The InfluxDB URL is neither `http://` nor `https://`.
    #[error("invalid InfluxDB URL '{url}': expected http://host:port or https://host:port")]
    Url {
        /// The URL as configured.
        url: String,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(reqwest::Error),
    /// The InfluxDB token holds characters an HTTP header cannot carry (it is not quoted).
    #[error("invalid InfluxDB token: it must be visible ASCII without line breaks")]
    Token,
}

impl From<reqwest::Error> for OpenError {
    fn from(error: reqwest::Error) -> Self {
        Self::Http(error)
    }
}

/// Where batches are written. A write accepts every entry of `batch` or fails: a sink never
/// reports success for entries it did not durably take (the consumer acks on `Ok`).
pub trait Sink: Send {
    /// A short name for logs: `influxdb`, `influxdb2`, `file`, `stdout`.
    fn name(&self) -> &'static str;

    /// Writes `batch`, in order; every entry of it has `route`.
    ///
    /// # Errors
    /// A [`SinkError`] saying whether to wait, count a delivery, or dead-letter.
    fn write(
        &mut self,
        route: Route<'_>,
        batch: &[&Entry],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
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

    async fn write(&mut self, route: Route<'_>, batch: &[&Entry]) -> Result<(), SinkError> {
        self.sink.lock().await.write(route, batch).await
    }
}

/// The entries' lines, each followed by `\n`.
pub(crate) fn lines(batch: &[&Entry]) -> Vec<u8> {
    joined(batch, batch.iter().copied())
}

/// The lines of `batch`'s entries in the order `order` takes them, each followed by `\n`.
fn joined<'a>(batch: &[&Entry], order: impl Iterator<Item = &'a Entry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.iter().map(|e| e.lp.len() + 1).sum());
    for entry in order {
        out.extend_from_slice(entry.lp.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The entries' lines, each followed by `\n`, grouped by series: the lines of one series
/// are next to each other and keep their order in `batch` (so of two points of one series
/// with the same timestamp the later one still wins), series follow each other in no
/// particular order.
///
/// What InfluxDB is sent: a batch mixes the lines of several producer requests, and influxd
/// spends about a fifth less CPU per point when each series comes in one run (measured with
/// `redline-bench --only e2e`: 5.1–5.8 µs per point before, 4.0–4.5 after). The series key is
/// [`redline_core::series::key_of_line`], the one the producer partitions by.
pub(crate) fn lines_by_series(batch: &[&Entry]) -> Vec<u8> {
    let mut order: Vec<(u64, usize)> = batch
        .iter()
        .enumerate()
        .map(|(at, entry)| (series_hash(key_of_line(&entry.lp).as_bytes()), at))
        .collect();
    // Ties broken by position: the lines of a series (and of two series whose keys hash
    // alike) stay in batch order.
    order.sort_unstable();
    joined(batch, order.into_iter().map(|(_, at)| batch[at]))
}

/// A cheap hash of a series key (FxHash's word-at-a-time mix): a collision only puts two
/// series in one run, so it needs to be fast, not strong or stable (the producer's
/// partitioning needs [`redline_core::series::hash`], which is stable but reads a byte at
/// a time).
fn series_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mix = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(K);
    let mut words = key.chunks_exact(8);
    let mut hash = 0;
    for word in words.by_ref() {
        hash = mix(hash, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    mix(mix(hash, u64::from_le_bytes(tail)), key.len() as u64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An entry of line `lp` for the sink's default route.
    pub(super) fn entry(lp: &str) -> Entry {
        Entry {
            lp: lp.to_string(),
            db: None,
            rp: None,
        }
    }

    fn body(lines: &[&str]) -> Vec<String> {
        let entries: Vec<Entry> = lines.iter().map(|l| entry(l)).collect();
        let batch: Vec<&Entry> = entries.iter().collect();
        String::from_utf8(lines_by_series(&batch))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_series_comes_in_one_run_in_batch_order() {
        let got = body(&[
            "cpu,host=a v=1 1",
            "mem,host=a v=1 1",
            "cpu,host=a v=2 1",
            r"cpu,host=a\ b v=3 1",
            "mem,host=a v=2 2",
            "cpu,host=a v=3 1",
        ]);
        let runs = |key: &str| -> Vec<&str> {
            got.iter()
                .filter(|l| l.starts_with(&format!("{key} ")))
                .map(String::as_str)
                .collect()
        };
        assert_eq!(got.len(), 6);
        assert_eq!(
            runs("cpu,host=a"),
            ["cpu,host=a v=1 1", "cpu,host=a v=2 1", "cpu,host=a v=3 1"]
        );
        assert_eq!(runs("mem,host=a"), ["mem,host=a v=1 1", "mem,host=a v=2 2"]);
        let at = |line: &str| got.iter().position(|l| l == line).unwrap();
        assert_eq!(
            at("cpu,host=a v=3 1") - at("cpu,host=a v=1 1"),
            2,
            "{got:#?}"
        );
        assert_eq!(
            at("mem,host=a v=2 2") - at("mem,host=a v=1 1"),
            1,
            "{got:#?}"
        );
        assert!(got.contains(&r"cpu,host=a\ b v=3 1".to_string()));
    }

    #[test]
    fn an_empty_batch_is_an_empty_body() {
        assert!(lines_by_series(&[]).is_empty());
    }

    proptest! {
        /// Every line once; each series contiguous and in batch order.
        #[test]
        fn grouping_keeps_every_line_and_each_series_order(
            picks in prop::collection::vec((0usize..6, 0u32..1000), 0..200),
        ) {
            let series = ["cpu,host=a", "cpu,host=b", "mem", r"disk,path=/a\ b", "cpu,host=a,x=1", "m"];
            let lines: Vec<String> = picks
                .iter()
                .enumerate()
                .map(|(i, (s, v))| format!("{} v={v},n={i}i 1", series[*s]))
                .collect();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let got = body(&refs);
            let mut want_sorted = lines.clone();
            want_sorted.sort();
            let mut got_sorted = got.clone();
            got_sorted.sort();
            prop_assert_eq!(got_sorted, want_sorted);
            for key in series {
                let prefix = format!("{key} ");
                let want: Vec<&String> = lines.iter().filter(|l| l.starts_with(&prefix)).collect();
                let positions: Vec<usize> = got
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.starts_with(&prefix))
                    .map(|(at, _)| at)
                    .collect();
                let run: Vec<&String> = positions.iter().map(|&at| &got[at]).collect();
                prop_assert_eq!(run, want);
                if let (Some(first), Some(last)) = (positions.first(), positions.last()) {
                    prop_assert_eq!(last - first + 1, positions.len(), "{} is not one run", key);
                }
            }
        }
    }
}
