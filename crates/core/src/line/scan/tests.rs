use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use super::*;

const NOW: i64 = 1_700_000_000_000_000_000;

/// What the general path makes of one line: `Some(line)` or `None` when refused.
fn slow(raw: &str, precision: Precision) -> Option<String> {
    let mut out = String::new();
    super::super::general(raw, precision, NOW, &Limits::NONE, &mut out)?.ok()?;
    Some(out)
}

fn fast(raw: &str, precision: Precision) -> Option<String> {
    let mut out = String::new();
    match normalise(raw, precision, NOW, &Limits::NONE, &mut out)? {
        // Canonical as it is: nothing may have been written.
        Normalised::Same(_) => {
            assert_eq!(out, "", "{raw:?} was written though it is canonical");
            Some(raw.to_string())
        }
        Normalised::Written(_) => {
            assert_ne!(out, raw, "{raw:?} was written though it is canonical");
            Some(out)
        }
    }
}

/// Pieces of bodies: lines, newlines, and the characters that decide where a line ends.
const PIECES: &[&str] = &[
    "m v=1 1",
    "\n",
    "\n",
    "m s=\"a\nb\" 1",
    "m,t=a\\\nb v=1",
    "\\",
    "\"",
    " ",
    "=",
    ",",
    "é",
    "x",
    "m v=\"\\\"\n\" 2",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lines_are_cut_where_influxdb_line_protocol_cuts_them(
        pieces in prop::collection::vec(prop::sample::select(PIECES), 0..8)
    ) {
        let body: String = pieces.concat();
        let ours: Vec<&str> = lines(body.as_bytes()).map(|l| &body[l.range()]).collect();
        let theirs: Vec<&str> = influxdb_line_protocol::split_lines(&body).collect();
        prop_assert_eq!(ours, theirs, "{:?}", body);
        // Numbers count physical lines: each line starts after the newlines before it.
        for line in lines(body.as_bytes()) {
            let before = body.as_bytes()[..line.start]
                .iter()
                .filter(|&&c| c == b'\n')
                .count();
            prop_assert_eq!(line.number, before + 1, "{:?}", body);
        }
    }
}

#[test]
fn floats_keep_the_clients_spelling_on_both_paths() {
    for (value, kept) in [
        ("1e308", true),
        ("1E+3", true),
        ("1.50", true),
        (".5", true),
        ("-.5", true),
        ("1.", true),
        ("1.e5", true),
        (".5e2", true),
        ("00.5", true),
        ("1e400", false),
        ("+1", false),
        (".", false),
        ("-.", false),
        ("1e", false),
    ] {
        let line = format!("m v={value} 1");
        let expected = kept.then(|| line.clone());
        assert_eq!(fast(&line, Precision::Nanoseconds), expected, "{line}");
        let escaped = format!("m\\ x v={value} 1");
        assert_eq!(
            slow(&escaped, Precision::Nanoseconds),
            kept.then(|| escaped.clone()),
            "{escaped}"
        );
    }
}

#[test]
fn lines_past_the_field_limit_are_left_to_the_general_path() {
    let limits = Limits {
        max_fields: 2,
        ..Limits::default()
    };
    let line = "m a=1,b=2,c=3 1";
    assert!(normalise(
        line,
        Precision::Nanoseconds,
        NOW,
        &limits,
        &mut String::new()
    )
    .is_none());
    assert!(normalise(
        "m a=1,b=2 1",
        Precision::Nanoseconds,
        NOW,
        &limits,
        &mut String::new()
    )
    .is_some());
}

#[test]
fn plain_lines_take_the_fast_path_with_the_same_result() {
    for line in [
        "cpu,host=a,cpu=cpu0 usage_user=12.345,usage_idle=84.5 1700000000000000000",
        "cpu v=1",
        "m,z=1,a=2 i=-3i,u=7u,b=true,s=\"a, b c=d\",f=0.25,e=1e3,g=1.50,h=007 12",
        "мера,тег=значение поле=1.5 5",
        "m f=0.123456789012345678,g=123456789012345678 1",
        "m t=T,f=FALSE,x=f 1",
        "m s=\"\" -5",
    ] {
        let fast = fast(line, Precision::Nanoseconds);
        assert!(fast.is_some(), "{line} should take the fast path");
        assert_eq!(fast, slow(line, Precision::Nanoseconds), "{line}");
    }
}

