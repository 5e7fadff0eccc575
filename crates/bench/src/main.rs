//! `redline-bench`: redline's performance figures next to the ceilings of Redis (and
//! InfluxDB) measured in the same run on the same machine, printed as a table and written
//! as JSON with the command behind each figure. Run through `scripts/bench`, which builds
//! `--release` first.
//!
//! Sections (`--only`): `line` (parse → normalise → encode per line, in-process), `ceiling`
//! (redis-benchmark XADD), `ingest` (HTTP → producer → Redis; Redis bytes per metric),
//! `drain` (consumer vs an XREADGROUP + XACK loop), `e2e` (through redline into InfluxDB vs
//! straight), `backlog` (consumer RSS with a large backlog), `latency` (204 → ack at half
//! the maximum rate), `scale` (a backlog drained by 1, 2, 4 consumer processes from 1 and 4
//! partitions). Every server is started by `redline-testkit` on free loopback ports
//! and every process is killed when the run ends. Nothing here is a test: figures vary from
//! run to run, so only ratios within one run mean much.

mod burst;
mod ceiling;
mod drain;
mod e2e;
mod http;
mod ingest;
mod latency;
mod line;
mod memory;
mod options;
mod procs;
mod redisx;
mod report;
mod scale;
mod stack;
mod workload;

use std::process::ExitCode;
use std::time::Instant;

use redline_testkit::RedisServer;

use crate::memory::Peaks;
use crate::options::Options;
use crate::report::Report;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if !options.redline.is_file() {
        eprintln!(
            "redline-bench: {} not found; build it with `cargo build --release` or pass --redline",
            options.redline.display()
        );
        return ExitCode::from(2);
    }
    // One thread: the load generator and the pollers are I/O, and every core it leaves
    // alone is one more for Redis and redline.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime starts");
    let report = runtime.block_on(run(&options));
    println!("\n{}", report.table());
    report.write_json(&options.out, options.to_json());
    println!("JSON: {}", options.out.display());
    ExitCode::SUCCESS
}

async fn run(options: &Options) -> Report {
    let mut report = Report::default();
    let mut peaks = Peaks::default();
    let started = Instant::now();
    let section = |name: &str| {
        let runs = options.runs(name);
        if runs {
            eprintln!("==> {name} ({:.0} s in)", started.elapsed().as_secs_f64());
        }
        runs
    };
    // A fresh Redis per section: no section inherits another's memory or fragmentation.
    let redis = || RedisServer::start(&options.redis_args());

    if section("line") {
        line::run(options, &mut report);
    }
    if options.runs("ceiling") || options.runs("ingest") {
        // The ceiling is tuned first; with ingest, it is measured again before each round.
        let server = redis();
        let ceiling = section("ceiling").then(|| ceiling::tune(options.ceiling_requests, &server));
        if section("ingest") {
            ingest::run(options, &server, ceiling, &mut report, &mut peaks).await;
        } else if let Some(ceiling) = ceiling {
            report.add(ceiling.figure());
        }
    }
    if section("drain") {
        drain::run(options, &redis(), &mut report, &mut peaks);
    }
    if section("e2e") {
        e2e::run(options, &redis(), &mut report, &mut peaks).await;
    }
    if section("backlog") {
        memory::backlog(options, &redis(), &mut report, &mut peaks);
    }
    if section("latency") {
        latency::run(options, &redis(), &mut report, &mut peaks).await;
    }
    if section("scale") {
        scale::run(options, &redis(), &mut report);
    }
    if section("burst") {
        burst::run(options, &redis(), &mut report).await;
    }
    if section("abuse") {
        burst::abuse(options, &redis(), &mut report).await;
    }
    peaks.report(&mut report);
    eprintln!("==> done in {:.0} s", started.elapsed().as_secs_f64());
    report
}
