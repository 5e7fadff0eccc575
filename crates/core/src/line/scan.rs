//! The fast path of [`super::parse`]: one pass over the bytes of a plain line.
//!
//! Invariant: for every line it accepts, it returns exactly what the general path
//! (`influxdb_line_protocol` + `normalise`) returns; every line it is not sure about it
//! declines (`None`), and the general path judges it. So it changes the cost of a line,
//! never the answer. The differential test below holds it to that.
//!
//! It accepts what nearly all traffic is: no escapes (`\`), no `=` or `"` in names, one
//! space between measurement/tags, fields and timestamp, string fields without backslashes,
//! at most [`MAX_TAGS`] tags. The general path costs several µs per line (its parser
//! allocates an error for every alternative it tries); this one costs a few hundred ns.

use super::{Limits, Precision, MAX_NANOS, MIN_NANOS};

/// More tags than this go to the general path.
const MAX_TAGS: usize = 32;

/// What [`normalise`] made of a plain line: the length of its series key, and where its
/// canonical line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Normalised {
    /// The line is canonical as it is: nothing was written.
    Same(usize),
    /// The canonical line was appended to `out`.
    Written(usize),
}

/// Normalises `raw` if it is a plain line within `limits`; `None` sends it to the general
/// path (and may leave a partial line in `out`: the caller truncates). The caller has checked
/// `limits.max_line_length`.
///
/// Most lines are canonical already (Telegraf sorts tags and writes nanoseconds): a first
/// pass checks, without writing, that the canonical line would be `raw` itself
/// ([`Normalised::Same`]); any other line is written into `out` piece by piece in a second
/// pass ([`Normalised::Written`]).
pub(super) fn normalise(
    raw: &str,
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
    out: &mut String,
) -> Option<Normalised> {
    let mut same = Same {
        raw: raw.as_bytes(),
        at: 0,
        same: true,
    };
    let series_len = write(raw, precision, now_ns, limits, &mut same)?;
    if same.same && same.at == raw.len() {
        return Some(Normalised::Same(series_len));
    }
    write(raw, precision, now_ns, limits, out).map(Normalised::Written)
}

/// Where [`write`] puts the canonical line.
trait Out {
    fn len(&self) -> usize;
    fn reserve(&mut self, additional: usize);
    /// Appends an ASCII character.
    fn push(&mut self, c: char);
    fn push_str(&mut self, s: &str);
}

impl Out for String {
    fn len(&self) -> usize {
        String::len(self)
    }

    fn reserve(&mut self, additional: usize) {
        String::reserve(self, additional);
    }

    fn push(&mut self, c: char) {
        String::push(self, c);
    }

    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }
}

/// Writes nothing: follows where the canonical line would be, and whether it is `raw` so far.
/// A piece of `raw` written where it already is, the common case, is checked by address.
struct Same<'a> {
    raw: &'a [u8],
    at: usize,
    same: bool,
}

impl Out for Same<'_> {
    fn len(&self) -> usize {
        self.at
    }

    fn reserve(&mut self, _: usize) {}

    fn push(&mut self, c: char) {
        self.same &= self.raw.get(self.at).is_some_and(|&r| char::from(r) == c);
        self.at += 1;
    }

    fn push_str(&mut self, s: &str) {
        let end = self.at + s.len();
        self.same &= self
            .raw
            .get(self.at..end)
            .is_some_and(|r| std::ptr::eq(r.as_ptr(), s.as_ptr()) || r == s.as_bytes());
        self.at = end;
    }
}

