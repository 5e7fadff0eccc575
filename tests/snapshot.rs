//! Snapshot files: expected terminal output kept as plain text under `tests/snapshots/`,
//! with what varies from run to run masked by [`normalise`].
//!
//! `REDLINE_UPDATE_SNAPSHOTS=1 cargo test --test e2e` rewrites the files from the actual
//! output instead of comparing; review the diff before committing it.

use std::path::PathBuf;

/// Compares `actual` with `tests/snapshots/<name>.txt`, or rewrites that file when
/// `REDLINE_UPDATE_SNAPSHOTS=1`.
///
/// # Panics
/// When they differ (showing both and how to update), or the file is missing.
pub(crate) fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("REDLINE_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("snapshots dir")).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read {}: {error}\n(create it with REDLINE_UPDATE_SNAPSHOTS=1)\nactual:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "snapshot {name} differs from {} (first at line {}); \
             rerun with REDLINE_UPDATE_SNAPSHOTS=1 to accept\n\
             ----- expected -----\n{expected}----- actual -----\n{actual}",
            path.display(),
            first + 1
        );
    }
}

/// Whether `token` is a duration as the tables print them: `5ms`, `12.3s`, `4m05s`,
/// `2h03m`, `3d04h`.
fn is_duration(token: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let split = |unit: &str| token.strip_suffix(unit);
    if let Some(ms) = split("ms") {
        return digits(ms);
    }
    if let Some(s) = split("s") {
        if let Some((whole, tenth)) = s.split_once('.') {
            return digits(whole) && tenth.len() == 1 && digits(tenth);
        }
        if let Some((m, s)) = s.split_once('m') {
            return digits(m) && s.len() == 2 && digits(s);
        }
    }
    for (big, small) in [('h', 'm'), ('d', 'h')] {
        if let Some(rest) = token.strip_suffix(small) {
            if let Some((a, b)) = rest.split_once(big) {
                return digits(a) && b.len() == 2 && digits(b);
            }
        }
    }
    false
}

/// Masks what changes from run to run in a table and keeps every column where it was: a
/// duration or a size (`9.7 KiB`), together with the padding before it (they are right-
/// aligned), becomes `<dur>` or `<size>` right-aligned in the same span.
pub(crate) fn normalise(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        // (start, end) of each run of non-blanks.
        let mut tokens = Vec::new();
        let mut start = None;
        for (i, c) in line.char_indices().chain([(line.len(), ' ')]) {
            match (c == ' ', start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    tokens.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        let mut masked = String::new();
        let mut done = 0; // bytes of `line` handled
        let mut i = 0;
        while i < tokens.len() {
            let (s, e) = tokens[i];
            let token = &line[s..e];
            let unit = tokens
                .get(i + 1)
                .map(|&(s2, e2)| (s2 == e + 1, &line[s2..e2]));
            let (placeholder, end, used) = match unit {
                Some((true, "B" | "KiB" | "MiB" | "GiB"))
                    if token.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
                {
                    ("<size>", tokens[i + 1].1, 2)
                }
                _ if is_duration(token) => ("<dur>", e, 1),
                _ => {
                    masked.push_str(&line[done..e]);
                    done = e;
                    i += 1;
                    continue;
                }
            };
            let span = end - done;
            assert!(
                span >= placeholder.len() + 2,
                "no room to mask {token:?} in {line:?}"
            );
            masked.push_str(&format!("{placeholder:>span$}"));
            done = end;
            i += used;
        }
        masked.push_str(&line[done..]);
        out.push_str(&masked);
        out.push('\n');
    }
    out
}

#[test]
fn normalise_masks_durations_and_sizes_in_place() {
    // As the tables render them: MEMORY keeps 10 columns, IDLE 6.
    let before = "STREAM      MEMORY    IDLE  N\n\
                  s          9.7 KiB     5ms  1\n";
    let after = "STREAM      MEMORY    IDLE  N\n\
                 s         12.0 KiB   12.3s  1\n";
    let masked = "STREAM      MEMORY    IDLE  N\n\
                  s           <size>   <dur>  1\n";
    assert_eq!(normalise(before), masked);
    assert_eq!(normalise(after), masked);
    assert!(is_duration("4m05s") && is_duration("2h03m") && is_duration("3d04h"));
    assert!(!is_duration("1700000000000-0") && !is_duration("c1") && !is_duration("ms"));
}
