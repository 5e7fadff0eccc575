//! The README's command table against `--help`: every flag of every command is documented
//! with the default `--help` shows, every option the README says has a `REDLINE_*`
//! variable has one, and every `REDLINE_*` variable the README names exists.

use std::collections::BTreeSet;

use super::{read, root};
use crate::support::redline;

/// Variables the README names that are not the binary's: where each is read.
const OTHER_VARIABLES: &[(&str, &str)] = &[
    ("REDLINE_COMPOSE_REDIS_URL", "docker-compose.yml"),
    ("REDLINE_UPDATE_SNAPSHOTS", "tests/snapshot.rs"),
];

/// One option of a command's `--help`.
#[derive(Debug)]
struct Flag {
    long: String,
    default: Option<String>,
    env: Option<String>,
}

fn help(path: &[&str]) -> String {
    let out = redline().args(path).arg("--help").output().unwrap();
    assert!(out.status.success(), "redline {path:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands listed under "Commands:" in `help`, `help` itself left out.
fn subcommands(help: &str) -> Vec<String> {
    let Some(list) = help.split("\nCommands:\n").nth(1) else {
        return Vec::new();
    };
    list.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command path with options of its own: `["producer"]`, `["dlq", "list"]`, ….
fn commands() -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut todo: Vec<Vec<String>> = subcommands(&help(&[]))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let subs = subcommands(&help(&args));
        if subs.is_empty() {
            found.push(path);
        } else {
            todo.extend(subs.into_iter().map(|s| [path.clone(), vec![s]].concat()));
        }
    }
    assert!(
        found.len() >= 14,
        "only {} commands found: {found:?}",
        found.len()
    );
    found
}

/// The options of a `--help` text, with their `[default: …]` and `[env: …]`; each shows its
/// default at most once.
fn flags(help: &str) -> Vec<Flag> {
    let options = help
        .split("\nOptions:\n")
        .nth(1)
        .expect("an Options section");
    let mut blocks: Vec<String> = Vec::new();
    for line in options.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent < 10
            && (trimmed.starts_with("--")
                || trimmed.starts_with("-h, --")
                || trimmed.starts_with("-V, --"))
        {
            blocks.push(String::new());
        } else if indent < 2 && !trimmed.is_empty() {
            break; // "Examples:" and the like
        }
        if let Some(block) = blocks.last_mut() {
            block.push(' ');
            block.push_str(trimmed);
        }
    }
    for block in &blocks {
        assert!(
            block.matches("[default: ").count() <= 1,
            "a default shown twice in --help: {block}"
        );
    }
    let bracket = |block: &str, tag: &str| {
        block.split(tag).nth(1).map(|rest| {
            rest[..rest.find(']').unwrap_or(rest.len())]
                .trim()
                .to_owned()
        })
    };
    blocks
        .iter()
        .map(|block| {
            let long = block.split("--").nth(1).unwrap_or_default();
            let long = long[..long.find([' ', '[']).unwrap_or(long.len())].to_owned();
            Flag {
                long,
                default: bracket(block, "[default: "),
                env: bracket(block, "[env: "),
            }
        })
        .filter(|f| !["help", "version"].contains(&f.long.as_str()))
        .collect()
}

/// The README's commands section: the table row of `redline NAME`.
fn row<'a>(section: &'a str, name: &str) -> &'a str {
    section
        .lines()
        .find(|l| {
            l.strip_prefix(&format!("| `redline {name}"))
                .is_some_and(|rest| rest.starts_with([' ', '`']))
        })
        .unwrap_or_else(|| panic!("no README row for `redline {name}`"))
}

/// What documents the options of `path`: its row (a combined command's: producer's and
/// consumer's), the intro of the section and its "Common options" paragraph.
fn documentation(section: &str, path: &[String]) -> String {
    let intro = section.split("\n| command |").next().unwrap_or_default();
    let common = section
        .split("\nCommon options:")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("a Common options paragraph");
    let rows = match path[0].as_str() {
        "run" | "config" => format!("{}\n{}", row(section, "producer"), row(section, "consumer")),
        name => row(section, name).to_owned(),
    };
    format!("{intro}\n{common}\n{rows}").replace('\n', " ")
}

