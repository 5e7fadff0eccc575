//! Drain: a consumer emptying a pre-filled stream into the discarding sink and into the
//! file sink, against the read ceiling (`redis-benchmark` XREADGROUP) and the fastest relay
//! a client can do through a consumer group (a pipelined XREADGROUP + XACK loop, same batch
//! size), measured in the same run, in alternating rounds (`--rounds`).
//!
//! Each drain runs right after a read-ceiling run of its own, and its ratio is that pair's:
//! this machine's speed moves by up to a quarter for tens of seconds at a time, so a drain
//! set against the best ceiling run of the section compared windows, not the consumer with
//! Redis (one full run read 0.76× that way, its drains 478k and 458k/s against ceiling runs
//! of 626k, 513k and 586k). A case's figure is its median pair (the lower middle of an even
//! count); every pair is in the JSON (`rounds`). The loop baseline counts its best round.
//!
//! The discarding sink is `--sink stdout` with stdout on `/dev/null`: each batch is
//! formatted and written (flushed) before its XACK, as with any sink, and nothing else. The
//! file sink cannot serve: `fdatasync` on `/dev/null` fails with EINVAL.
//!
//! The targets are met by a consumer with `--workers 3`, what a catch-up after an outage
//! runs: one worker reads, writes and acks in turn (one batch in flight per consumer name),
//! so Redis and the consumer are never busy at the same time and its rate is bounded by
//! the sum of both costs per entry; a second worker reads while the first one writes, and a
//! third keeps Redis busy while the other two are both on the consumer's side (with one
//! thread their CPU work takes turns). Per 5,000-entry batch Redis works about 8 ms (read
//! and ack) and the consumer about 3: as a closed loop of those two stations, two workers
//! keep Redis, the bottleneck, busy 90% of the time and three 96% (0.76× and 0.77× the read
//! ceiling with two, 0.79× and 0.93× with three, in alternating runs). The one-worker drain
//! and two workers with a thread per CPU are reported next to it, without a target.
//!
//! Redis runs on the same machine, so the consumer runs with `--threads` one less than the
//! CPUs (1 on 2 cores), as the README advises: with a thread per CPU, both workers parse
//! and write at once, one of them on Redis's core, and Redis waits (the drain fell from
//! 0.87–0.95× to 0.72–0.75× in alternating runs). That default is reported too, without a
//! target.

use std::time::{Duration, Instant};

use redline_testkit::RedisServer;
use serde_json::json;

use crate::ceiling::ReadCeiling;
use crate::memory::Peaks;
use crate::options::Options;
use crate::procs::Load;
use crate::redisx;
use crate::report::{median_by, Figure, Report};
use crate::stack::{self, Sink};
use crate::workload;

/// The group every consumer of the harness joins.
pub(crate) const CONSUMER_GROUP: &str = "bench";

/// One timed drain.
#[derive(Debug, Clone, Default)]
struct Drain {
    rate: f64,
    other_cores: f64,
    redis_us: f64,
    consumer_us: f64,
    command: String,
    /// The read ceiling's run right before this drain; 0 for the loop baseline.
    ceiling: f64,
}

impl Drain {
    /// The drain against its own ceiling run.
    fn ratio(&self) -> f64 {
        self.rate / self.ceiling.max(1e-9)
    }
}

