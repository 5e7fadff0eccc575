use super::*;

#[test]
fn durations_and_sizes_read_naturally() {
    assert_eq!(duration(850), "850ms");
    assert_eq!(duration(12_345), "12.3s");
    assert_eq!(duration(245_000), "4m05s");
    assert_eq!(duration(7_380_000), "2h03m");
    assert_eq!(duration(273_600_000), "3d04h");
    assert_eq!(bytes(512), "512 B");
    assert_eq!(bytes(1536), "1.5 KiB");
    assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
}

#[test]
fn tables_pad_columns_and_trim_line_ends() {
    let mut table = Table::new(&[("NAME", Left), ("N", Right), ("NOTE", Left)]);
    table.row(vec!["a".into(), "10".into(), "".into()]);
    table.row(vec!["longer".into(), "2".into(), "x".into()]);
    let mut out = String::new();
    table.render(&mut out);
    assert_eq!(out, "NAME     N  NOTE\na       10\nlonger   2  x\n");
}

#[test]
fn reserved_columns_keep_their_width_whatever_the_values() {
    let render = |idle: &str| {
        let mut table = Table::new(&[("IDLE", Right), ("N", Right)]).reserve("IDLE", 6);
        table.row(vec![idle.into(), "1".into()]);
        let mut out = String::new();
        table.render(&mut out);
        out
    };
    assert_eq!(render("5ms"), "  IDLE  N\n   5ms  1\n");
    assert_eq!(render("12.3s"), "  IDLE  N\n 12.3s  1\n");
}

#[test]
fn reports_say_what_happened_in_words() {
    let claim = ClaimReport {
        group: "g".into(),
        to: "alive".into(),
        moved: 1,
        claimed: Vec::new(),
        not_claimed: vec!["5-0".into()],
        deleted: 0,
    };
    assert_eq!(
        claim.render_human(),
        "moved 1 entry to consumer 'alive' of group 'g'\n\
         not moved (not pending in the group, or not idle long enough): 5-0\n"
    );
    let replay = ReplayReport {
        replayed: 3,
        failed: Vec::new(),
    };
    assert_eq!(replay.render_human(), "replayed 3 dead letters, 0 failed\n");
    assert_eq!(
        PurgeReport { removed: 2 }.render_human(),
        "removed 2 dead letters\n"
    );
    let pruned = ConsumersReport {
        consumers: Vec::new(),
        removed: Vec::new(),
        prune_idle_ms: Some(0),
    };
    assert!(pruned.render_human().starts_with("no consumers\n"));
}

#[test]
fn pending_tables_say_when_the_list_is_cut_or_empty() {
    let empty = PendingReport {
        consumers: Vec::new(),
        entries: Vec::new(),
        more: false,
    };
    assert_eq!(empty.render_human(), "nothing pending\n");
    let entry = redline_streams::PendingEntry {
        id: "5-0".into(),
        stream: "rl".into(),
        group: "g".into(),
        consumer: "c1".into(),
        idle_ms: 3_600_000,
        deliveries: 2,
        lp: Some("m,i=0 v=0i 0".into()),
    };
    let cut = PendingReport {
        consumers: Vec::new(),
        entries: vec![entry],
        more: true,
    };
    let human = cut.render_human();
    assert!(
        human.contains("1h00m") && human.contains("m,i=0 v=0i 0"),
        "{human}"
    );
    assert!(
        human.ends_with("(more entries match; raise --count to list them)\n"),
        "{human}"
    );
}

#[test]
fn a_trim_says_why_a_stream_was_left_alone() {
    let report = TrimReport {
        dry_run: true,
        streams: vec![redline_streams::StreamTrim {
            key: "rl:{1}".into(),
            length: 0,
            minid: None,
            limiting_group: None,
            removed: 0,
            punched: 0,
            skipped: Some("the stream does not exist".into()),
        }],
        removed: 0,
    };
    let human = report.render_human();
    assert!(human.contains("WOULD REMOVE"), "{human}");
    assert!(
        human.contains("(not trimmed: the stream does not exist)"),
        "{human}"
    );
    assert!(
        human.ends_with("\ndry run: would remove 0 entries\n"),
        "{human}"
    );
}

#[test]
fn clip_cuts_long_text_on_one_line() {
    assert_eq!(clip("ab\ncd", 10), "ab cd");
    assert_eq!(clip("abcdef", 3), "abc…");
}
