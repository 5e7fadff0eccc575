//! Request body → metrics: decoding (gzip), UTF-8, line protocol, with every refusal
//! typed so the HTTP edge can answer as InfluxDB does.
//!
//! Invalid UTF-8 spoils only the lines that hold it: they are refused by number like any
//! other bad line, and the rest of the body is still stored.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;
use redline_core::line::{self, Limits, LineError, Parsed, Precision, PrecisionError};

/// A request the producer refuses as a whole, or in part.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `Content-Encoding` is neither gzip nor identity.
    #[error("unsupported Content-Encoding '{0}': send gzip or no encoding")]
    UnsupportedEncoding(String),
    /// The gzip stream is corrupt.
    #[error("invalid gzip body: {0}")]
    BadGzip(String),
    /// Decoded body too large.
    #[error("request body too large: more than {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The body did not arrive within the read timeout.
    #[error("request body not received within {timeout:?}")]
    ReadTimeout {
        /// The configured timeout.
        timeout: std::time::Duration,
    },
    /// The body could not be read (the client broke off).
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    /// Unknown `precision`.
    #[error(transparent)]
    Precision(#[from] PrecisionError),
    /// A v1 write without `db`, and no default database configured.
    #[error("database is required")]
    DatabaseRequired,
    /// A v2 `precision` InfluxDB 2.x does not know.
    #[error(transparent)]
    V2Precision(#[from] redline_core::line::V2PrecisionError),
    /// A query parameter InfluxDB requires is missing (`bucket` on v2).
    #[error("missing required parameter '{0}'")]
    MissingParameter(&'static str),
    /// A v2 bucket that is not `db` or `db/rp`.
    #[error(transparent)]
    Bucket(#[from] redline_core::entry::BucketError),
    /// No turn to receive and store the request came within the wait.
    #[error("the producer is busy: every write turn (--max-concurrent-writes) stayed taken for {waited:?} (--enqueue-timeout); retry later")]
    Busy {
        /// How long the request waited.
        waited: std::time::Duration,
    },
    /// The producer's memory budget cannot hold the request (now, or ever).
    #[error(transparent)]
    Memory(#[from] crate::budget::Exceeded),
    /// Some lines were refused; the valid ones were stored.
    #[error("partial write: {first} ({rejected} of {total} lines rejected; the other {stored} were stored)")]
    PartialWrite {
        /// The first bad line.
        first: LineError,
        /// How many lines were refused.
        rejected: usize,
        /// How many were stored.
        stored: usize,
        /// Lines in the body.
        total: usize,
    },
}

/// Decodes a body by its `Content-Encoding`, refusing more than `limit` decoded bytes. An
/// identity body is borrowed, not copied.
///
/// # Errors
/// [`Error::UnsupportedEncoding`], [`Error::BadGzip`], [`Error::TooLarge`].
pub fn decode<'b>(
    body: &'b [u8],
    encoding: Option<&str>,
    limit: u64,
) -> Result<Cow<'b, [u8]>, Error> {
    let mut decoder = Decoder::new(body, encoding, limit)?;
    while decoder.step(usize::MAX)? {}
    Ok(decoder.finish())
}

/// A body being decoded step by step, so that the caller can account for the memory of
/// each step before it is taken (a gzip bomb then stops at the caller's budget, not after).
pub enum Decoder<'b> {
    /// Nothing to decode.
    Identity(&'b [u8]),
    /// Inflating.
    Gzip {
        /// The inflater over the compressed body.
        inflater: Box<MultiGzDecoder<&'b [u8]>>,
        /// What was inflated so far.
        out: Vec<u8>,
        /// Most decoded bytes.
        limit: u64,
        /// Whether the stream ended.
        done: bool,
    },
}

impl<'b> Decoder<'b> {
    /// A decoder of `body` by its `Content-Encoding`.
    ///
    /// # Errors
    /// [`Error::UnsupportedEncoding`], or [`Error::TooLarge`] for an identity body over
    /// `limit`.
    pub fn new(body: &'b [u8], encoding: Option<&str>, limit: u64) -> Result<Self, Error> {
        match encoding.map(str::trim) {
            None | Some("") | Some("identity") => {
                if body.len() as u64 > limit {
                    return Err(Error::TooLarge { limit });
                }
                Ok(Self::Identity(body))
            }
            Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => {
                Ok(Self::Gzip {
                    inflater: Box::new(MultiGzDecoder::new(body)),
                    out: Vec::new(),
                    limit,
                    done: false,
                })
            }
            Some(other) => Err(Error::UnsupportedEncoding(other.to_string())),
        }
    }

    /// Decodes at most `most` more bytes; `true` while there may be more.
    ///
    /// # Errors
    /// [`Error::BadGzip`], [`Error::TooLarge`] once more than `limit` bytes came out.
    pub fn step(&mut self, most: usize) -> Result<bool, Error> {
        let Self::Gzip {
            inflater,
            out,
            limit,
            done,
        } = self
        else {
            return Ok(false);
        };
        if *done {
            return Ok(false);
        }
        // One byte past the limit tells a body of exactly `limit` from a larger one.
        let room = (*limit + 1).saturating_sub(out.len() as u64);
        let want = (most as u64).min(room);
        let read = inflater
            .by_ref()
            .take(want)
            .read_to_end(out)
            .map_err(|e| Error::BadGzip(e.to_string()))?;
        if out.len() as u64 > *limit {
            return Err(Error::TooLarge { limit: *limit });
        }
        *done = (read as u64) < want;
        Ok(!*done)
    }

    /// The decoded body.
    pub fn finish(self) -> Cow<'b, [u8]> {
        match self {
            Self::Identity(body) => Cow::Borrowed(body),
            Self::Gzip { out, .. } => Cow::Owned(out),
        }
    }
}

/// Parses a decoded body with the default [`Limits`] (64 KiB per line, 1000 fields). Lines
/// that are not UTF-8 are refused by number.
pub fn parse(body: &[u8], precision: Precision, now_ns: i64) -> Parsed<'_> {
    parse_with(body, precision, now_ns, &Limits::default())
}

