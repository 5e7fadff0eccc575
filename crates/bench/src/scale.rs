//! Scale: one backlog drained by 1, 2 and 4 consumer processes, from one stream and from 4
//! partitions (`--partitions 4`), into the discarding sink, on one Redis. Each figure is
//! compared with one consumer on one stream, measured in the same run.
//!
//! What it shows on one machine: consumer processes add throughput while a core is free for
//! them, and Redis, single-threaded, is the ceiling they share; partitions on one Redis add
//! no Redis capacity (they are what Redis Cluster spreads over masters), only a read per
//! partition. The backlog is split evenly over the partitions as written (not by series:
//! the consumer does not care where an entry is).

use std::time::{Duration, Instant};

use redline_core::keys::StreamKeys;
use redline_testkit::RedisServer;

use crate::options::Options;
use crate::procs::{Proc, Stdout};
use crate::redisx;
use crate::report::{Figure, Report};
use crate::workload;

/// The group the scale consumers join.
const GROUP: &str = "bench-scale";

/// Partition counts and consumer process counts measured.
const PARTITIONS: [u32; 2] = [1, 4];
const CONSUMERS: [usize; 3] = [1, 2, 4];

/// Measures every (partitions, consumers) pair and adds the figures.
pub(crate) fn run(options: &Options, redis: &RedisServer, report: &mut Report) {
    let mut conn = redis.sync_conn();
    let lines = workload::canonical(0, 10_000);
    let entries = options.drain_entries;
    let mut baseline: Option<Figure> = None;
    for partitions in PARTITIONS {
        for consumers in CONSUMERS {
            let stream = format!("bench:scale:p{partitions}c{consumers}");
            let keys = StreamKeys::new(&stream, partitions);
            let shares: Vec<u64> = (0..keys.count() as u64)
                .map(|i| {
                    entries / keys.count() as u64 + u64::from(i < entries % keys.count() as u64)
                })
                .collect();
            for (key, share) in keys.partitions().iter().zip(&shares) {
                redisx::prefill(&mut conn, key, *share, &lines);
                redisx::create_group(&mut conn, key, GROUP);
            }
            let redis_cpu = redisx::cpu_seconds(&mut conn);
            let started = Instant::now();
            let mut procs: Vec<Proc> = (0..consumers)
                .map(|i| consumer(options, &redis.url(), &stream, partitions, i))
                .collect();
            for (key, share) in keys.partitions().iter().zip(&shares) {
                redisx::wait_progress(
                    &mut conn,
                    key,
                    GROUP,
                    Duration::from_millis(5),
                    Duration::from_secs(60 + entries / 10_000),
                    || procs.iter_mut().for_each(Proc::assert_running),
                    |p| p.done() && p.read >= *share,
                );
            }
            let seconds = started.elapsed().as_secs_f64();
            let redis_cpu = redisx::cpu_seconds(&mut conn) - redis_cpu;
            let consumer_cpu: f64 = procs.iter().map(Proc::cpu_seconds).sum();
            let command = format!(
                "{}  (× {consumers}, --consumer bench-0…)  ← {entries} entries pre-filled over {partitions} partition(s); timed from spawn to every partition's group pending 0, lag 0",
                procs[0].command()
            );
            procs.into_iter().for_each(Proc::stop);
            for key in keys.partitions() {
                redisx::unlink(&mut conn, key);
            }
            let mut figure = Figure::new(
                &format!("scale.p{partitions}_c{consumers}_per_s"),
                &format!(
                    "scale: {consumers} consumer process(es), {partitions} partition(s) → discarding sink"
                ),
                entries as f64 / seconds,
                "metrics/s",
            )
            .command(command)
            .detail("consumer_cores", consumer_cpu / seconds)
            .detail("redis_cores", redis_cpu / seconds)
            .detail("redis_cpu_us_per_metric", redis_cpu * 1e6 / entries as f64);
            if let Some(baseline) = &baseline {
                figure = figure.ratio_to(baseline);
            }
            let figure = report.add(figure);
            baseline.get_or_insert(figure);
        }
    }
}

/// `redline consumer` number `index` of the scale group, discarding what it reads.
fn consumer(
    options: &Options,
    redis_url: &str,
    stream: &str,
    partitions: u32,
    index: usize,
) -> Proc {
    let args: Vec<String> = [
        "consumer",
        "--redis-url",
        redis_url,
        "--stream",
        stream,
        "--partitions",
        &partitions.to_string(),
        "--group",
        GROUP,
        "--consumer",
        &format!("bench-{index}"),
        "--batch-size",
        &options.batch_size.to_string(),
        "--flush-interval",
        &format!("{}ms", options.flush_interval_ms),
        "--sink",
        "stdout",
        "--log-level",
        "warn",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    Proc::spawn("consumer", &options.redline, &args, Stdout::Discard)
}
