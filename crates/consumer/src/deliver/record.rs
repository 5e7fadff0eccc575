//! Recording fates in Redis: the XACK of accepted entries, the dead letters and their
//! XACK, and the refresh of entries still being retried. The ordering rules are the ones
//! `deliver.rs` states: acks never wait for dead letters, a dead letter is acked only once
//! Redis took it.

use std::collections::BTreeMap;

use redline_core::redis::{Pipelines, PooledConnection};
use redline_core::telemetry;
use tracing::warn;

use super::work::Work;
use super::{Deliverer, ACK_CHUNK};
use crate::conn;
use crate::dlq::{self, Cause, DeadLetter, Origin};
use crate::entry_id::EntryId;
use crate::pending;
use crate::sink::Sink;

impl<S: Sink> Deliverer<S> {
    /// Records the fates decided so far. First the XACK of the accepted entries (one
    /// pipeline per partition on a cluster, one in all otherwise), so nothing waits for the
    /// dead letters; then the dead letters (one pipeline to the dead-letter stream, each
    /// command answered on its own) and the XACK of those Redis took. A dead letter Redis
    /// refused stays in `work.dead`, its entry pending. Each list is cleared once Redis
    /// confirmed it, so a retry after a failure does not dead-letter an entry twice.
    ///
    /// # Errors
    /// When Redis cannot be reached or the connection broke: nothing is known of the
    /// commands in flight, and the caller verifies again before a retry.
    pub(super) async fn settle(&self, work: &mut Work) -> conn::Result<()> {
        if work.acks.is_empty() && work.dead.is_empty() {
            return Ok(());
        }
        let mut conn = conn::get(&self.pool).await?;
        if !work.acks.is_empty() {
            self.ack(&mut conn, &work.acks).await?;
            work.acks.clear();
        }
        if work.dead.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for letter in &work.dead {
            let origin = Origin {
                group: &self.settings.group,
                consumer: &self.settings.consumer,
                source_stream: &self.keys[letter.stream],
            };
            dlq::add(&mut pipe, &self.dlq, letter, &origin);
        }
        let answers: Vec<redis::RedisResult<String>> =
            pipe.ignore_errors().query_async(&mut conn).await?;
        let mut refused = Vec::new();
        let mut written = Vec::new();
        for (letter, answer) in std::mem::take(&mut work.dead).into_iter().zip(answers) {
            match answer {
                Ok(_) => written.push(letter),
                Err(error) => refused.push((letter, error)),
            }
        }
        for cause in [Cause::Undecodable, Cause::Rejected, Cause::MaxDeliveries] {
            let letters: Vec<&DeadLetter> = written.iter().filter(|d| d.cause == cause).collect();
            if let Some(first) = letters.first() {
                metrics::counter!(telemetry::DEAD_LETTERED, "reason" => cause.label())
                    .increment(letters.len() as u64);
                warn!(entries = letters.len(), cause = cause.label(), reason = %first.reason,
                    dlq = %self.dlq, "Moved entries to the dead-letter stream.");
            }
        }
        if let Some((_, error)) = refused.first() {
            warn!(entries = refused.len(), dlq = %self.dlq, error = %redline_core::redis::describe(error),
                "Redis refused the dead letters; their entries stay pending and are tried again \
                at this consumer's next re-read.");
        }
        work.dead = refused.into_iter().map(|(letter, _)| letter).collect();
        // Dead-lettered: from now on they only need their XACK.
        let acks: Vec<(usize, EntryId)> = written.into_iter().map(|d| (d.stream, d.id)).collect();
        if !acks.is_empty() {
            if let Err(error) = self.ack(&mut conn, &acks).await {
                // Written but not acked: the retry writes them again (a duplicate at worst).
                work.dead.clear();
                return Err(error);
            }
        }
        Ok(())
    }

    /// XACKs `acks`, one pipeline per partition on a cluster, one in all otherwise.
    async fn ack(
        &self,
        conn: &mut PooledConnection,
        acks: &[(usize, EntryId)],
    ) -> conn::Result<()> {
        let mut pipes = Pipelines::new(conn.is_cluster());
        let mut by_stream: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for (stream, id) in acks {
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
        let acked: Vec<Vec<u64>> = pipes.query(conn).await?;
        metrics::counter!(telemetry::METRICS_ACKED).increment(acked.iter().flatten().sum());
        Ok(())
    }

    /// Resets the idle time of the entries still to write, so no one claims what this live
    /// consumer retries, and sets their delivery count back by the delivery that brought
    /// them (`XCLAIM … 0 id… RETRYCOUNT n-1 JUSTID`): this attempt met an outage, which is
    /// not the entries' fault, and a restart's re-read will count it again.
    pub(super) async fn touch(&self, conn: &mut PooledConnection, work: &Work) -> conn::Result<()> {
        let mut by_stream: BTreeMap<usize, Vec<(&str, Option<u64>)>> = BTreeMap::new();
        for t in &work.todo {
            let before = t.deliveries.map(|d| d.saturating_sub(1));
            by_stream
                .entry(t.stream)
                .or_default()
                .push((t.id.as_str(), before));
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
        Ok(())
    }
}
