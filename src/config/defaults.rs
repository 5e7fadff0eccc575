//! Every option's default, read from the libraries' `Default` and constants: the one source
//! `--help` shows them from ([`with_defaults`]) and `redline config example` writes them
//! from ([`example`]), so no default is written down twice.

use std::time::Duration;

use clap::ValueEnum;
use redline_core::units;
use toml::Value;

use crate::cli::{CommonArgs, ConsumerArgs, ProducerArgs};

/// The log filter when neither `--log-level` nor `RUST_LOG` sets one.
pub(crate) const DEFAULT_LOG_LEVEL: &str = "info";

/// The default of option `key`, as its config file value; `None` for an option that has
/// none (off, or the sink's own).
pub(crate) fn value(key: &str) -> Option<Value> {
    let p = redline_producer::Config::default();
    let c = redline_consumer::Config::default();
    let r = redline_core::redis::RedisConfig::default();
    let influx = redline_consumer::sink::InfluxConfig::v1(None);
    let text = |s: &str| Value::String(s.to_string());
    let time = |d: Duration| Value::String(units::format_duration(d));
    let size = |n: u64| Value::String(units::format_size(n));
    let int = |n: u64| Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    let count = |n: usize| int(n as u64);
    Some(match key {
        "redis_url" => text(&r.url),
        "redis_cluster" => Value::Boolean(r.cluster),
        "stream" => text(&c.stream),
        "partitions" => int(c.partitions.into()),
        "allow_eviction" => Value::Boolean(false),
        "redis_timeout" => time(r.response_timeout),
        "log_format" => text(&name(crate::cli::LogFormat::default())),
        "log_level" => text(DEFAULT_LOG_LEVEL),
        "listen" => text(&p.listen.to_string()),
        "max_body_size" => size(p.max_body_size),
        "buffer_limit" => int(p.buffer_limit),
        "buffer_full" => text(&name(p.buffer_full)),
        "wait_replicas" => int(p.wait_replicas.into()),
        "wait_timeout" => time(p.wait_timeout),
        "retry_after" => time(p.retry_after),
        "tcp_max_connections" => count(p.tcp_max_connections),
        "auth_metrics" => Value::Boolean(p.auth_metrics),
        "max_line_length" => size(p.max_line_length as u64),
        "max_fields" => count(p.max_fields),
        "read_timeout" => time(p.read_timeout),
        "max_concurrent_requests" => count(p.max_concurrent_requests),
        "max_concurrent_writes" => count(p.max_concurrent_writes),
        "max_inflight_bytes" => size(p.max_inflight_bytes),
        "enqueue_timeout" => time(p.enqueue_timeout),
        "group" => text(&c.group),
        "workers" => count(c.workers),
        "start_from" => text(&name(c.start_from)),
        "sink" => text(&name(crate::cli::SinkKind::Stdout)),
        "influx_url" => text(&influx.url),
        "influx_ping_path" => text(&influx.ping_path),
        "influx_timeout" => time(influx.timeout),
        "influx_content_encoding" => text(&name(influx.content_encoding)),
        "influx_skip_database_creation" => Value::Boolean(false),
        "file_max_size" => size(0),
        "file_max_files" => int(redline_consumer::sink::DEFAULT_FILE_MAX_FILES.into()),
        "batch_size" => count(c.batch_size),
        "flush_interval" => time(c.flush_interval),
        "min_idle" => time(c.min_idle),
        "max_deliveries" => int(c.max_deliveries),
        "trim_interval" => time(c.trim_interval),
        "prune_idle" => time(c.prune_idle),
        _ => return None,
    })
}

/// What `--help` says a default is: the value, or what stands in for a computed one.
fn shown(key: &str) -> Option<String> {
    match key {
        "consumer" => return Some("HOSTNAME-PID".to_string()),
        "threads" => return Some("one per CPU".to_string()),
        _ => {}
    }
    value(key).map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// The name a flag takes for `value`.
fn name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// `command` with `[default: …]` after the help of every option that has one: the options
/// of `producer`, `consumer`, `run` and `config check`, and those every command shares. (An
/// ops command's `--group` or `--consumer` is a filter, with no default.)
pub(crate) fn with_defaults(command: clap::Command) -> clap::Command {
    command.mut_subcommands(|sub| {
        let all = matches!(sub.get_name(), "producer" | "consumer" | "run" | "config");
        annotate(sub, all)
    })
}

/// [`with_defaults`] for one command and its own subcommands: every option when `all`,
/// else those every command shares.
fn annotate(command: clap::Command, all: bool) -> clap::Command {
    use serde_aux::serde_introspection::serde_introspect;
    let common = serde_introspect::<CommonArgs>();
    command
        .mut_args(|arg| {
            let key = arg.get_id().as_str().to_string();
            if !(all || common.contains(&key.as_str())) || !arg.get_default_values().is_empty() {
                return arg;
            }
            let Some(default) = shown(&key) else {
                return arg;
            };
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!("{help} [default: {default}]"))
        })
        .mut_subcommands(|sub| annotate(sub, all))
}

/// `redline config example`: every option of the file, with its help as a comment and its
/// default as the value (commented out when it has none).
pub(crate) fn example() -> String {
    use clap::CommandFactory;
    let command = crate::cli::Cli::command();
    let arg = |key: &str| {
        std::iter::once(&command)
            .chain(command.get_subcommands())
            .flat_map(clap::Command::get_arguments)
            .find(|a| a.get_id() == key)
            .cloned()
    };
    let mut out = String::from(
        "# redline configuration file: every option with its default.\n#\n\
         # Keys are the long flag names with \"_\" for \"-\". Flags win over REDLINE_*\n\
         # environment variables, which win over this file. Durations take 500ms, 10s, 5m;\n\
         # sizes take bytes or units (512KiB, 25MB). Check a file with:\n\
         # redline config check FILE\n",
    );
    use serde_aux::serde_introspection::serde_introspect;
    let common = [
        serde_introspect::<CommonArgs>(),
        serde_introspect::<super::GlobalArgs>(),
    ]
    .concat();
    for (title, keys) in [
        ("every command", common.as_slice()),
        (
            "redline producer (and run)",
            serde_introspect::<ProducerArgs>(),
        ),
        (
            "redline consumer (and run)",
            serde_introspect::<ConsumerArgs>(),
        ),
    ] {
        out.push_str(&format!(
            "\n# ---- {title} {}\n",
            "-".repeat(70 - title.len())
        ));
        for key in keys {
            let help = arg(key)
                .and_then(|a| a.get_help().map(ToString::to_string))
                .unwrap_or_default();
            out.push('\n');
            for line in wrap(&help, 88) {
                out.push_str(&format!("# {line}\n"));
            }
            match value(key) {
                Some(v) => out.push_str(&format!("{key} = {v}\n")),
                None => out.push_str(&format!("# {key} = …\n")),
            }
        }
    }
    out
}

/// `text` in lines of at most `width` characters, cut at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
