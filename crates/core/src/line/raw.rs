//! The names of a line (measurement, tag keys and values, field keys) as InfluxDB 1.x and
//! 2.x read them (Go, `models/points.go`): a delimiter is escaped when the byte before it is
//! a backslash, and unescaping replaces only `\,` and `\ ` (measurement), plus `\=` (tags)
//! and `\"` (field keys). Every other backslash, `\\` included, is kept as it is.
//!
//! `influxdb_line_protocol` (InfluxDB 3's parser) reads `\\` as one backslash instead, so its
//! names differ from InfluxDB 1.x/2.x wherever two backslashes follow each other, e.g. a
//! Windows UNC path `\\server\share` in a tag, which Telegraf sends unescaped. redline's
//! sinks are InfluxDB 1.x and 2.x, so names are read here by their rules and written back
//! as Go's `escapeMeasurement`/`escapeTag` would. The two parsers also split a line
//! differently where `\\` stands right before a delimiter (`t=a\\,b`): such lines are
//! refused, never guessed.

use std::borrow::Cow;

/// What a name's escapes mean: the characters `\x` stands for, and the characters a writer
/// must escape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    unescapes: &'static [char],
    escapes: &'static [char],
}

/// Measurement names.
pub(super) const MEASUREMENT: Rules = Rules {
    unescapes: &[',', ' '],
    escapes: &[',', ' '],
};
/// Tag keys and values.
pub(super) const TAG: Rules = Rules {
    unescapes: &[',', ' ', '='],
    escapes: &[',', ' ', '='],
};
/// Field keys.
pub(super) const FIELD_KEY: Rules = Rules {
    unescapes: &[',', ' ', '=', '"'],
    escapes: &[',', ' ', '=', '"'],
};

/// The message for a line the two parsers would read differently.
pub(super) const AMBIGUOUS: &str = "ambiguous escaping: a '\\\\' right before a delimiter \
     (',', ' ' or '=') is read differently by InfluxDB versions; escape the delimiter only";

/// The escaped names of one line, as slices of it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RawLine<'a> {
    pub(super) measurement: &'a str,
    pub(super) tags: Vec<(&'a str, &'a str)>,
    pub(super) field_keys: Vec<&'a str>,
    /// The field values as written (a string value with its quotes).
    pub(super) field_values: Vec<&'a str>,
    /// Where the field values end: the rest is the timestamp, if any.
    pub(super) fields_end: usize,
}

/// Splits a line that `influxdb_line_protocol` accepted into its escaped names.
///
/// # Errors
/// [`AMBIGUOUS`] when a name holds `\\` right before a delimiter, or a message when the
/// line has no field set by these rules.
pub(super) fn split(line: &str) -> Result<RawLine<'_>, String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n') {
        i += 1;
    }
    let start = i;
    i = scan(b, i, |c| c == b',' || c == b' ');
    let measurement = name(line, start, i)?;
    let mut tags = Vec::new();
    while b.get(i) == Some(&b',') {
        let key_start = i + 1;
        i = scan(b, key_start, |c| c == b'=' || c == b' ');
        if b.get(i) != Some(&b'=') {
            return Err("a tag has no '='".into());
        }
        let key = name(line, key_start, i)?;
        refuse_unescaped(key, b',', "tag key")?;
        let value_start = i + 1;
        i = scan(b, value_start, |c| c == b',' || c == b' ');
        let value = name(line, value_start, i)?;
        refuse_unescaped(value, b'=', "tag value")?;
        tags.push((key, value));
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut field_keys = Vec::new();
    let mut field_values = Vec::new();
    loop {
        let key_start = i;
        i = scan(b, key_start, |c| c == b'=' || c == b' ');
        if b.get(i) != Some(&b'=') {
            return Err("a field has no '='".into());
        }
        let key = name(line, key_start, i)?;
        refuse_unescaped(key, b',', "field key")?;
        field_keys.push(key);
        i += 1;
        let value_start = i;
        i = value_end(b, i).ok_or("a string field has no closing quote")?;
        field_values.push(&line[value_start..i]);
        if b.get(i) == Some(&b',') {
            i += 1;
        } else {
            break;
        }
    }
    Ok(RawLine {
        measurement,
        tags,
        field_keys,
        field_values,
        fields_end: i,
    })
}

/// The end of the field value starting at `i`: after the closing quote of a string, else
/// at the next `,` or ` `. `None` for a string without its closing quote.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'"') {
        return string_end(b, i + 1);
    }
    Some(
        b[i..]
            .iter()
            .position(|&c| c == b',' || c == b' ')
            .map_or(b.len(), |n| i + n),
    )
}

/// `line` with every float value InfluxDB 1.x reads but `influxdb_line_protocol` does not
/// (`.5`, `-.5`, `1.`, `1.e5`, `.5e2`) given the digit it lacks (`0.5`, `1.0`, …), so that
/// parser can read the line; `None` when there is none. The values are only rewritten for
/// parsing: the stored line keeps the client's spelling.
pub(super) fn loosen_floats(line: &str) -> Option<String> {
    let fields = fields_start(line)?;
    let b = line.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = fields;
    loop {
        i = scan(b, i, |c| c == b'=' || c == b' ');
        if b.get(i) != Some(&b'=') {
            break;
        }
        let start = i + 1;
        let end = value_end(b, start)?;
        let value = &line[start..end];
        if let Some(fixed) = loose_float(value) {
            out.push_str(&line[copied..start]);
            out.push_str(&fixed);
            copied = end;
        }
        if b.get(end) != Some(&b',') {
            break;
        }
        i = end + 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&line[copied..]);
    Some(out)
}

