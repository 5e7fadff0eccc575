//! Delivery: the only place entries are acknowledged.
//!
//! Invariants:
//! - an entry is XACKed only after the sink accepted it, or after Redis confirmed its XADD
//!   to the dead-letter stream, or when the stream no longer holds it (deleted by an
//!   operator: nothing is left to deliver). Dead letter first, its ack second, in two steps:
//!   the dead-letter stream and the partitions hash to different Redis Cluster slots, so no
//!   MULTI can span them. A crash between the steps leaves the entry pending; it is
//!   delivered again and, if it fails again, dead-lettered again: a duplicate dead letter
//!   at worst, never a lost entry. Standalone Redis takes the same path;
//! - the entries the sink accepted are XACKed before any dead letter is written, each dead
//!   letter is acked on its own XADD's answer, and one Redis refuses (`OOM` at `maxmemory`,
//!   a key of the wrong type) stays pending for a later attempt: a dead letter that cannot
//!   be written never holds back the acks, and so the trimming, of the rest;
//! - an outage of the sink (unreachable, hung, 5xx, 401 on every route) leaves the entries
//!   pending and counts nothing: they are retried here with backoff while this consumer
//!   lives, and re-read or claimed by others after it died. Each retry refreshes their idle
//!   time (so no one claims what a live consumer holds) and sets their count in Redis back
//!   by the delivery that brought them (`XCLAIM … RETRYCOUNT n-1 JUSTID`): the re-read
//!   after a restart, or the claim after a crash, raises it again, so restarts in the middle
//!   of an outage count nothing either, while a batch that kills its consumer before any
//!   outage is met still ends in the dead-letter stream. An outage of any length, across any
//!   number of restarts, dead-letters nothing;
//! - a verdict on a route (403, a database that cannot be created, an unknown retention
//!   policy) counts as a delivery and leaves that route's entries pending for the next
//!   re-read of this consumer's pending entries (which raises their count in Redis), while
//!   the other routes are written and acked: a refused route holds back no other. At
//!   `max_deliveries` the entries are dead-lettered with the sink's answer;
//! - delivery counts live in Redis (XPENDING), never only in memory; an entry found
//!   delivered more than `max_deliveries` times is dead-lettered before it is written;
//! - an entry that another consumer claimed meanwhile (it is no longer in this consumer's
//!   pending list) is theirs and is dropped here;
//! - a write the sink rejects is split in halves until the rejected points are isolated;
//!   the others are written and acked, the rejected ones dead-lettered with the sink's
//!   reason (a rejection that covers every point is not split);
//! - a write that times out is an outage, and the next attempts send writes of half the
//!   size, down to one entry, so a batch too big for the sink's timeout still gets through;
//!   each accepted write doubles the size again;
//! - one batch at a time per worker (consumer name): its next batch is read only after this
//!   one is settled or parked.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use redline_core::entry::Entry;
use redline_core::redis::Pool;
use redline_core::telemetry;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::batch::Message;
use crate::dlq::Cause;
use crate::sink::{self, Route, Sink, SinkError};
use redline_core::backoff::Backoff;

mod record;
mod verify;
mod work;

use work::{letter, route_of, routes, Fate, RouteKey, Todo, Work};

/// Ids per XACK command.
const ACK_CHUNK: usize = 1000;

/// Routes whose last refusal is remembered (for the reason of a later dead letter).
const MAX_REMEMBERED_ROUTES: usize = 1000;

/// How delivery behaves.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The consumer group.
    pub(crate) group: String,
    /// This consumer's name.
    pub(crate) consumer: String,
    /// Deliveries after which an entry is dead-lettered.
    pub(crate) max_deliveries: u64,
    /// First retry delay.
    pub(crate) retry_initial: Duration,
    /// Longest retry delay.
    pub(crate) retry_max: Duration,
    /// Idle time after which others may claim entries; retries refresh well before it.
    pub(crate) min_idle: Duration,
    /// The entries this group writes; the others are acked unwritten.
    pub(crate) routing: crate::routes::Routing,
}

/// Writes batches to a sink and records each entry's fate in Redis.
pub(crate) struct Deliverer<S> {
    sink: S,
    pool: Pool,
    /// Partition keys; messages refer to them by index.
    keys: Vec<String>,
    dlq: String,
    settings: Settings,
    /// Shared with `/ready`: the outage being waited out.
    health: sink::Health,
    /// Most entries per sink write; `None`: a route's entries in one write. Halved after a
    /// timeout, doubled after an accepted write.
    write_limit: Option<usize>,
    /// The last refusal of each route, the reason of a dead letter written after a re-read.
    refusals: HashMap<RouteKey, String>,
    /// Whether routing ever let an entry through, and whether the warning that it does not
    /// was logged.
    routed_any: bool,
    warned_unrouted: bool,
}

