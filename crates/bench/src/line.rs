//! Micro-benchmark: what the producer does per line, in-process and single-threaded:
//! parse → validate → normalise (`redline_producer::ingest::parse`, the code path of
//! `/write`), then encode each metric as the XADD the writer pipelines (RESP bytes), both ways
//! the writer does it: through redis-rs (Sentinel, Cluster, TLS) and packed by its own
//! connection's packer (a standalone Redis); the one-core rate uses the latter.

use std::hint::black_box;
use std::time::{Duration, Instant};

use redline_core::entry;
use redline_core::line::{Metric, Precision};

use crate::options::Options;
use crate::procs;
use crate::report::{Figure, Report};
use crate::workload;

/// The stream key the commands name.
const KEY: &str = "redline:metrics";

/// Runs the micro-benchmark and adds its figures.
pub(crate) fn run(options: &Options, report: &mut Report) {
    let lines = options.body_lines.max(1);
    let body = workload::body(0, lines).bytes;
    let budget = Duration::from_secs_f64(options.line_seconds);

    let parse_ns = per_line(budget, lines, || {
        let parsed = redline_producer::ingest::parse(black_box(&body), Precision::Nanoseconds, 0);
        black_box(parsed.len());
    });
    let parsed = redline_producer::ingest::parse(&body, Precision::Nanoseconds, 0);
    let metrics: Vec<Metric<'_>> = parsed.metrics().collect();
    let encode_ns = per_line(budget, lines, || {
        black_box(encode(black_box(&metrics)).len());
    });
    let mut packed = Vec::new();
    let raw_ns = per_line(budget, lines, || {
        packed.clear();
        let lines = black_box(&metrics).iter().map(Metric::line);
        redline_producer::writer::bench_pack_xadds(&mut packed, KEY, workload::DB, lines);
        black_box(packed.len());
    });
    let total = parse_ns + raw_ns;
    let command = format!(
        "redline-bench --only line --body-lines {lines} --line-seconds {} (in-process, one thread, CPU time)",
        options.line_seconds
    );
    report.add(
        Figure::new(
            "line.parse_ns",
            "line: parse + validate + normalise",
            parse_ns,
            "ns/line",
        )
        .command(command.clone()),
    );
    report.add(
        Figure::new(
            "line.encode_ns",
            "line: encode XADD (redis-rs: Sentinel, Cluster, TLS)",
            encode_ns,
            "ns/line",
        )
        .command(command.clone()),
    );
    report.add(
        Figure::new(
            "line.pack_ns",
            "line: pack XADD (own: standalone Redis)",
            raw_ns,
            "ns/line",
        )
        .command(command.clone()),
    );
    report.add(
        Figure::new(
            "line.lines_per_s",
            "line: parse → normalise → encode, one core",
            1e9 / total,
            "lines/s",
        )
        .command(command)
        .detail("ns_per_line", total)
        .detail("mean_line_bytes", body.len() as f64 / lines as f64),
    );
}

/// The RESP bytes of one XADD per metric, as `writer.rs` builds them (a command sized up
/// front per metric, `.ignore()`d, then the pipeline packed).
fn encode(metrics: &[Metric<'_>]) -> Vec<u8> {
    let mut pipe = redis::pipe();
    for metric in metrics {
        let (key, line) = (KEY, metric.line());
        let mut cmd =
            redis::Cmd::with_capacity(9, key.len() + line.len() + workload::DB.len() + 16);
        cmd.arg("XADD")
            .arg(key)
            .arg("*")
            .arg(entry::FIELD_LP)
            .arg(line)
            .arg(entry::FIELD_DB)
            .arg(workload::DB);
        pipe.add_command(cmd).ignore();
    }
    pipe.get_packed_pipeline()
}

/// Runs `f` (which handles `lines` lines) repeatedly for about `budget` after a warm-up and
/// returns CPU ns per line: this thread's CPU time, not wall time, so other processes on a
/// busy machine do not inflate it (the process is idle but for this thread meanwhile).
fn per_line(budget: Duration, lines: u64, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < budget / 5 {
        f();
    }
    let started = Instant::now();
    let cpu = procs::self_cpu_seconds();
    let mut rounds = 0_u64;
    while started.elapsed() < budget {
        f();
        rounds += 1;
    }
    (procs::self_cpu_seconds() - cpu) * 1e9 / (rounds * lines) as f64
}
