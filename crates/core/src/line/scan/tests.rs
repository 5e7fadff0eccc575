use super::*;

const NOW: i64 = 1_700_000_000_000_000_000;

/// What the general path makes of one line: `Some(line)` or `None` when refused.
fn slow(raw: &str, precision: Precision) -> Option<String> {
    super::super::general(raw, precision, NOW, &Limits::NONE)?
        .ok()
        .map(Metric::into_line)
}

fn fast(raw: &str, precision: Precision) -> Option<String> {
    normalise(raw, precision, NOW, &Limits::NONE).map(Metric::into_line)
}

#[test]
fn lines_are_cut_where_influxdb_line_protocol_cuts_them() {
    let pieces = [
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
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let body: String = (0..rng.below(8)).map(|_| rng.pick(&pieces)).collect();
        let ours: Vec<&str> = lines(body.as_bytes()).map(|l| &body[l.range()]).collect();
        let theirs: Vec<&str> = influxdb_line_protocol::split_lines(&body).collect();
        assert_eq!(ours, theirs, "{body:?}");
        // Numbers count physical lines: each line starts after the newlines before it.
        for line in lines(body.as_bytes()) {
            let before = body.as_bytes()[..line.start]
                .iter()
                .filter(|&&c| c == b'\n')
                .count();
            assert_eq!(line.number, before + 1, "{body:?}");
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
    assert!(normalise(line, Precision::Nanoseconds, NOW, &limits).is_none());
    assert!(normalise("m a=1,b=2 1", Precision::Nanoseconds, NOW, &limits).is_some());
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

/// A tiny deterministic generator, so the test needs no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// One of the first `plain` items four times in five, else any.
    fn weighted<'a>(&mut self, items: &[&'a str], plain: usize) -> &'a str {
        if self.below(5) > 0 {
            items[self.below(plain)]
        } else {
            self.pick(items)
        }
    }
}

#[test]
fn random_lines_get_the_general_paths_answer_or_none() {
    // Mostly plain names (so the fast path is exercised), some that it must decline.
    let names = [
        "cpu", "a", "b", "z", "host", "é", "cpu", "a", "b", "z", "time", "x y", "x,y", "x=y",
        "x\\ y", "\"q\"", "#c", "t\tb", "", " ", "m\\",
    ];
    let values = [
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
    let stamps = [
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
    let precisions = [Precision::Nanoseconds, Precision::Seconds, Precision::Hours];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut taken = 0;
    for _ in 0..20_000 {
        let mut line = rng.weighted(&names, 10).to_string();
        for _ in 0..rng.below(4) {
            line.push_str(&format!(
                ",{}={}",
                rng.weighted(&names, 10),
                rng.weighted(&names, 10)
            ));
        }
        line.push(' ');
        for i in 0..=rng.below(3) {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&format!(
                "{}={}",
                rng.weighted(&names, 10),
                rng.weighted(&values, 9)
            ));
        }
        line.push_str(rng.weighted(&stamps, 3));
        let precision = precisions[rng.below(precisions.len())];
        if let Some(fast) = fast(&line, precision) {
            taken += 1;
            assert_eq!(Some(fast), slow(&line, precision), "{line:?}");
        }
    }
    assert!(taken > 4_000, "only {taken} lines took the fast path");
}