/// Where the field set of `line` starts: after its first unescaped space.
fn fields_start(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let start = b.iter().position(|&c| !matches!(c, b' ' | b'\t' | b'\n'))?;
    let mut i = scan(b, start, |c| c == b' ');
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    (i < b.len()).then_some(i)
}

/// `value` with the digit it lacks when it is a float of InfluxDB's looser forms: a missing
/// integer part (`.5` → `0.5`) or fraction (`1.` → `1.0`).
fn loose_float(value: &str) -> Option<String> {
    let (sign, digits) = match value.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", value),
    };
    let (int, rest) = digits.split_at(digits.bytes().take_while(u8::is_ascii_digit).count());
    let frac_and_exp = rest.strip_prefix('.')?;
    let frac_len = frac_and_exp.bytes().take_while(u8::is_ascii_digit).count();
    let (frac, exp) = frac_and_exp.split_at(frac_len);
    let exp_ok = exp.is_empty()
        || exp
            .strip_prefix(['e', 'E'])
            .map(|e| e.strip_prefix(['-', '+']).unwrap_or(e))
            .is_some_and(|e| !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()));
    if !exp_ok || (int.is_empty() && frac.is_empty()) || (!int.is_empty() && !frac.is_empty()) {
        return None;
    }
    let int = if int.is_empty() { "0" } else { int };
    let frac = if frac.is_empty() { "0" } else { frac };
    Some(format!("{sign}{int}.{frac}{exp}"))
}

/// The index of the first byte from `i` that `is_delimiter` and is not escaped (the byte
/// before it is not a backslash), or the end.
fn scan(b: &[u8], mut i: usize, is_delimiter: impl Fn(u8) -> bool) -> usize {
    let start = i;
    while i < b.len() {
        if is_delimiter(b[i]) && (i == start || b[i - 1] != b'\\') {
            break;
        }
        i += 1;
    }
    i
}

/// The index after the closing quote of a string value whose content starts at `i`
/// (`\"` and `\\` are escapes inside it).
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\\' if matches!(b.get(i + 1), Some(b'"' | b'\\')) => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `line[start..end]`, refused when both parsers would split it differently.
fn name(line: &str, start: usize, end: usize) -> Result<&str, String> {
    // Delimiters are ASCII, so `start` and `end` are on char boundaries.
    let raw = &line[start..end];
    let b = raw.as_bytes();
    let ambiguous = b
        .windows(3)
        .any(|w| w[0] == b'\\' && w[1] == b'\\' && matches!(w[2], b',' | b' ' | b'='));
    if ambiguous {
        return Err(AMBIGUOUS.into());
    }
    Ok(raw)
}

/// Refuses a `c` without a backslash before it in `raw`, as InfluxDB 1.x does (a ',' in a
/// key, a '=' in a tag value), where `influxdb_line_protocol` would take it literally.
fn refuse_unescaped(raw: &str, c: u8, what: &str) -> Result<(), String> {
    let b = raw.as_bytes();
    if (0..b.len()).any(|i| b[i] == c && (i == 0 || b[i - 1] != b'\\')) {
        return Err(format!("unescaped '{}' in {what} '{raw}'", char::from(c)));
    }
    Ok(())
}

/// The name an escaped `raw` stands for under `rules`.
pub(super) fn unescape(raw: &str, rules: Rules) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if rules.unescapes.contains(&next) {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Appends `name` escaped under `rules`.
pub(super) fn escape(out: &mut String, name: &str, rules: Rules) {
    for c in name.chars() {
        if rules.escapes.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_influxdb_1x_does() {
        let raw = split(r#"m\ x,b=2\,3,a\=k=v  f\ 1="x,y=\"z\"",g=1i 5"#).unwrap();
        assert_eq!(raw.measurement, r"m\ x");
        assert_eq!(raw.tags, [(r"b", r"2\,3"), (r"a\=k", "v")]);
        assert_eq!(raw.field_keys, [r"f\ 1", "g"]);
        assert_eq!(
            &r#"m\ x,b=2\,3,a\=k=v  f\ 1="x,y=\"z\"",g=1i 5"#[raw.fields_end..],
            " 5"
        );
    }

    #[test]
    fn backslashes_are_kept_except_before_what_they_escape() {
        assert_eq!(unescape(r"\\server\share", TAG), r"\\server\share");
        assert_eq!(unescape(r"a\,b\ c\=d\e", TAG), "a,b c=d\\e");
        assert_eq!(unescape(r"a\=b", MEASUREMENT), r"a\=b");
        assert_eq!(unescape(r#"k\"q"#, FIELD_KEY), r#"k"q"#);
        let mut out = String::new();
        escape(&mut out, r"a,b c=d\e", TAG);
        assert_eq!(out, r"a\,b\ c\=d\e");
    }

    #[test]
    fn delimiters_influxdb_refuses_unescaped_are_refused() {
        for (line, reason) in [
            ("m,a,b=1 v=1", "unescaped ',' in tag key 'a,b'"),
            ("m,a=b=c v=1", "unescaped '=' in tag value 'b=c'"),
            ("m v=1,,w=2", "unescaped ',' in field key ',w'"),
        ] {
            assert_eq!(split(line).unwrap_err(), reason, "{line}");
        }
        assert!(split(r"m,a\,b=c\=d v\,w=1").is_ok());
    }

    #[test]
    fn a_double_backslash_before_a_delimiter_is_refused() {
        for line in [
            r"m,t=a\\,u=b v=1",
            r"m\\ x v=1",
            r"m,t\\=a=b v=1",
            r"m a\\=b=1",
        ] {
            assert_eq!(split(line).unwrap_err(), AMBIGUOUS, "{line}");
        }
    }
}