/// Parses a decoded body, refusing lines past `limits`. Lines that are not UTF-8 are
/// refused by number.
pub fn parse_with<'a>(
    body: &'a [u8],
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
) -> Parsed<'a> {
    match std::str::from_utf8(body) {
        Ok(text) => line::parse_with(text, precision, now_ns, limits),
        Err(_) => parse_lossy(body, precision, now_ns, limits),
    }
}

/// The lines of a body that is not all UTF-8 (rare: a client's bug), each refused by number,
/// the others parsed; the metrics own their lines.
pub fn parse_lossy(
    body: &[u8],
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
) -> Parsed<'static> {
    // Keep the line numbering: an invalid line becomes as many empty lines as it spans,
    // refused separately.
    let mut text = String::with_capacity(body.len());
    let mut bad: Option<LineError> = None;
    let mut bad_count = 0;
    for (number, raw) in line::lines(body) {
        if number > 1 {
            text.push('\n');
        }
        match std::str::from_utf8(raw) {
            Ok(s) => text.push_str(s),
            Err(e) => {
                bad_count += 1;
                bad.get_or_insert_with(|| LineError {
                    line: number,
                    reason: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                    text: String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned(),
                });
                let inner = raw.iter().filter(|&&c| c == b'\n').count();
                text.extend(std::iter::repeat_n('\n', inner));
            }
        }
    }
    let mut parsed = line::parse_with(&text, precision, now_ns, limits).into_owned();
    parsed.rejected += bad_count;
    parsed.first_error = match (parsed.first_error.take(), bad) {
        (Some(a), Some(b)) => Some(if a.line < b.line { a } else { b }),
        (a, b) => a.or(b),
    };
    parsed
}

/// Every refused line of `body` with its number, counting from `first_line` for the first
/// line of `body`: for sources that report each bad line, not only the first (TCP,
/// `redline send`). It parses `body` again line by line, so call it only after
/// [`parse_with`] (with the same `limits`) reported rejections.
pub fn rejected_lines(
    body: &[u8],
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
    first_line: usize,
) -> Vec<LineError> {
    line::lines(body)
        .filter_map(|(number, raw)| {
            let mut error = parse_with(raw, precision, now_ns, limits).first_error?;
            error.line = first_line + number - 1;
            Some(error)
        })
        .collect()
}

/// The error to answer once the valid metrics of `parsed` are stored, if any line was bad.
pub fn partial_write(first: Option<LineError>, rejected: usize, stored: usize) -> Option<Error> {
    first.map(|first| Error::PartialWrite {
        first,
        rejected,
        stored,
        total: rejected + stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_bodies_are_decoded_and_bounded() {
        let body = b"cpu v=1 1\n".repeat(100);
        assert_eq!(*decode(&gzip(&body), Some("gzip"), 10_000).unwrap(), body);
        assert_eq!(
            *decode(&gzip(&body), Some("gzip"), 1_000).unwrap(),
            body,
            "exactly the limit"
        );
        assert!(matches!(
            decode(&body, None, 10_000).unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            decode(&gzip(&body), Some("gzip"), 999),
            Err(Error::TooLarge { limit: 999 })
        ));
        let err = decode(b"not gzip at all", Some("gzip"), 10_000).unwrap_err();
        assert!(err.to_string().starts_with("invalid gzip body"), "{err}");
        let err = decode(b"x", Some("br"), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported Content-Encoding 'br': send gzip or no encoding"
        );
    }

    #[test]
    fn every_rejected_line_is_numbered_from_the_first() {
        let body = b"a v=1 1\nbad\n\nc v=1 1\nd v=\xff 1\nalso bad\n";
        let parsed = parse(body, Precision::Nanoseconds, 0);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed.rejected, 3);
        let errors = rejected_lines(body, Precision::Nanoseconds, 0, &Limits::default(), 101);
        let numbers: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(numbers, [102, 105, 106]);
        assert_eq!(errors[0].text, "bad");
        assert!(
            errors[1].reason.contains("invalid UTF-8"),
            "{}",
            errors[1].reason
        );
    }

    #[test]
    fn invalid_utf8_spoils_only_its_line() {
        let body = b"a v=1 1\nb,t=\xff v=1 1\nc v=1 1\n";
        let parsed = parse(body, Precision::Nanoseconds, 0);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed.rejected, 1);
        let first = parsed.first_error.unwrap();
        assert_eq!(first.line, 2);
        assert!(first.reason.contains("invalid UTF-8"), "{}", first.reason);
    }
}