/// What the sink did with one route's entries.
#[derive(Debug, Default)]
struct Bisected {
    accepted: Vec<Range<usize>>,
    rejected: Vec<(Range<usize>, String)>,
    /// Not written because of this error (the first range was being written).
    failed: Option<(Vec<Range<usize>>, SinkError)>,
}

/// Most entries per write after a timeout: half of the write that timed out, at least one.
fn shrink(timed_out: usize) -> usize {
    (timed_out / 2).max(1)
}

impl<S: Sink> Deliverer<S> {
    /// A deliverer writing to `sink`, recording in Redis through `pool`, telling `/ready`
    /// about outages through `health`.
    pub(crate) fn new(
        sink: S,
        pool: Pool,
        keys: Vec<String>,
        dlq: String,
        settings: Settings,
        health: sink::Health,
    ) -> Self {
        Self {
            sink,
            pool,
            keys,
            dlq,
            settings,
            health,
            write_limit: None,
            refusals: HashMap::new(),
            routed_any: false,
            warned_unrouted: false,
        }
    }

    /// Delivers `batch` until every entry is acked, dead-lettered, parked (left pending after
    /// a refusal of its route, or a dead letter Redis refused) or no longer this consumer's.
    /// An outage is waited out here; the caller drops the future to stop (shutdown), which
    /// leaves whatever is not settled pending.
    pub(crate) async fn deliver(&mut self, batch: Vec<Message>) {
        let mut work = Work::new(batch);
        let mut backoff = Backoff::new(self.settings.retry_initial, self.settings.retry_max);
        // A first delivery needs no XPENDING: it is ours and was delivered once.
        let mut counts = if work.counts_known() {
            Counts::Known
        } else {
            Counts::Unknown
        };
        if !self.settings.routing.takes_all() {
            self.skip(&mut work);
        }
        loop {
            if counts == Counts::Unknown {
                if let Err(error) = self.verify(&mut work, Check::BeforeRetry).await {
                    warn!(%error, "Cannot read the pending entries list; retrying.");
                    self.pause(&mut backoff).await;
                    continue;
                }
            }
            counts = Counts::Unknown;
            let outage = self.write(&mut work).await;
            if let Err(error) = self.settle(&mut work).await {
                warn!(%error, acks = work.acks.len(), dead_letters = work.dead.len(),
                    "Cannot record delivered entries in Redis; retrying (the sink may see some twice).");
                self.pause(&mut backoff).await;
                continue;
            }
            match outage {
                Some(error) => {
                    self.health.set_outage(&error);
                    // At once, not after the pause: a crash during the pause must find the
                    // entries' counts set back already.
                    match self.verify(&mut work, Check::AfterOutage).await {
                        Ok(()) => counts = Counts::Known,
                        Err(error) => {
                            warn!(%error, "Cannot refresh the pending entries; retrying.")
                        }
                    }
                    self.pause(&mut backoff).await;
                }
                // Settled, or parked: refused routes, and dead letters Redis refused (logged
                // in `settle`), stay pending and come back with this consumer's next re-read.
                None => return,
            }
        }
    }

    /// Moves the entries outside this group's routing to the acks, unwritten, and counts
    /// them; warns once when a whole batch was outside it and nothing was ever taken.
    fn skip(&mut self, work: &mut Work) {
        let before = work.todo.len();
        let routing = &self.settings.routing;
        let (taken, skipped): (Vec<_>, Vec<_>) = std::mem::take(&mut work.todo)
            .into_iter()
            .partition(|t| routing.takes(&t.entry));
        work.todo = taken;
        work.acks
            .extend(skipped.into_iter().map(|t| (t.stream, t.id)));
        let skipped = before - work.todo.len();
        metrics::counter!(telemetry::ENTRIES_SKIPPED).increment(skipped as u64);
        if work.todo.is_empty() && skipped > 0 && !self.routed_any && !self.warned_unrouted {
            self.warned_unrouted = true;
            warn!(group = %self.settings.group, skipped,
                "This group's routing (--include-db, --exclude-db, --include-measurement, \
                --exclude-measurement) takes none of the entries it reads; they are \
                acknowledged unwritten.");
        }
        self.routed_any |= !work.todo.is_empty();
    }

    /// Sleeps before a retry, as long as [`pause_for`] says.
    async fn pause(&self, backoff: &mut Backoff) {
        tokio::time::sleep(pause_for(backoff, self.settings.min_idle)).await;
    }

