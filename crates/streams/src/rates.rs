//! Consumer write rates, shared through Redis so that `redline status` and every process's
//! `/metrics` see a group's whole rate: each consumer process reports, every few seconds,
//! what its sink accepted lately and its `--max-write-rate`, in the hash `<stream>:rates`
//! (field `<group>` NUL `<consumer>`, value JSON with an expiry on Redis' clock). A report
//! that has expired is a process that stopped without saying so: ignored, and deleted by the
//! next process that reports.
//!
//! A group's time to drain is its backlog (lag and pending over every partition) at its
//! limit when every process of it has one, else at the rate it writes now.

use redis::aio::ConnectionLike;
use redline_core::keys::StreamKeys;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::status::StreamStatus;
use crate::stream;

/// What one consumer process reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRate {
    /// Its consumer group.
    pub group: String,
    /// Its consumer name (`--consumer`; its workers are `<consumer>-N`).
    pub consumer: String,
    /// Its `--max-write-rate`, entries per second; `None` when unlimited.
    pub limit: Option<u64>,
    /// Entries per second its sink accepted lately.
    pub rate: f64,
    /// Its routing patterns as flags (`every entry` when none): every process of a group
    /// should have the same.
    #[serde(default)]
    pub routing: String,
    /// When the report lapses, in ms on Redis' clock.
    #[serde(default)]
    pub expires_ms: u64,
}

/// A group's write rate and time to drain, summed over the processes that report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRate {
    /// The group.
    pub group: String,
    /// Consumer processes reporting.
    pub processes: u64,
    /// Entries per second the group's sinks accepted lately (rounded).
    pub write_rate: u64,
    /// The sum of the processes' `--max-write-rate`; `None` when one of them has none.
    pub max_write_rate: Option<u64>,
    /// Entries the group has not acknowledged: lag and pending over every partition.
    pub backlog: u64,
    /// Seconds to write the backlog at `max_write_rate`, or at `write_rate` when unlimited;
    /// `None` when neither says (unlimited and idle) or the lag is unknown.
    pub drain_seconds: Option<u64>,
    /// The distinct routings its processes report: more than one means they write
    /// different subsets, and what one skips another writes.
    pub routings: Vec<String>,
}

fn field(group: &str, consumer: &str) -> String {
    format!("{group}\0{consumer}")
}

/// Reports `rate` for `ttl_ms` from now (Redis' clock), and deletes reports that lapsed.
/// Returns the other live reports of the same group.
///
/// # Errors
/// Redis errors (a full Redis refuses the report: it is only for display).
pub async fn publish<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    rate: &ProcessRate,
    ttl_ms: u64,
) -> Result<Vec<ProcessRate>> {
    let key = keys.rates();
    let now = stream::server_time_ms(conn).await?;
    let mut report = rate.clone();
    report.expires_ms = now + ttl_ms;
    let value = serde_json::to_string(&report).unwrap_or_default();
    let mut lapsed = Vec::new();
    let mut peers = Vec::new();
    for (field, report) in all(conn, &key).await? {
        match report {
            Some(r) if r.expires_ms >= now => {
                if r.group == rate.group && r.consumer != rate.consumer {
                    peers.push(r);
                }
            }
            _ => lapsed.push(field),
        }
    }
    let mut pipe = redis::pipe();
    pipe.hset(&key, field(&rate.group, &rate.consumer), value)
        .ignore();
    if !lapsed.is_empty() {
        pipe.hdel(&key, lapsed).ignore();
    }
    pipe.query_async::<()>(conn)
        .await
        .map_err(|e| Error::redis(e, "HSET", &key))?;
    Ok(peers)
}

/// Withdraws the report of `consumer` of `group` (a clean shutdown).
///
/// # Errors
/// Redis errors.
pub async fn withdraw<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    group: &str,
    consumer: &str,
) -> Result<()> {
    let key = keys.rates();
    redis::cmd("HDEL")
        .arg(&key)
        .arg(field(group, consumer))
        .query_async::<()>(conn)
        .await
        .map_err(|e| Error::redis(e, "HDEL", &key))
}

/// Every report in the hash, `None` for a value that is not one.
async fn all<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
) -> Result<Vec<(String, Option<ProcessRate>)>> {
    let fields: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| Error::redis(e, "HGETALL", key))?;
    Ok(fields
        .into_iter()
        .map(|(field, value)| (field, serde_json::from_str(&value).ok()))
        .collect())
}

/// The reports that have not lapsed at `now_ms`.
///
/// # Errors
/// Redis errors.
pub async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    now_ms: u64,
) -> Result<Vec<ProcessRate>> {
    Ok(all(conn, &keys.rates())
        .await?
        .into_iter()
        .filter_map(|(_, r)| r)
        .filter(|r| r.expires_ms >= now_ms)
        .collect())
}

