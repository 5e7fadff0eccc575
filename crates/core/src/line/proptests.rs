//! Property: any valid metric, written as a client (Telegraf, the Go client) writes it,
//! survives normalise → stream entry → decode → what InfluxDB 1.x/2.x reads, exactly:
//! measurement, tags, field keys and values, timestamp. And the stored line is canonical:
//! normalising it again gives it back unchanged.
//!
//! Names hold the characters that need care (`,`, ` `, `=`, `"`, `\`, `#`) and unicode. A
//! backslash right before `,`, ` ` or `=`, or at the end of a name, is left out: such names
//! are refused (`raw::AMBIGUOUS`) rather than guessed, and that is tested separately.

use std::collections::HashMap;

use influxdb_line_protocol::FieldValue;
use proptest::prelude::*;

use super::{parse, raw, Precision};
use crate::entry::Entry;

const NOW: i64 = 1_700_000_000_000_000_000;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    I(i64),
    U(u64),
    F(f64),
    B(bool),
    S(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Point {
    measurement: String,
    tags: Vec<(String, String)>,
    fields: Vec<(String, Value)>,
    timestamp: i64,
}

fn name() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'b', 'z', 'Q', '0', '9', '_', '-', '.', '/', ':', '\'', '#', ',', ' ', '=', '"', '\\',
        'é', 'ü', 'π', '中', '😀',
    ]);
    prop::collection::vec(chars, 1..8)
        .prop_map(|c| c.into_iter().collect::<String>())
        .prop_filter("no backslash before a delimiter or at the end", |s| {
            !s.ends_with('\\') && !s.contains("\\,") && !s.contains("\\ ") && !s.contains("\\=")
        })
        .prop_filter("no 'time' key", |s| s != "time")
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::I),
        any::<u64>().prop_map(Value::U),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::F),
        any::<bool>().prop_map(Value::B),
        ".{0,12}".prop_map(Value::S),
        "[\"\\\\\n a]{0,6}".prop_map(Value::S),
    ]
}

fn point() -> impl Strategy<Value = Point> {
    (
        name().prop_filter("not a comment", |m| !m.starts_with('#')),
        prop::collection::btree_map(name(), name(), 0..4),
        prop::collection::btree_map(name(), value(), 1..5),
        super::MIN_NANOS..=super::MAX_NANOS,
    )
        .prop_map(|(measurement, tags, fields, timestamp)| Point {
            measurement,
            tags: tags.into_iter().collect(),
            fields: fields.into_iter().collect(),
            timestamp,
        })
}

/// Escapes as Go's `models` package and Telegraf's serializer do.
fn escaped(s: &str, special: &[char]) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The line a client sends for `p`.
fn write(p: &Point, with_timestamp: bool) -> String {
    let mut line = escaped(&p.measurement, &[',', ' ']);
    for (k, v) in &p.tags {
        line += &format!(
            ",{}={}",
            escaped(k, &[',', ' ', '=']),
            escaped(v, &[',', ' ', '='])
        );
    }
    for (i, (k, v)) in p.fields.iter().enumerate() {
        line.push(if i == 0 { ' ' } else { ',' });
        // Go's `escape.String`: field keys also escape '"'.
        line += &escaped(k, &[',', ' ', '=', '"']);
        line.push('=');
        line += &match v {
            Value::I(i) => format!("{i}i"),
            Value::U(u) => format!("{u}u"),
            Value::F(f) => format!("{f:e}"),
            Value::B(b) => if *b { "T" } else { "false" }.to_string(),
            Value::S(s) => format!("\"{}\"", escaped(s, &['"', '\\'])),
        };
    }
    if with_timestamp {
        line += &format!(" {}", p.timestamp);
    }
    line
}

/// What InfluxDB 1.x/2.x read from a stored line: names by Go's rules (`raw`), values by
/// the parser.
fn read(lp: &str) -> Point {
    let names = raw::split(lp).expect("a stored line splits");
    let parsed = influxdb_line_protocol::parse_lines(lp)
        .next()
        .expect("one line")
        .expect("a stored line parses");
    let mut tags: Vec<(String, String)> = names
        .tags
        .iter()
        .map(|(k, v)| {
            (
                raw::unescape(k, raw::TAG).into_owned(),
                raw::unescape(v, raw::TAG).into_owned(),
            )
        })
        .collect();
    tags.sort();
    let fields = names
        .field_keys
        .iter()
        .zip(&parsed.field_set)
        .map(|(k, (_, v))| {
            let value = match v {
                FieldValue::I64(i) => Value::I(*i),
                FieldValue::U64(u) => Value::U(*u),
                FieldValue::F64(f) => Value::F(*f),
                FieldValue::Boolean(b) => Value::B(*b),
                FieldValue::String(s) => Value::S(s.to_string()),
            };
            (raw::unescape(k, raw::FIELD_KEY).into_owned(), value)
        })
        .collect();
    Point {
        measurement: raw::unescape(names.measurement, raw::MEASUREMENT).into_owned(),
        tags,
        fields,
        timestamp: parsed.timestamp.expect("a stored line has a timestamp"),
    }
}

/// Equal, floats by their bits (so -0.0 ≠ 0.0).
fn same(a: &Point, b: &Point) -> bool {
    let bits = |p: &Point| -> Vec<(String, String)> {
        p.fields
            .iter()
            .map(|(k, v)| match v {
                Value::F(f) => (k.clone(), format!("f{}", f.to_bits())),
                other => (k.clone(), format!("{other:?}")),
            })
            .collect()
    };
    a.measurement == b.measurement
        && a.tags == b.tags
        && a.timestamp == b.timestamp
        && bits(a) == bits(b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_valid_metric_round_trips_exactly(p in point(), stamped in any::<bool>(), db in "[a-z]{0,3}") {
        let line = write(&p, !stamped);
        let parsed = parse(&line, Precision::Nanoseconds, p.timestamp);
        prop_assert_eq!(parsed.rejected, 0, "{:?} refused: {:?}", line, parsed.first_error);
        prop_assert_eq!(parsed.len(), 1);
        let stored = parsed.metric(0).line().to_owned();

        // Through a stream entry and back.
        let entry = Entry { lp: stored.clone(), db: Some(db).filter(|d| !d.is_empty()), rp: None };
        let fields: HashMap<String, redis::Value> = entry
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), redis::Value::BulkString(v.as_bytes().to_vec())))
            .collect();
        let decoded = Entry::decode(&fields).expect("decodes");
        prop_assert_eq!(&decoded, &entry);

        // What InfluxDB reads is what the client wrote.
        let back = read(&decoded.lp);
        prop_assert!(same(&back, &p), "sent {:?}\nstored {:?}\nread {:?}\nwanted {:?}", line, stored, back, p);

        // Canonical: normalising again changes nothing.
        let again = parse(&stored, Precision::Nanoseconds, 0);
        prop_assert_eq!(again.len(), 1, "{:?}: {:?}", stored, again.first_error);
        prop_assert_eq!(again.metric(0).line(), stored.as_str());
    }

    #[test]
    fn arbitrary_text_never_panics_and_accepted_lines_are_canonical(body in "\\PC{0,80}") {
        let parsed = parse(&body, Precision::Seconds, NOW);
        for metric in parsed.metrics() {
            let again = parse(metric.line(), Precision::Nanoseconds, 0);
            prop_assert_eq!(again.len(), 1, "{:?}: {:?}", metric.line(), again.first_error);
            prop_assert_eq!(again.metric(0).line(), metric.line());
        }
    }
}
