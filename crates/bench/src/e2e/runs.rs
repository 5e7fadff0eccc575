//! One measured run each way: straight into a fresh `influxd`, and through producer →
//! Redis → consumer into another.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redline_testkit::{InfluxServer, RedisServer};

use super::STREAM;
use crate::drain::CONSUMER_GROUP;
use crate::http::{self, Plan};
use crate::ingest::write_path;
use crate::memory::Peaks;
use crate::options::Options;
use crate::procs::{self, Load};
use crate::redisx;
use crate::report::Figure;
use crate::stack::{self, Sink};
use crate::workload;

/// What the relay achieved.
#[derive(Debug, Clone)]
pub(super) struct Relayed {
    pub(super) rate: f64,
    pub(super) command: String,
    pub(super) ingest_done_seconds: f64,
    pub(super) all_acked_seconds: f64,
    /// Entries acked when the last request was answered: the rest is drained after.
    pub(super) acked_at_ingest: u64,
    /// The consumer's `--workers`.
    pub(super) workers: usize,
    /// The share of the consumer workers' time spent in writes to InfluxDB.
    pub(super) sink_busy: f64,
    /// Points per InfluxDB write request, on average.
    pub(super) points_per_write: f64,
    pub(super) other_cores: f64,
    pub(super) cpu_us_per_metric: f64,
    pub(super) by_process: BTreeMap<String, f64>,
    pub(super) producer_cores: f64,
    pub(super) consumer_cores: f64,
    /// CPU per relayed metric of the producer and of the consumer, in µs.
    pub(super) producer_us: f64,
    pub(super) consumer_us: f64,
}

impl Relayed {
    /// `figure` with the run's command and details.
    pub(super) fn details(&self, figure: Figure, total: u64) -> Figure {
        figure
            .command(self.command.clone())
            .detail("metrics", total)
            .detail("ingest_done_seconds", self.ingest_done_seconds)
            .detail("all_acked_seconds", self.all_acked_seconds)
            .detail("acked_at_ingest", self.acked_at_ingest)
            .detail("consumer_sink_busy", self.sink_busy)
            .detail(
                "sink_writes_in_flight",
                self.sink_busy * self.workers as f64,
            )
            .detail("points_per_write", self.points_per_write.round())
            .detail(
                "drain_after_ingest_per_s",
                total.saturating_sub(self.acked_at_ingest) as f64
                    / (self.all_acked_seconds - self.ingest_done_seconds).max(1e-9),
            )
            .detail("other_cores", self.other_cores)
            .detail("cpu_us_per_metric", self.cpu_us_per_metric)
            .detail(
                "cpu_us_per_metric_by_process",
                serde_json::json!(self.by_process),
            )
            .detail("producer_cores", self.producer_cores)
            .detail("consumer_cores", self.consumer_cores)
    }
}

