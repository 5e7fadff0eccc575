//! The workload: numbered lines whose database, series, timestamp and value all follow from
//! their number, so the check can tell for any point in InfluxDB which line it came from.
//!
//! Line `s` (its sequence number) belongs to body `s / body_lines`; body `k` is written to
//! database `DATABASES[k % 3]`, like a Telegraf output per database. Within a body the lines
//! cycle over the measurements and hosts, so every body touches every series of its
//! database. The timestamp is `BASE_NS + s µs` and the integer field `v` is `s` itself.
//!
//! Poison points share measurement `cpu` and field `v` but carry a string, in the same
//! week as the workload (InfluxDB 1.x checks field types per shard, and shards are a week
//! long): once `v` is an integer in that shard, InfluxDB rejects them with
//! `field type conflict`, and only they may reach the dead-letter stream.

use std::fmt::Write as _;

use redline_core::line::{self, Precision};

/// The databases written, one per body in turn.
pub(crate) const DATABASES: [&str; 3] = ["chaos0", "chaos1", "chaos2"];

/// The measurements, one per line in turn.
pub(crate) const MEASUREMENTS: [&str; 2] = ["cpu", "mem"];

/// Hosts per measurement: series per database = measurements × hosts.
pub(crate) const HOSTS: u64 = 8;

/// The tag every line carries besides `host`.
const REGION: &str = "eu-west";

/// The host tag of poison points (no workload line has it).
pub(crate) const POISON_HOST: &str = "poison";

/// Timestamp of line 0: 2020-09-13T12:26:40Z, three and a half days before its shard (the
/// week from 2020-09-10) ends, so an hour at 80,000 lines per second stays inside it.
pub(crate) const BASE_NS: i64 = 1_600_000_000_000_000_000;

/// Nanoseconds between line `s` and line `s + 1`.
pub(crate) const STEP_NS: i64 = 1_000;

/// A series: database, measurement and host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Series {
    /// The database.
    pub(crate) db: String,
    /// The measurement.
    pub(crate) measurement: String,
    /// The `host` tag.
    pub(crate) host: String,
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {},host={},region={REGION}",
            self.db, self.measurement, self.host
        )
    }
}

/// How the lines are cut into bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Workload {
    /// Lines per request body.
    pub(crate) body_lines: u64,
}

impl Workload {
    /// The database of body `k`.
    pub(crate) fn db_of_body(&self, k: u64) -> &'static str {
        DATABASES[(k % DATABASES.len() as u64) as usize]
    }

    /// The body holding line `s`.
    pub(crate) fn body_of(&self, s: u64) -> u64 {
        s / self.body_lines
    }

    /// The series of line `s`.
    pub(crate) fn series_of(&self, s: u64) -> Series {
        Series {
            db: self.db_of_body(self.body_of(s)).to_string(),
            measurement: MEASUREMENTS[(s % MEASUREMENTS.len() as u64) as usize].to_string(),
            host: host_name(s / MEASUREMENTS.len() as u64 % HOSTS),
        }
    }

    /// Every series the workload writes.
    pub(crate) fn all_series(&self) -> Vec<Series> {
        let mut all = Vec::new();
        for db in DATABASES {
            for measurement in MEASUREMENTS {
                for host in 0..HOSTS {
                    all.push(Series {
                        db: db.to_string(),
                        measurement: measurement.to_string(),
                        host: host_name(host),
                    });
                }
            }
        }
        all
    }

    /// Body `k` as sent: `body_lines` lines, each ending in `\n`.
    pub(crate) fn body(&self, k: u64) -> String {
        let first = k * self.body_lines;
        let mut text = String::with_capacity(self.body_lines as usize * 72);
        for s in first..first + self.body_lines {
            let series = self.series_of(s);
            // Writing into a String cannot fail.
            let _ = writeln!(
                text,
                "{},host={},region={REGION} v={s}i,u={}.{} {}",
                series.measurement,
                series.host,
                s % 100,
                s % 10,
                timestamp(s)
            );
        }
        text
    }
}

/// The host tag of host number `h`.
fn host_name(h: u64) -> String {
    format!("h{h:02}")
}

/// The timestamp of line `s`, in ns.
pub(crate) fn timestamp(s: u64) -> i64 {
    BASE_NS + s as i64 * STEP_NS
}

/// The line whose timestamp is `ns`, if any.
pub(crate) fn seq_of(ns: i64) -> Option<u64> {
    let offset = ns.checked_sub(BASE_NS)?;
    (offset >= 0 && offset % STEP_NS == 0).then_some((offset / STEP_NS) as u64)
}

/// Poison point `n` in database `db`, as sent: `v` is a string where the workload has an
/// integer; the timestamp lies before line 0, in the same shard.
pub(crate) fn poison_line(n: u64) -> String {
    format!(
        "cpu,host={POISON_HOST},region={REGION} v=\"poison-{n}\" {}",
        BASE_NS - (n as i64 + 1) * STEP_NS
    )
}

/// `text` as the producer stores it (the entry's `lp` field): parsed and normalised by
/// `redline_core::line`, so the dead-letter check compares like with like.
///
/// # Panics
/// If `text` is not one valid line (the harness's own lines always are).
pub(crate) fn canonical(text: &str) -> String {
    let parsed = line::parse(text, Precision::Nanoseconds, 0);
    assert!(
        parsed.first_error.is_none() && parsed.len() == 1,
        "the harness's line must parse as one metric: {text}"
    );
    parsed.metric(0).line().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_follows_from_its_number() {
        let w = Workload { body_lines: 10 };
        let body = w.body(3);
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 10);
        assert_eq!(w.db_of_body(3), "chaos0");
        assert_eq!(
            lines[1],
            "mem,host=h07,region=eu-west v=31i,u=31.1 1600000000000031000"
        );
        assert_eq!(seq_of(timestamp(31)), Some(31));
        assert_eq!(seq_of(BASE_NS - STEP_NS), None);
        assert_eq!(
            w.series_of(31).to_string(),
            "chaos0: mem,host=h07,region=eu-west"
        );
        assert_eq!(w.all_series().len(), 3 * 2 * 8);
        // What is sent is what is stored.
        assert_eq!(canonical(lines[1]), lines[1]);
        assert_eq!(canonical(&poison_line(0)), poison_line(0));
    }

    #[test]
    fn a_body_covers_every_series_of_its_database() {
        let w = Workload { body_lines: 5000 };
        let series: std::collections::BTreeSet<Series> =
            (5000..10_000).map(|s| w.series_of(s)).collect();
        assert_eq!(series.len(), 16);
        assert!(series.iter().all(|s| s.db == "chaos1"));
    }
}
