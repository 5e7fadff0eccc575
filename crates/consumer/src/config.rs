//! The consumer's configuration, with DESIGN.md's defaults.

use std::net::SocketAddr;
use std::time::Duration;

use redline_core::keys::DEFAULT_STREAM;
use redline_core::redis::RedisConfig;
use serde::{Deserialize, Serialize};

use crate::sink::SinkConfig;

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// At the oldest entry (XGROUP CREATE … 0 MKSTREAM): nothing buffered is skipped.
    #[default]
    Oldest,
    /// At the next new entry ($): what is in the stream already is skipped.
    Latest,
}

impl std::str::FromStr for StartFrom {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(value, true)
    }
}

/// Everything `redline consumer` needs. Validated by [`Config::validate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How to reach Redis.
    pub redis: RedisConfig,
    /// Base name of the metric stream (partitions are `<stream>:{n}`).
    pub stream: String,
    /// How many stream partitions to read (every one of them).
    pub partitions: u32,
    /// The consumer group.
    pub group: String,
    /// This consumer's name in the group; unique per process. A consumer restarted under
    /// the same name re-reads the entries it had not acknowledged.
    pub consumer: String,
    /// Consumers this process runs side by side, each reading and delivering its own
    /// batches: `consumer` alone when 1, else `consumer-1` … `consumer-N`, which is what
    /// that many processes would be.
    pub workers: usize,
    /// Where the group starts when it does not exist yet.
    pub start_from: StartFrom,
    /// Where batches go.
    pub sink: SinkConfig,
    /// The subset of entries this group writes; the rest it acknowledges unwritten.
    pub routing: crate::routes::Routing,
    /// Most entries per second this process writes to the sink (its workers together),
    /// in bursts of at most one batch; `None` = unlimited. So a backlog after an outage
    /// drains without knocking the backend over.
    pub max_write_rate: Option<u64>,
    /// Most entries per batch: one read over every partition, each partition getting a
    /// fair share (see `reader.rs`).
    pub batch_size: usize,
    /// Longest wait, after a batch's first entry, for the batch to fill.
    #[serde(with = "redline_core::units::duration")]
    pub flush_interval: Duration,
    /// Idle time after which another consumer claims an entry (the owner is presumed dead).
    #[serde(with = "redline_core::units::duration")]
    pub min_idle: Duration,
    /// Deliveries after which an entry is dead-lettered instead of retried again.
    pub max_deliveries: u64,
    /// Address serving `GET /metrics` (Prometheus), `GET /health` and `GET /ready`; none
    /// when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// First delay between retries (sink writes, Redis reconnects); doubles each time.
    #[serde(with = "redline_core::units::duration")]
    pub retry_initial: Duration,
    /// Longest delay between retries.
    #[serde(with = "redline_core::units::duration")]
    pub retry_max: Duration,
    /// Bound on finishing the in-flight batch after shutdown was signalled; what is not
    /// settled by then stays pending.
    #[serde(with = "redline_core::units::duration")]
    pub shutdown_timeout: Duration,
    /// How often to trim what every group has acknowledged (XTRIM MINID); 0 = never.
    #[serde(with = "redline_core::units::duration")]
    pub trim_interval: Duration,
    /// Remove consumers of the group that hold nothing pending and have been idle this
    /// long, so names of gone processes do not pile up; 0 = never.
    #[serde(with = "redline_core::units::duration")]
    pub prune_idle: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis: RedisConfig::default(),
            stream: DEFAULT_STREAM.to_string(),
            partitions: 1,
            group: "redline".to_string(),
            consumer: "redline-consumer".to_string(),
            workers: 1,
            start_from: StartFrom::default(),
            sink: SinkConfig::default(),
            routing: crate::routes::Routing::default(),
            max_write_rate: None,
            batch_size: 5000,
            flush_interval: Duration::from_secs(1),
            min_idle: Duration::from_secs(30),
            max_deliveries: 5,
            metrics_listen: None,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            trim_interval: Duration::from_secs(10),
            prune_idle: Duration::from_secs(3600),
        }
    }
}

