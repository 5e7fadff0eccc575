use super::*;

const NOW: i64 = 1_700_000_000_000_000_000;

fn lines(body: &str, precision: Precision) -> Vec<String> {
    let parsed = parse(body, precision, NOW);
    assert!(parsed.first_error.is_none(), "{:?}", parsed.first_error);
    parsed.metrics().map(|m| m.line().to_owned()).collect()
}

#[test]
fn sorts_tags_and_stamps_missing_timestamps() {
    assert_eq!(
        lines("cpu,z=1,a=2 usage=0.5", Precision::Nanoseconds),
        [format!("cpu,a=2,z=1 usage=0.5 {NOW}")]
    );
}

#[test]
fn converts_every_precision_to_nanoseconds() {
    for (p, expected) in [
        ("ns", 5_i64),
        ("u", 5_000),
        ("ms", 5_000_000),
        ("s", 5_000_000_000),
        ("m", 300_000_000_000),
        ("h", 18_000_000_000_000),
    ] {
        let precision = Precision::parse(p).unwrap();
        assert_eq!(lines("m v=1i 5", precision), [format!("m v=1i {expected}")]);
    }
    assert_eq!(
        Precision::parse("minutes").unwrap_err().to_string(),
        "invalid precision 'minutes': use one of n, ns, u, us, ms, s, m, h"
    );
}

#[test]
fn keeps_types_and_escapes() {
    let body = r#"my\ meas,tag\,k=v\=1 s="a \"q\" \\ b",i=-3i,u=7u,b=true,f=1.5 10"#;
    assert_eq!(
        lines(body, Precision::Nanoseconds),
        [r#"my\ meas,tag\,k=v\=1 s="a \"q\" \\ b",i=-3i,u=7u,b=true,f=1.5 10"#]
    );
}

#[test]
fn normalised_lines_parse_back_to_themselves() {
    let body = "weather,city=São\\ Paulo,zone=b\\=c temp=21.5,note=\"ok, fine\" 1\n";
    let once = lines(body, Precision::Nanoseconds);
    let twice = lines(&once.join("\n"), Precision::Nanoseconds);
    assert_eq!(once, twice);
}

#[test]
fn series_key_is_measurement_and_sorted_tags() {
    let parsed = parse("cpu,b=2,a=1 v=1 1", Precision::Nanoseconds, NOW);
    assert_eq!(parsed.metric(0).series_key(), "cpu,a=1,b=2");
}

#[test]
fn bad_lines_are_counted_and_the_first_is_named() {
    let body =
        "ok v=1\n\n# comment\ncpu,host=a\nok v=2\nbad v=NaN 1\nok v=\"x\" 99999999999999999999";
    let parsed = parse(body, Precision::Nanoseconds, NOW);
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed.rejected, 3);
    let first = parsed.first_error.unwrap();
    assert_eq!(first.line, 4);
    assert_eq!(first.text, "cpu,host=a");
    assert!(first
        .to_string()
        .starts_with("unable to parse line 4 'cpu,host=a': "));
}

#[test]
fn refuses_what_influxdb_refuses() {
    for (body, reason) in [
        ("m time=1 1", "invalid field name 'time'"),
        ("m,time=x v=1 1", "invalid tag key 'time'"),
        ("m,a=1,a=2 v=1 1", "duplicate tag 'a'"),
        ("m v=inf 1", ""), // refused by the parser itself
    ] {
        let parsed = parse(body, Precision::Nanoseconds, NOW);
        let err = parsed.first_error.expect(body);
        assert!(err.reason.contains(reason), "{body}: {}", err.reason);
    }
    let parsed = parse("m v=1 9223372036854775", Precision::Seconds, NOW);
    assert!(parsed.first_error.unwrap().reason.contains("out of range"));
}

#[test]
fn names_mean_to_influxdb_what_they_meant_in_the_request() {
    // InfluxDB 1.x/2.x keep a backslash that escapes nothing, `\\` included.
    let body = concat!(
        r"disk,path=\\fs01\share,a=C:\Program\ Files v=1i 1",
        "\n",
        r#"m\=x,k\\2=\\x f\\\"=1i 2"#,
    );
    assert_eq!(
        lines(body, Precision::Nanoseconds),
        [
            r"disk,a=C:\Program\ Files,path=\\fs01\share v=1i 1",
            r#"m\=x,k\\2=\\x f\\\"=1i 2"#,
        ]
    );
    // Where parsers disagree on the split, the line is refused, never guessed.
    let parsed = parse(r"m,t=a\\\,u=b v=1 1", Precision::Nanoseconds, NOW);
    let reason = parsed.first_error.unwrap().reason;
    assert!(reason.starts_with("ambiguous escaping"), "{reason}");
}

