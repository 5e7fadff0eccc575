//! InfluxDB line protocol → validated, normalised metrics.
//!
//! Parsing is `influxdb_line_protocol`'s; this module adds what InfluxDB 1.x checks on
//! top (finite floats, no `time` key, timestamps in range), converts the request's
//! precision to nanoseconds, stamps lines without a timestamp with the receive time, and
//! writes each metric back as one canonical line: tags sorted by key, escapes minimal,
//! timestamp in ns. A stamped line is idempotent in InfluxDB: delivering it twice yields
//! one point, which is what makes at-least-once delivery harmless.
//!
//! A body is judged line by line, as InfluxDB's partial write does: the good lines are
//! kept and the first bad one is reported by number (1-based, counting every physical
//! line of the body, blank and comment lines included).
//!
//! Names (measurement, tag keys and values, field keys) are read and written back by
//! InfluxDB 1.x/2.x's escaping rules, where a backslash escapes only a delimiter and `\\`
//! stays two backslashes (see `raw`). So the canonical line means to InfluxDB exactly what
//! the client's line meant, and normalising it again gives it back unchanged.

use std::fmt::Write as _;

use influxdb_line_protocol::{parse_lines, FieldValue, ParsedLine};

mod parsed;
mod parser;
#[cfg(test)]
mod proptests;
mod raw;
mod scan;

pub use parsed::{Metric, Metrics, Parsed};
pub use parser::Parser;

/// The default longest line, in bytes ([`Limits::default`]).
pub const DEFAULT_MAX_LINE_LENGTH: usize = 64 * 1024;
/// The default most fields on one line ([`Limits::default`]).
pub const DEFAULT_MAX_FIELDS: usize = 1000;

/// What one line may be: a line past a bound, or with a value the API does not take, is
/// refused by number like any other bad line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line in bytes; a longer one is refused without being parsed.
    pub max_line_length: usize,
    /// Most fields on one line.
    pub max_fields: usize,
    /// Whether unsigned integer fields (`1u`) are taken: InfluxDB 2.x takes them, 1.x
    /// refuses them (`invalid number`), so the v1 API and the other sources refuse them too.
    pub allow_unsigned: bool,
}

impl Limits {
    /// No bound (for lines redline stored itself).
    pub const NONE: Limits = Limits {
        max_line_length: usize::MAX,
        max_fields: usize::MAX,
        allow_unsigned: true,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
            max_fields: DEFAULT_MAX_FIELDS,
            allow_unsigned: false,
        }
    }
}

/// Timestamps InfluxDB accepts, in ns (`models.MinNanoTime` / `MaxNanoTime`).
const MIN_NANOS: i64 = i64::MIN + 2;
const MAX_NANOS: i64 = i64::MAX - 1;
/// How much of a bad line an error message quotes.
const QUOTE_LIMIT: usize = 120;

/// The unit of the timestamps in a request (`precision=` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Nanoseconds (`n`, `ns`, the default).
    #[default]
    Nanoseconds,
    /// Microseconds (`u`, `us`, `µ`).
    Microseconds,
    /// Milliseconds (`ms`).
    Milliseconds,
    /// Seconds (`s`).
    Seconds,
    /// Minutes (`m`).
    Minutes,
    /// Hours (`h`).
    Hours,
}

/// A precision InfluxDB does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid precision '{0}': use one of n, ns, u, us, ms, s, m, h")]
pub struct PrecisionError(pub String);

/// A precision InfluxDB 2.x's `/api/v2/write` does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid precision '{0}'; valid precision units are ns, us, ms, and s")]
pub struct V2PrecisionError(pub String);

impl Precision {
    /// `precision` of InfluxDB 1.x's `/write`: `n`/`ns`, `u`, `ms`, `s`, `m`, `h`; every other
    /// value (`us`, `µs`, `rfc3339`, anything) means nanoseconds there, silently, and so
    /// here: clients written against 1.x send ns timestamps with such values.
    pub fn v1(value: &str) -> Self {
        match value {
            "u" => Self::Microseconds,
            "ms" => Self::Milliseconds,
            "s" => Self::Seconds,
            "m" => Self::Minutes,
            "h" => Self::Hours,
            _ => Self::Nanoseconds,
        }
    }

    /// `precision` of InfluxDB 2.x's `/api/v2/write`: `ns` (or none), `us`, `ms`, `s`.
    ///
    /// # Errors
    /// [`V2PrecisionError`] for any other value, as InfluxDB 2.x answers 400 for it.
    pub fn v2(value: &str) -> Result<Self, V2PrecisionError> {
        Ok(match value {
            "" | "ns" => Self::Nanoseconds,
            "us" => Self::Microseconds,
            "ms" => Self::Milliseconds,
            "s" => Self::Seconds,
            other => return Err(V2PrecisionError(other.to_string())),
        })
    }