/// Names: the first ten plain (so the fast path is exercised), the rest ones it must decline.
const NAMES: &[&str] = &[
    "cpu", "a", "b", "z", "host", "é", "cpu", "a", "b", "z", "time", "x y", "x,y", "x=y", "x\\ y",
    "\"q\"", "#c", "t\tb", "", " ", "m\\",
];

/// Field values: the first nine plain, the rest every edge of each type.
const VALUES: &[&str] = &[
    "1",
    "-0",
    "0",
    "1.50",
    "1.5",
    "0.0001",
    "00.5",
    "1e3",
    "1.5E-3",
    "1e400",
    "+1",
    "1.",
    ".5",
    "1i",
    "-1i",
    "-0i",
    "007i",
    "9223372036854775807i",
    "9223372036854775808i",
    "-9223372036854775808i",
    "18446744073709551615u",
    "18446744073709551616u",
    "-1u",
    "1u",
    "t",
    "TRUE",
    "tRue",
    "false",
    "F",
    "\"s\"",
    "\"a b,c=d\"",
    "\"a\\\"b\"",
    "\"\"",
    "\"x",
    "NaN",
    "inf",
    "0.30000000000000004",
    "123456789012345678",
    "1234567890.12345",
    "12345678901234.56",
    "1e",
    "1.5e+",
    "-",
    "i",
    "u",
    "1.5.5",
];

/// Timestamps (with their separator): the first three plain.
const STAMPS: &[&str] = &[
    "",
    " 5",
    " -5",
    "  5",
    " 5 ",
    " 1.5",
    " 9223372036854775807",
    " 9223372036854775808",
    " x",
    " ",
    "\r",
    " 5\r",
];

/// One of the first `plain` items four times in five, else any.
fn weighted(items: &'static [&'static str], plain: usize) -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => prop::sample::select(&items[..plain]),
        1 => prop::sample::select(items),
    ]
}

/// A line of up to four tags and one to four fields built from those pieces, and a
/// precision.
fn line() -> impl Strategy<Value = (String, Precision)> {
    let name = || weighted(NAMES, 10);
    (
        name(),
        prop::collection::vec((name(), name()), 0..4),
        prop::collection::vec((name(), weighted(VALUES, 9)), 1..4),
        weighted(STAMPS, 3),
        prop::sample::select(vec![
            Precision::Nanoseconds,
            Precision::Seconds,
            Precision::Hours,
        ]),
    )
        .prop_map(|(measurement, tags, fields, stamp, precision)| {
            let mut line = measurement.to_string();
            for (key, value) in tags {
                line.push_str(&format!(",{key}={value}"));
            }
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line.push(' ');
            line.push_str(&fields.join(","));
            line.push_str(stamp);
            (line, precision)
        })
}

#[test]
fn random_lines_get_the_general_paths_answer_or_none() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 20_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let taken = Cell::new(0);
    let result = runner.run(&line(), |(line, precision)| {
        if let Some(fast) = fast(&line, precision) {
            taken.set(taken.get() + 1);
            prop_assert_eq!(Some(fast), slow(&line, precision), "{:?}", line);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(
        taken.get() > 4_000,
        "only {} lines took the fast path",
        taken.get()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// The one-pass integer reader against `-?\d+` checked, then Rust's own parse.
    #[test]
    fn integers_read_as_rust_parses_them(text in prop_oneof![
        "-?[0-9]{1,20}",
        "[-+0-9a ]{0,22}",
        Just("-9223372036854775808".to_string()),
        Just("9223372036854775808".to_string()),
        Just("-".to_string()),
    ]) {
        let digits = text.strip_prefix('-').unwrap_or(&text);
        let plain = !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit());
        let expected = if plain { text.parse::<i64>().ok() } else { None };
        prop_assert_eq!(integer(&text), expected);
    }
}
