//! Metric names and the Prometheus `/metrics` rendering.
//!
//! Components record through the `metrics` facade with the names below; the process
//! installs one Prometheus recorder at start ([`install`]) and every listener renders it.
//! The producer and the consumer register their series at start, every known label value
//! included ([`register_producer`], [`register_consumer`]), so `/metrics` shows a 0 rather
//! than nothing until the first event: a dashboard's "No data" then means "not scraped".

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `*_seconds` metric: 0.5 ms to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counter: HTTP write requests by `endpoint` and `status` code.
pub const HTTP_REQUESTS: &str = "redline_http_requests_total";
/// Counter: lines accepted and stored.
pub const LINES_ACCEPTED: &str = "redline_lines_accepted_total";
/// Counter: lines refused, by `reason` ([`LINE_REJECT_REASONS`]).
pub const LINES_REJECTED: &str = "redline_lines_rejected_total";
/// Counter: 503 answers by `cause` ([`UNAVAILABLE_CAUSES`]): `redis` unreachable or full,
/// `buffer_full` (`buffer_limit` under `block`), `replicas` (`wait_replicas` not confirmed),
/// `busy` (past `max_concurrent_requests`), `memory` (no room in `max_inflight_bytes`).
pub const UNAVAILABLE: &str = "redline_unavailable_responses_total";
/// Counter: acknowledged entries removed by safe trimming.
pub const TRIMMED: &str = "redline_metrics_trimmed_total";
/// Gauge: entries the slowest group has not acknowledged, measured at every write under a
/// `buffer_limit` and at every scrape.
pub const BUFFER_ENTRIES: &str = "redline_buffer_entries";
/// Gauge: the producer's `buffer_limit` (0 = none), the line [`BUFFER_ENTRIES`] must stay under.
pub const BUFFER_LIMIT: &str = "redline_buffer_limit_entries";
/// Counter: unacknowledged entries dropped under `buffer_full = drop_oldest`.
pub const DROPPED: &str = "redline_metrics_dropped_total";
/// Gauge: write requests whose body is read, waiting for one of the producer's
/// `max_concurrent_writes` slots to be parsed and stored.
pub const WRITES_WAITING: &str = "redline_producer_writes_waiting";
/// Gauge: bytes the producer holds for HTTP requests (bodies, inflated gzip, parsed
/// metrics, pipelines), charged against `max_inflight_bytes`.
pub const INFLIGHT_BYTES: &str = "redline_producer_inflight_bytes";
/// Gauge: the producer's memory budget for requests (`max_inflight_bytes`).
pub const INFLIGHT_BUDGET: &str = "redline_producer_inflight_budget_bytes";
/// Counter: write requests answered with an error, by `reason` ([`REFUSED_REASONS`]).
pub const REFUSED: &str = "redline_requests_refused_total";
/// Histogram: seconds for one request's pipelined XADDs.
pub const XADD_SECONDS: &str = "redline_xadd_duration_seconds";
/// Counter: batches the sink accepted.
pub const BATCHES_WRITTEN: &str = "redline_batches_written_total";
/// Counter: metrics the sink accepted.
pub const METRICS_WRITTEN: &str = "redline_metrics_written_total";
/// Counter: entries acknowledged (XACK).
pub const METRICS_ACKED: &str = "redline_metrics_acked_total";
/// Counter: failed sink writes that will be retried, by `kind` ([`SINK_RETRY_KINDS`]).
pub const SINK_RETRIES: &str = "redline_sink_retries_total";
/// Histogram: seconds for one sink write, by `outcome` ([`SINK_OUTCOMES`]).
pub const SINK_SECONDS: &str = "redline_sink_write_duration_seconds";
/// Counter: entries moved to the dead-letter stream, by `reason` ([`DEAD_LETTER_REASONS`]).
pub const DEAD_LETTERED: &str = "redline_metrics_dead_lettered_total";
/// Counter: entries claimed from other consumers (XAUTOCLAIM).
pub const RECLAIMED: &str = "redline_metrics_reclaimed_total";
/// Counter: entries outside the group's routing (`--include-db` …), acked unwritten.
pub const ENTRIES_SKIPPED: &str = "redline_entries_skipped_total";
/// Gauge: entries in a metric stream, by `stream`.
pub const STREAM_LENGTH: &str = "redline_stream_length";
/// Gauge: entries a group has not read yet, by `stream` and `group` (XINFO GROUPS lag).
pub const GROUP_LAG: &str = "redline_group_lag";
/// Gauge: entries a group has read but not acknowledged, by `stream` and `group`.
pub const GROUP_PENDING: &str = "redline_group_pending";
/// Gauge: age of a group's oldest pending entry in seconds, by `stream` and `group`.
pub const GROUP_OLDEST_PENDING_AGE: &str = "redline_group_oldest_pending_age_seconds";
/// Gauge: entries per second a group's sinks accepted lately, by `group` (the sum its
/// consumer processes report).
pub const GROUP_WRITE_RATE: &str = "redline_group_write_rate";
/// Gauge: seconds for a group to write its backlog at its `--max-write-rate` (at its current
/// rate when unlimited), by `group`.
pub const GROUP_DRAIN_SECONDS: &str = "redline_group_drain_seconds";
/// Gauge: this consumer process's `--max-write-rate`, entries per second; 0 = unlimited.
pub const WRITE_RATE_LIMIT: &str = "redline_write_rate_limit";
/// Gauge: entries per second this consumer process's sink accepted over the last 10 s.
pub const WRITE_RATE: &str = "redline_write_rate";
/// Gauge: 1 while an InfluxDB URL answers, 0 after it was unavailable, by `url` (password
/// masked).
pub const SINK_URL_UP: &str = "redline_sink_url_up";
/// Gauge: entries in the dead-letter stream.
pub const DLQ_LENGTH: &str = "redline_dlq_length";
/// Gauge: the threads of the process's async runtime (`--threads`).
pub const RUNTIME_THREADS: &str = "redline_runtime_threads";