    /// Reads every value InfluxDB 1.x and 2.x know; the empty string is nanoseconds. For
    /// redline's own command line, where an unknown unit is a mistake to report.
    ///
    /// # Errors
    /// [`PrecisionError`] naming the value.
    pub fn parse(value: &str) -> Result<Self, PrecisionError> {
        Ok(match value {
            "" | "n" | "ns" => Self::Nanoseconds,
            "u" | "us" | "µ" | "µs" => Self::Microseconds,
            "ms" => Self::Milliseconds,
            "s" => Self::Seconds,
            "m" => Self::Minutes,
            "h" => Self::Hours,
            other => return Err(PrecisionError(other.to_string())),
        })
    }

    /// Nanoseconds per unit.
    pub fn nanos(self) -> i64 {
        match self {
            Self::Nanoseconds => 1,
            Self::Microseconds => 1_000,
            Self::Milliseconds => 1_000_000,
            Self::Seconds => 1_000_000_000,
            Self::Minutes => 60_000_000_000,
            Self::Hours => 3_600_000_000_000,
        }
    }
}

/// Why one line was refused, with its number in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the body.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// The start of the offending line.
    pub text: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unable to parse line {} '{}': {}",
            self.line, self.text, self.reason
        )
    }
}

/// Parses a body of line protocol without [`Limits`]. Lines without a timestamp get
/// `now_ns`.
pub fn parse(body: &str, precision: Precision, now_ns: i64) -> Parsed<'_> {
    parse_with(body, precision, now_ns, &Limits::NONE)
}

/// Parses a body of line protocol, refusing lines past `limits`. Lines without a timestamp
/// get `now_ns` truncated to `precision`, as InfluxDB stamps them: two such writes within
/// the same second under `precision=s` are the same point.
pub fn parse_with<'a>(
    body: &'a str,
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
) -> Parsed<'a> {
    let mut parser = Parser::new(body, precision, now_ns, limits);
    parser.parse_next(body.len());
    parser.finish()
}

/// The general path for one line: `influxdb_line_protocol`'s parser, then `normalise`,
/// appending the canonical line to `out` and returning its series key's length. Floats
/// InfluxDB 1.x reads but that parser does not (`.5`, `-.5`, `1.`, `1.e5`) are rewritten
/// first. `None` for a blank line or a comment. On an error `out` may hold part of a line:
/// the caller truncates.
fn general(
    raw: &str,
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
    out: &mut String,
) -> Option<Result<usize, String>> {
    let mark = out.len();
    // Names and float spellings are always taken from `raw`; only the parse may need the
    // loosened text.
    let mut judge = |text: &str| {
        out.truncate(mark);
        parse_lines(text).next().map(|result| {
            result
                .map_err(|e| describe(&e))
                .and_then(|parsed| check_fields(&parsed, limits).map(|()| parsed))
                .and_then(|parsed| normalise(raw, &parsed, precision, now_ns, limits, out))
        })
    };
    match judge(raw) {
        Some(Err(reason)) => match raw::loosen_floats(raw) {
            Some(fixed) => judge(&fixed),
            None => Some(Err(reason)),
        },
        other => other,
    }
}

/// The lines of `bytes` as InfluxDB cuts a body (a newline inside a quoted string field,
/// or escaped, does not end a line), each with its 1-based number counting physical lines:
/// the one source, HTTP, TCP and `redline send` alike, of where a line ends.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    scan::lines(bytes).map(move |line| (line.number, &bytes[line.range()]))
}

/// How many bytes at the start of `bytes` are whole lines, each ending in the newline that
/// ends it by InfluxDB's rules (not one inside a quoted string): what a stream source may
/// parse now, the rest waiting for more bytes.
pub fn whole_lines(bytes: &[u8]) -> usize {
    let mut whole = 0;
    for line in scan::lines(bytes) {
        if line.end < bytes.len() {
            whole = line.end + 1;
        }
    }
    whole
}

/// The parser's message, except for its catch-all, which names a nom combinator.
fn describe(error: &influxdb_line_protocol::Error) -> String {
    match error {
        influxdb_line_protocol::Error::GenericParsingError { .. } => {
            "invalid line protocol: expected 'measurement[,tag=value...] field=value[,...] [timestamp]'"
                .to_string()
        }
        other => other.to_string(),
    }
}

fn quote(raw: &str) -> String {
    let raw = raw.trim_end_matches(['\r', '\n']);
    match raw.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_string(),
    }
}

fn check_fields(line: &ParsedLine<'_>, limits: &Limits) -> Result<(), String> {
    let fields = line.field_set.len();
    if fields > limits.max_fields {
        return Err(format!(
            "{fields} fields, more than the limit of {} fields per line",
            limits.max_fields
        ));
    }
    Ok(())
}

