//! Delivery: the only place entries are acknowledged.
//!
//! Invariants:
//! - an entry is XACKed only after the sink accepted it, or after Redis confirmed its XADD
//!   to the dead-letter stream, or when the stream no longer holds it (deleted by an
//!   operator: nothing is left to deliver). Dead letter first, ack second, in two steps: the
//!   dead-letter stream and the partitions hash to different Redis Cluster slots, so no
//!   MULTI can span them. A crash between the steps leaves the entry pending; it is
//!   delivered again and, if it fails again, dead-lettered again: a duplicate dead letter
//!   at worst, never a lost entry. Standalone Redis takes the same path, so every
//!   dead-letter test covers it;
//! - a sink error leaves the entries it concerns pending; they are retried here with
//!   backoff while this consumer lives, and re-read or claimed by others after it died;
//! - delivery counts live in Redis (XPENDING), never only in memory: an attempt at which the
//!   sink was reached and failed raises the count (`XCLAIM … RETRYCOUNT n+1`); an attempt
//!   that could not reach the sink does not, so an outage of any length dead-letters
//!   nothing; an entry delivered more than `max_deliveries` times is dead-lettered;
//! - while retrying, the consumer resets its entries' idle time (`XCLAIM … JUSTID`) so no
//!   one claims what a live consumer holds; an entry that another consumer did claim meanwhile
//!   (it is no longer in this consumer's pending list) is theirs and is dropped here;
//! - a batch the sink rejects is split in halves until the rejected entries are isolated;
//!   the others are written and acked, the rejected ones dead-lettered with the sink's reason
//!   (a rejection that covers every entry, such as an unknown retention policy, is not split);
//! - entries are written per (database, retention policy), so one target's trouble neither
//!   rejects nor holds back another's;
//! - one batch at a time per worker (consumer name): its next batch is read only after this
//!   one is settled.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Duration;

use redline_core::entry::Entry;
use redline_core::redis::{Pipelines, Pool, PooledConnection};
use redline_core::telemetry;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::batch::Message;
use crate::conn;
use crate::dlq::{self, Cause, DeadLetter, Origin};
use crate::pending;
use crate::sink::{Sink, SinkError};

mod work;

use work::{letter, routes, Fate, Todo, Work};

/// Ids per XACK command.
const ACK_CHUNK: usize = 1000;

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
}

/// Writes batches to a sink and records each entry's fate in Redis.
pub(crate) struct Deliverer<S> {
    sink: S,
    pool: Pool,
    /// Partition keys; messages refer to them by index.
    keys: Vec<String>,
    dlq: String,
    settings: Settings,
}

/// What the sink did with one route's entries.
#[derive(Debug, Default)]
struct Bisected {
    accepted: Vec<Range<usize>>,
    rejected: Vec<(Range<usize>, String)>,
    /// Not written because of this error: still pending.
    failed: Option<(Vec<Range<usize>>, SinkError)>,
}

impl<S: Sink> Deliverer<S> {
    /// A deliverer writing to `sink`, recording in Redis through `pool`.
    pub(crate) fn new(
        sink: S,
        pool: Pool,
        keys: Vec<String>,
        dlq: String,
        settings: Settings,
    ) -> Self {
        Self {
            sink,
            pool,
            keys,
            dlq,
            settings,
        }
    }

    /// Delivers `batch` until every entry is acked or dead-lettered, or is no longer this
    /// consumer's. Never gives up by itself: the caller drops the future to stop (shutdown),
    /// which leaves whatever is not settled pending.
    pub(crate) async fn deliver(&mut self, batch: Vec<Message>) {
        let mut work = Work::new(batch);
        let mut backoff = Backoff::new(self.settings.retry_initial, self.settings.retry_max);
        // The error of the last failed attempt; `Some` from the first retry on.
        let mut last_error: Option<String> = None;
        // A first delivery needs no XPENDING: it is ours and was delivered once.
        let mut verified = work.counts_known();
        loop {
            if !verified {
                if let Err(error) = self.verify(&mut work, last_error.as_deref()).await {
                    warn!(%error, "Cannot read the pending entries list; retrying.");
                    self.pause(&mut backoff).await;
                    continue;
                }
            }
            verified = false;
            let failure = self.write(&mut work).await;
            if let Err(error) = self.settle(&mut work).await {
                warn!(%error, acks = work.acks.len(), dead_letters = work.dead.len(),
                    "Cannot record delivered entries in Redis; retrying (the sink may see some twice).");
                self.pause(&mut backoff).await;
                continue;
            }
            let Some(failure) = failure else {
                return;
            };
            last_error = Some(failure.to_string());
            self.pause(&mut backoff).await;
        }
    }

    /// Sleeps before a retry, never longer than half of `min_idle`, so the entries are
    /// touched again before anyone may claim them.
    async fn pause(&self, backoff: &mut Backoff) {
        tokio::time::sleep(backoff.next_delay().min(self.settings.min_idle / 2)).await;
    }

