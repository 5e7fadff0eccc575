//! A metric ⇄ the fields of one Redis stream entry. (The dead-letter format is
//! `redline_streams::dlq`'s.)
//!
//! Metric entries carry `lp` (the normalised line with a nanosecond timestamp), `db` (the
//! target database or bucket, omitted when the request named none) and `rp` (retention
//! policy, when given). Entries written by other tools may lack `lp` or hold bytes that are
//! not UTF-8, or several lines in one `lp` (which a sink would write as several points,
//! out of reach of per-entry acks and dead letters): decoding says so instead of guessing,
//! and the consumer dead-letters them.

use std::collections::HashMap;

use redis::Value;

/// Field: the normalised line-protocol line.
pub const FIELD_LP: &str = "lp";
/// Field: target database (v1) or bucket (v2).
pub const FIELD_DB: &str = "db";
/// Field: retention policy.
pub const FIELD_RP: &str = "rp";

/// One metric as stored in a stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The normalised line with a nanosecond timestamp.
    pub lp: String,
    /// Target database or bucket; `None` means the consumer's default.
    pub db: Option<String>,
    /// Retention policy, when one was given.
    pub rp: Option<String>,
}

/// A stream entry that is not a redline metric.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// No `lp` field.
    #[error("entry has no '{FIELD_LP}' field")]
    MissingLine,
    /// A field is not a string.
    #[error("entry field '{field}' is not a UTF-8 string")]
    NotText {
        /// The field's name.
        field: String,
    },
    /// `lp` is empty or blank.
    #[error("entry field '{FIELD_LP}' is empty")]
    EmptyLine,
    /// `lp` holds several lines: one entry must be one metric.
    #[error("entry field '{FIELD_LP}' holds {lines} lines; an entry must hold one metric")]
    Multiline {
        /// How many non-blank lines it holds.
        lines: usize,
    },
}

impl Entry {
    /// The (field, value) pairs for XADD, in a stable order.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::with_capacity(3);
        out.push((FIELD_LP, self.lp.as_str()));
        if let Some(db) = &self.db {
            out.push((FIELD_DB, db.as_str()));
        }
        if let Some(rp) = &self.rp {
            out.push((FIELD_RP, rp.as_str()));
        }
        out
    }

    /// Decodes the field map of an XREADGROUP / XRANGE reply.
    ///
    /// # Errors
    /// [`Error::MissingLine`] without `lp`, [`Error::NotText`] for non-UTF-8 values,
    /// [`Error::EmptyLine`] and [`Error::Multiline`] for an `lp` that is not one line.
    pub fn decode(map: &HashMap<String, Value>) -> Result<Self, Error> {
        let field = |name| map.get(name).cloned();
        Self::from_values(field(FIELD_LP), field(FIELD_DB), field(FIELD_RP))
            .map_err(|refused| refused.error)
    }

    /// [`Self::decode`] from the values of the entry's `lp`, `db` and `rp` fields, moved
    /// instead of copied (a consumer decodes thousands of entries per batch). What does
    /// not decode comes back with its values, for the dead letter.
    ///
    /// # Errors
    /// As [`Self::decode`].
    pub fn from_values(
        lp: Option<Value>,
        db: Option<Value>,
        rp: Option<Value>,
    ) -> Result<Self, Box<Undecodable>> {
        let refuse = |error, lp, db, rp| Box::new(Undecodable { error, lp, db, rp });
        let bytes = |text: String| Some(Value::BulkString(text.into_bytes()));
        let lp = match owned_text(FIELD_LP, lp) {
            Ok(Some(lp)) => lp,
            Ok(None) => return Err(refuse(Error::MissingLine, None, db, rp)),
            Err((error, lp)) => return Err(refuse(error, lp, db, rp)),
        };
        if let Err(error) = one_line(&lp) {
            return Err(refuse(error, bytes(lp), db, rp));
        }
        let db = match owned_text(FIELD_DB, db) {
            Ok(db) => db,
            Err((error, db)) => return Err(refuse(error, bytes(lp), db, rp)),
        };
        let rp = match owned_text(FIELD_RP, rp) {
            Ok(rp) => rp,
            Err((error, rp)) => return Err(refuse(error, bytes(lp), db.and_then(bytes), rp)),
        };
        let (db, rp) = route(db, rp);
        Ok(Self { lp, db, rp })
    }
}

