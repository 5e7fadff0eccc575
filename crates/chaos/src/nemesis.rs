//! The nemesis: applies the schedule to the stack on a thread of its own, logs every step
//! with its time, and heals everything at the end.
//!
//! A fault has two steps, its start (kill, SIGSTOP, the low `maxmemory`,
//! `min-replicas-to-write` 1, the poison point) and its end (start again, SIGCONT, the usual
//! `maxmemory`, `min-replicas-to-write` 0); the steps of all faults run in the order of
//! their planned times, so faults overlap as planned. A step that takes time
//! (Redis loading its AOF) delays the next ones: the log shows the actual times next to
//! the planned ones. Between steps the nemesis watches for processes that exited by
//! themselves.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::schedule::{Fault, Kind, Target};
use crate::stack::{self, Stack, MAXMEMORY};
use crate::workload::{self, DATABASES};
use crate::writer::{self, Ledger};

/// How often the nemesis looks at the processes and at a pending restore of Redis's settings.
const TICK: Duration = Duration::from_millis(100);

/// What the nemesis shares with the main thread while it runs.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Faults started so far.
    pub(crate) started: AtomicUsize,
    /// Set by the main thread when the duration is over: heal and return.
    pub(crate) heal: AtomicBool,
    /// Every step taken, as logged.
    pub(crate) log: Mutex<Vec<String>>,
    /// Processes that exited by themselves, with their last log lines.
    pub(crate) anomalies: Mutex<Vec<String>>,
    /// The poison points in flight, awaited before the check.
    pub(crate) poison_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    fn note(&self, t0: Instant, text: String) {
        let line = format!("[{:>7.1}s] {text}", t0.elapsed().as_secs_f64());
        eprintln!("{line}");
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
}

/// Redis settings a fault's end could not restore (Redis hung or down then): retried between
/// steps until Redis answers.
#[derive(Debug, Default)]
struct Deferred {
    maxmemory: bool,
    min_replicas: bool,
}

impl Deferred {
    fn any(&self) -> bool {
        self.maxmemory || self.min_replicas
    }
}

/// One step of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    End,
}

/// Runs `faults` against `stack` from `t0` until every step ran or `shared.heal` is set,
/// then ends the faults still active and makes sure every process is up. Returns the stack.
pub(crate) fn run(
    mut stack: Stack,
    faults: Vec<Fault>,
    t0: Instant,
    shared: Arc<Shared>,
    ledger: Arc<Ledger>,
    runtime: tokio::runtime::Handle,
) -> Stack {
    let mut steps: Vec<(Duration, usize, Step)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        steps.push((f.at, i, Step::Start));
        if f.kind != Kind::Poison {
            steps.push((f.at + f.hold, i, Step::End));
        }
    }
    // Stable: a fault's start comes before its end even with a hold of 0.
    steps.sort_by_key(|(at, _, _)| *at);
    let mut active: Vec<usize> = Vec::new();
    let mut deferred = Deferred::default();
    let mut poisoned = 0u64;
    for (at, i, step) in steps {
        let fault = &faults[i];
        // Wait for the step's time, watching the processes meanwhile.
        loop {
            if shared.heal.load(Ordering::Relaxed) {
                break;
            }
            watch(&mut stack, &shared, t0, &mut deferred);
            let left = at.saturating_sub(t0.elapsed());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(TICK));
        }
        if shared.heal.load(Ordering::Relaxed) {
            break;
        }
        let late = t0.elapsed().saturating_sub(at);
        let planned = if late > Duration::from_millis(500) {
            format!(" (planned at {:.1}s)", at.as_secs_f64())
        } else {
            String::new()
        };
        let what = format!("#{} {}", fault.id, fault.kind);
        match step {
            Step::Start => {
                shared.started.fetch_add(1, Ordering::Relaxed);
                active.push(i);
                let detail = start(&mut stack, fault, &mut poisoned, &shared, &ledger, &runtime);
                shared.note(t0, format!("{what}: {detail}{planned}"));
                if fault.kind == Kind::Poison {
                    active.retain(|&a| a != i);
                }
            }
            Step::End => {
                active.retain(|&a| a != i);
                let detail = end(&mut stack, fault, &mut deferred);
                shared.note(t0, format!("{what} ends: {detail}{planned}"));
            }
        }
    }
    // Every step ran: keep watching the processes until the duration is over.
    while !shared.heal.load(Ordering::Relaxed) {
        watch(&mut stack, &shared, t0, &mut deferred);
        std::thread::sleep(TICK);
    }
    // Heal: end what is still active, then make sure of every process and of Redis's limit.
    for i in active {
        let fault = &faults[i];
        let detail = end(&mut stack, fault, &mut deferred);
        shared.note(t0, format!("#{} {} healed: {detail}", fault.id, fault.kind));
    }
    stack.heal_processes();
    let deadline = Instant::now() + Duration::from_secs(30);
    while deferred.any() && Instant::now() < deadline {
        watch(&mut stack, &shared, t0, &mut deferred);
        std::thread::sleep(TICK);
    }
    watch(&mut stack, &shared, t0, &mut deferred);
    shared.note(
        t0,
        "healed: every process up, maxmemory and min-replicas-to-write restored".to_string(),
    );
    stack
}

