//! The write rate of one consumer process: `--max-write-rate` (a token bucket its workers
//! share, bursts of one batch) and what the sink accepted lately, for `/metrics` and, through
//! Redis, `redline status`.
//!
//! The bucket is GCRA (the "virtual scheduling" form of a token bucket): taking `n` entries
//! moves a theoretical arrival time on by `n / rate`, and waits while that time is more than
//! one batch ahead of now. So in any window of `t` seconds at most `rate × t + batch`
//! entries are taken: a backlog drains at the rate, and a backend never gets more than one
//! batch over its budget in any second.
//!
//! A worker waits for its turn *before* it reads (or claims) a batch, asking for a whole
//! batch and giving back what the read did not fill. Waiting after the read would leave
//! the batch pending meanwhile: at a rate low enough that a process's workers wait longer
//! than `min_idle`, claims would take the waiting entries from their live consumer, each
//! claim counting a delivery, until `max_deliveries` dead-lettered them. The retries of a
//! batch already read (after an outage, or split after a rejection) are not counted
//! again: an outage's retries are paced by the backoff.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redline_core::entry::Entry;
use redline_core::telemetry;
use redline_core::Shutdown;
use tokio::time::Instant;

use crate::sink::{Route, Sink, SinkError};

/// Seconds of history the current rate is averaged over.
const WINDOW_SECONDS: usize = 10;

/// The process's write rate: its limit, if any, and what was accepted lately. Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Rate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Entries per second, `None` when unlimited.
    limit: Option<u64>,
    /// How far ahead of now the theoretical arrival time may run: one batch at the rate.
    burst: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// GCRA's theoretical arrival time: when the bucket is empty again.
    next: Instant,
    /// Entries accepted per second over the last [`WINDOW_SECONDS`], by whole second since
    /// `start`: `(second, count)`.
    accepted: [(u64, u64); WINDOW_SECONDS],
    start: Instant,
}

impl Rate {
    /// A rate of at most `limit` entries per second (unlimited when `None`), in bursts of at
    /// most `batch` entries.
    pub(crate) fn new(limit: Option<u64>, batch: usize) -> Self {
        let burst = limit.map_or(Duration::ZERO, |limit| per(batch as u64, limit));
        let now = Instant::now();
        metrics::gauge!(telemetry::WRITE_RATE_LIMIT).set(limit.unwrap_or(0) as f64);
        Self {
            inner: Arc::new(Inner {
                limit,
                burst,
                state: Mutex::new(State {
                    next: now,
                    accepted: [(u64::MAX, 0); WINDOW_SECONDS],
                    start: now,
                }),
            }),
        }
    }

    /// The limit in entries per second, `None` when unlimited.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.inner.limit
    }

    /// Waits for a turn of `batch` entries before a read or a claim, so that nothing read
    /// waits pending for its turn; `None` when shutdown came first.
    pub(crate) async fn turn(&self, batch: usize, shutdown: &Shutdown) -> Option<Turn<'_>> {
        tokio::select! {
            biased;
            () = shutdown.wait() => None,
            () = self.acquire(batch) => Some(Turn { rate: self, taken: batch }),
        }
    }

    /// Gives back `entries` taken by [`Self::acquire`] but not sent (a read that did not
    /// fill its batch).
    fn refund(&self, entries: usize) {
        let Some(limit) = self.inner.limit else {
            return;
        };
        let mut state = self.lock();
        let now = Instant::now();
        state.next = state
            .next
            .checked_sub(per(entries as u64, limit))
            .map_or(now, |next| next.max(now));
    }

    /// Waits until `entries` may be taken; returns at once when unlimited.
    pub(crate) async fn acquire(&self, entries: usize) {
        let Some(limit) = self.inner.limit else {
            return;
        };
        let ready = {
            let mut state = self.lock();
            let now = Instant::now();
            let next = state.next.max(now) + per(entries as u64, limit);
            state.next = next;
            // The write may go once the bucket, after it, is at most one burst ahead.
            next.checked_sub(self.inner.burst).unwrap_or(now)
        };
        tokio::time::sleep_until(ready).await;
    }

    /// Records that the sink accepted `entries`.
    pub(crate) fn accepted(&self, entries: usize) {
        let mut state = self.lock();
        let second = state.start.elapsed().as_secs();
        let slot = &mut state.accepted[second as usize % WINDOW_SECONDS];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += entries as u64;
        drop(state);
        metrics::gauge!(telemetry::WRITE_RATE).set(self.current());
    }

    /// Entries accepted per second, averaged over the current second and the
    /// [`WINDOW_SECONDS`]` - 1` before it (or since the start, when that is shorter).
    pub(crate) fn current(&self) -> f64 {
        let state = self.lock();
        let elapsed = state.start.elapsed();
        let now = elapsed.as_secs();
        let oldest = now.saturating_sub(WINDOW_SECONDS as u64 - 1);
        let total: u64 = state
            .accepted
            .iter()
            .filter(|(second, _)| *second != u64::MAX && *second >= oldest && *second <= now)
            .map(|(_, count)| count)
            .sum();
        // From the start of the oldest second counted to now, at least a second.
        let span = (elapsed.as_secs_f64() - oldest as f64).max(1.0);
        total as f64 / span
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the state whole: a panic elsewhere cannot tear it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A batch's worth of the rate, taken before a read or a claim.
#[must_use = "what the read did not fill is given back by `used`"]
pub(crate) struct Turn<'a> {
    rate: &'a Rate,
    taken: usize,
}