/// Most workers one process runs (`workers`); more processes scale further.
pub const MAX_WORKERS: usize = 64;

/// A setting the consumer cannot run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid consumer setting '{key}': {reason}")]
pub struct InvalidConfig {
    /// The setting's key.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Config {
    /// The consumer names this process reads as: [`Self::consumer`] for one worker,
    /// `<consumer>-1` … `<consumer>-N` for N.
    pub fn worker_names(&self) -> Vec<String> {
        if self.workers <= 1 {
            return vec![self.consumer.clone()];
        }
        (1..=self.workers)
            .map(|n| format!("{}-{n}", self.consumer))
            .collect()
    }

    /// Checks the settings that have no meaningful zero or empty value.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let invalid = |key, reason| Err(InvalidConfig { key, reason });
        if self.stream.is_empty() {
            return invalid("stream", "must not be empty");
        }
        if self.group.is_empty() {
            return invalid("group", "must not be empty");
        }
        if self.consumer.is_empty() {
            return invalid("consumer", "must not be empty");
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return invalid("workers", "must be between 1 and 64");
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "must be at least 1");
        }
        if self.max_write_rate == Some(0) {
            return invalid(
                "max_write_rate",
                "must be at least 1 (leave it unset for no limit)",
            );
        }
        if self.flush_interval.is_zero() {
            return invalid("flush_interval", "must be longer than 0");
        }
        if self.min_idle <= self.flush_interval {
            // Otherwise a batch still filling up would be claimed from under its consumer.
            return invalid("min_idle", "must be longer than flush_interval");
        }
        if self.max_deliveries == 0 {
            return invalid("max_deliveries", "must be at least 1");
        }
        if self.retry_initial.is_zero() {
            return invalid("retry_initial", "must be longer than 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(config.stream, "redline:metrics");
        assert_eq!(config.group, "redline");
        assert_eq!(config.start_from, StartFrom::Oldest);
        assert_eq!(config.batch_size, 5000);
        assert_eq!(config.flush_interval, Duration::from_secs(1));
        assert_eq!(config.min_idle, Duration::from_secs(30));
        assert_eq!(config.max_deliveries, 5);
        assert_eq!(config.sink, SinkConfig::Stdout);
        assert_eq!(config.workers, 1);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn workers_read_under_numbered_names() {
        let one = Config {
            consumer: "host-7".into(),
            ..Config::default()
        };
        assert_eq!(one.worker_names(), ["host-7"]);
        let three = Config { workers: 3, ..one };
        assert_eq!(three.worker_names(), ["host-7-1", "host-7-2", "host-7-3"]);
        for workers in [0, MAX_WORKERS + 1] {
            let config = Config {
                workers,
                ..Config::default()
            };
            assert_eq!(
                config.validate().unwrap_err().to_string(),
                "invalid consumer setting 'workers': must be between 1 and 64"
            );
        }
    }

    #[test]
    fn settings_read_units_and_refuse_unknown_keys() {
        let config: Config = serde_json::from_str(
            r#"{"flush_interval":"250ms","start_from":"latest",
                "sink":{"kind":"file","path":"/tmp/x.lp"}}"#,
        )
        .unwrap();
        assert_eq!(config.flush_interval, Duration::from_millis(250));
        assert_eq!(config.start_from, StartFrom::Latest);
        let error = serde_json::from_str::<Config>(r#"{"batchsize":1}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("batchsize"), "{error}");
        let round_trip: Config =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(round_trip.flush_interval, config.flush_interval);
    }

    #[test]
    fn zero_batch_size_is_refused() {
        let config = Config {
            batch_size: 0,
            ..Config::default()
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "invalid consumer setting 'batch_size': must be at least 1"
        );
    }
}