    /// Writes the entries still to write, route by route (database, retention policy):
    /// accepted ones move to the acks, rejected ones to the dead letters, those of a refused
    /// route to the dead letters at `max_deliveries` and out of the batch (parked, pending)
    /// before that. Returns the outage that left the others unwritten.
    async fn write(&mut self, work: &mut Work) -> Option<SinkError> {
        let todo = std::mem::take(&mut work.todo);
        let mut fate: Vec<Fate> = vec![Fate::Unwritten; todo.len()];
        let mut outage = None;
        // True once the sink answered any route on its merits: credentials work.
        let mut answered = false;
        'routes: for route in routes(&todo) {
            let limit = self.write_limit.unwrap_or(usize::MAX).max(1);
            // A route holds at least one entry: the one it was made from.
            let to = Route::of(&todo[route[0]].entry);
            for chunk in route.chunks(limit) {
                let entries: Vec<&Entry> = chunk.iter().map(|&i| &todo[i].entry).collect();
                let outcome = self.bisect(to, &entries).await;
                answered |= !outcome.accepted.is_empty() || !outcome.rejected.is_empty();
                for range in outcome.accepted {
                    chunk[range].iter().for_each(|&i| fate[i] = Fate::Accepted);
                }
                for (range, reason) in outcome.rejected {
                    chunk[range]
                        .iter()
                        .for_each(|&i| fate[i] = Fate::Rejected(reason.clone()));
                }
                let Some((_, error)) = outcome.failed else {
                    continue;
                };
                // What the route has not written yet (the earlier chunks are settled) shares
                // this error's fate.
                let unwritten: Vec<usize> = route
                    .iter()
                    .copied()
                    .filter(|&i| matches!(fate[i], Fate::Unwritten))
                    .collect();
                match error {
                    SinkError::Refused(reason) => {
                        answered = true;
                        unwritten
                            .iter()
                            .for_each(|&i| fate[i] = Fate::Refused(reason.clone()));
                        continue 'routes;
                    }
                    SinkError::Unauthorized(reason) => {
                        unwritten
                            .iter()
                            .for_each(|&i| fate[i] = Fate::Unauthorized(reason.clone()));
                        continue 'routes;
                    }
                    // An outage: the sink is down, hung or failing; don't knock on it once
                    // per route. Everything not written yet waits.
                    error => {
                        outage = Some(error);
                        break 'routes;
                    }
                }
            }
        }
        let mut credentials = None;
        work.acks.reserve(todo.len());
        for (t, fate) in todo.into_iter().zip(fate) {
            match fate {
                Fate::Accepted => work.acks.push((t.stream, t.id)),
                Fate::Rejected(reason) => work.dead.push(letter(t, Cause::Rejected, reason)),
                Fate::Unwritten => work.todo.push(t),
                // Every route answered 401 (or was not reached): the credentials are
                // wrong, which is an outage of the sink, not a verdict on these entries.
                Fate::Unauthorized(reason) if !answered => {
                    credentials.get_or_insert(reason);
                    work.todo.push(t);
                }
                Fate::Unauthorized(reason) | Fate::Refused(reason) => self.refused(work, t, reason),
            }
        }
        if let Some(reason) = credentials {
            warn!(sink = self.sink.name(), %reason,
                "The sink refuses the credentials on every route: check the username and \
                password (or the token). Nothing is dead-lettered; retrying.");
            outage.get_or_insert(SinkError::Unauthorized(reason));
        }
        outage
    }

    /// An entry whose route the sink refused in this attempt, its delivery counted: at
    /// `max_deliveries` it becomes a dead letter with the sink's answer, before that it is
    /// left pending (parked) for this consumer's next re-read, which raises its count.
    fn refused(&mut self, work: &mut Work, t: Todo, reason: String) {
        let error = SinkError::Refused(reason).to_string();
        let deliveries = t.deliveries.unwrap_or(1);
        let route = route_of(&t.entry);
        if deliveries >= self.settings.max_deliveries {
            self.refusals.remove(&route);
            work.dead.push(letter(
                t,
                Cause::MaxDeliveries,
                format!("max deliveries exceeded: {error}"),
            ));
            return;
        }
        metrics::counter!(telemetry::SINK_RETRIES, "kind" => "refused").increment(1);
        if self.refusals.get(&route) != Some(&error) {
            warn!(db = route.0.as_deref().unwrap_or("(default)"), rp = route.1.as_deref().unwrap_or("(default)"),
                deliveries, max_deliveries = self.settings.max_deliveries, %error,
                "The sink refuses this route; its entries stay pending and are retried at the \
                next re-read (other routes go on).");
            if self.refusals.len() >= MAX_REMEMBERED_ROUTES {
                self.refusals.clear();
            }
            self.refusals.insert(route, error);
        }
    }

    /// Writes `entries`; on a rejection, writes each half, down to single entries, so only
    /// the entries the sink refuses are dead-lettered. Stops at the first error that is not
    /// a rejection: everything not written yet stays pending.
    async fn bisect(&mut self, to: Route<'_>, entries: &[&Entry]) -> Bisected {
        let mut out = Bisected::default();
        let mut stack: Vec<Range<usize>> = Vec::new();
        stack.push(0..entries.len());
        while let Some(range) = stack.pop() {
            match self.write_once(to, &entries[range.clone()]).await {
                Ok(()) => out.accepted.push(range),
                Err(SinkError::Rejected { reason, whole }) if whole || range.len() == 1 => {
                    out.rejected.push((range, reason));
                }
                Err(SinkError::Rejected { reason, .. }) => {
                    debug!(entries = range.len(), %reason, "Sink rejected a write; splitting it.");
                    let mid = range.start + range.len() / 2;
                    stack.push(mid..range.end);
                    stack.push(range.start..mid);
                }
                Err(error) => {
                    let mut rest = vec![range];
                    rest.extend(stack.drain(..).rev());
                    out.failed = Some((rest, error));
                    break;
                }
            }
        }
        out
    }

    /// One sink write, measured and counted; adapts the write size to timeouts.
    async fn write_once(&mut self, to: Route<'_>, entries: &[&Entry]) -> Result<(), SinkError> {
        let started = Instant::now();
        let result = self.sink.write(to, entries).await;
        let outcome = match &result {
            Ok(()) => "ok",
            Err(SinkError::Rejected { .. } | SinkError::Refused(_)) => "rejected",
            Err(_) => "failed",
        };
        metrics::histogram!(telemetry::SINK_SECONDS, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => {
                metrics::counter!(telemetry::BATCHES_WRITTEN).increment(1);
                metrics::counter!(telemetry::METRICS_WRITTEN).increment(entries.len() as u64);
                self.health.clear();
                if let Some(limit) = self.write_limit {
                    if entries.len() >= limit {
                        self.write_limit = limit.checked_mul(2).filter(|l| *l < 1 << 20);
                    }
                }
            }
            Err(SinkError::Rejected { .. } | SinkError::Refused(_)) => {}
            Err(error) => {
                metrics::counter!(telemetry::SINK_RETRIES, "kind" => error.kind()).increment(1);
                if let SinkError::TimedOut(_) = error {
                    let limit = shrink(entries.len());
                    self.write_limit = Some(limit);
                    warn!(%error, sink = self.sink.name(), entries = entries.len(), next_write = limit,
                        "Sink write timed out; the entries stay pending and the next attempt writes fewer at once.");
                } else {
                    warn!(%error, sink = self.sink.name(), entries = entries.len(),
                        "Sink write failed; the entries stay pending and will be retried.");
                }
            }
        }
        result
    }
}