    /// Reads ownership and delivery counts from XPENDING and drops entries no longer ours.
    /// On a retry (`last_error` is set), marks the entries still to write as just delivered
    /// (resetting their idle time) and raises the count of those whose last attempt reached
    /// the sink. Then dead-letters what was delivered more than `max_deliveries` times.
    async fn verify(&self, work: &mut Work, last_error: Option<&str>) -> conn::Result<()> {
        let mut conn = conn::get(&self.pool).await?;
        let mut owned: HashMap<usize, Option<HashMap<String, u64>>> = HashMap::new();
        for (stream, ids) in work.ids() {
            let key = &self.keys[stream];
            let counts = pending::owned(
                &mut conn,
                key,
                &self.settings.group,
                &self.settings.consumer,
                &ids,
            )
            .await?;
            if counts.is_none() {
                warn!(stream = %key, group = %self.settings.group,
                    "The consumer group is gone (Redis lost its data?); writing the batch anyway.");
            }
            owned.insert(stream, counts);
        }
        // `Some(None)`: the group is gone, keep everything; `None`: not pending for us.
        let lookup = |stream: usize, id: &str| -> Option<Option<u64>> {
            match owned.get(&stream) {
                Some(Some(counts)) => counts.get(id).map(|c| Some(*c)),
                _ => Some(None),
            }
        };
        let before = work.todo.len() + work.acks.len() + work.dead.len();
        work.todo.retain_mut(|t| match lookup(t.stream, &t.id) {
            Some(count) => {
                t.deliveries = count.or(t.deliveries);
                true
            }
            None => false,
        });
        work.acks.retain(|(s, id)| lookup(*s, id).is_some());
        work.dead.retain_mut(|d| match lookup(d.stream, &d.id) {
            Some(count) => {
                d.deliveries = count.or(d.deliveries);
                true
            }
            None => false,
        });
        let gone = before - (work.todo.len() + work.acks.len() + work.dead.len());
        if gone > 0 {
            info!(
                entries = gone,
                "Entries are no longer pending for this consumer \
                (acknowledged, or claimed by another consumer); leaving them to it."
            );
        }
        if last_error.is_some() {
            self.touch(&mut conn, work).await?;
        }
        let max = self.settings.max_deliveries;
        let (over, under): (Vec<Todo>, Vec<Todo>) = std::mem::take(&mut work.todo)
            .into_iter()
            .partition(|t| t.deliveries.is_some_and(|d| d > max));
        work.todo = under;
        for t in over {
            let deliveries = t.deliveries.unwrap_or_default();
            let last = last_error.map_or_else(
                || format!("delivered {deliveries} times without being acknowledged"),
                str::to_string,
            );
            work.dead.push(letter(
                t,
                Cause::MaxDeliveries,
                format!("max deliveries exceeded: {last}"),
            ));
        }
        Ok(())
    }

    /// Writes the entries still to write, route by route (database, retention policy):
    /// accepted ones move to the acks, rejected ones to the dead letters, the rest stay.
    /// Returns the error that left entries unwritten.
    async fn write(&mut self, work: &mut Work) -> Option<SinkError> {
        let todo = std::mem::take(&mut work.todo);
        let mut fate: Vec<Fate> = todo
            .iter()
            .map(|_| Fate::Unwritten { counted: false })
            .collect();
        let mut failure = None;
        for route in routes(&todo) {
            if matches!(failure, Some(SinkError::Unavailable(_))) {
                break; // the sink is down: don't knock on it once per route
            }
            let entries: Vec<&Entry> = route.iter().map(|&i| &todo[i].entry).collect();
            let outcome = self.bisect(&entries).await;
            for range in outcome.accepted {
                route[range].iter().for_each(|&i| fate[i] = Fate::Accepted);
            }
            for (range, reason) in outcome.rejected {
                route[range]
                    .iter()
                    .for_each(|&i| fate[i] = Fate::Rejected(reason.clone()));
            }
            if let Some((ranges, error)) = outcome.failed {
                let counted = matches!(error, SinkError::Transient(_));
                for range in ranges {
                    route[range]
                        .iter()
                        .for_each(|&i| fate[i] = Fate::Unwritten { counted });
                }
                failure = Some(error);
            }
        }
        for (mut t, fate) in todo.into_iter().zip(fate) {
            match fate {
                Fate::Accepted => work.acks.push((t.stream, t.id)),
                Fate::Rejected(reason) => work.dead.push(letter(t, Cause::Rejected, reason)),
                Fate::Unwritten { counted } => {
                    t.counted = counted;
                    work.todo.push(t);
                }
            }
        }
        failure
    }