/// Sends every body once through producer → Redis → consumer into a fresh `influxd`
/// (pinned to `influx_cpus` when given), times it until every entry is acked, and checks
/// that InfluxDB holds every point. Both redline processes run with `--threads threads`
/// (`None`: the default).
pub(super) async fn relay(
    options: &Options,
    redis: &RedisServer,
    bodies: &Arc<Vec<workload::Body>>,
    total: u64,
    influx_cpus: Option<&str>,
    threads: Option<usize>,
    peaks: Option<&mut Peaks>,
) -> Relayed {
    let influx = InfluxServer::start();
    if let Some(cpus) = influx_cpus {
        procs::pin(influx.pid(), cpus);
    }
    influx.create_db(workload::DB).await;
    let mut conn = redis.sync_conn();
    let threads = stack::threads_args(threads);
    let threads_str: Vec<&str> = threads.iter().map(String::as_str).collect();
    let (producer, addr) =
        stack::producer_with(&options.redline, &redis.url(), STREAM, &threads_str).await;
    let metrics = SocketAddr::from(([127, 0, 0, 1], redline_testkit::free_port()));
    let consumer_args: Vec<String> = ["--metrics-listen".into(), metrics.to_string()]
        .into_iter()
        .chain(threads)
        .collect();
    let mut consumer = stack::consumer_with(
        options,
        &redis.url(),
        STREAM,
        CONSUMER_GROUP,
        &Sink::Influx(&influx.url()),
        options.e2e_workers,
        &consumer_args,
    );
    let load = Load::sample();
    let started = Instant::now();
    let producer_cpu = producer.cpu_seconds();
    let sent = http::closed_loop(
        addr,
        &write_path(),
        bodies.clone(),
        options.connections,
        Plan::EachOnce,
    )
    .await;
    sent.assert_clean("through redline");
    let ingested = started.elapsed().as_secs_f64();
    let acked_at_ingest =
        redisx::progress(&mut conn, STREAM, CONSUMER_GROUP).map_or(0, |p| p.acked());
    redisx::wait_progress(
        &mut conn,
        STREAM,
        CONSUMER_GROUP,
        Duration::from_millis(5),
        Duration::from_secs(120 + total / 5_000),
        || consumer.assert_running(),
        |p| p.done() && p.read >= total,
    );
    let seconds = started.elapsed().as_secs_f64();
    let other_cores = load.other_cores();
    let cpu = load.our_cpu_seconds();
    let by_process = load.our_cpu_us_per_metric(total);
    let producer_cpu = producer.cpu_seconds() - producer_cpu;
    let consumer_cpu = consumer.cpu_seconds();
    if let Some(peaks) = peaks {
        peaks.producer("e2e", &producer);
        peaks.consumer("e2e", &consumer);
    }
    // How much of the workers' time went into waiting for InfluxDB's answers: near 1, the
    // consumer keeps InfluxDB as busy as its workers allow; lower, its own loop (reading,
    // acking) leaves InfluxDB idle.
    let sink_seconds = metric_sum(metrics, "redline_sink_write_duration_seconds_sum");
    let sink_busy = sink_seconds / (seconds * options.e2e_workers.max(1) as f64);
    // Points per InfluxDB write: small writes cost influxd more per point.
    let points_per_write = metric_sum(metrics, "redline_metrics_written_total")
        / metric_sum(metrics, "redline_batches_written_total").max(1.0);
    let command = format!("{}\n{}", producer.command(), consumer.command());
    producer.stop();
    consumer.stop();
    redisx::unlink(&mut conn, STREAM);
    assert_holds(&influx, total, "sent through redline").await;
    Relayed {
        rate: total as f64 / seconds,
        command,
        ingest_done_seconds: ingested,
        all_acked_seconds: seconds,
        acked_at_ingest,
        workers: options.e2e_workers,
        sink_busy,
        points_per_write,
        other_cores,
        cpu_us_per_metric: cpu * 1e6 / total as f64,
        by_process,
        producer_cores: producer_cpu / seconds,
        consumer_cores: consumer_cpu / seconds,
        producer_us: producer_cpu * 1e6 / total as f64,
        consumer_us: consumer_cpu * 1e6 / total as f64,
    }
}

/// What writing straight to InfluxDB achieved.
#[derive(Debug, Clone)]
pub(super) struct Straight {
    pub(super) rate: f64,
    pub(super) other_cores: f64,
    /// CPU of influxd and the load generator per point.
    pub(super) cpu_us_per_metric: f64,
    /// The same per process name.
    pub(super) by_process: BTreeMap<String, f64>,
}

impl Straight {
    /// `figure` with the run's details.
    pub(super) fn details(&self, figure: Figure, total: u64) -> Figure {
        figure
            .detail("metrics", total)
            .detail("other_cores", self.other_cores)
            .detail("cpu_us_per_metric", self.cpu_us_per_metric)
            .detail(
                "cpu_us_per_metric_by_process",
                serde_json::json!(self.by_process),
            )
    }
}

/// Sends every body once straight to a fresh `influxd` (pinned to `influx_cpus` when given)
/// from `connections` connections and checks that it holds every point.
pub(super) async fn straight(
    bodies: &Arc<Vec<workload::Body>>,
    connections: usize,
    total: u64,
    influx_cpus: Option<&str>,
) -> Straight {
    let influx = InfluxServer::start();
    if let Some(cpus) = influx_cpus {
        procs::pin(influx.pid(), cpus);
    }
    influx.create_db(workload::DB).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], influx.port()));
    let load = Load::sample();
    let outcome = http::closed_loop(
        addr,
        &write_path(),
        bodies.clone(),
        connections,
        Plan::EachOnce,
    )
    .await;
    let other_cores = load.other_cores();
    let cpu = load.our_cpu_seconds();
    let by_process = load.our_cpu_us_per_metric(total);
    outcome.assert_clean("straight to InfluxDB");
    assert_holds(&influx, total, "written straight to it").await;
    Straight {
        rate: outcome.rate(),
        other_cores,
        cpu_us_per_metric: cpu * 1e6 / total as f64,
        by_process,
    }
}

/// Panics unless `influx` holds exactly `total` points of the workload.
async fn assert_holds(influx: &InfluxServer, total: u64, how: &str) {
    let stored = influx
        .count_points(workload::DB, workload::MEASUREMENT)
        .await;
    assert_eq!(stored, total, "InfluxDB holds every point {how}");
}

/// The sum of every sample of `name` (all label sets) on the `/metrics` page at `addr`; 0
/// when it cannot be read.
fn metric_sum(addr: SocketAddr, name: &str) -> f64 {
    use std::io::{Read, Write};
    let page = std::net::TcpStream::connect(addr).and_then(|mut stream| {
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")?;
        let mut page = String::new();
        stream.read_to_string(&mut page)?;
        Ok(page)
    });
    page.unwrap_or_default()
        .lines()
        .filter(|line| line.split([' ', '{']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