/// A v2 bucket that names no database the way InfluxDB 1.8 reads buckets.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BucketError {
    /// `/rp`: the part before the slash is empty.
    #[error("bucket name '{0}' is missing a database")]
    MissingDatabase(String),
    /// `a/b/c`.
    #[error("bucket name '{0}' may not contain more than one slash")]
    TooManySlashes(String),
}

/// Splits a v2 bucket into database and retention policy as InfluxDB 1.8's compatibility
/// API does: `db` is the database with its default retention policy, `db/rp` names both
/// (`db/` is the default one again). Telegraf's `outputs.influxdb_v2` with
/// `bucket = "telegraf/autogen"` relies on it.
///
/// # Errors
/// [`BucketError`] for `/rp` and for more than one slash.
pub fn split_bucket(bucket: &str) -> Result<(&str, Option<&str>), BucketError> {
    match bucket.split_once('/') {
        None => Ok((bucket, None)),
        Some(("", _)) => Err(BucketError::MissingDatabase(bucket.to_string())),
        Some((_, rp)) if rp.contains('/') => Err(BucketError::TooManySlashes(bucket.to_string())),
        Some((db, "")) => Ok((db, None)),
        Some((db, rp)) => Ok((db, Some(rp))),
    }
}

/// A stream entry that [`Entry::from_values`] refused, with its `lp`, `db` and `rp` values.
#[derive(Debug, PartialEq)]
pub struct Undecodable {
    /// Why it does not decode.
    pub error: Error,
    /// Its `lp` value, when it has one.
    pub lp: Option<Value>,
    /// Its `db` value, when it has one.
    pub db: Option<Value>,
    /// Its `rp` value, when it has one.
    pub rp: Option<Value>,
}

/// The (database, retention policy) of an entry's `db` and `rp` fields: empty ones mean
/// none, and a `db` of the bucket form `db/rp` without an `rp` field names both (entries
/// written before the producer split buckets, and their replayed dead letters). A `db` that
/// is not a valid bucket is kept as it is, for the sink to refuse.
fn route(db: Option<String>, rp: Option<String>) -> (Option<String>, Option<String>) {
    let db = db.filter(|s| !s.is_empty());
    let rp = rp.filter(|s| !s.is_empty());
    match (db, rp) {
        (Some(db), None) if db.contains('/') => match split_bucket(&db) {
            Ok((name, rp)) => (Some(name.to_string()), rp.map(str::to_string)),
            Err(_) => (Some(db), None),
        },
        other => other,
    }
}

/// A field's value as owned text; the value back with the error when it is not text.
fn owned_text(field: &str, value: Option<Value>) -> Result<Option<String>, (Error, Option<Value>)> {
    let not_text = || Error::NotText {
        field: field.to_string(),
    };
    match value {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::BulkString(bytes)) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| (not_text(), Some(Value::BulkString(e.into_bytes())))),
        Some(Value::SimpleString(s)) => Ok(Some(s)),
        Some(Value::Int(i)) => Ok(Some(i.to_string())),
        Some(other) => Err((not_text(), Some(other))),
    }
}