impl Turn<'_> {
    /// The read (or claim) brought `entries`: the rest of the turn is given back.
    pub(crate) fn used(self, entries: usize) {
        self.rate.refund(self.taken.saturating_sub(entries));
    }
}

/// How long `entries` take at `limit` per second.
fn per(entries: u64, limit: u64) -> Duration {
    Duration::from_secs_f64(entries as f64 / limit.max(1) as f64)
}

/// How often a process reports its rate to Redis, and how long a report lasts.
const REPORT_EVERY: Duration = Duration::from_secs(5);
const REPORT_TTL: Duration = Duration::from_secs(15);

/// Reports `rate` for `group`/`consumer` to Redis every [`REPORT_EVERY`] until shutdown,
/// then withdraws it. Redis being down or full only delays a report: it is for display.
pub(crate) async fn report(
    redis: redline_core::redis::RedisConfig,
    keys: redline_core::keys::StreamKeys,
    (group, consumer, routing): (String, String, String),
    rate: Rate,
    shutdown: redline_core::Shutdown,
) {
    let mut conn = None;
    // Routings of other processes of the group already warned about.
    let mut warned = std::collections::BTreeSet::new();
    loop {
        if conn.is_none() {
            conn = redline_streams::connect(&redis).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            let report = redline_streams::rates::ProcessRate {
                group: group.clone(),
                consumer: consumer.clone(),
                limit: rate.limit(),
                rate: rate.current(),
                routing: routing.clone(),
                expires_ms: 0,
            };
            let ttl = REPORT_TTL.as_millis() as u64;
            match redline_streams::rates::publish(c, &keys, &report, ttl).await {
                Ok(peers) => {
                    for peer in peers.iter().filter(|p| p.routing != routing) {
                        if warned.insert(peer.routing.clone()) {
                            tracing::warn!(group = %group, other = %peer.consumer,
                                its_routing = %peer.routing, this_routing = %routing,
                                "Another consumer of this group routes differently: what one \
                                skips the other writes. Give every consumer of a group the same \
                                --include-*/--exclude-* patterns.");
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "Cannot report the write rate to Redis; trying later.");
                    conn = None;
                }
            }
        }
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(REPORT_EVERY) => {}
        }
    }
    if let Some(c) = conn.as_mut() {
        let withdrawn = redline_streams::rates::withdraw(c, &keys, &group, &consumer);
        let _ = tokio::time::timeout(Duration::from_secs(1), withdrawn).await;
    }
}

/// A sink whose accepted writes count toward the process's [`Rate`] (the waiting is done
/// before the reads).
pub(crate) struct Limited<S> {
    sink: S,
    rate: Rate,
}

impl<S> Limited<S> {
    pub(crate) fn new(sink: S, rate: Rate) -> Self {
        Self { sink, rate }
    }
}

impl<S: Sink> Sink for Limited<S> {
    fn name(&self) -> &'static str {
        self.sink.name()
    }

    async fn write(&mut self, route: Route<'_>, batch: &[&Entry]) -> Result<(), SinkError> {
        let written = self.sink.write(route, batch).await;
        if written.is_ok() {
            self.rate.accepted(batch.len());
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_backlog_goes_at_the_rate_after_one_batch() {
        let rate = Rate::new(Some(1000), 100);
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..30 {
            rate.acquire(100).await;
            sent.push(start.elapsed());
        }
        // The first batch goes at once, each next one a tenth of a second later.
        assert_eq!(sent[0], Duration::ZERO);
        assert_eq!(sent[1], Duration::from_millis(100));
        assert_eq!(sent[29], Duration::from_millis(2900));
        // In any second: at most the rate plus one batch.
        for (i, at) in sent.iter().enumerate() {
            let within = sent[i..]
                .iter()
                .take_while(|t| **t - *at < Duration::from_secs(1))
                .count();
            assert!(within * 100 <= 1000 + 100, "{within} batches from {at:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_allows_one_batch_at_once_never_more() {
        let rate = Rate::new(Some(1000), 100);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        rate.acquire(100).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        rate.acquire(100).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn what_a_read_did_not_fill_is_given_back_never_more() {
        let rate = Rate::new(Some(1000), 100);
        let start = Instant::now();
        // Reads that asked for a batch and got 10 entries: 10 entries of the rate each.
        for _ in 0..20 {
            rate.acquire(100).await;
            rate.refund(90);
        }
        // 200 entries taken, then a batch: 300 at 1000/s, the first batch (100) at once.
        rate.acquire(100).await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        // Giving back more than was taken makes no credit beyond an idle bucket.
        rate.refund(100_000);
        let idle = Instant::now();
        rate.acquire(100).await;
        rate.acquire(100).await;
        assert_eq!(idle.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn small_writes_share_the_rate_and_unlimited_never_waits() {
        let rate = Rate::new(Some(500), 50);
        let start = Instant::now();
        for _ in 0..100 {
            rate.acquire(10).await;
        }
        // 1,000 entries at 500/s with a burst of 50: (1000 - 50) / 500 s.
        assert_eq!(start.elapsed(), Duration::from_millis(1900));
        let free = Rate::new(None, 50);
        for _ in 0..100 {
            free.acquire(1_000_000).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1900));
        assert_eq!(free.limit(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_current_rate_is_what_was_accepted_over_the_last_ten_seconds() {
        let rate = Rate::new(None, 50);
        assert_eq!(rate.current(), 0.0);
        for _ in 0..20 {
            rate.accepted(500);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(rate.current(), 500.0);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(rate.current(), 0.0);
    }
}
