//! [`Parser`]: a body parsed piece by piece, each line by the fast path (`scan`) or the
//! general one, into a [`Parsed`].

use super::{general, quote, scan, Limits, LineError, Parsed, Precision};

/// Parses a body piece by piece, so a caller can account for the memory of each piece
/// before it is taken: [`parse_with`](super::parse_with) in steps, with the same result.
#[derive(Debug)]
pub struct Parser<'a> {
    lines: scan::Lines<'a>,
    body: &'a str,
    precision: Precision,
    now_ns: i64,
    limits: Limits,
    out: Parsed<'a>,
    /// Bytes of the body parsed so far.
    at: usize,
}

impl<'a> Parser<'a> {
    /// A parser of `body` (nothing parsed yet).
    pub fn new(body: &'a str, precision: Precision, now_ns: i64, limits: &Limits) -> Self {
        Self {
            lines: scan::lines(body.as_bytes()),
            body,
            precision,
            now_ns: now_ns - now_ns.rem_euclid(precision.nanos()),
            // A line's place is kept in 32 bits (see `parsed`).
            limits: Limits {
                max_line_length: limits.max_line_length.min(u32::MAX as usize),
                ..*limits
            },
            out: Parsed::new(body),
            at: 0,
        }
    }

    /// Bytes of the body not parsed yet.
    pub fn remaining(&self) -> usize {
        self.body.len() - self.at
    }

    /// What has been parsed so far.
    pub fn parsed(&self) -> &Parsed<'a> {
        &self.out
    }

    /// Parses whole lines until at least `bytes` more of the body are done, or the body is.
    pub fn parse_next(&mut self, bytes: usize) {
        let until = self.at.saturating_add(bytes);
        while self.at < until {
            let Some(line) = self.lines.next() else {
                self.at = self.body.len();
                break;
            };
            self.at = (line.end + 1).min(self.body.len());
            self.line(line);
        }
    }

    /// The metrics parsed, and the refused lines.
    pub fn finish(self) -> Parsed<'a> {
        self.out
    }

    fn line(&mut self, line: scan::Line) {
        let raw = &self.body[line.range()];
        let (precision, now_ns, limits) = (self.precision, self.now_ns, &self.limits);
        let out = &mut self.out;
        let mark = out.buffer().len();
        let result = if raw.len() > limits.max_line_length {
            let content = raw.trim_start_matches([' ', '\t', '\n']);
            if content.is_empty() || content.starts_with('#') {
                return;
            }
            Err(format!(
                "line is {} bytes long, more than the limit of {} bytes",
                raw.len(),
                limits.max_line_length
            ))
        } else if let Some(normalised) =
            scan::normalise(raw, precision, now_ns, limits, out.buffer())
        {
            // Plain lines: the same result as below, in a fraction of the time.
            match normalised {
                scan::Normalised::Same(series_len) => {
                    out.keep_raw(raw, series_len);
                    return;
                }
                scan::Normalised::Written(series_len) => Ok(series_len),
            }
        } else {
            out.discard(mark);
            match general(raw, precision, now_ns, limits, out.buffer()) {
                Some(result) => result,
                None => return, // blank line or comment
            }
        };
        match result {
            Ok(series_len) => out.keep(raw, mark, series_len),
            Err(reason) => {
                out.discard(mark);
                out.rejected += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(LineError {
                        line: line.number,
                        reason,
                        text: quote(raw),
                    });
                }
            }
        }
    }
}