/// The defaults `doc` states for `--flag`: "`--flag` (X…)", "`--flag` (default X…)" or,
/// inside a synopsis, "[--flag X]"; placeholders (`N`, `ID…`) and choices (`a\|b`) are not
/// defaults. `None` when `doc` does not mention the flag at all.
fn documented_defaults(doc: &str, flag: &str) -> Option<Vec<String>> {
    let needle = format!("--{flag}");
    let mut mentioned = false;
    let mut defaults = Vec::new();
    let spans: Vec<&str> = doc.split('`').collect();
    for (i, span) in spans.iter().enumerate().skip(1).step_by(2) {
        for (at, _) in span.match_indices(&needle) {
            let rest = &span[at + needle.len()..];
            if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-') {
                continue; // a longer flag
            }
            mentioned = true;
            if let Some(value) = rest.strip_prefix(' ') {
                let value = value.split([']', ' ']).next().unwrap_or_default();
                let literal = value
                    .chars()
                    .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && !value.contains('|')
                    && !value.starts_with('[');
                if literal {
                    defaults.push(value.to_owned());
                }
            }
            if at == 0 {
                if let Some(paren) = spans.get(i + 1).and_then(|t| t.strip_prefix(" (")) {
                    let paren = paren.strip_prefix("default ").unwrap_or(paren);
                    let first = if paren.is_empty() {
                        // "(`value`…": the value is the next code span.
                        spans.get(i + 2).copied().unwrap_or_default().to_owned()
                    } else {
                        paren
                            .split([' ', ';', ',', ')'])
                            .next()
                            .unwrap_or_default()
                            .trim_end_matches(':')
                            .to_owned()
                    };
                    defaults.push(first);
                }
            }
        }
    }
    mentioned.then_some(defaults)
}

#[test]
fn every_flag_in_help_is_in_the_readme_with_its_default() {
    let readme = read(&root().join("README.md"));
    let section = readme
        .split("\n## Commands\n")
        .nth(1)
        .expect("a Commands section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut wrong = Vec::new();
    for path in commands() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let doc = documentation(section, &path);
        let command = format!("redline {}", path.join(" "));
        for flag in flags(&help(&args)) {
            let Some(stated) = documented_defaults(&doc, &flag.long) else {
                wrong.push(format!(
                    "{command}: --{} is not in its README row",
                    flag.long
                ));
                continue;
            };
            match &flag.default {
                Some(default) if default != "false" => {
                    if !stated.iter().any(|s| s.eq_ignore_ascii_case(default)) {
                        wrong.push(format!(
                            "{command}: --{} defaults to {default}; the README says {stated:?}",
                            flag.long
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    for s in stated
                        .iter()
                        .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
                    {
                        wrong.push(format!(
                            "{command}: --{} has no default; the README says {s}",
                            flag.long
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "README vs --help:\n{}", wrong.join("\n"));
}

#[test]
fn every_option_has_the_readme_variable_and_every_readme_variable_exists() {
    let readme = read(&root().join("README.md"));
    assert!(
        readme.contains("Every option of `producer`, `consumer` and `run`, and every common option, is also an environment variable `REDLINE_<NAME>`"),
        "the README's claim changed: change this test with it"
    );
    let mut wrong = Vec::new();
    let mut variables = BTreeSet::new();
    let all: Vec<(Vec<String>, Vec<Flag>)> = commands()
        .into_iter()
        .map(|path| {
            let args: Vec<&str> = path.iter().map(String::as_str).collect();
            let flags = flags(&help(&args));
            (path, flags)
        })
        .collect();
    // The common options: those every top-level command has.
    let common: BTreeSet<String> = all
        .iter()
        .filter(|(path, _)| path.len() == 1)
        .map(|(_, flags)| {
            flags
                .iter()
                .map(|f| f.long.clone())
                .collect::<BTreeSet<_>>()
        })
        .reduce(|a, b| a.intersection(&b).cloned().collect())
        .unwrap_or_default();
    assert!(common.contains("redis-url"), "{common:?}");
    for (path, flags) in all {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let claimed =
            ["producer", "consumer", "run"].contains(&args[0]) || args == ["config", "check"];
        for flag in flags {
            let expected = format!("REDLINE_{}", flag.long.replace('-', "_").to_uppercase());
            match &flag.env {
                Some(env) => {
                    variables.insert(env.clone());
                    let generic = (claimed || common.contains(&flag.long)) && *env == expected;
                    if !generic && !readme.contains(env.as_str()) {
                        wrong.push(format!(
                            "redline {}: --{} reads {env}, which the README does not name",
                            path.join(" "),
                            flag.long
                        ));
                    }
                }
                None if claimed || common.contains(&flag.long) => wrong.push(format!(
                    "redline {}: --{} has no variable; the README promises {expected}",
                    path.join(" "),
                    flag.long
                )),
                None => {}
            }
        }
    }
    for (at, _) in readme.match_indices("REDLINE_") {
        let name: String = readme[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.ends_with('_') {
            continue; // a family: REDLINE_<NAME>, REDLINE_BENCH_<NAME>
        }
        let elsewhere = OTHER_VARIABLES
            .iter()
            .any(|(v, file)| *v == name && read(&root().join(file)).contains(&name));
        if !variables.contains(&name) && !elsewhere {
            wrong.push(format!("the README names {name}, which nothing reads"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
