//! What the run prints: the schedule before it starts, the progress line while it runs,
//! and at the end the fault log, the counts, the named differences and one verdict line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::check::Findings;
use crate::drain::GroupState;
use crate::schedule::{Fault, Kind, Target, KINDS};
use crate::workload::{self, Workload};

/// How many differences are named one by one; the rest are counted.
const NAMED: usize = 20;

/// `12345678` as `12,345,678`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `kill-consumer×5 kill-redis×2 …` over `faults`, in [`KINDS`] order.
pub(crate) fn by_kind(faults: &[Fault]) -> String {
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    for f in faults {
        *counts.entry(f.kind).or_default() += 1;
    }
    KINDS
        .iter()
        .filter_map(|k| counts.get(k).map(|n| format!("{k}×{n}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The number of kinds in `faults`.
pub(crate) fn kinds(faults: &[Fault]) -> usize {
    let mut kinds: Vec<Kind> = faults.iter().map(|f| f.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds.len()
}

/// The planned schedule, one fault a line.
pub(crate) fn schedule(faults: &[Fault], consumer_names: &[String]) -> String {
    let mut out = String::new();
    for f in faults {
        let target = match f.target {
            Target::Redis | Target::RedisMemory | Target::RedisWrites => "redis-server".to_string(),
            Target::Influxdb => "influxd".to_string(),
            Target::Producer => "producer".to_string(),
            Target::Consumer(i) => consumer_names.get(i).cloned().unwrap_or_default(),
            Target::Database(i) => workload::DATABASES[i].to_string(),
        };
        let hold = if f.kind == Kind::Poison {
            String::new()
        } else {
            format!(" for {:.1}s", f.hold.as_secs_f64())
        };
        let _ = writeln!(
            out,
            "  #{:<3} {:>6.1}s  {:<17} {target}{hold}",
            f.id,
            f.at.as_secs_f64(),
            f.kind.name()
        );
    }
    out
}

/// The progress line: faults so far, metrics answered 204 (acknowledged by the producer),
/// points in InfluxDB (delivered and acknowledged by the consumers, or about to be), what
/// the group holds pending, dead letters, and the writer's retries. `?` stands for a
/// server that does not answer right now.
pub(crate) fn progress(
    elapsed: Duration,
    faults_started: usize,
    faults: usize,
    acked_lines: u64,
    in_influx: Option<u64>,
    group: Option<&GroupState>,
    retries: &str,
) -> String {
    let unknown = || "?".to_string();
    format!(
        "[{:>5.0}s] faults {faults_started}/{faults} · 204 for {} metrics · in InfluxDB {} · \
         pending {} · dead letters {} · retries {retries}",
        elapsed.as_secs_f64(),
        thousands(acked_lines),
        in_influx.map_or_else(unknown, thousands),
        group.map_or_else(unknown, |g| thousands(g.pending)),
        group.map_or_else(unknown, |g| g.dead_letters.to_string()),
    )
}

/// Points in the workload's measurements of every database, or `None` when InfluxDB does
/// not answer within two seconds (hung, restarting).
pub(crate) async fn points_in_influx(client: &reqwest::Client, url: &str) -> Option<u64> {
    let mut total = 0;
    for db in workload::DATABASES {
        let answer = client
            .post(format!("{url}/query"))
            .form(&[
                ("db", db),
                ("q", "SELECT count(\"v\") FROM \"cpu\", \"mem\""),
            ])
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&answer.bytes().await.ok()?).ok()?;
        for series in json["results"][0]["series"]
            .as_array()
            .into_iter()
            .flatten()
        {
            total += series["values"][0][1].as_u64().unwrap_or(0);
        }
    }
    Some(total)
}

/// The named differences: missing lines grouped by body, then the first points of each
/// kind one by one.
pub(crate) fn differences(findings: &Findings, workload: Workload) -> String {
    let mut out = String::new();
    if !findings.missing.is_empty() {
        let mut bodies: BTreeMap<u64, u64> = BTreeMap::new();
        for &s in &findings.missing {
            *bodies.entry(workload.body_of(s)).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "missing: {} lines answered 204 are not in InfluxDB, from {} bodies:",
            thousands(findings.missing.len() as u64),
            bodies.len()
        );
        for (k, n) in bodies.iter().take(NAMED) {
            let first = k * workload.body_lines;
            let _ = writeln!(
                out,
                "  body {k} (db {}, lines {first}–{}): {n} of {} missing",
                workload.db_of_body(*k),
                first + workload.body_lines - 1,
                workload.body_lines
            );
        }
        if bodies.len() > NAMED {
            let _ = writeln!(out, "  … and {} more bodies", bodies.len() - NAMED);
        }
        for &s in findings.missing.iter().take(NAMED) {
            let series = workload.series_of(s);
            let _ = writeln!(
                out,
                "  missing {series} v={s}i {} (line {s})",
                workload::timestamp(s)
            );
        }
        more(&mut out, findings.missing.len());
    }
    if !findings.wrong.is_empty() {
        let _ = writeln!(out, "wrong value: {} points:", findings.wrong.len());
        for (s, got) in findings.wrong.iter().take(NAMED) {
            let _ = writeln!(
                out,
                "  {} at {} (line {s}): v={got}, sent v={s}i",
                workload.series_of(*s),
                workload::timestamp(*s)
            );
        }
        more(&mut out, findings.wrong.len());
    }
    if !findings.extra.is_empty() {
        let _ = writeln!(out, "extra: {} points nobody sent:", findings.extra.len());
        for e in findings.extra.iter().take(NAMED) {
            let _ = writeln!(out, "  {e}");
        }
        more(&mut out, findings.extra.len());
    }
    if !findings.poison_missing.is_empty() {
        let _ = writeln!(out, "poison points answered 204 but not dead-lettered:");
        for p in &findings.poison_missing {
            let _ = writeln!(out, "  {p}");
        }
    }
    if !findings.unexpected_letters.is_empty() {
        let _ = writeln!(
            out,
            "dead letters that are not an injected poison point: {}",
            findings.unexpected_letters.len()
        );
        for l in findings.unexpected_letters.iter().take(NAMED) {
            let _ = writeln!(out, "  {l}");
        }
        more(&mut out, findings.unexpected_letters.len());
    }
    out
}

fn more(out: &mut String, total: usize) {
    if total > NAMED {
        let _ = writeln!(out, "  … and {} more", thousands((total - NAMED) as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn missing_lines_are_named_with_their_body_and_series() {
        let w = Workload { body_lines: 5000 };
        let findings = Findings {
            missing: (5000..10_000).collect(),
            ..Findings::default()
        };
        let text = differences(&findings, w);
        assert!(text.contains("body 1 (db chaos1, lines 5000–9999): 5000 of 5000 missing"));
        assert!(text.contains(
            "missing chaos1: cpu,host=h04,region=eu-west v=5000i 1600000000005000000 (line 5000)"
        ));
        assert!(text.contains("… and 4,980 more"));
    }
}
