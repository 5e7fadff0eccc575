//! The TOML configuration file: flat, its keys the long flag names with `_` for `-`. A key
//! no command knows, and a value its flag would refuse, are usage errors naming the key and
//! its line.

use std::path::Path;

use anyhow::Result;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

use super::usage;
use crate::cli::{CommonArgs, ConsumerArgs, LogFormat, ProducerArgs};

/// Telegraf's names for options whose meaning is the same: (alias, key).
pub(crate) const ALIASES: &[(&str, &str)] = &[
    ("metric_batch_size", "batch_size"),
    ("metric_buffer_limit", "buffer_limit"),
];

/// Every key the file may hold, aliases included.
pub(crate) fn known_keys() -> Vec<&'static str> {
    let mut known = [
        serde_aux::serde_introspection::serde_introspect::<GlobalArgs>(),
        serde_aux::serde_introspection::serde_introspect::<CommonArgs>(),
        serde_aux::serde_introspection::serde_introspect::<ProducerArgs>(),
        serde_aux::serde_introspection::serde_introspect::<ConsumerArgs>(),
    ]
    .concat();
    known.extend(ALIASES.iter().map(|(alias, _)| *alias));
    known.sort_unstable();
    known.dedup();
    known
}

/// Keys of the file that are not command options.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GlobalArgs {
    /// Log format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_format: Option<LogFormat>,
    /// Log filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_level: Option<String>,
    /// Runtime threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) threads: Option<usize>,
}

/// A parsed configuration file (empty without `--config`).
#[derive(Debug, Default)]
pub(crate) struct File {
    table: Map<String, Value>,
}

impl File {
    /// Reads and checks `path`: TOML syntax, and no key outside the known options.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            usage(format!(
                "--config (env REDLINE_CONFIG): cannot read config file {}: {e}",
                path.display()
            ))
        })?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
            usage(format!(
                "--config (env REDLINE_CONFIG): invalid config file {}: {}",
                path.display(),
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        })?;
        let known = known_keys();
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let line = line_of(&text, key);
                return Err(usage(format!(
                    "unknown key '{key}' in config file {}{line}; known keys: {}",
                    path.display(),
                    known.join(", ")
                )));
            }
        }
        for (alias, key) in ALIASES {
            if let Some(value) = table.remove(*alias) {
                if table.contains_key(*key) {
                    return Err(usage(format!(
                        "config file {} sets both '{alias}' and '{key}': keep one",
                        path.display()
                    )));
                }
                table.insert((*key).to_string(), value);
            }
        }
        for (key, value) in &table {
            check_value(key, value).map_err(|reason| {
                usage(format!(
                    "config file {}, key {key}{}: {reason}",
                    path.display(),
                    line_of(&text, key)
                ))
            })?;
        }
        let table = match serde_json::to_value(table)? {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Ok(Self { table })
    }

    /// `cli` with every option it leaves unset taken from the file.
    pub(crate) fn layer<T: Serialize + DeserializeOwned>(&self, cli: &T) -> Result<T> {
        let fields = serde_aux::serde_introspection::serde_introspect::<T>();
        let mut merged: Map<String, Value> = self
            .table
            .iter()
            .filter(|(k, _)| fields.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Value::Object(flags) = serde_json::to_value(cli)? {
            merged.extend(flags.into_iter().filter(|(_, v)| !v.is_null()));
        }
        serde_json::from_value(Value::Object(merged))
            .map_err(|e| usage(format!("invalid value in config file: {e}")))
    }
}

/// " (line N)" for the line of `text` that sets `key`, or nothing.
fn line_of(text: &str, key: &str) -> String {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(String::new(), |i| format!(" (line {})", i + 1))
}

/// Checks a config file value exactly as the flag of the same name checks its value (its
/// clap value parser: type, range, choices), so a file can set nothing a flag could not.
fn check_value(key: &str, value: &toml::Value) -> std::result::Result<(), String> {
    use clap::CommandFactory;
    let command = crate::cli::Cli::command();
    let arg = std::iter::once(&command)
        .chain(command.get_subcommands())
        .flat_map(clap::Command::get_arguments)
        .find(|arg| arg.get_id() == key);
    let Some(arg) = arg else {
        return Ok(()); // a key with no flag (none today): serde checks it
    };
    let values: Vec<&toml::Value> = match value {
        toml::Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for value in values {
        if !arg.get_action().takes_values() {
            // A switch (`--auth-metrics`): the file says true or false.
            return match value {
                toml::Value::Boolean(_) => Ok(()),
                other => Err(format!("expected true or false, found {other}")),
            };
        }
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                value.to_string()
            }
            other => return Err(format!("expected a value like the flag's, found {other}")),
        };
        // The flag alone, parsed from `--flag VALUE`: its type, range and choices.
        let flag = format!("--{}", arg.get_long().unwrap_or(key));
        let mut probe = clap::Command::new("redline")
            .no_binary_name(true)
            .arg(arg.clone().required(false));
        if let Err(error) = probe.try_get_matches_from_mut([flag, text]) {
            let message = error.to_string();
            let first = message.lines().next().unwrap_or_default();
            return Err(first.trim_start_matches("error: ").to_string());
        }
    }
    Ok(())
}
