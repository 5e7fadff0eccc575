//! Memory: the peak RSS (`VmHWM`) of every producer and consumer the run started, and a
//! consumer draining a large backlog, whose peak must match a small backlog's: the backlog
//! lives in Redis, not in the consumer.

use std::time::{Duration, Instant};

use redline_testkit::RedisServer;
use serde_json::{Map, Value};

use crate::drain::CONSUMER_GROUP;
use crate::options::Options;
use crate::procs::Proc;
use crate::redisx;
use crate::report::{Figure, Report};
use crate::stack::{self, Sink};
use crate::workload;

/// RSS targets of the issue: producer and consumer under 64 MiB at full rate.
const RSS_LIMIT: f64 = 64.0 * 1024.0 * 1024.0;

const MIB: f64 = 1024.0 * 1024.0;

/// The group the 10-worker consumer reads the backlog in.
const WIDE_GROUP: &str = "bench-wide";

/// Peak RSS per role and phase.
#[derive(Debug, Default)]
pub(crate) struct Peaks {
    producer: Vec<(String, u64)>,
    consumer: Vec<(String, u64)>,
}

impl Peaks {
    /// Records a producer's peak so far.
    pub(crate) fn producer(&mut self, phase: &str, proc: &Proc) {
        self.producer.push((phase.to_string(), proc.peak_rss()));
    }

    /// Records a consumer's peak so far.
    pub(crate) fn consumer(&mut self, phase: &str, proc: &Proc) {
        self.consumer.push((phase.to_string(), proc.peak_rss()));
    }

    /// The consumer's peak in `phase`.
    fn consumer_in(&self, phase: &str) -> Option<u64> {
        self.consumer
            .iter()
            .find(|(p, _)| p == phase)
            .map(|(_, b)| *b)
    }

    /// Adds the producer's and consumer's highest peaks (with every phase in the detail).
    pub(crate) fn report(&self, report: &mut Report) {
        for (role, peaks) in [("producer", &self.producer), ("consumer", &self.consumer)] {
            let Some((phase, max)) = peaks.iter().max_by_key(|(_, b)| *b) else {
                continue;
            };
            let phases: Map<String, Value> = peaks
                .iter()
                .map(|(p, b)| (p.clone(), Value::from(round_mib(*b))))
                .collect();
            report.add(
                Figure::new(
                    &format!("memory.{role}_peak_rss_mib"),
                    &format!("memory: {role} peak RSS (highest phase: {phase})"),
                    *max as f64 / MIB,
                    "MiB",
                )
                .target("< 64 MiB", (*max as f64) < RSS_LIMIT)
                .command(format!(
                    "VmHWM of /proc/<pid>/status of each {role} the run started, read before it stops"
                ))
                .detail("per_phase_mib", phases),
            );
        }
    }
}

fn round_mib(bytes: u64) -> f64 {
    (bytes as f64 / MIB * 10.0).round() / 10.0
}

/// A consumer draining `backlog_entries` into the discarding sink; its peak RSS against the
/// drain section's (smaller backlog).
pub(crate) fn backlog(
    options: &Options,
    redis: &RedisServer,
    report: &mut Report,
    peaks: &mut Peaks,
) {
    const STREAM: &str = "bench:backlog";
    let mut conn = redis.sync_conn();
    let lines = workload::canonical(0, 10_000);
    let before = redisx::used_memory(&mut conn);
    redisx::prefill(&mut conn, STREAM, options.backlog_entries, &lines);
    let redis_per_metric =
        (redisx::used_memory(&mut conn) - before) / options.backlog_entries as f64;

    // A second group, read afterwards by one process with 10 workers: created now, so that
    // the first group's trims leave it every entry.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(WIDE_GROUP)
        .arg("0")
        .query(&mut conn)
        .expect("XGROUP CREATE");
    let started = Instant::now();
    let mut consumer = stack::consumer(
        options,
        &redis.url(),
        STREAM,
        CONSUMER_GROUP,
        &Sink::Discard,
        1,
    );
    let timeout = Duration::from_secs(120 + options.backlog_entries / 20_000);
    redisx::wait_progress(
        &mut conn,
        STREAM,
        CONSUMER_GROUP,
        Duration::from_millis(20),
        timeout,
        || consumer.assert_running(),
        |p| p.done() && p.read >= options.backlog_entries,
    );
    let seconds = started.elapsed().as_secs_f64();
    let peak = consumer.peak_rss();
    peaks.consumer("backlog", &consumer);
    let command = format!(
        "{}  ← after XADDing {} entries",
        consumer.command(),
        options.backlog_entries
    );
    consumer.stop();

    // The same backlog through 10 workers: 10 batches in memory at once, still bounded.
    let mut wide = stack::consumer(
        options,
        &redis.url(),
        STREAM,
        WIDE_GROUP,
        &Sink::Discard,
        10,
    );
    redisx::wait_progress(
        &mut conn,
        STREAM,
        WIDE_GROUP,
        Duration::from_millis(20),
        timeout,
        || wide.assert_running(),
        |p| p.done() && p.read >= options.backlog_entries,
    );
    let wide_peak = wide.peak_rss();
    peaks.consumer("backlog-10-workers", &wide);
    let wide_command = wide.command().to_string();
    wide.stop();
    redisx::unlink(&mut conn, STREAM);
    // What 9 more batches of these lines hold in the consumer: each entry as read (the
    // reply's values, its id, its fields) and written, about 6 times its line today.
    let batches_mib = 9.0 * options.batch_size as f64 * 6.0 * lines[0].len() as f64 / MIB;
    report.add(
        Figure::new(
            "memory.consumer_10_workers_peak_rss_mib",
            "memory: consumer peak RSS, same backlog, --workers 10",
            wide_peak as f64 / MIB,
            "MiB",
        )
        .target(
            format!("< 64 MiB, ≤ one worker's + {batches_mib:.0} MiB (9 batches × 6 × line)"),
            (wide_peak as f64) < RSS_LIMIT && wide_peak as f64 <= peak as f64 + batches_mib * MIB,
        )
        .command(format!(
            "{wide_command}  ← a second group on the same backlog"
        ))
        .detail("one_worker_peak_mib", round_mib(peak)),
    );

    let mut figure = Figure::new(
        "memory.consumer_backlog_peak_rss_mib",
        &format!(
            "memory: consumer peak RSS, {} M-entry backlog",
            options.backlog_entries as f64 / 1e6
        ),
        peak as f64 / MIB,
        "MiB",
    )
    .command(command)
    .detail(
        "drain_metrics_per_s",
        options.backlog_entries as f64 / seconds,
    )
    .detail("redis_bytes_per_metric_prefilled", redis_per_metric);
    let small = peaks.consumer_in("drain-discard_one_worker");
    if let Some(small) = small.filter(|s| *s > 0) {
        let growth = peak as f64 / small as f64;
        figure = figure
            .detail("drain_section_peak_mib", round_mib(small))
            .detail("growth", growth)
            .target(
                "< 64 MiB, ≤ 1.2 × drain's peak",
                (peak as f64) < RSS_LIMIT && growth <= 1.2,
            );
    } else {
        figure = figure.target("< 64 MiB", (peak as f64) < RSS_LIMIT);
    }
    report.add(figure);
}