    /// Writes `entries`; on a rejection, writes each half, down to single entries, so only
    /// the entries the sink refuses are dead-lettered. Stops at the first error that is not
    /// a rejection: everything not written yet stays pending.
    async fn bisect(&mut self, entries: &[&Entry]) -> Bisected {
        let mut out = Bisected::default();
        let mut stack: Vec<Range<usize>> = Vec::new();
        stack.push(0..entries.len());
        while let Some(range) = stack.pop() {
            match self.write_once(&entries[range.clone()]).await {
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

    /// One sink write, measured and counted.
    async fn write_once(&mut self, entries: &[&Entry]) -> Result<(), SinkError> {
        let started = Instant::now();
        let result = self.sink.write(entries).await;
        metrics::histogram!(telemetry::SINK_SECONDS).record(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => {
                metrics::counter!(telemetry::BATCHES_WRITTEN).increment(1);
                metrics::counter!(telemetry::METRICS_WRITTEN).increment(entries.len() as u64);
            }
            Err(SinkError::Rejected { .. }) => {}
            Err(error) => {
                let kind = match error {
                    SinkError::Unavailable(_) => "unavailable",
                    _ => "transient",
                };
                metrics::counter!(telemetry::SINK_RETRIES, "kind" => kind).increment(1);
                warn!(%error, sink = self.sink.name(), entries = entries.len(),
                    "Sink write failed; the entries stay pending and will be retried.");
            }
        }
        result
    }

    /// Records the fates decided so far: first the dead letters (one pipeline to the
    /// dead-letter stream), which then join the accepted entries to be XACKed (one pipeline
    /// per partition on a cluster, one in all otherwise). Each list is cleared once Redis
    /// confirmed it, so a retry after a failed XACK does not dead-letter an entry twice.
    async fn settle(&self, work: &mut Work) -> conn::Result<()> {
        if work.acks.is_empty() && work.dead.is_empty() {
            return Ok(());
        }
        let mut conn = conn::get(&self.pool).await?;
        if !work.dead.is_empty() {
            let mut pipe = redis::pipe();
            for letter in &work.dead {
                let origin = Origin {
                    group: &self.settings.group,
                    consumer: &self.settings.consumer,
                    source_stream: &self.keys[letter.stream],
                };
                dlq::add(&mut pipe, &self.dlq, letter, &origin);
            }
            pipe.query_async::<()>(&mut conn).await?;
            for cause in [Cause::Undecodable, Cause::Rejected, Cause::MaxDeliveries] {
                let letters: Vec<&DeadLetter> =
                    work.dead.iter().filter(|d| d.cause == cause).collect();
                if let Some(first) = letters.first() {
                    metrics::counter!(telemetry::DEAD_LETTERED, "reason" => cause.label())
                        .increment(letters.len() as u64);
                    warn!(entries = letters.len(), cause = cause.label(), reason = %first.reason,
                        dlq = %self.dlq, "Moved entries to the dead-letter stream.");
                }
            }
            // Dead-lettered: from now on they only need their XACK.
            let dead = std::mem::take(&mut work.dead);
            work.acks.extend(dead.into_iter().map(|d| (d.stream, d.id)));
        }
        if !work.acks.is_empty() {
            let mut pipes = Pipelines::new(conn.is_cluster());
            let mut by_stream: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
            for (stream, id) in &work.acks {
                by_stream.entry(*stream).or_default().push(id.as_str());
            }
            for (stream, ids) in by_stream {
                for chunk in ids.chunks(ACK_CHUNK) {
                    pipes
                        .partition(stream)
                        .cmd("XACK")
                        .arg(&self.keys[stream])
                        .arg(&self.settings.group)
                        .arg(chunk);
                }
            }
            let acked: Vec<Vec<u64>> = pipes.query(&mut conn).await?;
            metrics::counter!(telemetry::METRICS_ACKED).increment(acked.iter().flatten().sum());
            work.acks.clear();
        }
        Ok(())
    }

    /// Resets the idle time of the entries still to write, so no one claims what this live
    /// consumer retries, and raises the delivery count of those whose last attempt reached
    /// the sink and failed (`XCLAIM … RETRYCOUNT n+1 JUSTID`).
    async fn touch(&self, conn: &mut PooledConnection, work: &mut Work) -> conn::Result<()> {
        let mut by_stream: BTreeMap<usize, Vec<(&str, Option<u64>)>> = BTreeMap::new();
        for t in &work.todo {
            let count = if t.counted {
                t.deliveries.map(|d| d + 1)
            } else {
                None
            };
            by_stream
                .entry(t.stream)
                .or_default()
                .push((t.id.as_str(), count));
        }
        for (stream, ids) in by_stream {
            let key = &self.keys[stream];
            pending::touch(
                conn,
                key,
                &self.settings.group,
                &self.settings.consumer,
                &ids,
            )
            .await?;
        }
        for t in &mut work.todo {
            if std::mem::take(&mut t.counted) {
                t.deliveries = t.deliveries.map(|d| d + 1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
