//! The writer: a client that behaves like Telegraf's `outputs.influxdb`, and the ledger of
//! what redline answered it.
//!
//! Each connection sends bodies of `--body-lines` lines to `POST /write?db=…`, paced to
//! `--rate` metrics per second, and retries a body until it gets a 204: after any other
//! status it waits `Retry-After` (1 s when absent), after a timeout or a broken connection
//! it waits with a short backoff. Only a 204 enters the ledger as acknowledged; a body that
//! was sent but never got one (the run gave up on it) is recorded as unconfirmed, so the
//! check may find its lines in InfluxDB or not.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redline_core::backoff::Backoff;

use crate::workload::Workload;

/// How long one request may take before the writer gives up on it and retries: Telegraf's
/// default `timeout`. A producer hung longer than this costs a retry.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A poison point: its database and its line as sent.
pub(crate) type PoisonPoint = (String, String);

/// What redline answered the writer, shared by the writer, the nemesis and the check.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Bodies answered 204.
    acked: Mutex<BTreeSet<u64>>,
    /// Bodies sent at least once.
    sent: Mutex<BTreeSet<u64>>,
    /// Lines answered 204.
    pub(crate) acked_lines: AtomicU64,
    /// Poison points answered 204.
    poison_acked: Mutex<Vec<PoisonPoint>>,
    /// Poison points sent at least once.
    poison_sent: Mutex<Vec<PoisonPoint>>,
    /// Failed attempts by what happened: `503`, `timeout`, `connection`, …
    failures: Mutex<BTreeMap<String, u64>>,
    /// Set once the run gives up on requests still without a 204.
    pub(crate) give_up: AtomicBool,
}

/// A poisoned lock only means a writer task panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    /// Bodies answered 204.
    pub(crate) fn acked_bodies(&self) -> BTreeSet<u64> {
        lock(&self.acked).clone()
    }

    /// Bodies sent but never answered 204.
    pub(crate) fn unconfirmed_bodies(&self) -> BTreeSet<u64> {
        let acked = lock(&self.acked);
        lock(&self.sent).difference(&acked).copied().collect()
    }

    /// Poison points answered 204, and those sent but never answered 204.
    pub(crate) fn poison(&self) -> (Vec<PoisonPoint>, Vec<PoisonPoint>) {
        let acked = lock(&self.poison_acked).clone();
        let unconfirmed = lock(&self.poison_sent)
            .iter()
            .filter(|p| !acked.contains(p))
            .cloned()
            .collect();
        (acked, unconfirmed)
    }

    /// Failed attempts by kind.
    pub(crate) fn failures(&self) -> BTreeMap<String, u64> {
        lock(&self.failures).clone()
    }

    /// `503×12 timeout×2`, or `none`.
    pub(crate) fn failures_line(&self) -> String {
        let failures = self.failures();
        if failures.is_empty() {
            return "none".to_string();
        }
        failures
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn fail(&self, what: String) {
        *lock(&self.failures).entry(what).or_default() += 1;
    }
}

/// The HTTP client: one per writer, keep-alive like Telegraf's.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client without TLS builds")
}

/// Sends `body` to `/write?db=<db>` until it is answered 204 or the ledger says to give
/// up; whether it got its 204.
async fn send_until_204(
    client: &reqwest::Client,
    addr: SocketAddr,
    db: &str,
    body: String,
    ledger: &Ledger,
) -> bool {
    let url = format!("http://{addr}/write?db={db}&precision=ns");
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
    loop {
        if ledger.give_up.load(Ordering::Relaxed) {
            return false;
        }
        let wait = match client.post(&url).body(body.clone()).send().await {
            Ok(answer) if answer.status().as_u16() == 204 => return true,
            Ok(answer) => {
                ledger.fail(answer.status().as_u16().to_string());
                let retry_after = answer
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1);
                Duration::from_secs(retry_after.clamp(1, 30))
            }
            Err(error) => {
                ledger.fail(if error.is_timeout() {
                    "timeout".to_string()
                } else {
                    "connection".to_string()
                });
                backoff.next_ceiling()
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Sends body `k` until it is answered 204 (or the run gives up), keeping the ledger.
pub(crate) async fn send_body(
    client: &reqwest::Client,
    addr: SocketAddr,
    workload: Workload,
    k: u64,
    ledger: &Ledger,
) {
    lock(&ledger.sent).insert(k);
    let body = workload.body(k);
    if send_until_204(client, addr, workload.db_of_body(k), body, ledger).await {
        lock(&ledger.acked).insert(k);
        ledger
            .acked_lines
            .fetch_add(workload.body_lines, Ordering::Relaxed);
    }
}

/// Sends one poison `line` to `db` until it is answered 204 (or the run gives up).
pub(crate) async fn send_poison(addr: SocketAddr, db: String, line: String, ledger: Arc<Ledger>) {
    lock(&ledger.poison_sent).push((db.clone(), line.clone()));
    let client = client();
    if send_until_204(&client, addr, &db, format!("{line}\n"), &ledger).await {
        lock(&ledger.poison_acked).push((db, line));
    }
}

/// The paced load: `connections` tasks share the bodies from `first` on; body `k` is not
/// sent before `started + (k - first) × body_lines / rate`. Each task stops taking bodies
/// once `stop` is set and returns when its body in flight got its 204.
pub(crate) async fn run(
    addr: SocketAddr,
    workload: Workload,
    first: u64,
    rate: u64,
    connections: usize,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let next = Arc::new(AtomicU64::new(first));
    let started = Instant::now();
    let per_body = Duration::from_secs_f64(workload.body_lines as f64 / rate as f64);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (next, ledger, stop) = (next.clone(), ledger.clone(), stop.clone());
        tasks.spawn(async move {
            let client = client();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let due = started + per_body.mul_f64((k - first) as f64);
                // Wait for the body's turn, noticing the end of the run meanwhile.
                while Instant::now() < due && !stop.load(Ordering::Relaxed) {
                    let left = due.saturating_duration_since(Instant::now());
                    tokio::time::sleep(left.min(Duration::from_millis(100))).await;
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                send_body(&client, addr, workload, k, &ledger).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
