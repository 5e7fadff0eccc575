//! The check after the drain: InfluxDB against the ledger, series by series, and the
//! dead-letter stream against the poison points.
//!
//! - every line answered 204 is in InfluxDB at its timestamp with its value (`v` = its
//!   number); a line that is not is *missing*, one with another value is *wrong*;
//! - nothing else is there: a point no line was sent for (another timestamp, series,
//!   measurement or database, a poison point) is *extra*. Lines of a body that was sent but
//!   never answered 204 may or may not be there (a 503 after a partial store), and are
//!   only counted. A series key without any point is not data: InfluxDB 1.6 indexes the
//!   series of a point it rejects for a field type conflict (until it restarts);
//! - the dead-letter stream holds every poison point answered 204, each for its field type
//!   conflict, and nothing else (the same poison twice is allowed: a client retry after a
//!   503 can store it twice).

use std::collections::{BTreeMap, BTreeSet};

use redis::streams::StreamRangeReply;
use redline_testkit::InfluxServer;
use serde_json::Value;

use crate::drain::DLQ;
use crate::workload::{self, Series, Workload, DATABASES, HOSTS, MEASUREMENTS};
use crate::writer::PoisonPoint;

/// Rows per InfluxDB query page.
const PAGE: usize = 50_000;

/// What the check found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Lines answered 204.
    pub(crate) expected: u64,
    /// Workload points found in InfluxDB.
    pub(crate) found: u64,
    /// Lines answered 204 and not in InfluxDB, by number.
    pub(crate) missing: Vec<u64>,
    /// Lines in InfluxDB with another value: (number, the value found).
    pub(crate) wrong: Vec<(u64, String)>,
    /// Points nobody sent, described.
    pub(crate) extra: Vec<String>,
    /// Series InfluxDB indexed without a point (a poison point's series), noted only.
    pub(crate) empty_series: Vec<String>,
    /// Points of bodies sent but never answered 204 that are in InfluxDB.
    pub(crate) unconfirmed_found: u64,
    /// Poison points answered 204.
    pub(crate) poison_expected: usize,
    /// Poison points answered 204 that are not in the dead-letter stream.
    pub(crate) poison_missing: Vec<String>,
    /// Dead letters that are not a poison point that was sent: line and reason.
    pub(crate) unexpected_letters: Vec<String>,
    /// Entries in the dead-letter stream.
    pub(crate) dead_letters: usize,
}

impl Findings {
    /// Whether InfluxDB and the dead-letter stream hold exactly what they should.
    pub(crate) fn exact(&self) -> bool {
        self.missing.is_empty()
            && self.wrong.is_empty()
            && self.extra.is_empty()
            && self.poison_missing.is_empty()
            && self.unexpected_letters.is_empty()
    }
}

/// Compares InfluxDB with the bodies `acked` (answered 204) and `unconfirmed` (sent, no
/// 204), and the dead-letter stream with the `poison` points answered 204 and sent.
pub(crate) async fn run(
    influx: &InfluxServer,
    redis_url: &str,
    workload: Workload,
    acked: &BTreeSet<u64>,
    unconfirmed: &BTreeSet<u64>,
    poison: &[PoisonPoint],
    poison_unconfirmed: &[PoisonPoint],
) -> Findings {
    let mut findings = Findings {
        expected: acked.len() as u64 * workload.body_lines,
        ..Findings::default()
    };
    for series in workload.all_series() {
        check_series(influx, workload, &series, acked, unconfirmed, &mut findings).await;
    }
    extra_series(influx, workload, &mut findings).await;
    check_dead_letters(redis_url, poison, poison_unconfirmed, &mut findings);
    findings.missing.sort_unstable();
    findings
}

