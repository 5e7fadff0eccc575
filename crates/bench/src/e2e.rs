//! End to end into InfluxDB: the same bodies, from the same load generator, once straight to
//! InfluxDB and once through producer → Redis → consumer → InfluxDB, each into a fresh
//! `influxd`. The relay's time runs from the first request to the last entry acked (after
//! InfluxDB answered 204 for it); both runs then count the points InfluxDB holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redline_testkit::{InfluxServer, RedisServer};

use crate::drain::CONSUMER_GROUP;
use crate::http::{self, Plan};
use crate::ingest::write_path;
use crate::memory::Peaks;
use crate::options::Options;
use crate::procs::{self, Load};
use crate::redisx;
use crate::report::{Figure, Report};
use crate::stack::{self, Sink};
use crate::workload;

const STREAM: &str = "bench:e2e";

/// Measures both paths and adds them; then both again with `influxd` on a core of its own,
/// as on a host of its own.
pub(crate) async fn run(
    options: &Options,
    redis: &RedisServer,
    report: &mut Report,
    peaks: &mut Peaks,
) {
    let requests = options.e2e_metrics.div_ceil(options.body_lines).max(1);
    let bodies = Arc::new(workload::bodies(0, requests, options.body_lines));
    let total = requests * options.body_lines;

    let direct = straight(&bodies, options.connections, total, None).await;
    // A single-connection client shows what one writer at a time gets.
    let serial = straight(&bodies, 1, total, None).await;
    let direct_cpu = direct.cpu_us_per_metric;
    let direct = report.add(
        Figure::new(
            "e2e.direct_per_s",
            "e2e baseline: load generator → InfluxDB",
            direct.rate,
            "metrics/s",
        )
        .command(straight_command(options, requests))
        .detail("metrics", total)
        .detail("other_cores", direct.other_cores)
        .detail("cpu_us_per_metric", direct.cpu_us_per_metric)
        .detail(
            "cpu_us_per_metric_by_process",
            serde_json::json!(direct.by_process),
        )
        .detail("one_connection_per_s", serial.rate)
        .detail("one_connection_cpu_us_per_metric", serial.cpu_us_per_metric),
    );

    let relayed = relay(options, redis, &bodies, total, None, Some(peaks)).await;
    let figure = Figure::new(
        "e2e.relay_per_s",
        "e2e: load generator → redline → InfluxDB (all acked)",
        relayed.rate,
        "metrics/s",
    )
    .ratio_to(&direct);
    let met = figure.ratio.as_ref().is_some_and(|(r, _)| *r >= 0.5);
    let cpu_bound_ratio = direct_cpu / relayed.cpu_us_per_metric.max(1e-9);
    let cpu = relayed.cpu_figures();
    report.add(
        relayed
            .details(figure.target("≥ 0.5 × direct (shared cores)", met), total)
            .detail("cpu_bound_ratio", cpu_bound_ratio),
    );
    for figure in cpu {
        report.add(figure);
    }

    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        return;
    }
    // influxd on the last core; the load generator, Redis and redline on the others.
    let (influx_cpu, rest, all) = (
        (cpus - 1).to_string(),
        if cpus == 2 {
            "0".to_string()
        } else {
            format!("0-{}", cpus - 2)
        },
        format!("0-{}", cpus - 1),
    );
    procs::pin(std::process::id(), &rest);
    procs::pin(redis.pid(), &rest);
    let direct = straight(&bodies, options.connections, total, Some(&influx_cpu)).await;
    let relayed = relay(options, redis, &bodies, total, Some(&influx_cpu), None).await;
    procs::pin(std::process::id(), &all);
    procs::pin(redis.pid(), &all);
    let pinning = format!("influxd on CPU {influx_cpu}, the rest on CPU {rest} (taskset)");
    let direct = report.add(
        Figure::new(
            "e2e.own_core.direct_per_s",
            "e2e baseline, influxd on a core of its own",
            direct.rate,
            "metrics/s",
        )
        .command(format!(
            "{}; {pinning}",
            straight_command(options, requests)
        ))
        .detail("metrics", total)
        .detail("other_cores", direct.other_cores)
        .detail(
            "cpu_us_per_metric_by_process",
            serde_json::json!(direct.by_process),
        ),
    );
    let figure = Figure::new(
        "e2e.own_core.relay_per_s",
        "e2e through redline, influxd on a core of its own",
        relayed.rate,
        "metrics/s",
    )
    .ratio_to(&direct);
    let met = figure.ratio.as_ref().is_some_and(|(r, _)| *r >= 0.8);
    let mut figure = relayed.details(figure.target("≥ 0.8 × direct", met), total);
    figure.command = format!("{}\n{pinning}", figure.command);
    report.add(figure);
}