/// Starts `fault`; what it did, for the log.
fn start(
    stack: &mut Stack,
    fault: &Fault,
    poisoned: &mut u64,
    shared: &Shared,
    ledger: &Arc<Ledger>,
    runtime: &tokio::runtime::Handle,
) -> String {
    let target = fault.target;
    let hold = format!("{:.1}s", fault.hold.as_secs_f64());
    match fault.kind {
        Kind::KillConsumer | Kind::KillProducer | Kind::KillRedis | Kind::RestartInfluxdb => {
            let who = stack.describe(target);
            stack.kill(target);
            format!("SIGKILL {who}; down for {hold}")
        }
        Kind::StopRedis | Kind::StopInfluxdb | Kind::StopConsumer | Kind::StopProducer => {
            let who = stack.describe(target);
            stack.pause(target);
            format!("SIGSTOP {who} for {hold}")
        }
        Kind::RedisFull => match stack::set_maxmemory(&stack.redis.url(), None) {
            Ok(used) => format!("CONFIG SET maxmemory {used} (what Redis uses now) for {hold}"),
            Err(error) => format!("not applied, Redis did not answer ({error})"),
        },
        Kind::RedisRefuses => match stack::set_min_replicas(&stack.redis.url(), 1) {
            Ok(()) => format!(
                "CONFIG SET min-replicas-to-write 1 (no replica: every write refused) for {hold}"
            ),
            Err(error) => format!("not applied, Redis did not answer ({error})"),
        },
        Kind::Poison => {
            let Target::Database(db) = target else {
                return "no database".to_string();
            };
            let line = workload::poison_line(*poisoned);
            *poisoned += 1;
            let db = DATABASES[db].to_string();
            let detail = format!("POST /write?db={db} `{line}`");
            let task = runtime.spawn(writer::send_poison(
                stack.producer_addr,
                db,
                line,
                ledger.clone(),
            ));
            shared
                .poison_tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(task);
            detail
        }
    }
}

/// Ends `fault`; what it did, for the log.
fn end(stack: &mut Stack, fault: &Fault, deferred: &mut Deferred) -> String {
    let target = fault.target;
    match fault.kind {
        Kind::KillConsumer | Kind::KillProducer | Kind::KillRedis | Kind::RestartInfluxdb => {
            let took = stack.start_again(target);
            let who = stack.describe(target);
            match target {
                Target::Redis => format!("{who} started again, AOF loaded in {took:.1?}"),
                Target::Influxdb => format!("{who} started again, /ping in {took:.1?}"),
                _ => format!("{who} started again"),
            }
        }
        Kind::StopRedis | Kind::StopInfluxdb | Kind::StopConsumer | Kind::StopProducer => {
            stack.resume(target);
            format!("SIGCONT {}", stack.describe(target))
        }
        Kind::RedisFull => match stack::set_maxmemory(&stack.redis.url(), Some(MAXMEMORY)) {
            Ok(_) => format!("CONFIG SET maxmemory {MAXMEMORY}"),
            Err(error) => {
                deferred.maxmemory = true;
                format!("Redis did not answer ({error}); retrying until it does")
            }
        },
        Kind::RedisRefuses => match stack::set_min_replicas(&stack.redis.url(), 0) {
            Ok(()) => "CONFIG SET min-replicas-to-write 0".to_string(),
            Err(error) => {
                deferred.min_replicas = true;
                format!("Redis did not answer ({error}); retrying until it does")
            }
        },
        Kind::Poison => String::new(),
    }
}

/// Between steps: restores Redis's settings if a restore is pending, and notes (and
/// restarts) processes that exited by themselves.
fn watch(stack: &mut Stack, shared: &Shared, t0: Instant, deferred: &mut Deferred) {
    let url = stack.redis.url();
    if deferred.maxmemory && stack::set_maxmemory(&url, Some(MAXMEMORY)).is_ok() {
        deferred.maxmemory = false;
        shared.note(t0, format!("CONFIG SET maxmemory {MAXMEMORY} (deferred)"));
    }
    if deferred.min_replicas && stack::set_min_replicas(&url, 0).is_ok() {
        deferred.min_replicas = false;
        shared.note(
            t0,
            "CONFIG SET min-replicas-to-write 0 (deferred)".to_string(),
        );
    }
    for anomaly in stack.exited_by_themselves() {
        shared.note(t0, format!("ANOMALY: {anomaly}"));
        shared
            .anomalies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(anomaly);
    }
}
