//! Which entries a consumer group takes: `--include-db`, `--exclude-db`,
//! `--include-measurement`, `--exclude-measurement` (glob patterns with `*` and `?`,
//! repeatable). An entry is taken when its database matches an include pattern (or there is
//! none) and no exclude pattern, and the same holds for its measurement. An entry that names
//! no database matches as the empty name.
//!
//! Invariants:
//! - an entry a group does not take is acknowledged by that group without a write and counted
//!   in `redline_entries_skipped_total`; other groups see it as always;
//! - with no pattern at all, every entry is taken (the default).

use redline_core::entry::Entry;
use serde::{Deserialize, Serialize};

/// A group's subset of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Routing {
    /// Databases taken (none: every one).
    pub include_db: Vec<String>,
    /// Databases never taken.
    pub exclude_db: Vec<String>,
    /// Measurements taken (none: every one).
    pub include_measurement: Vec<String>,
    /// Measurements never taken.
    pub exclude_measurement: Vec<String>,
}

impl Routing {
    /// True when every entry is taken.
    pub fn takes_all(&self) -> bool {
        self.include_db.is_empty()
            && self.exclude_db.is_empty()
            && self.include_measurement.is_empty()
            && self.exclude_measurement.is_empty()
    }

    /// The patterns as flags, each list sorted (`--include-db a,b --exclude-measurement c`),
    /// or `every entry` when there are none: equal for two processes that route alike.
    pub fn describe(&self) -> String {
        if self.takes_all() {
            return "every entry".to_string();
        }
        [
            ("--include-db", &self.include_db),
            ("--exclude-db", &self.exclude_db),
            ("--include-measurement", &self.include_measurement),
            ("--exclude-measurement", &self.exclude_measurement),
        ]
        .into_iter()
        .filter(|(_, patterns)| !patterns.is_empty())
        .map(|(flag, patterns)| {
            let mut sorted = patterns.clone();
            sorted.sort();
            sorted.dedup();
            format!("{flag} {}", sorted.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Whether this group writes `entry`.
    pub fn takes(&self, entry: &Entry) -> bool {
        let db = entry.db.as_deref().unwrap_or("");
        passes(&self.include_db, &self.exclude_db, db)
            && passes(
                &self.include_measurement,
                &self.exclude_measurement,
                measurement(&entry.lp),
            )
    }
}

fn passes(include: &[String], exclude: &[String], name: &str) -> bool {
    (include.is_empty() || include.iter().any(|p| glob(p, name)))
        && !exclude.iter().any(|p| glob(p, name))
}

/// The measurement of a line: up to its first unescaped comma or space, escapes kept.
fn measurement(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' | b' ' => return &line[..i],
            _ => i += 1,
        }
    }
    line
}

/// `*` matches any run of characters, `?` any one character, everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_shells_do() {
        let cases = [
            ("*", "", true),
            ("*", "telegraf", true),
            ("tele*", "telegraf", true),
            ("*graf", "telegraf", true),
            ("t?legraf", "telegraf", true),
            ("t*g*f", "telegraf", true),
            ("telegraf", "telegraf", true),
            ("telegraf", "telegraf2", false),
            ("tele?", "telegraf", false),
            ("*x*", "telegraf", false),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob(pattern, text), expected, "{pattern:?} on {text:?}");
        }
    }

    #[test]
    fn a_group_takes_what_its_patterns_say() {
        let entry = |db: Option<&str>, lp: &str| Entry {
            lp: lp.to_string(),
            db: db.map(str::to_string),
            rp: None,
        };
        let routing = Routing {
            include_db: vec!["db1".into(), "prod-*".into()],
            exclude_measurement: vec!["debug*".into()],
            ..Routing::default()
        };
        assert!(routing.takes(&entry(Some("db1"), "cpu,host=a v=1 1")));
        assert!(routing.takes(&entry(Some("prod-eu"), "mem v=1 1")));
        assert!(!routing.takes(&entry(Some("db2"), "cpu v=1 1")));
        assert!(!routing.takes(&entry(None, "cpu v=1 1")));
        assert!(!routing.takes(&entry(Some("db1"), "debug_x,a=b v=1 1")));
        assert!(routing.takes(&entry(Some("db1"), "de\\ bug v=1 1")));
        assert_eq!(measurement("we\\,ird\\ name,t=1 v=1"), "we\\,ird\\ name");
        assert!(Routing::default().takes_all());
        assert!(Routing::default().takes(&entry(None, "x v=1")));
    }

    #[test]
    fn a_routing_describes_itself_the_same_whatever_the_order_of_its_patterns() {
        let one = Routing {
            include_db: vec!["b".into(), "a".into()],
            exclude_measurement: vec!["cpu*".into()],
            ..Routing::default()
        };
        let other = Routing {
            include_db: vec!["a".into(), "b".into(), "a".into()],
            ..one.clone()
        };
        assert_eq!(
            one.describe(),
            "--include-db a,b --exclude-measurement cpu*"
        );
        assert_eq!(one.describe(), other.describe());
        assert_eq!(Routing::default().describe(), "every entry");
    }
}
