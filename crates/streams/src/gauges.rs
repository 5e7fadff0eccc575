//! Stream and group gauges for `/metrics`, read from Redis at scrape time.
//!
//! Lag, pending and the oldest pending age come from XINFO / XPENDING (via [`status`]), not
//! from the process's own counters, so every replica of a producer or consumer reports the
//! same truth, and a scrape right after a restart is already right.

use std::time::Duration;

use redline_core::{
    keys::StreamKeys,
    redis::{Connection, RedisConfig},
    telemetry,
};
use tokio::sync::Mutex;

use crate::{connect, status, Result, StatusReport};

/// Refreshes the stream and group gauges on demand; one per process.
#[derive(Debug)]
pub struct GroupGauges {
    redis: RedisConfig,
    keys: StreamKeys,
    /// Made on first use and again after an error; the lock serialises scrapes.
    conn: Mutex<Option<Connection>>,
}

impl GroupGauges {
    /// Gauges for the streams of `keys` on the Redis of `redis`.
    pub fn new(redis: RedisConfig, keys: StreamKeys) -> Self {
        Self {
            redis,
            keys,
            conn: Mutex::new(None),
        }
    }

    /// Reads the streams' state and sets the gauges; bounded by `timeout`. Returns what it
    /// read, for gauges of the caller's own (the producer's buffer fill).
    ///
    /// # Errors
    /// Redis unreachable or too slow; the gauges keep their last values.
    pub async fn refresh(&self, timeout: Duration) -> Result<StatusReport> {
        let mut guard = self.conn.lock().await;
        let work = async {
            if guard.is_none() {
                *guard = Some(connect(&self.redis).await?);
            }
            let Some(conn) = guard.as_mut() else {
                unreachable!("connected just above");
            };
            status(conn, &self.keys).await
        };
        let report = match tokio::time::timeout(timeout, work).await {
            Ok(Ok(report)) => report,
            Ok(Err(error)) => {
                *guard = None;
                return Err(error);
            }
            Err(_) => {
                *guard = None;
                return Err(crate::Error::Redis(redis::RedisError::from(
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {timeout:?}"),
                    ),
                )));
            }
        };
        export(&report);
        Ok(report)
    }
}

/// Sets the gauges from a status report.
pub fn export(report: &StatusReport) {
    for stream in &report.streams {
        let key = stream.key.clone();
        metrics::gauge!(telemetry::STREAM_LENGTH, "stream" => key.clone())
            .set(stream.length as f64);
        for group in &stream.groups {
            let labels = [("stream", key.clone()), ("group", group.name.clone())];
            metrics::gauge!(telemetry::GROUP_PENDING, &labels).set(group.pending as f64);
            if let Some(lag) = group.lag {
                metrics::gauge!(telemetry::GROUP_LAG, &labels).set(lag as f64);
            }
            let age = group.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0;
            metrics::gauge!(telemetry::GROUP_OLDEST_PENDING_AGE, &labels).set(age);
        }
    }
    for rate in &report.rates {
        let group = [("group", rate.group.clone())];
        metrics::gauge!(telemetry::GROUP_WRITE_RATE, &group).set(rate.write_rate as f64);
        if let Some(seconds) = rate.drain_seconds {
            metrics::gauge!(telemetry::GROUP_DRAIN_SECONDS, &group).set(seconds as f64);
        }
    }
    metrics::gauge!(telemetry::DLQ_LENGTH).set(report.dlq_length as f64);
}