/// Checks that `lp` holds exactly one non-blank line.
fn one_line(lp: &str) -> Result<(), Error> {
    // Newlines inside a quoted string value belong to the line, as InfluxDB reads it.
    let lines = if lp.contains('\n') {
        influxdb_line_protocol::split_lines(lp)
            .filter(|line| !line.trim().is_empty())
            .count()
    } else {
        // One piece, the whole text (the splitter's per-character scan costs a tenth of
        // the consumer's time; a newline-free line cannot hold two).
        usize::from(!lp.trim().is_empty())
    };
    match lines {
        0 => Err(Error::EmptyLine),
        1 => Ok(()),
        lines => Err(Error::Multiline { lines }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &[u8])]) -> HashMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::BulkString(v.to_vec())))
            .collect()
    }

    #[test]
    fn round_trips_fields() {
        let entry = Entry {
            lp: "cpu,host=a v=1 1".into(),
            db: Some("telegraf".into()),
            rp: None,
        };
        let fields = entry.fields();
        assert_eq!(fields, [("lp", "cpu,host=a v=1 1"), ("db", "telegraf")]);
        let m = map(&[("lp", b"cpu,host=a v=1 1"), ("db", b"telegraf")]);
        assert_eq!(Entry::decode(&m).unwrap(), entry);
    }

    #[test]
    fn foreign_entries_are_refused_with_a_reason() {
        assert_eq!(Entry::decode(&map(&[("x", b"1")])), Err(Error::MissingLine));
        assert_eq!(
            Entry::decode(&map(&[("lp", &[0xff, 0xfe])])),
            Err(Error::NotText { field: "lp".into() })
        );
        assert_eq!(
            Entry::decode(&map(&[("lp", b" \n")])),
            Err(Error::EmptyLine)
        );
        assert_eq!(
            Entry::decode(&map(&[("lp", b"a v=1 1\nb v=2 2")])),
            Err(Error::Multiline { lines: 2 })
        );
        // A newline inside a string value is part of the one line.
        let quoted = Entry::decode(&map(&[("lp", b"a s=\"x\ny\" 1\n")])).unwrap();
        assert_eq!(quoted.lp, "a s=\"x\ny\" 1\n");
    }

    #[test]
    fn from_values_takes_text_drops_empty_targets_and_hands_back_what_it_refuses() {
        let bulk = |b: &[u8]| Some(Value::BulkString(b.to_vec()));
        let entry = |lp: &str, db: Option<&str>, rp: Option<&str>| Entry {
            lp: lp.to_string(),
            db: db.map(str::to_string),
            rp: rp.map(str::to_string),
        };
        let cases = [
            (
                [bulk(b"cpu v=1 1"), bulk(b"telegraf"), bulk(b"")],
                entry("cpu v=1 1", Some("telegraf"), None),
            ),
            (
                [
                    bulk(b"cpu v=1 1"),
                    bulk(b""),
                    Some(Value::SimpleString("week".into())),
                ],
                entry("cpu v=1 1", None, Some("week")),
            ),
            (
                [bulk(b"a s=\"x\ny\" 1"), None, Some(Value::Nil)],
                entry("a s=\"x\ny\" 1", None, None),
            ),
        ];
        let cases = cases.into_iter().chain([(
            [bulk(b"cpu v=1 1"), bulk(b"telegraf/autogen"), None],
            entry("cpu v=1 1", Some("telegraf"), Some("autogen")),
        )]);
        for ([lp, db, rp], expected) in cases {
            assert_eq!(Entry::from_values(lp, db, rp).unwrap(), expected);
        }
        let refused = Entry::from_values(bulk(b"a v=1 1\nb v=2 2"), bulk(b"x"), None);
        assert_eq!(
            *refused.unwrap_err(),
            Undecodable {
                error: Error::Multiline { lines: 2 },
                lp: bulk(b"a v=1 1\nb v=2 2"),
                db: bulk(b"x"),
                rp: None,
            }
        );
        let refused = Entry::from_values(bulk(&[0xff]), None, None).unwrap_err();
        assert_eq!(refused.lp, bulk(&[0xff]));
        assert_eq!(
            Entry::from_values(None, bulk(b"x"), None)
                .unwrap_err()
                .error,
            Error::MissingLine
        );
    }

    #[test]
    fn buckets_split_as_influxdb_1_8_splits_them() {
        assert_eq!(split_bucket("telegraf"), Ok(("telegraf", None)));
        assert_eq!(
            split_bucket("telegraf/autogen"),
            Ok(("telegraf", Some("autogen")))
        );
        assert_eq!(split_bucket("telegraf/"), Ok(("telegraf", None)));
        assert_eq!(
            split_bucket("/autogen"),
            Err(BucketError::MissingDatabase("/autogen".into()))
        );
        assert_eq!(
            split_bucket("a/b/c").unwrap_err().to_string(),
            "bucket name 'a/b/c' may not contain more than one slash"
        );
        assert_eq!(
            route(Some("a/b/c".into()), None),
            (Some("a/b/c".into()), None)
        );
        assert_eq!(
            route(Some("a/b".into()), Some("week".into())),
            (Some("a/b".into()), Some("week".into()))
        );
    }
}
