//! A batch in delivery: the entries still to write, and the fates decided for the others
//! that wait for Redis to record them.

use std::collections::BTreeMap;

use redline_core::entry::Entry;

use crate::batch::{Body, Invalid, Message};
use crate::dlq::{Cause, DeadLetter};
use crate::entry_id::EntryId;

/// An entry still to be written.
#[derive(Debug)]
pub(super) struct Todo {
    pub(super) stream: usize,
    pub(super) id: EntryId,
    pub(super) entry: Entry,
    /// Deliveries so far, this one included; `None` while only XPENDING knows (a re-read
    /// or claimed entry before it was verified, or a group that is gone).
    pub(super) deliveries: Option<u64>,
}

/// A batch in delivery: what is still to write and what waits for Redis to record it.
#[derive(Debug, Default)]
pub(super) struct Work {
    pub(super) todo: Vec<Todo>,
    /// Accepted (or deleted) entries, to XACK.
    pub(super) acks: Vec<(usize, EntryId)>,
    /// To XADD to the dead-letter stream, then (once Redis confirmed that) to XACK.
    pub(super) dead: Vec<DeadLetter>,
}

impl Work {
    pub(super) fn new(batch: Vec<Message>) -> Self {
        // Nearly every entry of a batch is a metric: sized once, not grown by doubling (a
        // batch of 5,000 is most of a MiB of `Todo`s, and each growth copies and faults it).
        let mut work = Self {
            todo: Vec::with_capacity(batch.len()),
            ..Self::default()
        };
        for message in batch {
            let (stream, id, deliveries) = (message.stream, message.id, message.deliveries);
            match message.body {
                Body::Metric(entry) => work.todo.push(Todo {
                    stream,
                    id,
                    entry,
                    deliveries,
                }),
                Body::Invalid(invalid) => {
                    let Invalid {
                        error,
                        lp,
                        db,
                        rp,
                        raw,
                    } = *invalid;
                    work.dead.push(DeadLetter {
                        stream,
                        id,
                        lp: lp.unwrap_or_default(),
                        db,
                        rp,
                        reason: format!("undecodable entry: {error}"),
                        cause: Cause::Undecodable,
                        deliveries,
                        raw: Some(raw),
                    });
                }
                Body::Deleted => work.acks.push((stream, id)),
            }
        }
        work
    }

    /// True when every delivery count is known from the read itself (a first delivery).
    pub(super) fn counts_known(&self) -> bool {
        self.acks.is_empty()
            && self.todo.iter().all(|t| t.deliveries.is_some())
            && self.dead.iter().all(|d| d.deliveries.is_some())
    }

    /// Every id by stream.
    pub(super) fn ids(&self) -> BTreeMap<usize, Vec<&str>> {
        let mut ids: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        let all = self.todo.iter().map(|t| (t.stream, t.id.as_str()));
        let all = all.chain(self.acks.iter().map(|(s, id)| (*s, id.as_str())));
        let all = all.chain(self.dead.iter().map(|d| (d.stream, d.id.as_str())));
        for (stream, id) in all {
            ids.entry(stream).or_default().push(id);
        }
        ids
    }
}

/// What became of one entry in one attempt.
#[derive(Debug, Clone)]
pub(super) enum Fate {
    /// Not written: an outage came first.
    Unwritten,
    /// The sink took it.
    Accepted,
    /// The sink refused the point for good: dead-letter it with this reason.
    Rejected(String),
    /// The sink refused its route: counted; dead-lettered at `max_deliveries`.
    Refused(String),
    /// The sink refused the credentials for its route: a refusal of the route if another
    /// route of the attempt was answered, else an outage.
    Unauthorized(String),
}

/// A route as a map key: (database, retention policy) as the entry names them.
pub(super) type RouteKey = (Option<String>, Option<String>);

/// Indexes of `todo` grouped by route, in order of first appearance.
pub(super) fn routes(todo: &[Todo]) -> Vec<Vec<usize>> {
    let mut routes: Vec<(&Option<String>, &Option<String>, Vec<usize>)> = Vec::new();
    for (i, t) in todo.iter().enumerate() {
        let (db, rp) = (&t.entry.db, &t.entry.rp);
        match routes.iter_mut().find(|(d, r, _)| *d == db && *r == rp) {
            Some((_, _, indexes)) => indexes.push(i),
            None => routes.push((db, rp, vec![i])),
        }
    }
    routes.into_iter().map(|(_, _, indexes)| indexes).collect()
}

/// The route of an entry.
pub(super) fn route_of(entry: &Entry) -> RouteKey {
    (entry.db.clone(), entry.rp.clone())
}

pub(super) fn letter(t: Todo, cause: Cause, reason: String) -> DeadLetter {
    DeadLetter {
        stream: t.stream,
        id: t.id,
        lp: t.entry.lp,
        db: t.entry.db,
        rp: t.entry.rp,
        reason,
        cause,
        deliveries: t.deliveries,
        raw: None,
    }
}