/// The canonical line of `raw` into `out`, as [`normalise`] describes.
fn write(
    raw: &str,
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
    out: &mut impl Out,
) -> Option<usize> {
    let b = raw.as_bytes();
    let mark = out.len();
    out.reserve(raw.len() + 20);

    // Measurement: up to ',' (tags follow) or ' ' (fields follow).
    let end = name_end(b, 0);
    if end == 0 || b.get(end).is_none_or(|&c| c != b',' && c != b' ') || b[0] == b'#' {
        return None;
    }
    let mut at = end;

    // Tags: checked as they come; when their keys come sorted (the common case) the series
    // key is written as it is, else the tags are sorted first.
    let (mut count, mut sorted, mut previous) = (0, true, "");
    while let Some((key, _, next)) = tag(raw, at) {
        if count == MAX_TAGS || key == "time" {
            return None;
        }
        sorted &= count == 0 || previous < key;
        (previous, count, at) = (key, count + 1, next);
    }
    if b.get(at) == Some(&b',') {
        return None; // a tag the fast path does not take
    }
    if sorted {
        out.push_str(&raw[..at]);
    } else {
        let mut tags: [(&str, &str); MAX_TAGS] = [("", ""); MAX_TAGS];
        let mut next = end;
        for slot in tags.iter_mut().take(count) {
            let (key, value, after) = tag(raw, next)?;
            *slot = (key, value);
            next = after;
        }
        let tags = &mut tags[..count];
        tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if tags.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return None;
        }
        out.push_str(&raw[..end]);
        for (key, value) in tags.iter() {
            out.push(',');
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
    }
    let series_len = out.len() - mark;

    // Fields: ' ' then key=value pairs separated by ','.
    if b.get(at) != Some(&b' ') {
        return None;
    }
    out.push(' ');
    at += 1;
    let mut fields = 0;
    loop {
        fields += 1;
        if fields > limits.max_fields {
            return None;
        }
        let key_end = name_end(b, at);
        if key_end == at || b.get(key_end) != Some(&b'=') || &raw[at..key_end] == "time" {
            return None;
        }
        out.push_str(&raw[at..key_end + 1]);
        let (value_end, ok) = field_value(raw, key_end + 1, limits.allow_unsigned, out);
        if !ok {
            return None;
        }
        at = value_end;
        match b.get(at) {
            Some(b',') => {
                out.push(',');
                at += 1;
            }
            _ => break,
        }
    }

    // Timestamp: none, or ' ' then an integer ending the line.
    let timestamp = match b.get(at) {
        None => now_ns,
        Some(b' ') => {
            let text = &raw[at + 1..];
            let ns = integer(text)?
                .checked_mul(precision.nanos())
                .filter(|ns| (MIN_NANOS..=MAX_NANOS).contains(ns))?;
            if precision.nanos() == 1 && is_canonical(text) {
                // Already as it would be written: copied, not formatted again.
                out.push(' ');
                out.push_str(text);
                return Some(series_len);
            }
            ns
        }
        Some(_) => return None,
    };
    out.push(' ');
    push_int(out, timestamp < 0, timestamp.unsigned_abs());
    Some(series_len)
}

/// The tag at `at` (`,key=value`), its key and value, and where it ends; `None` when there
/// is no tag there or it is not one the fast path takes.
fn tag(raw: &str, at: usize) -> Option<(&str, &str, usize)> {
    let b = raw.as_bytes();
    if b.get(at) != Some(&b',') {
        return None;
    }
    let key_start = at + 1;
    let key_end = name_end(b, key_start);
    if key_end == key_start || b.get(key_end) != Some(&b'=') {
        return None;
    }
    let value_start = key_end + 1;
    let value_end = name_end(b, value_start);
    if value_end == value_start || b.get(value_end).is_none_or(|&c| c != b',' && c != b' ') {
        return None;
    }
    Some((
        &raw[key_start..key_end],
        &raw[value_start..value_end],
        value_end,
    ))
}

/// The lines of `body` exactly as `influxdb_line_protocol::split_lines` cuts them (a port
/// of Go's `scanLine`: a newline inside a quoted string field value, or escaped, does not end
/// a line), without its per-character state machine for lines that hold no `\` or `"`, and
/// on bytes, so that a body that is not all UTF-8 is cut the same way.
pub(super) fn lines(body: &[u8]) -> Lines<'_> {
    Lines {
        body,
        at: 0,
        number: 1,
        done: false,
    }
}

