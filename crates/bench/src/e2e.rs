//! End to end into InfluxDB: the same bodies, from the same load generator, straight to
//! InfluxDB and through producer → Redis → consumer → InfluxDB, each into a fresh
//! `influxd`. The relay's time runs from the first request to the last entry acked (after
//! InfluxDB answered 204 for it); both runs then count the points InfluxDB holds.
//!
//! Direct and relayed runs alternate, `--e2e-rounds` rounds of a pair on shared cores and a
//! pair with `influxd` on a core of its own. A ratio is the median pair's (a pair runs back
//! to back, so a slow window of the machine that covers it slows both of its runs); a CPU
//! cost per metric is the least of the rounds (a slow window only adds to it). The
//! machine's speed can move by a quarter for tens of seconds (a VM; no steal time shows
//! it): spread over the whole section, each kind of run meets several windows. Every pair
//! is kept in the JSON (`rounds`).
//!
//! Redis shares the machine, so producer and consumer run with `--threads` one less than
//! the CPUs, as the README advises (the drain section says why). The default, a thread
//! per CPU, is measured once on shared cores and reported without a target.

mod runs;

use std::sync::Arc;

use redline_testkit::RedisServer;
use serde_json::json;

use crate::ingest::write_path;
use crate::memory::Peaks;
use crate::options::Options;
use crate::procs;
use crate::report::{median_by, Figure, Report};
use crate::stack;
use crate::workload;
use runs::{relay, straight, Relayed, Straight};

/// The stream the relay writes and reads.
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

    let spare = Some(stack::spare_threads());
    // With 2 CPUs or more, influxd on the last core; the load generator, Redis and redline
    // on the others.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let own_core = (cpus >= 2).then(|| Pinning {
        influx: (cpus - 1).to_string(),
        rest: if cpus == 2 {
            "0".to_string()
        } else {
            format!("0-{}", cpus - 2)
        },
        all: format!("0-{}", cpus - 1),
    });

    // A single-connection client shows what one writer at a time gets.
    let serial = straight(&bodies, 1, total, None).await;
    // redline's default threads, once; its peak RSS is the one that counts (more threads,
    // more of the allocator's arenas).
    let all_threads = relay(options, redis, &bodies, total, None, None, Some(peaks)).await;
    // Shared-core and own-core pairs take turns, so that each kind spans the whole section.
    let (mut pairs, mut own_pairs) = (Vec::new(), Vec::new());
    for _ in 0..options.e2e_rounds.max(1) {
        let direct = straight(&bodies, options.connections, total, None).await;
        let relayed = relay(options, redis, &bodies, total, None, spare, None).await;
        pairs.push((direct, relayed));
        if let Some(pinning) = &own_core {
            pinning.pin(redis, &pinning.rest);
            let influx = Some(pinning.influx.as_str());
            let direct = straight(&bodies, options.connections, total, influx).await;
            let relayed = relay(options, redis, &bodies, total, influx, spare, None).await;
            pinning.pin(redis, &pinning.all);
            own_pairs.push((direct, relayed));
        }
    }
    let (direct, relayed) = median(&pairs);
    // What the relay could reach at best when the CPU is all that bounds it: what InfluxDB
    // alone needs per metric against what the whole relay needs.
    let cpu_bound_ratio = direct.cpu_us_per_metric / relayed.cpu_us_per_metric.max(1e-9);
    let figure = Figure::new(
        "e2e.direct_per_s",
        "e2e baseline: load generator → InfluxDB",
        direct.rate,
        "metrics/s",
    )
    .command(straight_command(options, requests));
    let direct = report.add(
        direct
            .details(figure, total)
            .detail("one_connection_per_s", serial.rate)
            .detail("one_connection_cpu_us_per_metric", serial.cpu_us_per_metric),
    );
    let figure = Figure::new(
        "e2e.relay_per_s",
        &format!(
            "e2e: load generator → redline --threads {} → InfluxDB (all acked)",
            stack::spare_threads()
        ),
        relayed.rate,
        "metrics/s",
    )
    .ratio_to(&direct);
    let met = figure.ratio.as_ref().is_some_and(|(r, _)| *r >= 0.5);
    report.add(
        relayed
            .details(figure.target("≥ 0.5 × direct (shared cores)", met), total)
            .detail("cpu_bound_ratio", cpu_bound_ratio)
            .detail("rounds", rounds(&pairs)),
    );
    for figure in cpu_figures(&pairs) {
        report.add(figure);
    }
    let figure = Figure::new(
        "e2e.all_threads.relay_per_s",
        "e2e: the same, redline with a thread per CPU (the default)",
        all_threads.rate,
        "metrics/s",
    )
    .ratio_to(&direct)
    .detail("producer_cpu_us_per_metric", all_threads.producer_us)
    .detail("consumer_cpu_us_per_metric", all_threads.consumer_us)
    .detail("redis_cpu_us_per_metric", redis_us(&all_threads));
    report.add(all_threads.details(figure, total));

    let Some(Pinning { influx, rest, .. }) = own_core else {
        return;
    };
    let pairs = own_pairs;
    let (direct, relayed) = median(&pairs);
    let pinning = format!("influxd on CPU {influx}, the rest on CPU {rest} (taskset)");
    let figure = Figure::new(
        "e2e.own_core.direct_per_s",
        "e2e baseline, influxd on a core of its own",
        direct.rate,
        "metrics/s",
    )
    .command(format!(
        "{}; {pinning}",
        straight_command(options, requests)
    ));
    let direct = report.add(direct.details(figure, total));
    let figure = Figure::new(
        "e2e.own_core.relay_per_s",
        "e2e through redline, influxd on a core of its own",
        relayed.rate,
        "metrics/s",
    )
    .ratio_to(&direct);
    let met = figure.ratio.as_ref().is_some_and(|(r, _)| *r >= 0.8);
    let mut figure = relayed
        .details(figure.target("≥ 0.8 × direct", met), total)
        .detail("rounds", rounds(&pairs));
    figure.command = format!("{}\n{pinning}", figure.command);
    report.add(figure);
}

