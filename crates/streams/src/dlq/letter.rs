//! The dead-letter format: the fields a dead letter holds, written by [`NewLetter`] and
//! read back by [`DeadLetter`]. The only place that knows them.

use redline_core::entry::{FIELD_DB, FIELD_LP, FIELD_RP};
use serde::Serialize;

use crate::reply::Fields;

/// Dead-letter field: why the entry was dead-lettered.
pub const DLQ_REASON: &str = "reason";
/// Dead-letter field: the id of the entry in the metric stream.
pub const DLQ_SOURCE_ID: &str = "source_id";
/// Dead-letter field: the source stream key.
pub const DLQ_SOURCE_STREAM: &str = "source_stream";
/// Dead-letter field: how many times the entry had been delivered.
pub const DLQ_DELIVERIES: &str = "deliveries";
/// Dead-letter field: the consumer group.
pub const DLQ_GROUP: &str = "group";
/// Dead-letter field: the consumer that gave up.
pub const DLQ_CONSUMER: &str = "consumer";
/// Dead-letter field: when, in Unix milliseconds.
pub const DLQ_FAILED_AT_MS: &str = "failed_at_ms";
/// Dead-letter field: every field of an entry that was not a metric, as a JSON object.
pub const DLQ_RAW: &str = "raw";

/// Longest reason (and `raw`) stored; InfluxDB quotes whole lines in its errors.
const MAX_REASON_LEN: usize = 4096;

/// A dead letter to write: an entry the pipeline gives up on, what it held, and why. Its
/// fields are [`DeadLetter`]'s, which reads it back.
#[derive(Debug, Clone)]
pub struct NewLetter<'a> {
    /// The metric's line (empty when the entry had none).
    pub lp: &'a str,
    /// Its database, when it named one.
    pub db: Option<&'a str>,
    /// Its retention policy, when it named one (so a replay targets the same one).
    pub rp: Option<&'a str>,
    /// Why.
    pub reason: &'a str,
    /// Its id in the metric stream.
    pub source_id: &'a str,
    /// The metric stream it came from.
    pub source_stream: &'a str,
    /// How many times it had been delivered.
    pub deliveries: u64,
    /// The group that gives up.
    pub group: &'a str,
    /// The consumer that gives up.
    pub consumer: &'a str,
    /// For an entry that was not a metric: all its fields, as a JSON object.
    pub raw: Option<&'a str>,
}

impl NewLetter<'_> {
    /// Appends `XADD <dlq> * lp … db … rp … reason … source_id … source_stream …
    /// deliveries … group … consumer … failed_at_ms … [raw …]` to `pipe`; its answer is the
    /// letter's id. The reason and `raw` are cut at 4 KiB.
    pub fn add_to(&self, pipe: &mut redis::Pipeline, dlq: &str) {
        let failed_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let cmd = pipe.cmd("XADD").arg(dlq).arg("*");
        cmd.arg(FIELD_LP).arg(self.lp);
        if let Some(db) = self.db {
            cmd.arg(FIELD_DB).arg(db);
        }
        if let Some(rp) = self.rp {
            cmd.arg(FIELD_RP).arg(rp);
        }
        cmd.arg(DLQ_REASON)
            .arg(truncate(self.reason))
            .arg(DLQ_SOURCE_ID)
            .arg(self.source_id)
            .arg(DLQ_SOURCE_STREAM)
            .arg(self.source_stream)
            .arg(DLQ_DELIVERIES)
            .arg(self.deliveries)
            .arg(DLQ_GROUP)
            .arg(self.group)
            .arg(DLQ_CONSUMER)
            .arg(self.consumer)
            .arg(DLQ_FAILED_AT_MS)
            .arg(failed_at_ms);
        if let Some(raw) = self.raw {
            cmd.arg(DLQ_RAW).arg(truncate(raw));
        }
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

/// One dead letter. Fields a foreign writer left out are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// The metric's line.
    pub lp: Option<String>,
    /// Target database or bucket.
    pub db: Option<String>,
    /// Retention policy.
    pub rp: Option<String>,
    /// Why it was dead-lettered.
    pub reason: Option<String>,
    /// How many times it had been delivered.
    pub deliveries: Option<u64>,
    /// Its id in the metric stream.
    pub source_id: Option<String>,
    /// The metric stream it came from.
    pub source_stream: Option<String>,
    /// The group that gave up on it.
    pub group: Option<String>,
    /// The consumer that gave up on it.
    pub consumer: Option<String>,
    /// When, in Unix milliseconds.
    pub failed_at_ms: Option<u64>,
    /// For an entry that was not a metric: all its fields, as a JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl DeadLetter {
    pub(super) fn decode(id: String, f: &Fields) -> Self {
        Self {
            lp: f.text(FIELD_LP),
            db: f.text(FIELD_DB).filter(|s| !s.is_empty()),
            rp: f.text(FIELD_RP).filter(|s| !s.is_empty()),
            reason: f.text(DLQ_REASON),
            deliveries: f.uint(DLQ_DELIVERIES),
            source_id: f.text(DLQ_SOURCE_ID),
            source_stream: f.text(DLQ_SOURCE_STREAM),
            group: f.text(DLQ_GROUP),
            consumer: f.text(DLQ_CONSUMER),
            failed_at_ms: f.uint(DLQ_FAILED_AT_MS),
            raw: f.text(DLQ_RAW),
            id,
        }
    }
}
