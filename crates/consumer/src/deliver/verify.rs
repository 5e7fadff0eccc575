//! Checking a batch against the pending entries list before a retry and after an outage:
//! which entries are still this consumer's, how often each was delivered, and which are due
//! for the dead-letter stream.

use std::collections::HashMap;

use tracing::{info, warn};

use super::work::{letter, route_of, Todo, Work};
use super::{Check, Deliverer, Holding};
use crate::conn;
use crate::dlq::Cause;
use crate::pending;
use crate::sink::Sink;

impl<S: Sink> Deliverer<S> {
    /// Reads ownership and delivery counts from XPENDING and drops entries no longer ours.
    /// [`Check::AfterOutage`] also marks the entries still to write as just delivered and
    /// sets their count back (see [`Self::touch`]). Then dead-letters what was delivered more
    /// than `max_deliveries` times.
    pub(super) async fn verify(&self, work: &mut Work, check: Check) -> conn::Result<()> {
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
        let holding = |stream: usize, id: &str| -> Holding {
            match owned.get(&stream) {
                Some(Some(counts)) => match counts.get(id) {
                    Some(count) => Holding::Ours(*count),
                    None => Holding::Taken,
                },
                _ => Holding::GroupGone,
            }
        };
        let before = work.todo.len() + work.acks.len() + work.dead.len();
        work.todo
            .retain_mut(|t| holding(t.stream, &t.id).keep(&mut t.deliveries));
        work.acks.retain(|(s, id)| holding(*s, id).keep(&mut None));
        work.dead
            .retain_mut(|d| holding(d.stream, &d.id).keep(&mut d.deliveries));
        let gone = before - (work.todo.len() + work.acks.len() + work.dead.len());
        if gone > 0 {
            info!(
                entries = gone,
                "Entries are no longer pending for this consumer \
                (acknowledged, or claimed by another consumer); leaving them to it."
            );
        }
        if check == Check::AfterOutage {
            self.touch(&mut conn, work).await?;
        }
        let max = self.settings.max_deliveries;
        let (over, under): (Vec<Todo>, Vec<Todo>) = std::mem::take(&mut work.todo)
            .into_iter()
            .partition(|t| t.deliveries.is_some_and(|d| d > max));
        work.todo = under;
        for t in over {
            let deliveries = t.deliveries.unwrap_or_default();
            let last = match self.refusals.get(&route_of(&t.entry)) {
                Some(reason) => reason.clone(),
                None => format!("delivered {deliveries} times without being acknowledged"),
            };
            work.dead.push(letter(
                t,
                Cause::MaxDeliveries,
                format!("max deliveries exceeded: {last}"),
            ));
        }
        Ok(())
    }
}