/// Validates one parsed line and appends its canonical form to `lp`, returning the length
/// of its series key. `text` is the line `line` was parsed from: names are taken from it by
/// InfluxDB 1.x's rules (`raw`), values from `line`.
fn normalise(
    text: &str,
    line: &ParsedLine<'_>,
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
    lp: &mut String,
) -> Result<usize, String> {
    let names = raw::split(text)?;
    let tag_count = line.series.tag_set.as_ref().map_or(0, |t| t.len());
    if names.tags.len() != tag_count || names.field_keys.len() != line.field_set.len() {
        return Err(raw::AMBIGUOUS.into());
    }
    let measurement = raw::unescape(names.measurement, raw::MEASUREMENT);
    if measurement.is_empty() {
        return Err("missing measurement".into());
    }
    let timestamp = match line.timestamp {
        Some(ts) => ts
            .checked_mul(precision.nanos())
            .filter(|ns| (MIN_NANOS..=MAX_NANOS).contains(ns))
            .ok_or_else(|| format!("timestamp {ts} is out of range at this precision"))?,
        None => now_ns,
    };

    let mut tags: Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> = names
        .tags
        .iter()
        .map(|(k, v)| (raw::unescape(k, raw::TAG), raw::unescape(v, raw::TAG)))
        .collect();
    tags.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for pair in tags.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(format!("duplicate tag '{}'", pair[0].0));
        }
    }
    if tags.iter().any(|(k, _)| *k == "time") {
        return Err("invalid tag key 'time'".into());
    }

    let mark = lp.len();
    lp.reserve(text.len() + 24);
    raw::escape(lp, &measurement, raw::MEASUREMENT);
    for (k, v) in &tags {
        lp.push(',');
        raw::escape(lp, k, raw::TAG);
        lp.push('=');
        raw::escape(lp, v, raw::TAG);
    }
    let series_len = lp.len() - mark;
    lp.push(' ');
    let fields = names.field_keys.iter().zip(&names.field_values);
    for (i, ((raw_key, written), (_, value))) in fields.zip(&line.field_set).enumerate() {
        let key = raw::unescape(raw_key, raw::FIELD_KEY);
        if key == "time" {
            return Err("invalid field name 'time'".into());
        }
        if i > 0 {
            lp.push(',');
        }
        raw::escape(lp, &key, raw::FIELD_KEY);
        lp.push('=');
        write_value(lp, &key, value, written, limits)?;
    }
    // Writing to a String cannot fail.
    let _ = write!(lp, " {timestamp}");
    Ok(series_len)
}

/// Writes a field value in canonical form; a float as the client `written` it (validated:
/// finite), never re-printed (`1e308` printed in full is 309 digits).
fn write_value(
    lp: &mut String,
    key: &str,
    value: &FieldValue<'_>,
    written: &str,
    limits: &Limits,
) -> Result<(), String> {
    // Writing to a String cannot fail.
    let _ = match value {
        FieldValue::I64(v) => write!(lp, "{v}i"),
        FieldValue::U64(_) if !limits.allow_unsigned => return Err(UNSIGNED.to_string()),
        FieldValue::U64(v) => write!(lp, "{v}u"),
        FieldValue::F64(v) if !v.is_finite() => {
            return Err(format!("field '{key}' is not a finite number ({v})"))
        }
        FieldValue::F64(_) => {
            lp.push_str(written);
            Ok(())
        }
        FieldValue::Boolean(v) => write!(lp, "{v}"),
        FieldValue::String(s) => {
            lp.push('"');
            escape(lp, s, &['"', '\\']);
            lp.push('"');
            Ok(())
        }
    };
    Ok(())
}

/// Why an unsigned field is refused where unsigned fields are not taken: InfluxDB 1.x's own
/// reason first.
const UNSIGNED: &str = "invalid number: unsigned integers ('1u') are refused by InfluxDB 1.x; \
     send a signed integer ('1i') or write through /api/v2/write";

fn escape(out: &mut String, value: &str, special: &[char]) {
    for c in value.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The `scan` fuzz target (`fuzz/`): every line of `data` (UTF-8 only) through the fast
/// path and the general path, under each precision; panics when the fast path takes a line
/// and its answer (the canonical line, its series key's length) differs from the general
/// path's, or when it writes a line it calls canonical as it is.
#[doc(hidden)]
pub fn fuzz_scan(data: &[u8]) {
    const NOW: i64 = 1_700_000_000_123_456_789;
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    for (_, line) in lines(body.as_bytes()) {
        // A line of a UTF-8 body cut at ASCII bytes is UTF-8 too.
        let line = std::str::from_utf8(line).expect("lines are cut at ASCII bytes");
        for precision in [Precision::Nanoseconds, Precision::Seconds, Precision::Hours] {
            let mut fast = String::new();
            let Some(normalised) = scan::normalise(line, precision, NOW, &Limits::NONE, &mut fast)
            else {
                continue;
            };
            let (fast, fast_series) = match normalised {
                scan::Normalised::Same(series) => {
                    assert_eq!(fast, "", "{line:?} is canonical, yet was written");
                    (line.to_string(), series)
                }
                scan::Normalised::Written(series) => (fast, series),
            };
            let mut slow = String::new();
            let general = general(line, precision, NOW, &Limits::NONE, &mut slow);
            assert_eq!(
                general,
                Some(Ok(fast_series)),
                "{line:?} ({precision:?}): the general path's answer differs"
            );
            assert_eq!(fast, slow, "{line:?} ({precision:?})");
        }
    }
}

#[cfg(test)]
mod tests;