fn straight_command(options: &Options, requests: u64) -> String {
    format!(
        "redline-bench load generator: {} connections, POST {} to influxd (fresh, testkit config), {requests} bodies of {} lines, each once",
        options.connections,
        write_path(),
        options.body_lines
    )
}

/// What the relay achieved.
struct Relayed {
    rate: f64,
    command: String,
    ingest_done_seconds: f64,
    all_acked_seconds: f64,
    /// Entries acked when the last request was answered: the rest is drained after.
    acked_at_ingest: u64,
    /// The share of the consumer workers' time spent in writes to InfluxDB.
    sink_busy: f64,
    /// Points per InfluxDB write request, on average.
    points_per_write: f64,
    other_cores: f64,
    cpu_us_per_metric: f64,
    by_process: std::collections::BTreeMap<String, f64>,
    producer_cores: f64,
    consumer_cores: f64,
    /// CPU per relayed metric of the producer and of the consumer, in µs.
    producer_us: f64,
    consumer_us: f64,
}

impl Relayed {
    /// redline's own CPU per relayed metric (producer + consumer, and each), each against
    /// Redis's CPU per metric in the same run, the part no relay through Redis can remove.
    fn cpu_figures(&self) -> Vec<Figure> {
        let redis = Figure::new(
            "e2e.redis_cpu_us_per_metric",
            "e2e: redis-server CPU per relayed metric",
            self.by_process.get("redis-server").copied().unwrap_or(0.0),
            "µs",
        );
        let influxd = self.by_process.get("influxd").copied().unwrap_or(0.0);
        [
            (
                "redline",
                "producer + consumer",
                self.producer_us + self.consumer_us,
                1.5,
            ),
            ("producer", "producer", self.producer_us, 0.6),
            ("consumer", "consumer", self.consumer_us, 0.9),
        ]
        .into_iter()
        .map(|(key, who, us, most)| {
            Figure::new(
                &format!("e2e.{key}_cpu_us_per_metric"),
                &format!("e2e: {who} CPU per relayed metric (ratio: to Redis)"),
                us,
                "µs",
            )
            .ratio_to(&redis)
            .target(format!("≤ {most} µs"), us <= most)
            .detail("redis_cpu_us_per_metric", redis.value)
            .detail("influxd_cpu_us_per_metric", influxd)
        })
        .chain([redis.clone()])
        .collect()
    }

    /// `figure` with the run's command and details.
    fn details(self, figure: Figure, total: u64) -> Figure {
        figure
            .command(self.command)
            .detail("metrics", total)
            .detail("ingest_done_seconds", self.ingest_done_seconds)
            .detail("all_acked_seconds", self.all_acked_seconds)
            .detail("acked_at_ingest", self.acked_at_ingest)
            .detail("consumer_sink_busy", self.sink_busy)
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
/// that InfluxDB holds every point.
async fn relay(
    options: &Options,
    redis: &RedisServer,
    bodies: &Arc<Vec<workload::Body>>,
    total: u64,
    influx_cpus: Option<&str>,
    peaks: Option<&mut Peaks>,
) -> Relayed {
    let influx = InfluxServer::start();
    if let Some(cpus) = influx_cpus {
        procs::pin(influx.pid(), cpus);
    }
    influx.create_db(workload::DB).await;
    let mut conn = redis.sync_conn();
    let (producer, addr) = stack::producer(options, &redis.url(), STREAM).await;
    let metrics = SocketAddr::from(([127, 0, 0, 1], redline_testkit::free_port()));
    let mut consumer = stack::consumer_with(
        options,
        &redis.url(),
        STREAM,
        CONSUMER_GROUP,
        &Sink::Influx(&influx.url()),
        options.e2e_workers,
        &["--metrics-listen".into(), metrics.to_string()],
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
    let stored = influx
        .count_points(workload::DB, workload::MEASUREMENT)
        .await;
    assert_eq!(
        stored, total,
        "InfluxDB holds every point sent through redline"
    );
    Relayed {
        rate: total as f64 / seconds,
        command,
        ingest_done_seconds: ingested,
        all_acked_seconds: seconds,
        acked_at_ingest,
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
struct Straight {
    rate: f64,
    other_cores: f64,
    /// CPU of influxd and the load generator per point.
    cpu_us_per_metric: f64,
    /// The same per process name.
    by_process: std::collections::BTreeMap<String, f64>,
}

/// Sends every body once straight to a fresh `influxd` (pinned to `influx_cpus` when given)
/// from `connections` connections and checks that it holds every point.
async fn straight(
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
    let stored = influx
        .count_points(workload::DB, workload::MEASUREMENT)
        .await;
    assert_eq!(
        stored, total,
        "InfluxDB holds every point written straight to it"
    );
    Straight {
        rate: outcome.rate(),
        other_cores,
        cpu_us_per_metric: cpu * 1e6 / total as f64,
        by_process,
    }
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