/// The numbers of the lines of `series` in body `k`: line `s` is in measurement `s % 2`
/// and on host `s / 2 % 8`, so those of one series are 16 apart.
fn seqs_in(workload: Workload, k: u64, series: &Series) -> impl Iterator<Item = u64> {
    let m = MEASUREMENTS
        .iter()
        .position(|m| *m == series.measurement)
        .unwrap_or(0) as u64;
    let h: u64 = series.host[1..].parse().unwrap_or(0);
    let period = MEASUREMENTS.len() as u64 * HOSTS;
    let residue = h * MEASUREMENTS.len() as u64 + m;
    let first = k * workload.body_lines;
    let start = first + (residue + period - first % period) % period;
    // Another database's body holds none of them.
    let end = if workload.db_of_body(k) == series.db {
        first + workload.body_lines
    } else {
        start
    };
    (start..end).step_by(period as usize)
}

async fn check_series(
    influx: &InfluxServer,
    workload: Workload,
    series: &Series,
    acked: &BTreeSet<u64>,
    unconfirmed: &BTreeSet<u64>,
    findings: &mut Findings,
) {
    let mut stored = points(influx, series).await;
    let of_db = |k: &&u64| workload.db_of_body(**k) == series.db;
    for &k in acked.iter().filter(of_db) {
        for s in seqs_in(workload, k, series) {
            match stored.remove(&workload::timestamp(s)) {
                None => findings.missing.push(s),
                Some(v) if v == s => findings.found += 1,
                Some(v) => findings.wrong.push((s, v.to_string())),
            }
        }
    }
    for &k in unconfirmed.iter().filter(of_db) {
        for s in seqs_in(workload, k, series) {
            if stored.remove(&workload::timestamp(s)).is_some() {
                findings.unconfirmed_found += 1;
            }
        }
    }
    for (ts, v) in stored {
        let from = match workload::seq_of(ts) {
            Some(s) => format!(" (line {s}, body {}, never sent)", workload.body_of(s)),
            None => " (no line has this timestamp)".to_string(),
        };
        findings.extra.push(format!("{series} v={v} {ts}{from}"));
    }
}

/// Every point of `series`: timestamp → `v`, page by page.
async fn points(influx: &InfluxServer, series: &Series) -> BTreeMap<i64, Value> {
    let mut all = BTreeMap::new();
    let mut from = 0i64;
    loop {
        let query = format!(
            "SELECT \"v\" FROM \"{}\" WHERE \"host\" = '{}' AND time >= {from} \
             ORDER BY time ASC LIMIT {PAGE}",
            series.measurement, series.host
        );
        let rows = rows(influx, &series.db, &query).await;
        let n = rows.len();
        for row in rows {
            if let Some(ts) = row.first().and_then(Value::as_i64) {
                all.insert(ts, row.get(1).cloned().unwrap_or(Value::Null));
                from = ts + 1;
            }
        }
        if n < PAGE {
            return all;
        }
    }
}

/// The rows of the first series of the answer to `query` on `db` (none when the database
/// or series does not exist).
///
/// # Panics
/// If InfluxDB answers another error: the check cannot be trusted then.
async fn rows(influx: &InfluxServer, db: &str, query: &str) -> Vec<Vec<Value>> {
    let answer = influx.query(db, query).await;
    let error = answer["error"]
        .as_str()
        .or_else(|| answer["results"][0]["error"].as_str());
    if let Some(error) = error {
        assert!(
            error.starts_with("database not found"),
            "InfluxDB refused `{query}` on {db}: {error}"
        );
        return Vec::new();
    }
    let mut rows = Vec::new();
    for series in answer["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for row in series["values"].as_array().into_iter().flatten() {
            rows.push(row.as_array().cloned().unwrap_or_default());
        }
    }
    rows
}

