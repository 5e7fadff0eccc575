//! `redline pending`: what each consumer holds unacknowledged, and the entries themselves.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redline_core::entry::FIELD_LP;
use redline_core::keys::StreamKeys;
use serde::Serialize;

use crate::error::Result;
use crate::stream::{self, PendingQuery};

/// Which pending entries to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFilter {
    /// Only this group (it must exist on every partition); `None`: every group.
    pub group: Option<String>,
    /// Only this consumer.
    pub consumer: Option<String>,
    /// Only entries not delivered for at least this long.
    pub min_idle: Option<Duration>,
    /// At most this many entries in the report (over all partitions and groups).
    pub count: usize,
    /// Also fetch each entry's line (`XRANGE id id`).
    pub show: bool,
}

impl Default for PendingFilter {
    fn default() -> Self {
        Self {
            group: None,
            consumer: None,
            min_idle: None,
            count: 100,
            show: false,
        }
    }
}

/// Pending entries, summarised per consumer and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingReport {
    /// What each consumer holds (every pending entry, whatever `min_idle`).
    pub consumers: Vec<ConsumerPending>,
    /// The entries matching the filter, lowest ids first per stream and group; this array
    /// is what `redline pending --json` prints.
    pub entries: Vec<PendingEntry>,
    /// True when `count` cut the list short: more entries match the filter.
    pub more: bool,
}

/// One consumer's pending entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerPending {
    /// The stream key.
    pub stream: String,
    /// The group.
    pub group: String,
    /// The consumer.
    pub consumer: String,
    /// How many entries it holds.
    pub pending: u64,
    /// Its lowest pending id.
    pub oldest_id: Option<String>,
    /// Since when that entry was last delivered, in ms.
    pub oldest_idle_ms: Option<u64>,
}

/// One pending entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingEntry {
    /// The entry id.
    pub id: String,
    /// The stream key.
    pub stream: String,
    /// The group.
    pub group: String,
    /// The consumer holding it.
    pub consumer: String,
    /// Milliseconds since it was last delivered.
    pub idle_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// The line, with `show`; absent without it, or when the entry was deleted meanwhile
    /// or has no `lp` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lp: Option<String>,
}

/// Lists pending entries per `filter` over every partition of `keys`.
///
/// # Errors
/// [`crate::Error::NoSuchGroup`] when `filter.group` is missing on a partition; Redis errors.
pub async fn pending<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    filter: &PendingFilter,
) -> Result<PendingReport> {
    let mut report = PendingReport {
        consumers: Vec::new(),
        entries: Vec::new(),
        more: false,
    };
    let min_idle_ms = filter.min_idle.map(saturating_ms);
    let consumer = filter.consumer.as_deref();
    for key in keys.partitions() {
        for group in stream::select_groups(conn, key, filter.group.as_deref()).await? {
            if group.pending == 0 {
                continue;
            }
            summarise(conn, key, &group.name, consumer, &mut report).await?;
            let remaining = filter.count - report.entries.len().min(filter.count);
            // Ask for one more than fits, to know whether the list is complete.
            let query = PendingQuery {
                min_idle_ms,
                count: remaining + 1,
                consumer,
            };
            let mut rows = stream::pending_entries(conn, key, &group.name, query).await?;
            if rows.len() > remaining {
                report.more = true;
                rows.truncate(remaining);
            }
            for row in rows {
                let lp = if filter.show {
                    let fields = stream::entry(conn, key, &row.id).await?;
                    fields.and_then(|f| f.text(FIELD_LP))
                } else {
                    None
                };
                report.entries.push(PendingEntry {
                    id: row.id,
                    stream: key.clone(),
                    group: group.name.clone(),
                    consumer: row.consumer,
                    idle_ms: row.idle_ms,
                    deliveries: row.deliveries,
                    lp,
                });
            }
        }
    }
    Ok(report)
}

/// Adds a [`ConsumerPending`] per consumer of `group` holding entries (or just `only`).
async fn summarise<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
    only: Option<&str>,
    report: &mut PendingReport,
) -> Result<()> {
    let summary = stream::pending_summary(conn, key, group).await?;
    for (consumer, pending) in summary.consumers {
        if only.is_some_and(|only| only != consumer) {
            continue;
        }
        let query = PendingQuery {
            min_idle_ms: None,
            count: 1,
            consumer: Some(&consumer),
        };
        let oldest = stream::pending_entries(conn, key, group, query).await?;
        let oldest = oldest.into_iter().next();
        report.consumers.push(ConsumerPending {
            stream: key.to_string(),
            group: group.to_string(),
            oldest_id: oldest.as_ref().map(|p| p.id.clone()),
            oldest_idle_ms: oldest.map(|p| p.idle_ms),
            consumer,
            pending,
        });
    }
    Ok(())
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn saturating_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
