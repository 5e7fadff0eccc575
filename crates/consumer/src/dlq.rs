//! Dead letters: entries the pipeline gives up on, kept with their reason in
//! `<stream>:dlq` for `redline dlq list / replay / purge`.
//!
//! An entry is dead-lettered when it does not decode as a metric, when the sink rejected
//! it for good, or when it was delivered more than `max_deliveries` times. This module
//! builds the `XADD`; [`crate::deliver`] XACKs the source entry only after Redis confirmed
//! it (two steps, as the dead-letter stream and the partitions are different Redis Cluster
//! slots), so an entry is never acked without its dead letter; a crash between the steps
//! can dead-letter it twice.

use std::time::{SystemTime, UNIX_EPOCH};

use redline_core::entry;

/// Longest reason stored; InfluxDB quotes whole lines in its errors.
const MAX_REASON_LEN: usize = 4096;

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
    pub(crate) id: String,
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

/// Appends `XADD <dlq> * lp … db … rp … reason … source_id … source_stream … deliveries …
/// group … consumer … failed_at_ms … [raw …]` to `pipe`; its reply is the letter's id.
pub(crate) fn add(pipe: &mut redis::Pipeline, dlq: &str, letter: &DeadLetter, origin: &Origin<'_>) {
    let failed_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let cmd = pipe.cmd("XADD").arg(dlq).arg("*");
    cmd.arg(entry::FIELD_LP).arg(&letter.lp);
    if let Some(db) = &letter.db {
        cmd.arg(entry::FIELD_DB).arg(db);
    }
    if let Some(rp) = &letter.rp {
        cmd.arg(entry::FIELD_RP).arg(rp);
    }
    cmd.arg(entry::DLQ_REASON)
        .arg(truncate(&letter.reason))
        .arg(entry::DLQ_SOURCE_ID)
        .arg(&letter.id)
        .arg(entry::DLQ_SOURCE_STREAM)
        .arg(origin.source_stream)
        .arg(entry::DLQ_DELIVERIES)
        .arg(letter.deliveries.unwrap_or(1))
        .arg(entry::DLQ_GROUP)
        .arg(origin.group)
        .arg(entry::DLQ_CONSUMER)
        .arg(origin.consumer)
        .arg(entry::DLQ_FAILED_AT_MS)
        .arg(failed_at_ms);
    if let Some(raw) = &letter.raw {
        cmd.arg(entry::DLQ_RAW).arg(truncate(raw));
    }
}

fn truncate(text: &str) -> &str {
    if text.len() <= MAX_REASON_LEN {
        return text;
    }
    let mut end = MAX_REASON_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