/// The `reason` values of [`LINES_REJECTED`]: `parse` (not line protocol, or over a limit,
/// named in the 400), `line_too_long` (a TCP line past `max_line_length`, skipped).
pub const LINE_REJECT_REASONS: &[&str] = &["parse", "line_too_long"];
/// The `cause` values of [`UNAVAILABLE`].
pub const UNAVAILABLE_CAUSES: &[&str] = &["redis", "buffer_full", "replicas", "busy", "memory"];
/// The `reason` values of [`REFUSED`].
pub const REFUSED_REASONS: &[&str] = &[
    "memory",
    "too_large",
    "busy",
    "buffer_full",
    "redis",
    "replicas",
    "read_timeout",
    "body_read",
    "invalid",
    "internal",
];
/// The `endpoint` values of [`HTTP_REQUESTS`] registered at start (with `status` 204); other
/// answers add their own series.
pub const WRITE_ENDPOINTS: &[&str] = &["/write", "/api/v2/write"];
/// The `kind` values of [`SINK_RETRIES`]: outages (`unavailable`, `timeout`, `unauthorized`,
/// counting nothing) and a refused route (`refused`, counted).
pub const SINK_RETRY_KINDS: &[&str] = &["unavailable", "timeout", "unauthorized", "refused"];
/// The `outcome` values of [`SINK_SECONDS`]: `ok` (accepted), `rejected` (a verdict on the
/// points or their route), `failed` (an outage; the batch stays pending).
pub const SINK_OUTCOMES: &[&str] = &["ok", "rejected", "failed"];
/// The `reason` values of [`DEAD_LETTERED`].
pub const DEAD_LETTER_REASONS: &[&str] = &["undecodable", "rejected", "max_deliveries"];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                // The suffix matcher is valid with these buckets; fall back to summaries if not.
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed, e.g. by a test harness;
            // the handle still renders, just without the other recorder's data.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// Records the threads of the runtime this is called from (`--threads`).
pub fn record_runtime() {
    install();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        metrics::gauge!(RUNTIME_THREADS).set(runtime.metrics().num_workers() as f64);
    }
}

/// Registers the producer's series at 0, with every known label value, and its
/// `buffer_limit`. Adding 0 registers a series without resetting what another part of this
/// process (`redline run`, a test) already counted.
pub fn register_producer(buffer_limit: u64) {
    install();
    for endpoint in WRITE_ENDPOINTS {
        metrics::counter!(HTTP_REQUESTS, "endpoint" => *endpoint, "status" => "204").increment(0);
    }
    metrics::counter!(LINES_ACCEPTED).increment(0);
    for reason in LINE_REJECT_REASONS {
        metrics::counter!(LINES_REJECTED, "reason" => *reason).increment(0);
    }
    for cause in UNAVAILABLE_CAUSES {
        metrics::counter!(UNAVAILABLE, "cause" => *cause).increment(0);
    }
    for reason in REFUSED_REASONS {
        metrics::counter!(REFUSED, "reason" => *reason).increment(0);
    }
    metrics::counter!(DROPPED).increment(0);
    metrics::gauge!(WRITES_WAITING).increment(0.0);
    metrics::gauge!(BUFFER_ENTRIES).increment(0.0);
    metrics::gauge!(BUFFER_LIMIT).set(buffer_limit as f64);
    // Registered: rendered with zero counts until the first request.
    let _ = metrics::histogram!(XADD_SECONDS);
}

