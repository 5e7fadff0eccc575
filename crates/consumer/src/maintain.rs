//! Housekeeping beside the read loop: safe trimming and pruning of idle consumers.
//!
//! Invariants (kept by `redline_streams`, which computes and applies each step atomically):
//! - trimming removes only entries that every group on the stream has acknowledged, never
//!   a blind MAXLEN, so a group redline did not create keeps everything it has not read;
//! - a consumer is removed only while it holds nothing pending.
//!
//! Several consumers trimming the same stream is harmless: each trim is idempotent.

use std::time::Duration;

use redline_core::{keys::StreamKeys, redis::RedisConfig, telemetry, Shutdown};
use tracing::{debug, info, warn};

/// Trims every `trim_interval` and prunes every `prune_idle / 4` (each off when zero),
/// until `shutdown`.
pub(crate) async fn run(
    redis: RedisConfig,
    keys: StreamKeys,
    group: String,
    trim_interval: Duration,
    prune_idle: Duration,
    shutdown: Shutdown,
) {
    if trim_interval.is_zero() && prune_idle.is_zero() {
        return;
    }
    let tick = match (trim_interval.is_zero(), prune_idle.is_zero()) {
        (false, false) => trim_interval.min(prune_idle / 4),
        (false, true) => trim_interval,
        _ => prune_idle / 4,
    }
    .max(Duration::from_millis(100));
    let mut last_trim = tokio::time::Instant::now();
    let mut last_prune = tokio::time::Instant::now();
    let mut conn = None;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(tick) => {}
        }
        if conn.is_none() {
            match redline_streams::connect(&redis).await {
                Ok(c) => conn = Some(c),
                Err(error) => {
                    debug!(%error, "Housekeeping cannot reach Redis; trying later.");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if !trim_interval.is_zero() && last_trim.elapsed() >= trim_interval {
            last_trim = tokio::time::Instant::now();
            match redline_streams::trim(c, &keys, false).await {
                Ok(report) => {
                    if report.removed > 0 {
                        metrics::counter!(telemetry::TRIMMED).increment(report.removed);
                        debug!(removed = report.removed, "Trimmed acknowledged entries.");
                    }
                    let punched: u64 = report.streams.iter().map(|s| s.punched).sum();
                    if punched > 0 {
                        info!(
                            punched,
                            "Redis is near maxmemory: deleted acknowledged entries \
                            behind an entry that is still pending, to free memory."
                        );
                    }
                }
                Err(error) => {
                    warn!(%error, "Cannot trim the stream; trying later.");
                    conn = None;
                    continue;
                }
            }
        }
        if !prune_idle.is_zero() && last_prune.elapsed() >= prune_idle / 4 {
            last_prune = tokio::time::Instant::now();
            match redline_streams::consumers(c, &keys, Some(&group), Some(prune_idle)).await {
                Ok(report) => {
                    for gone in &report.removed {
                        info!(consumer = %gone.name, stream = %gone.stream, idle_ms = gone.idle_ms,
                            "Removed an idle consumer that held nothing pending.");
                    }
                }
                // A group not created yet on some partition: nothing to prune there.
                Err(redline_streams::Error::NoSuchGroup { .. }) => {}
                Err(error) => {
                    warn!(%error, "Cannot prune idle consumers; trying later.");
                    conn = None;
                }
            }
        }
    }
}