#[test]
fn lines_past_the_limits_are_refused_by_number() {
    let limits = Limits {
        max_line_length: 20,
        max_fields: 2,
        ..Limits::NONE
    };
    let body = format!(
        "a v=1i 1\n{}\nb x=1,y=2,z=3 1\n# {}\nc x=1,y=2 1",
        "l".repeat(30),
        "c".repeat(30)
    );
    let parsed = parse_with(&body, Precision::Nanoseconds, NOW, &limits);
    let kept: Vec<&str> = parsed.metrics().map(|m| m.line()).collect();
    assert_eq!(kept, ["a v=1i 1", "c x=1,y=2 1"]);
    assert_eq!(parsed.rejected, 2);
    let first = parsed.first_error.unwrap();
    assert_eq!(first.line, 2);
    assert_eq!(
        first.reason,
        "line is 30 bytes long, more than the limit of 20 bytes"
    );
    let fields = parse_with("b x=1,y=2,z=3 1", Precision::Nanoseconds, NOW, &limits);
    assert_eq!(
        fields.first_error.unwrap().reason,
        "3 fields, more than the limit of 2 fields per line"
    );
}

#[test]
fn long_lines_are_quoted_truncated() {
    let body = format!("m,{} v=", "t=1".repeat(100));
    let err = parse(&body, Precision::Nanoseconds, NOW)
        .first_error
        .unwrap();
    assert!(err.text.ends_with('…'));
    assert!(err.text.chars().count() <= QUOTE_LIMIT + 1);
}

#[test]
fn precision_reads_as_each_api_does() {
    // InfluxDB 1.x: n, ns, u, ms, s, m, h; anything else silently means nanoseconds.
    for (value, unit) in [
        ("", Precision::Nanoseconds),
        ("n", Precision::Nanoseconds),
        ("u", Precision::Microseconds),
        ("us", Precision::Nanoseconds),
        ("µs", Precision::Nanoseconds),
        ("rfc3339", Precision::Nanoseconds),
        ("ms", Precision::Milliseconds),
        ("s", Precision::Seconds),
        ("m", Precision::Minutes),
        ("h", Precision::Hours),
    ] {
        assert_eq!(Precision::v1(value), unit, "{value}");
    }
    // InfluxDB 2.x: ns, us, ms, s; anything else is refused.
    assert_eq!(Precision::v2("us"), Ok(Precision::Microseconds));
    assert_eq!(Precision::v2(""), Ok(Precision::Nanoseconds));
    assert_eq!(
        Precision::v2("h").unwrap_err().to_string(),
        "invalid precision 'h'; valid precision units are ns, us, ms, and s"
    );
}

#[test]
fn lines_without_a_timestamp_get_the_receive_time_truncated_to_the_precision() {
    let now = 1_700_000_123_456_789_012;
    for (precision, stamp) in [
        (Precision::Nanoseconds, now),
        (Precision::Milliseconds, 1_700_000_123_456_000_000),
        (Precision::Seconds, 1_700_000_123_000_000_000),
        (Precision::Minutes, 1_700_000_100_000_000_000),
    ] {
        let parsed = parse("m v=1i\nm,t=\\ x v=2i", precision, now);
        let stamps: Vec<&str> = parsed
            .metrics()
            .map(|m| m.line().rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(
            stamps,
            [stamp.to_string(), stamp.to_string()],
            "{precision:?}"
        );
    }
}

#[test]
fn unsigned_fields_are_refused_unless_allowed() {
    let refused = parse_with("m u=1u 1", Precision::Nanoseconds, NOW, &Limits::default());
    let error = refused.first_error.unwrap();
    assert!(
        error.reason.starts_with("invalid number"),
        "{}",
        error.reason
    );
    let allowed = Limits {
        allow_unsigned: true,
        ..Limits::default()
    };
    let taken = parse_with("m u=1u 1", Precision::Nanoseconds, NOW, &allowed);
    assert_eq!(taken.metric(0).line(), "m u=1u 1");
}

#[test]
fn a_quoted_newline_never_splits_a_line_on_any_source() {
    let body = b"a v=1i 1\nb s=\"x\ny\" 2\nc v=3i 3\nd s=\"half";
    let cut: Vec<(usize, &[u8])> = super::lines(body).collect();
    assert_eq!(
        cut,
        [
            (1, &b"a v=1i 1"[..]),
            (2, &b"b s=\"x\ny\" 2"[..]),
            (4, &b"c v=3i 3"[..]),
            (5, &b"d s=\"half"[..]),
        ]
    );
    // A stream source parses only whole lines: the open quote waits for more bytes.
    assert_eq!(whole_lines(body), body.len() - b"d s=\"half".len());
    assert_eq!(whole_lines(b"a v=1i 1\nb s=\"x\n"), 9);
    assert_eq!(whole_lines(b"no newline"), 0);
    // And the number of a bad line after it counts physical lines.
    let parsed = parse("a s=\"x\ny\" 1\nbad", Precision::Nanoseconds, NOW);
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed.first_error.unwrap().line, 3);
}