/// One line of a body: where it is, without the newline that ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Line {
    /// 1-based, counting physical lines: a line holding a quoted newline counts as two.
    pub(super) number: usize,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Line {
    pub(super) fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// The iterator of [`lines`].
#[derive(Debug)]
pub(super) struct Lines<'a> {
    body: &'a [u8],
    at: usize,
    number: usize,
    done: bool,
}

impl Iterator for Lines<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        if self.done {
            return None;
        }
        let start = self.at;
        let rest = &self.body[start..];
        let newline = memchr::memchr(b'\n', rest);
        let line = &rest[..newline.unwrap_or(rest.len())];
        let (end, inner) = if memchr::memchr2(b'\\', b'"', line).is_some() {
            let end = line_end(rest);
            let within = &rest[..end.unwrap_or(rest.len())];
            (end, within.iter().filter(|&&c| c == b'\n').count())
        } else {
            (newline, 0)
        };
        let number = self.number;
        self.number += 1 + inner;
        match end {
            Some(end) => {
                self.at = start + end + 1;
                Some(Line {
                    number,
                    start,
                    end: start + end,
                })
            }
            None => {
                self.done = true;
                Some(Line {
                    number,
                    start,
                    end: self.body.len(),
                })
            }
        }
    }
}

/// Go's `scanLine` state machine: the index of the newline that ends the first line of `b`.
fn line_end(b: &[u8]) -> Option<usize> {
    let (mut quoted, mut fields, mut escaped) = (false, false, false);
    let (mut equals, mut commas) = (0_usize, 0_usize);
    for (i, &c) in b.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' => escaped = true,
            b' ' => fields = true,
            b'=' if fields && !quoted => equals += 1,
            b',' if fields && !quoted => commas += 1,
            b'"' if fields && equals > commas => quoted = !quoted,
            b'\n' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The bytes that may end or escape a name: ` `, `,`, `=`, `\\`, `"`, tab, CR, LF, NUL.
const ENDS_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    let ends = b" ,=\\\"\t\n\r\0";
    while i < ends.len() {
        table[ends[i] as usize] = true;
        i += 1;
    }
    table
};

/// The end of a name (measurement, tag key or value, field key) starting at `start`: the
/// first byte that may end or escape one. The caller checks which byte that is.
fn name_end(b: &[u8], start: usize) -> usize {
    b[start.min(b.len())..]
        .iter()
        .position(|&c| ENDS_NAME[usize::from(c)])
        .map_or(b.len(), |len| start + len)
}

/// Writes the field value starting at `start` in canonical form; returns where it ends and
/// whether it is one the fast path handles.
fn field_value(raw: &str, start: usize, allow_unsigned: bool, out: &mut impl Out) -> (usize, bool) {
    let b = raw.as_bytes();
    if b.get(start) == Some(&b'"') {
        // A string without backslashes: copied as is (nothing in it needs escaping).
        let Some(len) = b[start + 1..].iter().position(|&c| c == b'"' || c == b'\\') else {
            return (start, false);
        };
        let close = start + 1 + len;
        if b[close] != b'"' || b.get(close + 1).is_some_and(|&c| c != b',' && c != b' ') {
            return (start, false);
        }
        out.push_str(&raw[start..close + 1]);
        return (close + 1, true);
    }
    if let Some(end) = plain_float(b, start) {
        out.push_str(&raw[start..end]);
        return (end, true);
    }
    let end = name_end(b, start);
    if b.get(end).is_some_and(|&c| c != b',' && c != b' ') {
        return (start, false);
    }
    let token = &raw[start..end];
    let ok = match token.as_bytes() {
        [] => false,
        [body @ .., b'i'] => match integer(&token[..body.len()]) {
            Some(_) if is_canonical(&token[..body.len()]) => {
                out.push_str(token);
                true
            }
            Some(v) => {
                push_int(out, v < 0, v.unsigned_abs());
                out.push('i');
                true
            }
            None => false,
        },
        [body @ .., b'u']
            if allow_unsigned && !body.is_empty() && body.iter().all(u8::is_ascii_digit) =>
        {
            match token[..body.len()].parse::<u64>() {
                Ok(v) => {
                    push_int(out, false, v);
                    out.push('u');
                    true
                }
                Err(_) => false,
            }
        }
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => {
            out.push_str("true");
            true
        }
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => {
            out.push_str("false");
            true
        }
        _ => float(token, out),
    };
    (end, ok)
}

