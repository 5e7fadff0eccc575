//! Metric names and the Prometheus `/metrics` rendering.
//!
//! Components record through the `metrics` facade with the names below; the process
//! installs one Prometheus recorder at start ([`install`]) and every listener renders it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Counter: HTTP write requests by `endpoint` and `status` code.
pub const HTTP_REQUESTS: &str = "redline_http_requests_total";
/// Counter: lines accepted and stored.
pub const LINES_ACCEPTED: &str = "redline_lines_accepted_total";
/// Counter: lines refused, by `reason` (`parse`).
pub const LINES_REJECTED: &str = "redline_lines_rejected_total";
/// Counter: 503 answers by `cause` (`redis`, `buffer_full`).
pub const UNAVAILABLE: &str = "redline_unavailable_responses_total";
/// Counter: acknowledged entries removed by safe trimming.
pub const TRIMMED: &str = "redline_metrics_trimmed_total";
/// Gauge: entries the slowest group has not acknowledged, as last measured.
pub const BUFFER_ENTRIES: &str = "redline_buffer_entries";
/// Counter: unacknowledged entries dropped under `buffer_full = drop_oldest`.
pub const DROPPED: &str = "redline_metrics_dropped_total";
/// Histogram: seconds for one request's pipelined XADDs.
pub const XADD_SECONDS: &str = "redline_xadd_duration_seconds";
/// Counter: batches the sink accepted.
pub const BATCHES_WRITTEN: &str = "redline_batches_written_total";
/// Counter: metrics the sink accepted.
pub const METRICS_WRITTEN: &str = "redline_metrics_written_total";
/// Counter: entries acknowledged (XACK).
pub const METRICS_ACKED: &str = "redline_metrics_acked_total";
/// Counter: failed sink writes that will be retried.
pub const SINK_RETRIES: &str = "redline_sink_retries_total";
/// Histogram: seconds for one sink write.
pub const SINK_SECONDS: &str = "redline_sink_write_duration_seconds";
/// Counter: entries moved to the dead-letter stream, by `reason`.
pub const DEAD_LETTERED: &str = "redline_metrics_dead_lettered_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed, e.g. by a test harness;
            // the handle still renders, just without the other recorder's data.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    install().render()
}
