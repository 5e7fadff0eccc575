//! Ingest: the producer fed over HTTP `/write` with big bodies from several connections,
//! against the XADD ceiling; and Redis's memory per stored metric.
//!
//! On a shared machine other processes' load changes from one second to the next, so the
//! ceiling and ingest are measured alternately, `--rounds` times, each ingest round right
//! after a ceiling run; the best of each is reported, every round in the detail.

use std::sync::Arc;
use std::time::Duration;

use redline_testkit::RedisServer;
use serde_json::json;

use crate::ceiling::{self, Ceiling};
use crate::http::{self, Plan};
use crate::memory::Peaks;
use crate::options::Options;
use crate::procs::Load;
use crate::redisx;
use crate::report::{Figure, Report};
use crate::stack;
use crate::workload;

const STREAM: &str = "bench:ingest";

/// The path every load generator posts to.
pub(crate) fn write_path() -> String {
    format!("/write?db={}&precision=ns", workload::DB)
}

/// One measured round.
struct Round {
    rate: f64,
    ceiling: Option<f64>,
    other_cores: f64,
    producer_us: f64,
    redis_us: f64,
    loadgen_us: f64,
    producer_cores: f64,
    redis_cores: f64,
    bytes_per_metric: f64,
    entries: u64,
    requests: u64,
}

/// Measures ingest (and, given the tuned ceiling, the ceiling again before each round) and
/// adds the figures.
pub(crate) async fn run(
    options: &Options,
    redis: &RedisServer,
    mut ceiling: Option<Ceiling>,
    report: &mut Report,
    peaks: &mut Peaks,
) {
    let mut conn = redis.sync_conn();
    let (producer, addr) = stack::producer(options, &redis.url(), STREAM).await;
    let bodies = Arc::new(workload::bodies(0, 16, options.body_lines));
    let warmup = Duration::from_secs_f64(options.warmup_seconds);
    http::closed_loop(
        addr,
        &write_path(),
        bodies.clone(),
        options.connections,
        Plan::For(warmup),
    )
    .await
    .assert_clean("ingest warm-up");
    delete_stream(&mut conn);

    let mut rounds = Vec::new();
    for _ in 0..options.rounds.max(1) {
        let ceiling_rps = ceiling.as_mut().map(|c| {
            let (pipeline, clients) = (c.best().pipeline, c.best().clients);
            let run = ceiling::once(options.ceiling_requests, redis, pipeline, clients);
            let rps = run.rps;
            c.runs.push(run);
            rps
        });
        let memory_before = redisx::used_memory(&mut conn);
        let redis_cpu = redisx::cpu_seconds(&mut conn);
        let producer_cpu = producer.cpu_seconds();
        let load = Load::sample();
        let measure = Duration::from_secs_f64(options.ingest_seconds);
        let outcome = http::closed_loop(
            addr,
            &write_path(),
            bodies.clone(),
            options.connections,
            Plan::For(measure),
        )
        .await;
        let other_cores = load.other_cores();
        outcome.assert_clean("ingest");
        let redis_cpu = redisx::cpu_seconds(&mut conn) - redis_cpu;
        let producer_cpu = producer.cpu_seconds() - producer_cpu;
        // Everything the producer stored is still in the stream (no group trims it).
        let entries = redisx::xlen(&mut conn, STREAM);
        let bytes = (redisx::used_memory(&mut conn) - memory_before) / entries as f64;
        delete_stream(&mut conn);
        let seconds = outcome.elapsed.as_secs_f64();
        let per_metric = |cpu: f64| cpu * 1e6 / outcome.lines as f64;
        rounds.push(Round {
            rate: outcome.rate(),
            ceiling: ceiling_rps,
            other_cores,
            producer_us: per_metric(producer_cpu),
            redis_us: per_metric(redis_cpu),
            loadgen_us: per_metric(outcome.cpu_seconds),
            producer_cores: producer_cpu / seconds,
            redis_cores: redis_cpu / seconds,
            bytes_per_metric: bytes,
            entries,
            requests: outcome.requests,
        });
    }

    let ceiling = ceiling.map(|c| report.add(c.figure()));
    let best = rounds
        .iter()
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .expect("at least one round");
    let command = format!(
        "{}  ← redline-bench load generator: {} connections, closed loop, POST {} with {}-line bodies, {} s per round after {} s warm-up, best of {} round(s)",
        producer.command(),
        options.connections,
        write_path(),
        options.body_lines,
        options.ingest_seconds,
        options.warmup_seconds,
        rounds.len()
    );
    let per_round: Vec<_> = rounds
        .iter()
        .map(|r| {
            json!({
                "metrics_per_s": r.rate.round(),
                "ceiling_per_s": r.ceiling.map(f64::round),
                "ratio": r.ceiling.map(|c| (r.rate / c * 1000.0).round() / 1000.0),
                "other_cores": (r.other_cores * 100.0).round() / 100.0,
                "producer_cores": (r.producer_cores * 100.0).round() / 100.0,
                "redis_cores": (r.redis_cores * 100.0).round() / 100.0,
            })
        })
        .collect();
    let mut figure = Figure::new(
        "ingest.metrics_per_s",
        "ingest: HTTP /write → producer → XADD",
        best.rate,
        "metrics/s",
    )
    .command(command)
    .detail("requests", best.requests)
    .detail("producer_cpu_us_per_metric", best.producer_us)
    .detail("redis_cpu_us_per_metric", best.redis_us)
    .detail("loadgen_cpu_us_per_metric", best.loadgen_us)
    .detail("other_cores", best.other_cores)
    .detail("rounds", per_round);
    if let Some(ceiling) = &ceiling {
        figure = figure.ratio_to(ceiling);
        let met = figure.ratio.as_ref().is_some_and(|(r, _)| *r >= 0.85);
        figure = figure.target("≥ 0.85 × ceiling", met);
    }
    report.add(figure);

    let line_len = workload::mean_len(&workload::canonical(0, 10_000));
    let limit = 1.3 * line_len + 32.0;
    let last = rounds.last().expect("at least one round");
    report.add(
        Figure::new(
            "memory.redis_bytes_per_metric",
            "memory: Redis bytes per stored metric",
            last.bytes_per_metric,
            "B",
        )
        .target(
            format!("≤ 1.3 × {line_len:.0} B line + 32 = {limit:.0}"),
            last.bytes_per_metric <= limit,
        )
        .command(format!(
            "INFO memory used_memory after − before an ingest round, ÷ XLEN {STREAM} ({} entries with fields lp, db)",
            last.entries
        ))
        .detail("entries", last.entries)
        .detail("mean_line_bytes", line_len)
        .detail("ratio_to_line", last.bytes_per_metric / line_len),
    );
    peaks.producer("ingest", &producer);
    producer.stop();
}

/// Deletes the ingest stream (DEL: freed now, not in the background during the next round).
fn delete_stream(conn: &mut redis::Connection) {
    let _: () = redis::cmd("DEL")
        .arg(STREAM)
        .query(conn)
        .unwrap_or_else(|e| panic!("DEL {STREAM}: {e}"));
}