/// Databases and series the workload never wrote, with up to 20 of their points each.
async fn extra_series(influx: &InfluxServer, workload: Workload, findings: &mut Findings) {
    for row in rows(influx, DATABASES[0], "SHOW DATABASES").await {
        let db = row.first().and_then(Value::as_str).unwrap_or_default();
        if !DATABASES.contains(&db) && db != "_internal" {
            findings
                .extra
                .push(format!("database {db} (never written)"));
        }
    }
    let known: BTreeSet<String> = workload
        .all_series()
        .iter()
        .map(|s| format!("{},host={},region=eu-west", s.measurement, s.host))
        .collect();
    for db in DATABASES {
        for row in rows(influx, db, "SHOW SERIES").await {
            let key = row.first().and_then(Value::as_str).unwrap_or_default();
            if known.contains(key) {
                continue;
            }
            let measurement = key.split(',').next().unwrap_or_default();
            let filter = key
                .split(',')
                .skip(1)
                .filter_map(|tag| tag.split_once('='))
                .map(|(k, v)| format!("\"{k}\" = '{v}'"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let filter = if filter.is_empty() {
                String::new()
            } else {
                format!(" WHERE {filter}")
            };
            let query = format!("SELECT * FROM \"{measurement}\"{filter} LIMIT 20");
            let points = rows(influx, db, &query).await;
            if points.is_empty() {
                // InfluxDB 1.6 indexes the series of a point it then rejects (a field
                // type conflict): a key with no point is not data.
                findings.empty_series.push(format!("{db}: {key}"));
            }
            for point in points {
                let values: Vec<String> = point.iter().map(Value::to_string).collect();
                findings
                    .extra
                    .push(format!("{db}: {key} [{}] (never sent)", values.join(", ")));
            }
        }
    }
}

/// The dead-letter stream against the poison points.
fn check_dead_letters(
    redis_url: &str,
    poison: &[PoisonPoint],
    poison_unconfirmed: &[PoisonPoint],
    findings: &mut Findings,
) {
    findings.poison_expected = poison.len();
    let letters: StreamRangeReply = match crate::stack::redis_conn(redis_url).and_then(|mut c| {
        redis::cmd("XRANGE")
            .arg(DLQ)
            .arg("-")
            .arg("+")
            .query(&mut c)
    }) {
        Ok(letters) => letters,
        Err(error) => {
            findings
                .unexpected_letters
                .push(format!("cannot read {DLQ}: {error}"));
            return;
        }
    };
    findings.dead_letters = letters.ids.len();
    let canonical = |list: &[PoisonPoint]| -> BTreeSet<PoisonPoint> {
        list.iter()
            .map(|(db, line)| (db.clone(), workload::canonical(line)))
            .collect()
    };
    let sent = canonical(poison);
    let maybe = canonical(poison_unconfirmed);
    let mut seen = BTreeSet::new();
    for letter in &letters.ids {
        let lp: String = letter.get("lp").unwrap_or_default();
        let db: String = letter.get("db").unwrap_or_default();
        let reason: String = letter.get("reason").unwrap_or_default();
        let key = (db.clone(), lp.clone());
        let poison = sent.contains(&key) || maybe.contains(&key);
        if poison && reason.contains("field type conflict") {
            seen.insert(key);
        } else if poison {
            // The right point for the wrong reason: e.g. `--max-deliveries` reached because
            // an outage was counted as deliveries.
            findings.unexpected_letters.push(format!(
                "{} db={db} `{lp}`: dead-lettered for another reason than its type conflict: {reason}",
                letter.id
            ));
        } else {
            findings
                .unexpected_letters
                .push(format!("{} db={db} `{lp}`: {reason}", letter.id));
        }
    }
    for (db, lp) in sent.difference(&seen) {
        findings.poison_missing.push(format!("db={db} `{lp}`"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_of_a_series_in_a_body_are_found_by_their_numbers() {
        let w = Workload { body_lines: 5000 };
        for k in [0, 1, 7] {
            for series in w.all_series() {
                let fast: Vec<u64> = seqs_in(w, k, &series).collect();
                let slow: Vec<u64> = (k * 5000..(k + 1) * 5000)
                    .filter(|&s| w.series_of(s) == series)
                    .collect();
                assert_eq!(fast, slow, "body {k}, {series}");
            }
        }
    }
}