/// Which CPUs `influxd` and the rest run on when `influxd` has a core of its own.
struct Pinning {
    influx: String,
    rest: String,
    all: String,
}

impl Pinning {
    /// The harness (and so the processes it starts next) and Redis onto `cpus`.
    fn pin(&self, redis: &RedisServer, cpus: &str) {
        procs::pin(std::process::id(), cpus);
        procs::pin(redis.pid(), cpus);
    }
}

/// The pair of `pairs` whose relayed run's rate to its direct run's is the median (the lower
/// one of an even count). A pair runs back to back, so a slow window of the machine that
/// covers it slows both of its runs; the best direct run of one window against the best
/// relayed run of another would compare windows, not paths.
fn median(pairs: &[(Straight, Relayed)]) -> (&Straight, &Relayed) {
    let (direct, relayed) = median_by(pairs, ratio);
    (direct, relayed)
}

/// A pair's relayed rate against its direct rate.
fn ratio((direct, relayed): &(Straight, Relayed)) -> f64 {
    relayed.rate / direct.rate.max(1e-9)
}

/// The pair of `pairs` with the least `cost`.
fn least<F>(pairs: &[(Straight, Relayed)], cost: F) -> &(Straight, Relayed)
where
    F: Fn(&(Straight, Relayed)) -> f64,
{
    pairs
        .iter()
        .min_by(|a, b| cost(a).total_cmp(&cost(b)))
        .expect("at least one round")
}

/// Each pair's figures, for the JSON.
fn rounds(pairs: &[(Straight, Relayed)]) -> serde_json::Value {
    let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
    pairs
        .iter()
        .map(|pair| {
            let (d, r) = pair;
            json!({
                "direct_per_s": d.rate.round(),
                "relay_per_s": r.rate.round(),
                "ratio": round3(ratio(pair)),
                "direct_cpu_us_per_metric": round3(d.cpu_us_per_metric),
                "relay_cpu_us_per_metric": round3(r.cpu_us_per_metric),
                "producer_us": round3(r.producer_us),
                "consumer_us": round3(r.consumer_us),
                "redis_us": round3(redis_us(r)),
                "other_cores": round3(d.other_cores.max(r.other_cores)),
            })
        })
        .collect::<Vec<_>>()
        .into()
}

/// Redis's CPU per relayed metric in `relayed`.
fn redis_us(relayed: &Relayed) -> f64 {
    relayed
        .by_process
        .get("redis-server")
        .copied()
        .unwrap_or(0.0)
}

/// redline's own CPU per relayed metric (producer + consumer, and each), each the least of
/// the rounds and set against Redis's CPU per metric in the same round, the part no relay
/// through Redis can remove.
fn cpu_figures(pairs: &[(Straight, Relayed)]) -> Vec<Figure> {
    type Cost = fn(&Relayed) -> f64;
    let redis = least(pairs, |(_, r)| redis_us(r));
    let redis = Figure::new(
        "e2e.redis_cpu_us_per_metric",
        "e2e: redis-server CPU per relayed metric",
        redis_us(&redis.1),
        "µs",
    );
    let costs: [(&str, &str, Cost, f64); 3] = [
        (
            "redline",
            "producer + consumer",
            |r| r.producer_us + r.consumer_us,
            1.5,
        ),
        ("producer", "producer", |r| r.producer_us, 0.6),
        ("consumer", "consumer", |r| r.consumer_us, 0.9),
    ];
    let figures: Vec<Figure> = costs
        .into_iter()
        .map(|(key, who, cost, most)| {
            let (_, round) = least(pairs, |(_, r)| cost(r));
            let us = cost(round);
            let same_round = Figure::new(&redis.key, &redis.label, redis_us(round), "µs");
            Figure::new(
                &format!("e2e.{key}_cpu_us_per_metric"),
                &format!("e2e: {who} CPU per relayed metric (ratio: to Redis)"),
                us,
                "µs",
            )
            .ratio_to(&same_round)
            .target(format!("≤ {most} µs"), us <= most)
            .detail("redis_cpu_us_per_metric", same_round.value)
            .detail(
                "influxd_cpu_us_per_metric",
                round.by_process.get("influxd").copied().unwrap_or(0.0),
            )
            .detail(
                "rounds",
                pairs.iter().map(|(_, r)| cost(r)).collect::<Vec<_>>(),
            )
        })
        .collect();
    figures.into_iter().chain([redis]).collect()
}

fn straight_command(options: &Options, requests: u64) -> String {
    format!(
        "redline-bench load generator: {} connections, POST {} to influxd (fresh, testkit config), {requests} bodies of {} lines, each once",
        options.connections,
        write_path(),
        options.body_lines
    )
}
