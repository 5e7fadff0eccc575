//! The workload: Telegraf-like `cpu` lines of about 150 bytes once normalised, every one with
//! its own timestamp (so InfluxDB stores every point, none overwrites another), spread over
//! 800 series, and request bodies made of them.

use std::fmt::Write as _;

use redline_core::line::{self, Precision};

/// Timestamp of line 0, in ns (2023-11-14); line `i` is `i` µs later.
const BASE_NS: u64 = 1_700_000_000_000_000_000;

/// The database every request names (`/write?db=bench`); stored in each entry's `db` field.
pub(crate) const DB: &str = "bench";

/// The measurement of every line, for counting points in InfluxDB.
pub(crate) const MEASUREMENT: &str = "cpu";

/// One request body: line protocol and how many lines it holds.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    /// The bytes sent as the request body.
    pub(crate) bytes: Vec<u8>,
    /// Lines in it (each one metric).
    pub(crate) lines: u64,
}

/// Appends line `i` of the workload, with its `\n`.
pub(crate) fn push_line(out: &mut String, i: u64) {
    let (host, cpu) = (i % 100, i % 8);
    let v = i % 100_000;
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "cpu,cpu=cpu{cpu},host=web-host-{host:03}.example.net,region=eu-west-1 \
         usage_user={}.{:03},usage_system={}.{:02},usage_idle={}.{:03},usage_iowait=0.{:03} {}",
        v % 97,
        v % 1000,
        v % 13,
        v % 100,
        v % 89,
        (v * 7) % 1000,
        (v * 3) % 1000,
        BASE_NS + i * 1000,
    );
}

/// Lines `first .. first + count` as one body.
pub(crate) fn body(first: u64, count: u64) -> Body {
    let mut text = String::with_capacity(count as usize * 160);
    for i in first..first + count {
        push_line(&mut text, i);
    }
    Body {
        bytes: text.into_bytes(),
        lines: count,
    }
}

/// `requests` bodies of `lines` lines each, numbered on from line `first`: every line of
/// every body is a distinct point.
pub(crate) fn bodies(first: u64, requests: u64, lines: u64) -> Vec<Body> {
    (0..requests)
        .map(|r| body(first + r * lines, lines))
        .collect()
}

/// Lines `first .. first + count` as the producer stores them (normalised by
/// `redline_core::line`, exactly the `lp` field of an entry).
pub(crate) fn canonical(first: u64, count: u64) -> Vec<String> {
    let text = String::from_utf8(body(first, count).bytes).expect("the workload is ASCII");
    let parsed = line::parse(&text, Precision::Nanoseconds, 0);
    assert!(
        parsed.first_error.is_none(),
        "the workload must parse: {:?}",
        parsed.first_error
    );
    parsed.metrics().map(|m| m.line().to_owned()).collect()
}

/// A representative stored line (the ceiling's entry): the one whose length is closest to
/// the mean over the first 10,000.
pub(crate) fn typical_line() -> String {
    let lines = canonical(0, 10_000);
    let mean = mean_len(&lines);
    lines
        .into_iter()
        .min_by(|a, b| {
            let da = (a.len() as f64 - mean).abs();
            let db = (b.len() as f64 - mean).abs();
            da.total_cmp(&db)
        })
        .expect("10,000 lines")
}

/// The mean length of `lines` in bytes.
pub(crate) fn mean_len(lines: &[String]) -> f64 {
    lines.iter().map(String::len).sum::<usize>() as f64 / lines.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_about_150_bytes_and_distinct() {
        let lines = canonical(0, 1000);
        assert_eq!(lines.len(), 1000);
        let mean = mean_len(&lines);
        assert!((140.0..=160.0).contains(&mean), "{mean}");
        let mut unique = lines.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 1000);
    }
}
