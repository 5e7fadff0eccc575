//! The documents say what happens: every test docs/faults.md names exists, one test in
//! `guarantees` per guarantee the README makes, named after it; the README's metrics table,
//! endpoints, example answer and command table, and the dashboard, against the binary.

use std::path::{Path, PathBuf};

mod exposition;
mod http;
mod metrics;
mod options;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether `source` defines a test function `name` (`#[test]` or `#[tokio::test…]` on one
/// of the lines just above `fn name(`).
fn defines_test(source: &str, name: &str) -> bool {
    let lines: Vec<&str> = source.lines().collect();
    lines.iter().enumerate().any(|(i, line)| {
        let line = line.trim_start();
        (line.starts_with(&format!("fn {name}(")) || line.starts_with(&format!("async fn {name}(")))
            && lines[i.saturating_sub(3)..i]
                .iter()
                .any(|l| l.trim_start().starts_with("#[test]") || l.contains("#[tokio::test"))
    })
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// Where a test named in the docs lives: `a::b::name` in the end-to-end suite is in
/// `tests/a/b.rs`; a name after a crate (`redline_consumer` `deliver::tests::name`) is
/// somewhere in that crate.
fn test_exists(krate: Option<&str>, path: &str) -> bool {
    let segments: Vec<&str> = path.split("::").collect();
    let (name, modules) = segments.split_last().expect("a path");
    match krate {
        None => {
            let file = root()
                .join("tests")
                .join(modules.join("/"))
                .with_extension("rs");
            file.exists() && defines_test(&read(&file), name)
        }
        Some(krate) => {
            let dir = root()
                .join("crates")
                .join(krate.trim_start_matches("redline_"));
            sources(&dir).iter().any(|f| defines_test(&read(f), name))
        }
    }
}

/// The backticked test paths of `text`, each with the crate named just before it.
fn named_tests(text: &str) -> Vec<(Option<String>, String)> {
    let spans: Vec<&str> = text.split('`').skip(1).step_by(2).collect();
    let mut found = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let is_path = span.contains("::")
            && span
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':');
        if !is_path {
            continue;
        }
        let krate = i
            .checked_sub(1)
            .map(|j| spans[j])
            .filter(|s| s.starts_with("redline_") && !s.contains("::"))
            .map(str::to_string);
        found.push((krate, span.to_string()));
    }
    found
}

#[test]
fn every_test_the_fault_table_names_exists() {
    let table = read(&root().join("docs/faults.md"));
    let named = named_tests(&table);
    assert!(named.len() >= 40, "only {} test names found", named.len());
    let missing: Vec<String> = named
        .iter()
        .filter(|(krate, path)| !test_exists(krate.as_deref(), path))
        .map(|(krate, path)| format!("{} {path}", krate.as_deref().unwrap_or("e2e")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/faults.md names tests that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_readme_guarantee_has_its_test_named_after_it() {
    let readme = read(&root().join("README.md"));
    let section = readme
        .split("## What redline guarantees")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a guarantees section");
    let tests = read(&root().join("tests/guarantees.rs"));
    let mut checked = 0;
    for item in section.lines().filter_map(|l| l.strip_prefix("- **")) {
        let promise = item.split("**").next().unwrap_or_default();
        // The one bullet that is not a promise.
        if promise.starts_with("Order") {
            continue;
        }
        let name: String = promise
            .trim_end_matches('.')
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        assert!(
            defines_test(&tests, &name),
            "the guarantee {promise:?} has no test `guarantees::{name}`"
        );
        checked += 1;
    }
    assert_eq!(checked, 5, "the README's guarantees changed: {section}");
}