#[test]
fn floats_are_stored_as_written() {
    let body = "m a=1e308,b=.5,c=-.5,d=1.,e=1.50 1";
    assert_eq!(lines_of(body), [body]);
    let escaped = "m,t=a\\ b a=1e308,b=.5,c=1. 1";
    assert_eq!(lines_of(escaped), [escaped]);
}

fn lines_of(body: &str) -> Vec<String> {
    lines(body, Precision::Nanoseconds)
}

#[test]
fn canonical_lines_are_kept_in_place_and_the_others_rewritten_in_order() {
    let body = "cpu,a=1,b=2 v=1i 5\ncpu,b=2,a=1 v=2i 6\nm v=1.5 7\nbad\nm v=2 8";
    let parsed = parse(body, Precision::Nanoseconds, 0);
    let lines: Vec<String> = parsed.metrics().map(|m| m.line().to_owned()).collect();
    assert_eq!(
        lines,
        [
            "cpu,a=1,b=2 v=1i 5",
            "cpu,a=1,b=2 v=2i 6",
            "m v=1.5 7",
            "m v=2 8"
        ]
    );
    assert_eq!(parsed.rejected, 1);
    // Only the line whose tags were sorted is written anew; the others point into the body.
    let in_body = |line: &str| body.as_bytes().as_ptr_range().contains(&line.as_ptr());
    let kept: Vec<bool> = parsed.metrics().map(|m| in_body(m.line())).collect();
    assert_eq!(kept, [true, false, true, true]);
    assert_eq!(parsed.metric(1).series_key(), "cpu,a=1,b=2");

    // Owned, the same metrics without the body.
    let owned = parsed.into_owned();
    let again: Vec<String> = owned.metrics().map(|m| m.line().to_owned()).collect();
    assert_eq!(again, lines);
    assert!(owned.metrics().all(|m| !in_body(m.line())));
    assert_eq!(owned.metric(1).series_key(), "cpu,a=1,b=2");
    assert_eq!(owned.rejected, 1);
}

#[test]
fn a_body_of_canonical_lines_costs_only_its_index() {
    let body: String = (0..1_000)
        .map(|i| {
            format!(
                "cpu,host=h{i} usage=0.5,n={i}i {}\n",
                1_700_000_000_000_000_000_i64 + i
            )
        })
        .collect();
    let parsed = parse(&body, Precision::Nanoseconds, 0);
    assert_eq!(parsed.len(), 1_000);
    assert!(
        parsed.heap_bytes() <= 1_000 * 32,
        "{} bytes held for a {}-byte body",
        parsed.heap_bytes(),
        body.len()
    );
}

#[test]
fn parsing_piece_by_piece_gives_what_parsing_at_once_gives() {
    let body =
        "cpu,b=2,a=1 v=1i 5\n\nm s=\"a\nb\" 6\n# comment\nbad line\nm v=1.5 7\nm,t=x v=t\nm v=2";
    let whole = parse(body, Precision::Seconds, 1_700_000_000_123_456_789);
    let lines =
        |p: &Parsed<'_>| -> Vec<String> { p.metrics().map(|m| m.line().to_owned()).collect() };
    for piece in 1..=body.len() {
        let mut parser = Parser::new(
            body,
            Precision::Seconds,
            1_700_000_000_123_456_789,
            &Limits::NONE,
        );
        let mut steps = 0;
        while parser.remaining() > 0 {
            let before = parser.remaining();
            parser.parse_next(piece);
            assert!(parser.remaining() < before, "piece {piece}: no progress");
            steps += 1;
        }
        let parsed = parser.finish();
        assert_eq!(lines(&parsed), lines(&whole), "piece {piece}");
        assert_eq!(parsed.rejected, whole.rejected, "piece {piece}");
        assert_eq!(parsed.first_error, whole.first_error, "piece {piece}");
        assert!(piece > 10 || steps > 1, "piece {piece} took {steps} step");
    }
}