/// Measures the baseline and both drains and adds them.
pub(crate) fn run(options: &Options, redis: &RedisServer, report: &mut Report, peaks: &mut Peaks) {
    let mut conn = redis.sync_conn();
    let lines = workload::canonical(0, 10_000);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let file = dir.path().join("drain.lp");
    let spare = stack::spare_threads();
    let cases = [
        Case::new("discard", Sink::Discard, 3, Some(spare), Some(0.8)),
        Case::new("discard_all_threads", Sink::Discard, 2, None, None),
        // With its default threads: the backlog section compares its peak RSS with this.
        Case::new("discard_one_worker", Sink::Discard, 1, None, None),
        Case::new("file", Sink::File(&file), 3, Some(spare), Some(0.6)),
    ];

    let mut ceiling = ReadCeiling::new(redis, options.batch_size, options.drain_entries);
    let mut results: Vec<Vec<Drain>> = vec![Vec::new(); cases.len() + 1];
    for round in 0..options.rounds.max(1) {
        results[0].push(baseline(options, &mut conn, &lines));
        for (i, case) in cases.iter().enumerate() {
            let _ = std::fs::remove_file(&file);
            let phase = format!("drain-{}", case.name);
            let drain = consumer(
                options,
                redis,
                &mut conn,
                &lines,
                (case, &mut ceiling),
                (round == 0).then_some((&phase, &mut *peaks)),
            );
            results[i + 1].push(drain);
        }
    }

    let best = |runs: &[Drain]| {
        runs.iter()
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
            .cloned()
            .expect("at least one round")
    };
    let rounds = |runs: &[Drain]| {
        runs.iter()
            .map(|d| {
                let mut round = json!({ "metrics_per_s": d.rate.round(), "other_cores": (d.other_cores * 100.0).round() / 100.0 });
                if d.ceiling > 0.0 {
                    round["ceiling_per_s"] = d.ceiling.round().into();
                    round["ratio"] = ((d.ratio() * 1000.0).round() / 1000.0).into();
                }
                round
            })
            .collect::<Vec<_>>()
    };
    let ceiling = report.add(ceiling.figure());
    let b = best(&results[0]);
    let baseline = report.add(
        Figure::new(
            "drain.baseline_per_s",
            "drain baseline: XREADGROUP + XACK loop (redis-rs)",
            b.rate,
            "metrics/s",
        )
        .command(b.command.clone())
        .detail("redis_cpu_us_per_metric", b.redis_us)
        .detail("other_cores", b.other_cores)
        .detail("rounds", rounds(&results[0])),
    );
    for (i, case) in cases.iter().enumerate() {
        let d = median_by(&results[i + 1], Drain::ratio);
        let mut who = match case.workers {
            1 => "one worker".to_string(),
            n => format!("--workers {n}"),
        };
        who.push_str(&match case.threads {
            Some(n) => format!(" --threads {n}"),
            None => ", a thread per CPU".to_string(),
        });
        let into = match case.sink {
            Sink::Discard => "discarding sink (>/dev/null)",
            _ => "file sink (fdatasync per batch)",
        };
        let label = format!("drain: consumer, {who} → {into}");
        let mut figure = Figure::new(
            &format!("drain.{}_per_s", case.name),
            &label,
            d.rate,
            "metrics/s",
        )
        .ratio_of(d.ratio(), &ceiling);
        // The discarding sink is the relay alone: it must come close to what Redis hands
        // out; the file sink also waits for the disk.
        if let Some(want) = case.target {
            let met = figure.ratio.as_ref().is_some_and(|(r, _)| *r >= want);
            figure = figure.target(format!("≥ {want} × read ceiling"), met);
        }
        report.add(
            figure
                .detail("workers", case.workers)
                .detail("threads", case.threads)
                .detail(
                    "ratio_to_redis_rs_loop",
                    (d.rate / baseline.value.max(1.0) * 100.0).round() / 100.0,
                )
                .command(d.command.clone())
                .detail("paired_ceiling_per_s", d.ceiling.round())
                .detail("consumer_cpu_us_per_metric", d.consumer_us)
                .detail("redis_cpu_us_per_metric", d.redis_us)
                .detail("other_cores", d.other_cores)
                .detail("rounds", rounds(&results[i + 1])),
        );
    }
}

