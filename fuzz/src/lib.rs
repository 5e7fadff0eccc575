//! The checks behind the fuzz targets, callable from the libFuzzer targets
//! (`fuzz_targets/`) and from anything else that wants to replay an input.

use std::collections::HashMap;

use arbitrary::Arbitrary;
use redline_core::{
    entry::{self, Entry},
    line::{self, Precision},
};
use redline_producer::ingest;

/// The receive time stamped on lines without a timestamp.
const NOW: i64 = 1_700_000_000_000_000_000;
/// A decoded-size bound small enough that a gzip bomb costs little.
const LIMIT: u64 = 1 << 20;
const PRECISIONS: [Precision; 6] = [
    Precision::Nanoseconds,
    Precision::Microseconds,
    Precision::Milliseconds,
    Precision::Seconds,
    Precision::Minutes,
    Precision::Hours,
];

/// A request body through the producer's path; panics when an invariant breaks:
/// - counts add up: accepted + refused lines never exceed the body's lines, and a refusal
///   is always named;
/// - every accepted line is canonical: normalising it again gives it back unchanged, with
///   the same series key;
/// - it survives an entry: `Entry::fields` → `Entry::decode` gives it back.
pub fn ingest(data: &[u8]) {
    let encoding = data.starts_with(&[0x1f, 0x8b]).then_some("gzip");
    let Ok(body) = ingest::decode(data, encoding, LIMIT) else {
        return;
    };
    let precision = PRECISIONS[data.len() % PRECISIONS.len()];
    let parsed = ingest::parse(&body, precision, NOW);
    let lines = body.split(|b| *b == b'\n').count();
    assert!(parsed.len() + parsed.rejected <= lines);
    assert_eq!(parsed.rejected > 0, parsed.first_error.is_some());
    for metric in parsed.metrics() {
        let again = line::parse(metric.line(), Precision::Nanoseconds, 0);
        assert_eq!(again.rejected, 0, "{:?}: {:?}", metric.line(), again.first_error);
        assert_eq!(again.len(), 1, "{:?}", metric.line());
        assert_eq!(again.metric(0).line(), metric.line());
        assert_eq!(again.metric(0).series_key(), metric.series_key());
        let stored = Entry {
            lp: metric.line().to_owned(),
            db: Some("telegraf".into()),
            rp: None,
        };
        let fields: HashMap<String, redis::Value> = stored
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), redis::Value::BulkString(v.as_bytes().to_vec())))
            .collect();
        assert_eq!(Entry::decode(&fields).as_ref(), Ok(&stored));
    }
}

/// A field value as another tool may have written it (or a RESP3 server may answer).
#[derive(Debug, Arbitrary)]
pub enum FieldValue {
    /// Bytes, UTF-8 or not.
    Bulk(Vec<u8>),
    /// A status string.
    Simple(String),
    /// An integer.
    Int(i64),
    /// Nothing.
    Nil,
    /// `+OK`.
    Okay,
    /// A nested array.
    Array(Vec<Vec<u8>>),
    /// A RESP3 double.
    Double(f64),
    /// A RESP3 boolean.
    Boolean(bool),
}

impl From<FieldValue> for redis::Value {
    fn from(value: FieldValue) -> Self {
        match value {
            FieldValue::Bulk(b) => redis::Value::BulkString(b),
            FieldValue::Simple(s) => redis::Value::SimpleString(s),
            FieldValue::Int(i) => redis::Value::Int(i),
            FieldValue::Nil => redis::Value::Nil,
            FieldValue::Okay => redis::Value::Okay,
            FieldValue::Array(items) => {
                redis::Value::Array(items.into_iter().map(redis::Value::BulkString).collect())
            }
            FieldValue::Double(d) => redis::Value::Double(d),
            FieldValue::Boolean(b) => redis::Value::Boolean(b),
        }
    }
}

/// An entry's field map through `Entry::decode`; panics when an invariant breaks:
/// - a decoded entry has one non-empty line, and non-empty `db`/`rp` when present;
/// - it round-trips through `Entry::fields`;
/// - a refusal without `lp` is [`entry::Error::MissingLine`].
pub fn entry(fields: Vec<(String, FieldValue)>) {
    let map: HashMap<String, redis::Value> =
        fields.into_iter().map(|(k, v)| (k, v.into())).collect();
    match Entry::decode(&map) {
        Ok(decoded) => {
            assert!(!decoded.lp.trim().is_empty());
            assert!(decoded.db.as_deref() != Some(""));
            assert!(decoded.rp.as_deref() != Some(""));
            let again: HashMap<String, redis::Value> = decoded
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), redis::Value::BulkString(v.as_bytes().to_vec())))
                .collect();
            assert_eq!(Entry::decode(&again).as_ref(), Ok(&decoded));
            // What a consumer may do with it: parse it (for dead-letter replay) must not panic.
            let _ = line::parse(&decoded.lp, Precision::Nanoseconds, 0);
        }
        Err(error) => {
            if !map.contains_key(entry::FIELD_LP) {
                assert_eq!(error, entry::Error::MissingLine);
            }
            let _ = error.to_string();
        }
    }
}

/// An XREADGROUP reply's bytes, arriving in pieces: the consumer's own decoder must frame
/// them as one reply and read it exactly as redis-rs's parser does.
pub fn xreadgroup_reply(data: &[u8]) {
    redline_consumer::fuzz_xreadgroup_reply(data);
}

/// An XADD of arbitrary key, line and target: the producer's own packing must be redis-rs's,
/// byte for byte.
pub fn xadd(key: &str, line: &str, db: Option<String>, rp: Option<String>) {
    redline_producer::writer::fuzz_pack_xadd(key, line, db, rp);
}

/// Every line of a body through the producer's fast path and the general path
/// (`influxdb_line_protocol`): where the fast path takes a line, both must make the same
/// canonical line of it.
pub fn scan(data: &[u8]) {
    redline_core::line::fuzz_scan(data);
}