/// Registers the consumer's series at 0, with every known label value.
pub fn register_consumer() {
    install();
    for name in [
        BATCHES_WRITTEN,
        METRICS_WRITTEN,
        METRICS_ACKED,
        RECLAIMED,
        ENTRIES_SKIPPED,
        TRIMMED,
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!(WRITE_RATE).increment(0.0);
    for kind in SINK_RETRY_KINDS {
        metrics::counter!(SINK_RETRIES, "kind" => *kind).increment(0);
    }
    for reason in DEAD_LETTER_REASONS {
        metrics::counter!(DEAD_LETTERED, "reason" => *reason).increment(0);
    }
    for outcome in SINK_OUTCOMES {
        let _ = metrics::histogram!(SINK_SECONDS, "outcome" => *outcome);
    }
}

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    install().render()
}

/// HELP texts for every metric.
fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP write requests by endpoint and status code."
    );
    describe_counter!(LINES_ACCEPTED, "Lines validated and stored in Redis.");
    describe_gauge!(
        WRITES_WAITING,
        "Write requests read and waiting for a slot to be parsed and stored."
    );
    describe_counter!(LINES_REJECTED, "Lines refused, by reason.");
    describe_gauge!(
        INFLIGHT_BYTES,
        "Bytes held for HTTP requests, charged against the memory budget."
    );
    describe_gauge!(
        INFLIGHT_BUDGET,
        "The memory budget for HTTP requests (--max-inflight-bytes)."
    );
    describe_counter!(REFUSED, "Write requests answered with an error, by reason.");
    describe_counter!(
        UNAVAILABLE,
        "503 answers by cause (redis, buffer_full, replicas, busy, memory)."
    );
    describe_histogram!(
        XADD_SECONDS,
        Unit::Seconds,
        "Time for one request's pipelined XADDs."
    );
    describe_gauge!(
        BUFFER_ENTRIES,
        "Entries the slowest group has not acknowledged (buffer fill)."
    );
    describe_gauge!(
        BUFFER_LIMIT,
        "The producer's --buffer-limit in entries (0 = none)."
    );
    describe_counter!(
        DROPPED,
        "Unacknowledged entries dropped under buffer_full = drop_oldest."
    );
    describe_counter!(BATCHES_WRITTEN, "Batches the sink accepted.");
    describe_counter!(METRICS_WRITTEN, "Metrics the sink accepted.");
    describe_counter!(METRICS_ACKED, "Entries acknowledged (XACK).");
    describe_counter!(
        SINK_RETRIES,
        "Failed sink writes that will be retried, by kind."
    );
    describe_histogram!(
        SINK_SECONDS,
        Unit::Seconds,
        "Time for one sink write, by outcome (ok, rejected, failed)."
    );
    describe_counter!(
        DEAD_LETTERED,
        "Entries moved to the dead-letter stream, by reason."
    );
    describe_counter!(RECLAIMED, "Entries claimed from idle consumers.");
    describe_counter!(
        ENTRIES_SKIPPED,
        "Entries outside the group's routing, acknowledged unwritten."
    );
    describe_counter!(TRIMMED, "Acknowledged entries removed by safe trimming.");
    describe_gauge!(STREAM_LENGTH, "Entries in a metric stream (from Redis).");
    describe_gauge!(
        GROUP_LAG,
        "Entries a group has not read yet (XINFO GROUPS)."
    );
    describe_gauge!(
        GROUP_PENDING,
        "Entries a group has read but not acknowledged (XINFO GROUPS)."
    );
    describe_gauge!(
        GROUP_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of a group's oldest pending entry."
    );
    describe_gauge!(DLQ_LENGTH, "Entries in the dead-letter stream.");
    describe_gauge!(
        RUNTIME_THREADS,
        "Threads of the process's async runtime (--threads)."
    );
    describe_gauge!(
        GROUP_WRITE_RATE,
        "Entries per second a group's sinks accepted lately (its processes' reports)."
    );
    describe_gauge!(
        GROUP_DRAIN_SECONDS,
        Unit::Seconds,
        "Time for a group to write its backlog at its write rate limit (current rate if none)."
    );
    describe_gauge!(
        WRITE_RATE_LIMIT,
        "This process's --max-write-rate in entries per second; 0 = unlimited."
    );
    describe_gauge!(
        WRITE_RATE,
        "Entries per second this process's sink accepted over the last 10 s."
    );
    describe_gauge!(
        SINK_URL_UP,
        "1 while an InfluxDB URL answers, 0 after it was unavailable."
    );
}
