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
use crate::procs::Load;
use crate::redisx;
use crate::report::{Figure, Report};
use crate::stack::{self, Sink};
use crate::workload;

const STREAM: &str = "bench:e2e";

/// Measures both paths and adds them.
pub(crate) async fn run(
    options: &Options,
    redis: &RedisServer,
    report: &mut Report,
    peaks: &mut Peaks,
) {
    let requests = options.e2e_metrics.div_ceil(options.body_lines).max(1);
    let bodies = Arc::new(workload::bodies(0, requests, options.body_lines));
    let total = requests * options.body_lines;

    let direct = straight(&bodies, options.connections, total).await;
    // The relay writes one batch at a time; a single-connection client shows that bound.
    let serial = straight(&bodies, 1, total).await;
    let direct_cpu = direct.cpu_us_per_metric;
    let direct = report.add(
        Figure::new(
            "e2e.direct_per_s",
            "e2e baseline: load generator → InfluxDB",
            direct.rate,
            "metrics/s",
        )
        .command(format!(
            "redline-bench load generator: {} connections, POST {} to influxd (fresh, testkit config), {requests} bodies of {} lines, each once",
            options.connections,
            write_path(),
            options.body_lines
        ))
        .detail("metrics", total)
        .detail("other_cores", direct.other_cores)
        .detail("cpu_us_per_metric", direct.cpu_us_per_metric)
        .detail("cpu_us_per_metric_by_process", serde_json::json!(direct.by_process))
        .detail("one_connection_per_s", serial.rate)
        .detail("one_connection_cpu_us_per_metric", serial.cpu_us_per_metric),
    );

    let influx = InfluxServer::start();
    influx.create_db(workload::DB).await;
    let mut conn = redis.sync_conn();
    let (producer, addr) = stack::producer(options, &redis.url(), STREAM).await;
    let mut consumer = stack::consumer(
        options,
        &redis.url(),
        STREAM,
        CONSUMER_GROUP,
        &Sink::Influx(&influx.url()),
        options.e2e_workers,
    );
    let load = Load::sample();
    let started = Instant::now();
    let producer_cpu = producer.cpu_seconds();
    let sent = http::closed_loop(
        addr,
        &write_path(),
        bodies,
        options.connections,
        Plan::EachOnce,
    )
    .await;
    sent.assert_clean("through redline");
    let ingested = started.elapsed().as_secs_f64();
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
    let relay_other = load.other_cores();
    let relay_cpu = load.our_cpu_seconds();
    let relay_by_process = load.our_cpu_us_per_metric(total);
    let producer_cpu = producer.cpu_seconds() - producer_cpu;
    let consumer_cpu = consumer.cpu_seconds();
    peaks.producer("e2e", &producer);
    peaks.consumer("e2e", &consumer);
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

    let figure = Figure::new(
        "e2e.relay_per_s",
        "e2e: load generator → redline → InfluxDB (all acked)",
        total as f64 / seconds,
        "metrics/s",
    )
    .ratio_to(&direct);
    let met = figure.ratio.as_ref().is_some_and(|(r, _)| *r >= 0.8);
    report.add(
        figure
            .target("≥ 0.8 × direct", met)
            .command(command)
            .detail("metrics", total)
            .detail("ingest_done_seconds", ingested)
            .detail("all_acked_seconds", seconds)
            .detail("other_cores", relay_other)
            .detail("cpu_us_per_metric", relay_cpu * 1e6 / total as f64)
            .detail(
                "cpu_bound_ratio",
                direct_cpu / (relay_cpu * 1e6 / total as f64),
            )
            .detail(
                "cpu_us_per_metric_by_process",
                serde_json::json!(relay_by_process),
            )
            .detail("producer_cores", producer_cpu / seconds)
            .detail("consumer_cores", consumer_cpu / seconds),
    );
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

/// Sends every body once straight to a fresh `influxd` from `connections` connections and
/// checks that it holds every point.
async fn straight(bodies: &Arc<Vec<workload::Body>>, connections: usize, total: u64) -> Straight {
    let influx = InfluxServer::start();
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