/// The XREADGROUP + XACK loop over `drain_entries` pre-filled entries.
fn baseline(options: &Options, conn: &mut redis::Connection, lines: &[String]) -> Drain {
    let key = "bench:drain:baseline";
    let entries = options.drain_entries;
    redisx::prefill(conn, key, entries, lines);
    redisx::create_group(conn, key, "baseline");
    let redis_cpu = redisx::cpu_seconds(conn);
    let load = Load::sample();
    let started = Instant::now();
    let relayed = redisx::read_ack_loop(conn, key, "baseline", options.batch_size);
    let seconds = started.elapsed().as_secs_f64();
    let other_cores = load.other_cores();
    let redis_cpu = redisx::cpu_seconds(conn) - redis_cpu;
    assert_eq!(relayed, entries, "the baseline relayed every entry once");
    delete(conn, key);
    Drain {
        rate: entries as f64 / seconds,
        other_cores,
        redis_us: redis_cpu * 1e6 / entries as f64,
        consumer_us: 0.0,
        ceiling: 0.0,
        command: format!(
            "redline-bench: XREADGROUP COUNT {} then [XACK ids…, XREADGROUP] pipelined per batch, one sync redis-rs connection, {entries} pre-filled entries",
            options.batch_size
        ),
    }
}

/// One consumer set-up to time.
struct Case<'a> {
    name: &'static str,
    sink: Sink<'a>,
    workers: usize,
    /// `--threads`; `None`: the default, one per CPU.
    threads: Option<usize>,
    /// The target ratio to the read ceiling, if any.
    target: Option<f64>,
}

impl<'a> Case<'a> {
    fn new(
        name: &'static str,
        sink: Sink<'a>,
        workers: usize,
        threads: Option<usize>,
        target: Option<f64>,
    ) -> Self {
        Self {
            name,
            sink,
            workers,
            threads,
            target,
        }
    }
}

/// A consumer set up as `case` draining `drain_entries` pre-filled entries; timed from its
/// spawn to XINFO GROUPS showing nothing pending and nothing left, right after a run of
/// `ceiling`.
fn consumer(
    options: &Options,
    redis: &RedisServer,
    conn: &mut redis::Connection,
    lines: &[String],
    (case, ceiling): (&Case<'_>, &mut ReadCeiling),
    peaks: Option<(&str, &mut Peaks)>,
) -> Drain {
    let entries = options.drain_entries;
    let key = "bench:drain:consumer";
    redisx::prefill(conn, key, entries, lines);
    let ceiling = ceiling.run();
    let redis_cpu = redisx::cpu_seconds(conn);
    let load = Load::sample();
    let started = Instant::now();
    let threads = stack::threads_args(case.threads);
    let mut consumer = stack::consumer_with(
        options,
        &redis.url(),
        key,
        CONSUMER_GROUP,
        &case.sink,
        case.workers,
        &threads,
    );
    redisx::wait_progress(
        conn,
        key,
        CONSUMER_GROUP,
        Duration::from_millis(5),
        Duration::from_secs(60 + entries / 10_000),
        || consumer.assert_running(),
        |p| p.done() && p.read >= entries,
    );
    let seconds = started.elapsed().as_secs_f64();
    let other_cores = load.other_cores();
    let redis_cpu = redisx::cpu_seconds(conn) - redis_cpu;
    let consumer_cpu = consumer.cpu_seconds();
    if let Some((phase, peaks)) = peaks {
        peaks.consumer(phase, &consumer);
    }
    let command = format!(
        "{}  ← {entries} entries pre-filled; timed from spawn to XINFO GROUPS pending 0, lag 0",
        consumer.command()
    );
    consumer.stop();
    delete(conn, key);
    if let Sink::File(path) = case.sink {
        let written = std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        assert_eq!(
            written as u64, entries,
            "the file sink wrote every entry once"
        );
    }
    Drain {
        rate: entries as f64 / seconds,
        other_cores,
        redis_us: redis_cpu * 1e6 / entries as f64,
        consumer_us: consumer_cpu * 1e6 / entries as f64,
        command,
        ceiling,
    }
}

/// DEL, not UNLINK: freeing in the background would compete with the next measurement.
fn delete(conn: &mut redis::Connection, key: &str) {
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query(conn)
        .unwrap_or_else(|e| panic!("DEL {key}: {e}"));
}