#[test]
fn the_scan_fuzz_target_finds_no_difference_on_the_seed_corpus() {
    // The seeds of both line fuzz targets, and bodies each path must agree on.
    let mut bodies: Vec<Vec<u8>> = ["ingest", "scan"]
        .iter()
        .filter_map(|target| {
            std::fs::read_dir(format!(
                "{}/../../fuzz/corpus/{target}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .ok()
        })
        .flatten()
        .map(|file| std::fs::read(file.unwrap().path()).unwrap())
        .collect();
    assert!(bodies.len() >= 10, "the seed corpus is missing");
    bodies.push(b"cpu,host=a,region=b usage=1.5,idle=-.5,n=3i,u=4u,ok=t,s=\"x\" 1700000000\n# comment\n\nm v=1.".to_vec());
    for body in bodies {
        fuzz_scan(&body);
    }
}

/// The default limits are those the README documents: lines of up to 64 KiB.
#[test]
fn the_default_limit_takes_a_line_of_64_kib_and_refuses_one_byte_more() {
    let line = |len: usize| format!("m v=\"{}\" 1", "x".repeat(len - r#"m v="" 1"#.len()));
    let limits = Limits::default();
    let fits = line(64 * 1024);
    let parsed = parse_with(&fits, Precision::Nanoseconds, NOW, &limits);
    assert!(parsed.first_error.is_none(), "{:?}", parsed.first_error);
    assert_eq!(parsed.len(), 1);
    let too_long = line(64 * 1024 + 1);
    let parsed = parse_with(&too_long, Precision::Nanoseconds, NOW, &limits);
    assert_eq!(
        parsed.first_error.unwrap().reason,
        "line is 65537 bytes long, more than the limit of 65536 bytes"
    );
}

/// InfluxDB's range of timestamps ends one below `i64::MAX` (`models.MaxNanoTime`).
#[test]
fn the_largest_timestamp_is_one_below_i64_max() {
    let largest = i64::MAX - 1;
    assert_eq!(
        lines(&format!("m v=1i {largest}"), Precision::Nanoseconds),
        [format!("m v=1i {largest}")]
    );
    let too_late = format!("m v=1i {}", i64::MAX);
    let parsed = parse(&too_late, Precision::Nanoseconds, NOW);
    assert!(parsed.first_error.unwrap().reason.contains("out of range"));
}

/// A line the parser cannot make sense of gets a message naming the expected form (the
/// parser's own names a parser combinator); its other messages are kept.
#[test]
fn a_line_without_fields_is_refused_with_the_expected_form_or_the_parsers_reason() {
    for (body, reason) in [
        (
            "cpu,host=a",
            "invalid line protocol: expected 'measurement[,tag=value...] field=value[,...] [timestamp]'",
        ),
        ("m,t=a v=", "No fields were provided"),
    ] {
        let parsed = parse(body, Precision::Nanoseconds, NOW);
        assert_eq!(parsed.first_error.unwrap().reason, reason, "{body}");
    }
}

/// Lines of the general path (an escape sends them there) are held to the field limit as
/// the others are: `max_fields` fields are taken.
#[test]
fn a_line_of_the_general_path_with_exactly_max_fields_is_kept() {
    let limits = Limits {
        max_fields: 2,
        ..Limits::NONE
    };
    let parsed = parse_with(
        r"c,b=1,a=2\ 3 x=1,y=2 1",
        Precision::Nanoseconds,
        NOW,
        &limits,
    );
    assert!(parsed.first_error.is_none(), "{:?}", parsed.first_error);
    let kept: Vec<&str> = parsed.metrics().map(|m| m.line()).collect();
    assert_eq!(kept, [r"c,a=2\ 3,b=1 x=1,y=2 1"]);
}

/// The series key of each line of the general path (an escape sends it there) is its own,
/// not offset by the lines written before it.
#[test]
fn the_series_key_of_each_line_of_the_general_path_is_its_own() {
    let body = "a,z=1,b=2\\ 3 v=1 1\nc,y=1,x=2\\ 3 v=1 2";
    let parsed = parse(body, Precision::Nanoseconds, NOW);
    assert_eq!(parsed.metric(0).series_key(), r"a,b=2\ 3,z=1");
    assert_eq!(parsed.metric(1).series_key(), r"c,x=2\ 3,y=1");
}
