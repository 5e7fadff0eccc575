//! `redline-chaos`: a soak under seeded, overlapping faults, in the spirit of Jepsen's
//! nemesis, that ends in an exact check. Run through `scripts/chaos`, which builds
//! `--release` first.
//!
//! 1. Starts its own stack on loopback ([`stack`]): redis-server with `appendfsync always`,
//!    influxd, one producer, two or more consumers (the second with `--workers 2`).
//! 2. Warms up: one body per database, until InfluxDB has it (the field `v` is then an
//!    integer in every database, so poison points conflict with it rather than the reverse).
//! 3. For `--duration`: a Telegraf-like writer ([`writer`]) sends paced 5,000-line bodies
//!    and retries each until it gets a 204, while the nemesis ([`nemesis`]) applies the
//!    seeded schedule ([`schedule`]): kills, hangs, restarts, a full Redis, poison points.
//! 4. Heals everything, lets the writer finish its bodies in flight, waits for the drain
//!    ([`drain`]), and checks InfluxDB and the dead-letter stream against the ledger
//!    ([`check`]).
//! 5. Prints the schedule, the fault log, the counts, the differences by name and one
//!    verdict line ([`report`]); exit status 0 for PASS, 1 for FAIL, 2 for a usage error.
//!
//! Logs of every redline process, the fault log and the verdict stay in `--out`.

mod check;
mod drain;
mod nemesis;
mod options;
mod report;
mod schedule;
mod stack;
mod workload;
mod writer;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::options::Options;
use crate::stack::Stack;
use crate::workload::{Workload, DATABASES};
use crate::writer::Ledger;