/// Whether the delivery counts of the entries in hand are known for the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// A first delivery (ours, delivered once), or just verified after an outage.
    Known,
    /// After a failed attempt that settled nothing certain: read `XPENDING` first.
    Unknown,
}

/// Why [`Deliverer::verify`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Before a retry: who holds what, and how often it was delivered.
    BeforeRetry,
    /// Right after an attempt met an outage: that too, and set the counts back, so that the
    /// outage counts nothing even if this process dies during the pause.
    AfterOutage,
}

/// Who holds an entry of the batch, by XPENDING.
#[derive(Debug, Clone, Copy)]
enum Holding {
    /// This consumer, delivered this many times.
    Ours(u64),
    /// Not this consumer any more (acknowledged, or claimed by another one).
    Taken,
    /// The group is gone (Redis lost its data): the entry is written anyway.
    GroupGone,
}

impl Holding {
    /// Whether the batch keeps the entry, learning its delivery count when not known yet
    /// (a re-read or claimed entry). A known count stays: after an outage, Redis holds one
    /// less on purpose (see `touch`).
    fn keep(self, deliveries: &mut Option<u64>) -> bool {
        match self {
            Self::Ours(count) => {
                deliveries.get_or_insert(count);
                true
            }
            Self::Taken => false,
            Self::GroupGone => true,
        }
    }
}

/// How long to wait before a retry: the backoff's next delay, never longer than half of
/// `min_idle`, so that the entries are touched again before another consumer may claim them.
fn pause_for(backoff: &mut Backoff, min_idle: Duration) -> Duration {
    backoff.next_delay().min(min_idle / 2)
}

#[cfg(test)]
mod tests;
