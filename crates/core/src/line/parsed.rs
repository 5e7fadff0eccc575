//! The outcome of parsing one body: its valid metrics, held compactly.
//!
//! A line that is canonical already (tags sorted, minimal escapes, a nanosecond
//! timestamp: what Telegraf sends) is kept as a place in the body, not copied; the others
//! are written, one after another, into one buffer. So a parsed body costs its rewritten
//! lines plus 24 bytes per metric, and no allocation per line: the producer's memory per
//! request stays near the body's own size.

/// Where one metric's canonical line is.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// Start in the body (`in_body`) or in the rewritten buffer.
    start: usize,
    len: u32,
    series_len: u32,
    in_body: bool,
}

/// The valid metrics of one body, in body order, with the first refused line and how many
/// were refused. Borrows the body its canonical lines were taken from.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    body: &'a str,
    rewritten: String,
    spans: Vec<Span>,
    /// The first refused line, if any.
    pub first_error: Option<super::LineError>,
    /// How many lines were refused.
    pub rejected: usize,
}

/// One validated metric: a canonical line with a nanosecond timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric<'p> {
    line: &'p str,
    series_len: usize,
}

impl<'p> Metric<'p> {
    /// The normalised line: `measurement[,tags sorted] fields timestamp_ns`.
    pub fn line(&self) -> &'p str {
        self.line
    }

    /// The series key: measurement plus tags sorted by key, as escaped in the line.
    pub fn series_key(&self) -> &'p str {
        &self.line[..self.series_len]
    }
}

impl<'a> Parsed<'a> {
    /// Nothing parsed yet from `body`.
    pub(super) fn new(body: &'a str) -> Self {
        Self {
            body,
            ..Self::default()
        }
    }

    /// The buffer a line is normalised into; [`Parsed::keep`] or [`Parsed::discard`] then
    /// decide what happens to what was appended since `mark` (its length before).
    pub(super) fn buffer(&mut self) -> &mut String {
        &mut self.rewritten
    }

    /// Keeps `raw`, a slice of the body that is canonical as it is, as its place in the body.
    pub(super) fn keep_raw(&mut self, raw: &str, series_len: usize) {
        let start = raw.as_ptr() as usize - self.body.as_ptr() as usize;
        debug_assert!(
            start + raw.len() <= self.body.len(),
            "raw is not in the body"
        );
        self.spans.push(Span {
            start,
            len: len32(raw.len()),
            series_len: len32(series_len),
            in_body: true,
        });
    }

    /// Keeps the line normalised into the buffer since `mark`: as the place of `raw` in the
    /// body when it came out the same (`raw` must be a slice of the body), else as written.
    pub(super) fn keep(&mut self, raw: &str, mark: usize, series_len: usize) {
        let written = &self.rewritten[mark..];
        if written == raw {
            self.rewritten.truncate(mark);
            self.keep_raw(raw, series_len);
            return;
        }
        self.spans.push(Span {
            start: mark,
            len: len32(written.len()),
            series_len: len32(series_len),
            in_body: false,
        });
    }

    /// Drops whatever was appended to the buffer since `mark`.
    pub(super) fn discard(&mut self, mark: usize) {
        self.rewritten.truncate(mark);
    }

    /// How many metrics.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when no line was valid.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The metric at `index`.
    ///
    /// # Panics
    /// When `index` is out of bounds.
    pub fn metric(&self, index: usize) -> Metric<'_> {
        self.resolve(self.spans[index])
    }

    /// The metrics, in body order.
    pub fn metrics(&self) -> Metrics<'_> {
        Metrics {
            parsed: self,
            spans: self.spans.iter(),
        }
    }

    /// Bytes of memory in use besides the body: the rewritten lines and the index (their
    /// lengths; what a growing buffer reserved beyond them is not touched yet).
    pub fn heap_bytes(&self) -> usize {
        self.rewritten.len() + self.spans.len() * std::mem::size_of::<Span>()
    }

    /// The same metrics, owning every line (the body may then go).
    pub fn into_owned(self) -> Parsed<'static> {
        let mut owned = Parsed {
            body: "",
            rewritten: String::with_capacity(self.rewritten.len()),
            spans: Vec::with_capacity(self.spans.len()),
            first_error: self.first_error.clone(),
            rejected: self.rejected,
        };
        for span in &self.spans {
            let line = self.resolve(*span).line;
            owned.spans.push(Span {
                start: owned.rewritten.len(),
                in_body: false,
                ..*span
            });
            owned.rewritten.push_str(line);
        }
        owned
    }

    fn resolve(&self, span: Span) -> Metric<'_> {
        let text = if span.in_body {
            self.body
        } else {
            &self.rewritten
        };
        Metric {
            line: &text[span.start..span.start + span.len as usize],
            series_len: span.series_len as usize,
        }
    }
}

/// A line's length as stored: lines are bounded far below 4 GiB (`max_line_length`, and
/// the body size); a longer one would be a bug upstream.
fn len32(len: usize) -> u32 {
    u32::try_from(len).expect("a line shorter than 4 GiB")
}

/// The iterator of [`Parsed::metrics`].
#[derive(Debug, Clone)]
pub struct Metrics<'p> {
    parsed: &'p Parsed<'p>,
    spans: std::slice::Iter<'p, Span>,
}

impl<'p> Iterator for Metrics<'p> {
    type Item = Metric<'p>;

    fn next(&mut self) -> Option<Metric<'p>> {
        self.spans.next().map(|span| self.parsed.resolve(*span))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for Metrics<'_> {}