/// How often the progress line is printed: every 5 s, or 20 times a run past 100 s (each
/// line counts the points in InfluxDB, which costs more as they grow).
fn progress_every(duration: Duration) -> Duration {
    (duration / 20).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// How long the writer may take, after the heal, to get its last 204s.
const WRITER_GRACE: Duration = Duration::from_secs(120);

/// Marks `--out` as ours, so a later run may empty it.
const MARKER: &str = ".redline-chaos";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(message) if args.iter().any(|a| a == "--help") => {
            println!("{message}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if !options.redline.is_file() {
        eprintln!(
            "redline-chaos: {} not found; build it with `cargo build --release` or pass --redline",
            options.redline.display()
        );
        return ExitCode::from(2);
    }
    if let Err(error) = prepare_out(&options.out) {
        eprintln!("redline-chaos: --out {}: {error}", options.out.display());
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime starts");
    if run(&options, &runtime) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Empties `out` if an earlier run made it, else creates it.
fn prepare_out(out: &Path) -> std::io::Result<()> {
    if out.join(MARKER).is_file() {
        std::fs::remove_dir_all(out)?;
    } else if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        return Err(std::io::Error::other(
            "exists and was not made by redline-chaos; pick another",
        ));
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(MARKER), "")
}

/// The whole run; whether the verdict is PASS.
fn run(options: &Options, runtime: &tokio::runtime::Runtime) -> bool {
    let workload = Workload {
        body_lines: options.body_lines,
    };
    let faults = schedule::draw(
        options.seed,
        options.duration,
        &options.faults,
        options.consumers,
        DATABASES.len(),
    );
    let consumer_names: Vec<String> = (0..options.consumers).map(stack::consumer_name).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "redline chaos: seed {}, {} of faults, {} metrics/s in {}-line bodies\n\
         schedule ({} faults of {} kinds: {}):\n{}",
        options.seed,
        humantime::format_duration(options.duration),
        options.rate,
        options.body_lines,
        faults.len(),
        report::kinds(&faults),
        report::by_kind(&faults),
        report::schedule(&faults, &consumer_names)
    );
    print!("{out}");

    eprintln!("==> starting redis-server (appendfsync always), influxd, producer, consumers");
    let stack = Stack::start(options);
    for command in stack.commands() {
        eprintln!("    {command}");
    }
    let ledger = Arc::new(Ledger::default());
    let addr = stack.producer_addr;

    eprintln!("==> warm-up: one body per database, until InfluxDB has it");
    runtime.block_on(warm_up(&stack, workload, &ledger));

    eprintln!(
        "==> {} of faults under load (logs in {})",
        humantime::format_duration(options.duration),
        options.out.display()
    );
    let t0 = Instant::now();
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer = runtime.spawn(writer::run(
        addr,
        workload,
        DATABASES.len() as u64,
        options.rate,
        options.connections,
        ledger.clone(),
        stop_writer.clone(),
    ));
    let shared = Arc::new(nemesis::Shared::default());
    let redis_url = stack.redis.url();
    let influx_url = stack.influx.url();
    let nemesis = {
        let (shared, ledger, faults) = (shared.clone(), ledger.clone(), faults.clone());
        let handle = runtime.handle().clone();
        std::thread::spawn(move || nemesis::run(stack, faults, t0, shared, ledger, handle))
    };
    let http = writer::client();
    let progress = |elapsed: Duration| {
        let in_influx = runtime.block_on(report::points_in_influx(&http, &influx_url));
        eprintln!(
            "{}",
            report::progress(
                elapsed,
                shared.started.load(Ordering::Relaxed),
                faults.len(),
                ledger.acked_lines.load(Ordering::Relaxed),
                in_influx,
                drain::group_state(&redis_url).as_ref(),
                &ledger.failures_line(),
            )
        );
    };
    let every = progress_every(options.duration);
    let mut next_progress = every;
    while t0.elapsed() < options.duration {
        std::thread::sleep(Duration::from_millis(100));
        if t0.elapsed() >= next_progress {
            progress(t0.elapsed());
            next_progress += every;
        }
    }

    eprintln!("==> heal: ending every fault; the writer finishes its bodies in flight");
    stop_writer.store(true, Ordering::Relaxed);
    shared.heal.store(true, Ordering::Relaxed);
    let stack = match nemesis.join() {
        Ok(stack) => stack,
        Err(_) => {
            println!("FAIL: the nemesis panicked (see above); no verdict on the data");
            return false;
        }
    };
    let healed_at = t0.elapsed();
    let writer_done = runtime.block_on(async {
        let tasks = async {
            let _ = writer.await;
            let poison: Vec<_> = std::mem::take(
                &mut *shared
                    .poison_tasks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            for task in poison {
                let _ = task.await;
            }
        };
        tokio::time::timeout(WRITER_GRACE, tasks).await.is_ok()
    });
    if !writer_done {
        ledger.give_up.store(true, Ordering::Relaxed);
    }
    progress(t0.elapsed());

    eprintln!("==> drain: waiting for the group to read and acknowledge everything");
    let drain_started = Instant::now();
    let (state, drained) = drain::wait(&stack.redis.url(), options.drain_timeout);
    let drain_took = drain_started.elapsed();
    // Whatever a process did during the drain counts too.
    let mut anomalies = shared
        .anomalies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut stack = stack;
    anomalies.extend(stack.exited_by_themselves());

    eprintln!("==> check: InfluxDB and the dead-letter stream against the ledger");
    let acked = ledger.acked_bodies();
    let unconfirmed = ledger.unconfirmed_bodies();
    let (poison, poison_unconfirmed) = ledger.poison();
    let findings = runtime.block_on(check::run(
        &stack.influx,
        &stack.redis.url(),
        workload,
        &acked,
        &unconfirmed,
        &poison,
        &poison_unconfirmed,
    ));

    // The report.
    let mut out = String::new();
    let log = shared.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let _ = writeln!(out, "\nfault log:");
    for line in &log {
        let _ = writeln!(out, "  {line}");
    }
    let started = shared.started.load(Ordering::Relaxed);
    let pending = state.as_ref().map(|s| s.pending);
    let _ = writeln!(
        out,
        "\nfaults:        {started} of {} started in {:.0}s ({} kinds): {}",
        faults.len(),
        healed_at.as_secs_f64(),
        report::kinds(&faults[..started.min(faults.len())]),
        report::by_kind(&faults[..started.min(faults.len())])
    );
    let _ = writeln!(
        out,
        "writer:        {} lines answered 204 in {} bodies over {} databases × 16 series; \
         {} bodies never answered 204; failed attempts, retried: {}",
        report::thousands(ledger.acked_lines.load(Ordering::Relaxed)),
        acked.len(),
        DATABASES.len(),
        unconfirmed.len(),
        ledger.failures_line()
    );
    let _ = writeln!(
        out,
        "influxdb:      {} of {} points, {} missing, {} wrong, {} extra{}",
        report::thousands(findings.found),
        report::thousands(findings.expected),
        report::thousands(findings.missing.len() as u64),
        findings.wrong.len(),
        findings.extra.len(),
        if findings.unconfirmed_found > 0 {
            format!(
                "; {} points of bodies without a 204 (allowed)",
                findings.unconfirmed_found
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "               {} series keys without points (rejected poison, indexed by InfluxDB){}",
        findings.empty_series.len(),
        if findings.empty_series.is_empty() {
            String::new()
        } else {
            format!(": {}", findings.empty_series.join(", "))
        }
    );
    let _ = writeln!(
        out,
        "dead letters:  {} in {}; {} poison points answered 204 ({} without a 204)",
        findings.dead_letters,
        drain::DLQ,
        findings.poison_expected,
        poison_unconfirmed.len()
    );
    let _ = writeln!(
        out,
        "pending:       {} after a drain of {:.1}s{}",
        pending.map_or("unknown".to_string(), |p| p.to_string()),
        drain_took.as_secs_f64(),
        if drained { "" } else { " (NOT drained)" }
    );
    let _ = writeln!(
        out,
        "processes:     {}",
        if anomalies.is_empty() {
            "none exited by itself".to_string()
        } else {
            format!(
                "{} exited by themselves:\n  {}",
                anomalies.len(),
                anomalies.join("\n  ")
            )
        }
    );
    let _ = write!(out, "{}", report::differences(&findings, workload));

    let mut problems = Vec::new();
    if !findings.missing.is_empty() || !findings.wrong.is_empty() || !findings.extra.is_empty() {
        problems.push(format!(
            "{} missing, {} wrong, {} extra points",
            findings.missing.len(),
            findings.wrong.len(),
            findings.extra.len()
        ));
    }
    if !findings.poison_missing.is_empty() || !findings.unexpected_letters.is_empty() {
        problems.push(format!(
            "dead letters: {} poison missing, {} unexpected",
            findings.poison_missing.len(),
            findings.unexpected_letters.len()
        ));
    }
    if !drained || pending != Some(0) {
        problems.push(format!(
            "not drained after {:.0}s ({} pending)",
            drain_took.as_secs_f64(),
            pending.map_or("?".to_string(), |p| p.to_string())
        ));
    }
    if !writer_done || !unconfirmed.is_empty() {
        problems.push(format!(
            "{} bodies never answered 204 after the heal",
            unconfirmed.len()
        ));
    }
    if !anomalies.is_empty() {
        problems.push(format!(
            "{} processes exited by themselves",
            anomalies.len()
        ));
    }
    let pass = problems.is_empty() && findings.exact();
    let summary = format!(
        "seed {}, {} faults of {} kinds in {:.0}s, {} metrics answered 204",
        options.seed,
        started,
        report::kinds(&faults[..started.min(faults.len())]),
        healed_at.as_secs_f64(),
        report::thousands(ledger.acked_lines.load(Ordering::Relaxed)),
    );
    if pass {
        let _ = writeln!(
            out,
            "\nPASS: every metric answered 204 is in InfluxDB with its value, nothing else is, \
             nothing is pending, and the dead-letter stream holds exactly the {} poison points ({summary})",
            findings.poison_expected
        );
    } else {
        let _ = writeln!(
            out,
            "\nFAIL: {} ({summary}); reproduce: {}",
            problems.join("; "),
            options.reproduce()
        );
    }
    print!("{out}");
    let _ = std::fs::write(options.out.join("report.txt"), out);
    let _ = std::fs::write(options.out.join("redis.log"), stack.redis.log_tail());
    let _ = std::fs::write(options.out.join("influxd.log"), stack.influx.log_tail());
    eprintln!("report and logs: {}", options.out.display());
    pass
}

/// Sends body 0, 1, 2 (one per database) and waits until InfluxDB has each.
///
/// # Panics
/// If the stack does not deliver them within a minute: nothing else could be trusted.
async fn warm_up(stack: &Stack, workload: Workload, ledger: &Ledger) {
    let client = writer::client();
    for k in 0..DATABASES.len() as u64 {
        writer::send_body(&client, stack.producer_addr, workload, k, ledger).await;
    }
    for db in DATABASES {
        redline_testkit::wait_until(
            &format!("the warm-up body in InfluxDB database {db}"),
            Duration::from_secs(60),
            || async { stack.influx.count_points(db, "cpu").await > 0 },
        )
        .await;
    }
}