/// Each group's rate and time to drain, for every group on `streams` or in `reports`, by
/// name.
pub fn by_group(streams: &[StreamStatus], reports: &[ProcessRate]) -> Vec<GroupRate> {
    let mut names: Vec<&str> = streams
        .iter()
        .flat_map(|s| s.groups.iter().map(|g| g.name.as_str()))
        .chain(reports.iter().map(|r| r.group.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|group| {
            let mine: Vec<&ProcessRate> = reports.iter().filter(|r| r.group == group).collect();
            let rows = streams
                .iter()
                .flat_map(|s| s.groups.iter().filter(|g| g.name == group));
            let backlog = rows
                .clone()
                .try_fold(0u64, |sum, g| Some(sum + g.pending + g.lag?));
            let write_rate: f64 = mine.iter().map(|r| r.rate).sum();
            let max_write_rate = if mine.is_empty() {
                None
            } else {
                mine.iter().map(|r| r.limit).sum::<Option<u64>>()
            };
            let pace = max_write_rate.map_or(write_rate, |limit| limit as f64);
            let drain_seconds = match backlog {
                Some(0) => Some(0),
                Some(backlog) if pace > 0.0 => Some((backlog as f64 / pace).ceil() as u64),
                _ => None,
            };
            let mut routings: Vec<String> = mine.iter().map(|r| r.routing.clone()).collect();
            routings.sort();
            routings.dedup();
            GroupRate {
                group: group.to_string(),
                routings,
                processes: mine.len() as u64,
                write_rate: write_rate.round() as u64,
                max_write_rate,
                backlog: backlog.unwrap_or_else(|| rows.map(|g| g.pending).sum()),
                drain_seconds,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::GroupStatus;

    fn stream(key: &str, groups: &[(&str, u64, Option<u64>)]) -> StreamStatus {
        StreamStatus {
            key: key.into(),
            exists: true,
            length: 0,
            first_id: None,
            last_id: None,
            last_generated_id: None,
            memory_bytes: None,
            groups: groups
                .iter()
                .map(|(name, pending, lag)| GroupStatus {
                    name: (*name).into(),
                    consumers: 1,
                    pending: *pending,
                    lag: *lag,
                    last_delivered_id: "0-0".into(),
                    entries_read: None,
                    oldest_pending_id: None,
                    oldest_pending_age_ms: None,
                    oldest_pending_idle_ms: None,
                })
                .collect(),
        }
    }

    fn report(group: &str, consumer: &str, limit: Option<u64>, rate: f64) -> ProcessRate {
        ProcessRate {
            group: group.into(),
            consumer: consumer.into(),
            limit,
            rate,
            routing: "every entry".into(),
            expires_ms: 0,
        }
    }

    #[test]
    fn a_group_drains_at_the_sum_of_its_limits_over_every_partition() {
        let streams = [
            stream("m:{0}", &[("a", 5_000, Some(95_000)), ("b", 0, Some(0))]),
            stream("m:{1}", &[("a", 0, Some(100_000)), ("b", 0, None)]),
        ];
        let reports = [
            report("a", "c1", Some(30_000), 29_000.4),
            report("a", "c2", Some(20_000), 20_000.0),
            report("b", "c3", None, 0.0),
        ];
        let rates = by_group(&streams, &reports);
        assert_eq!(rates.len(), 2);
        let a = &rates[0];
        assert_eq!(
            (a.processes, a.write_rate, a.max_write_rate, a.backlog),
            (2, 49_000, Some(50_000), 200_000)
        );
        assert_eq!(a.drain_seconds, Some(4));
        // Lag unknown on one partition: no time to drain.
        let b = &rates[1];
        assert_eq!((b.max_write_rate, b.drain_seconds), (None, None));
        assert_eq!(a.routings, ["every entry"]);
    }

    #[test]
    fn one_unlimited_process_makes_the_group_unlimited_and_it_drains_at_its_rate() {
        let streams = [stream("m", &[("a", 0, Some(10_000))])];
        let reports = [
            report("a", "c1", Some(1_000), 1_000.0),
            report("a", "c2", None, 4_000.0),
        ];
        let a = &by_group(&streams, &reports)[0];
        assert_eq!((a.max_write_rate, a.write_rate), (None, 5_000));
        assert_eq!(a.drain_seconds, Some(2));
        // No report at all: nothing known of its rate; an empty backlog drains in 0 s.
        let idle = &by_group(&[stream("m", &[("x", 0, Some(7))])], &[])[0];
        assert_eq!((idle.processes, idle.drain_seconds), (0, None));
        let done = &by_group(&[stream("m", &[("x", 0, Some(0))])], &[])[0];
        assert_eq!(done.drain_seconds, Some(0));
    }
}

#[cfg(test)]
mod routing {
    use super::*;

    #[test]
    fn processes_of_one_group_that_route_differently_are_listed() {
        let report = |consumer: &str, routing: &str| ProcessRate {
            group: "g".into(),
            consumer: consumer.into(),
            limit: None,
            rate: 0.0,
            routing: routing.into(),
            expires_ms: 0,
        };
        let reports = [
            report("c1", "--include-db a"),
            report("c2", "every entry"),
            report("c3", "--include-db a"),
        ];
        let g = &by_group(&[], &reports)[0];
        assert_eq!(g.routings, ["--include-db a", "every entry"]);
    }
}