/// The end of a float field value at `start` written as most are, `-?\d*(\.\d*)?` with a
/// digit and under 300 integer digits, followed by `,`, ` ` or the end of the line: what
/// [`float`] accepts and writes as it is, found in one pass. `None` for anything else (an
/// exponent, an integer `i`, a boolean, …), which the general match then reads.
fn plain_float(b: &[u8], start: usize) -> Option<usize> {
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let sign = start + usize::from(b.get(start) == Some(&b'-'));
    let int_end = digits(sign.min(b.len()));
    let mut end = int_end;
    let mut frac = 0;
    if b.get(end) == Some(&b'.') {
        let frac_end = digits(end + 1);
        frac = frac_end - end - 1;
        end = frac_end;
    }
    let int = int_end - sign;
    let ends = matches!(b.get(end), None | Some(b',' | b' '));
    (int + frac > 0 && int < 300 && ends).then_some(end)
}

/// Writes a float field as the client wrote it, when it is one by InfluxDB's grammar
/// (`-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?`: `1`, `1.5`, `.5`, `1.`, `1e3`, `1.5E-3`) and
/// finite. `false` otherwise.
fn float(token: &str, out: &mut impl Out) -> bool {
    let b = token.as_bytes();
    let unsigned = b.strip_prefix(b"-").unwrap_or(b);
    let int_len = unsigned.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut rest = &unsigned[int_len..];
    let mut frac_len = 0;
    if let Some(after) = rest.strip_prefix(b".") {
        frac_len = after.iter().take_while(|c| c.is_ascii_digit()).count();
        rest = &after[frac_len..];
    }
    if int_len + frac_len == 0 {
        return false;
    }
    let exponent = !rest.is_empty();
    if let Some(after) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let digits = after
            .strip_prefix(b"-")
            .or_else(|| after.strip_prefix(b"+"))
            .unwrap_or(after);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return false;
        }
    } else if exponent {
        return false;
    }
    // Without an exponent, fewer than 300 integer digits cannot overflow; else parse to see.
    let finite = (!exponent && int_len < 300) || token.parse::<f64>().is_ok_and(f64::is_finite);
    if finite {
        out.push_str(token);
    }
    finite
}

/// `-?\d+` as an `i64`, in one pass; `None` for anything else or out of range.
fn integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulated as a negative number: i64::MIN has no positive counterpart. The first 18
    // digits cannot overflow; only the digits after them pay for the checks.
    let (head, tail) = digits.as_bytes().split_at(digits.len().min(18));
    let mut value: i64 = 0;
    for &c in head {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 - i64::from(digit);
    }
    for &c in tail {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(digit))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Whether an integer that [`integer`] read is written as [`push_int`] would write it: no
/// leading zero, no `-0`.
fn is_canonical(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.starts_with('0') || text == "0"
}

/// Appends `-` (when `negative`) and `n` in decimal.
fn push_int(out: &mut impl Out, negative: bool, n: u64) {
    let mut buf = [0_u8; 24];
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    // Only ASCII digits and '-' were written.
    out.push_str(std::str::from_utf8(&buf[at..]).expect("ASCII digits"));
}

#[cfg(test)]
mod tests;
