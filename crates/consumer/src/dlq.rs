//! Dead letters: entries the pipeline gives up on, kept with their reason in
//! `<stream>:dlq` for `redline dlq list / replay / purge`.
//!
//! An entry is dead-lettered when it does not decode as a metric, when the sink rejected
//! it for good, or when it was delivered more than `max_deliveries` times. This module
//! builds the `XADD`; [`crate::deliver`] XACKs the source entry only after Redis confirmed
//! it (two steps, as the dead-letter stream and the partitions are different Redis Cluster
//! slots), so an entry is never acked without its dead letter; a crash between the steps
//! can dead-letter it twice.

use redline_streams::NewLetter;

use crate::entry_id::EntryId;

/// Why an entry was dead-lettered, as the `reason` label of the dead-letter counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Not a redline metric.
    Undecodable,
    /// The sink refused it for good.
    Rejected,
    /// Delivered more than `max_deliveries` times.
    MaxDeliveries,
}

impl Cause {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::Rejected => "rejected",
            Self::MaxDeliveries => "max_deliveries",
        }
    }
}

/// One entry on its way to the dead-letter stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeadLetter {
    /// Index of the source stream in the partition keys.
    pub(crate) stream: usize,
    /// The source entry id.
    pub(crate) id: EntryId,
    /// The line (empty when the entry had none).
    pub(crate) lp: String,
    /// Its database, when it named one.
    pub(crate) db: Option<String>,
    /// Its retention policy, when it named one (kept so a replay targets the same one).
    pub(crate) rp: Option<String>,
    /// Why.
    pub(crate) reason: String,
    /// The kind of why.
    pub(crate) cause: Cause,
    /// Its delivery count, when known.
    pub(crate) deliveries: Option<u64>,
    /// Every field of an entry that was not a metric, as a JSON object.
    pub(crate) raw: Option<String>,
}

/// Who gives up: the group, the consumer, and the source stream's key.
pub(crate) struct Origin<'a> {
    pub(crate) group: &'a str,
    pub(crate) consumer: &'a str,
    pub(crate) source_stream: &'a str,
}

/// Appends the dead letter's `XADD` to `pipe` (the format is `redline_streams::dlq`'s); its
/// answer is the letter's id.
pub(crate) fn add(pipe: &mut redis::Pipeline, dlq: &str, letter: &DeadLetter, origin: &Origin<'_>) {
    NewLetter {
        lp: &letter.lp,
        db: letter.db.as_deref(),
        rp: letter.rp.as_deref(),
        reason: &letter.reason,
        source_id: &letter.id,
        source_stream: origin.source_stream,
        deliveries: letter.deliveries.unwrap_or(1),
        group: origin.group,
        consumer: origin.consumer,
        raw: letter.raw.as_deref(),
    }
    .add_to(pipe, dlq);
}

#[cfg(test)]
mod tests {
    use super::Cause;

    /// The `reason` labels of `redline_metrics_dead_lettered_total`, as the README documents
    /// them (dashboards and alerts select on them).
    #[test]
    fn causes_are_labelled_as_the_readme_documents() {
        assert_eq!(Cause::Undecodable.label(), "undecodable");
        assert_eq!(Cause::Rejected.label(), "rejected");
        assert_eq!(Cause::MaxDeliveries.label(), "max_deliveries");
    }
}
