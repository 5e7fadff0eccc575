//! Layering of configuration: flags > `REDLINE_*` environment variables > TOML file >
//! defaults, validated once, into each crate's `Config`.
//!
//! The TOML file is flat: its keys are the long flag names with `_` for `-`
//! (`redis_url`, `batch_size`, …). A key no command knows is an error naming the key and
//! its line, so a typo never silently falls back to a default.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use redline_core::units;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cli::{
    BufferFull, CommonArgs, ConsumerArgs, LogFormat, ProducerArgs, SinkKind, StartFrom,
};

/// A usage error: a value of a flag, variable or config key that redline cannot use. The
/// process exits 2 for it (1 is for failures at run time); the message names the option.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A [`Usage`] error with `message`.
pub(crate) fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Usage(message.to_string()))
}

/// `redline config example`: every option with its default and a comment.
pub(crate) const EXAMPLE: &str = include_str!("redline.example.toml");

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
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
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

pub(crate) fn duration(value: Option<&str>, name: &str, default: Duration) -> Result<Duration> {
    value.map_or(Ok(default), |v| {
        units::parse_duration(v).map_err(|e| usage(format!("{}: {e}", describe(name))))
    })
}

fn address(value: Option<&str>, name: &str, default: &str) -> Result<SocketAddr> {
    let v = value.unwrap_or(default);
    v.parse().map_err(|e| {
        usage(format!(
            "{}: invalid address '{v}' ({e}); use HOST:PORT",
            describe(name)
        ))
    })
}

/// "--flush-interval (REDLINE_FLUSH_INTERVAL, config key flush_interval)".
fn describe(name: &str) -> String {
    format!(
        "--{} (env REDLINE_{}, config key {name})",
        name.replace('_', "-"),
        name.to_ascii_uppercase()
    )
}

/// The shared parts of every Config.
pub(crate) struct Common {
    pub(crate) allow_eviction: bool,
    pub(crate) redis: redline_core::redis::RedisConfig,
    pub(crate) stream: String,
    pub(crate) partitions: u32,
}

impl Common {
    /// The stream keys of this deployment.
    pub(crate) fn keys(&self) -> redline_core::keys::StreamKeys {
        redline_core::keys::StreamKeys::new(&self.stream, self.partitions)
    }
}

impl Common {
    /// Validates the common options.
    pub(crate) fn new(args: &CommonArgs) -> Result<Self> {
        let mut redis = redline_core::redis::RedisConfig::default();
        if let Some(url) = &args.redis_url {
            redis.url = url.clone();
        }
        redis.cluster = args.redis_cluster.unwrap_or(false);
        redis
            .check()
            .map_err(|e| usage(format!("{}: {e}", describe("redis_url"))))?;
        redis.response_timeout = duration(
            args.redis_timeout.as_deref(),
            "redis_timeout",
            redis.response_timeout,
        )?;
        let stream = args
            .stream
            .clone()
            .unwrap_or_else(|| redline_core::keys::DEFAULT_STREAM.to_string());
        if stream.is_empty() {
            return Err(usage(format!("{}: must not be empty", describe("stream"))));
        }
        Ok(Self {
            allow_eviction: args.allow_eviction.unwrap_or(false),
            redis,
            stream,
            partitions: args.partitions.unwrap_or(1),
        })
    }
}

/// The producer's Config from its options.
pub(crate) fn producer(common: &Common, args: &ProducerArgs) -> Result<redline_producer::Config> {
    let d = redline_producer::Config::default();
    Ok(redline_producer::Config {
        redis: common.redis.clone(),
        stream: common.stream.clone(),
        partitions: common.partitions,
        listen: address(
            args.listen.as_deref(),
            "listen",
            redline_producer::DEFAULT_LISTEN,
        )?,
        max_body_size: match &args.max_body_size {
            Some(v) => units::parse_size(v)
                .map_err(|e| usage(format!("{}: {e}", describe("max_body_size"))))?,
            None => d.max_body_size,
        },
        retry_after: duration(args.retry_after.as_deref(), "retry_after", d.retry_after)?,
        buffer_limit: args.buffer_limit.unwrap_or(d.buffer_limit),
        buffer_full: match args.buffer_full {
            Some(BufferFull::DropOldest) => redline_producer::buffer::BufferFull::DropOldest,
            Some(BufferFull::Block) | None => redline_producer::buffer::BufferFull::Block,
        },
        wait_replicas: args.wait_replicas.unwrap_or(d.wait_replicas),
        wait_timeout: duration(args.wait_timeout.as_deref(), "wait_timeout", d.wait_timeout)?,
        shutdown_timeout: d.shutdown_timeout,
        tcp_listen: args
            .tcp_listen
            .as_deref()
            .map(|v| address(Some(v), "tcp_listen", ""))
            .transpose()?,
        tcp_db: args.tcp_db.clone().filter(|db| !db.is_empty()),
        default_db: args.default_db.clone().filter(|db| !db.is_empty()),
        tcp_max_connections: args
            .tcp_max_connections
            .map_or(d.tcp_max_connections, |n| n as usize),
        auth_tokens: auth_tokens(args)?,
        auth_metrics: args.auth_metrics.unwrap_or(d.auth_metrics),
        max_line_length: match &args.max_line_length {
            Some(v) => units::parse_size(v)
                .map_err(|e| usage(format!("{}: {e}", describe("max_line_length"))))
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))?,
            None => d.max_line_length,
        },
        max_fields: args
            .max_fields
            .map_or(d.max_fields, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        read_timeout: duration(args.read_timeout.as_deref(), "read_timeout", d.read_timeout)?,
        max_concurrent_requests: args
            .max_concurrent_requests
            .map_or(d.max_concurrent_requests, |n| n as usize),
        max_concurrent_writes: args
            .max_concurrent_writes
            .map_or(d.max_concurrent_writes, |n| n as usize),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
    })
    .and_then(|config| match (&config.tls_cert, &config.tls_key) {
        (Some(_), None) | (None, Some(_)) => Err(usage(format!(
            "{} and {} go together: HTTPS needs both",
            describe("tls_cert"),
            describe("tls_key")
        ))),
        _ => Ok(config),
    })
}

/// The producer's options as the environment sets them (`REDLINE_MAX_LINE_LENGTH`, …),
/// for a command that has no producer flags of its own but must honour its limits (`send`).
pub(crate) fn producer_env() -> Result<ProducerArgs> {
    #[derive(clap::Parser)]
    struct FromEnv {
        #[command(flatten)]
        producer: ProducerArgs,
    }
    use clap::Parser as _;
    FromEnv::try_parse_from(["redline"])
        .map(|env| env.producer)
        .map_err(|e| {
            usage(
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("error: "),
            )
        })
}

/// The producer's tokens: `--auth-token` / `REDLINE_AUTH_TOKENS` and the lines of
/// `--auth-token-file`. Errors name the flag and the file, never a token.
fn auth_tokens(args: &ProducerArgs) -> Result<redline_producer::auth::Tokens> {
    let mut tokens: Vec<String> = args.auth_token.clone().unwrap_or_default();
    if let Some(path) = &args.auth_token_file {
        let from_file = redline_producer::auth::read_token_file(path).map_err(|e| {
            anyhow!(
                "{}: cannot read {}: {e}",
                describe("auth_token_file"),
                path.display()
            )
        })?;
        if from_file.is_empty() {
            bail!(
                "{}: {} holds no token",
                describe("auth_token_file"),
                path.display()
            );
        }
        tokens.extend(from_file);
    }
    Ok(redline_producer::auth::Tokens::new(tokens))
}

/// `--influx-url`, checked to be an http(s) URL.
fn influx_url(args: &ConsumerArgs) -> Result<String> {
    let url = args
        .influx_url
        .clone()
        .unwrap_or_else(|| redline_consumer::sink::DEFAULT_INFLUX_URL.to_string());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(usage(format!(
            "{}: '{url}' is not an http(s) URL",
            describe("influx_url")
        )));
    }
    Ok(url)
}

/// What every InfluxDB sink takes from the options (URL, timeout, encoding); the API is the
/// caller's.
fn influx_config(args: &ConsumerArgs) -> Result<redline_consumer::sink::InfluxConfig> {
    Ok(redline_consumer::sink::InfluxConfig {
        url: influx_url(args)?,
        timeout: duration(
            args.influx_timeout.as_deref(),
            "influx_timeout",
            redline_consumer::sink::DEFAULT_INFLUX_TIMEOUT,
        )?,
        content_encoding: content_encoding(args),
        ..redline_consumer::sink::InfluxConfig::v1(None)
    })
}

/// The InfluxDB sinks' body encoding from the options.
fn content_encoding(args: &ConsumerArgs) -> redline_consumer::sink::ContentEncoding {
    use redline_consumer::sink::ContentEncoding as Encoding;
    match args.influx_content_encoding {
        None | Some(crate::cli::ContentEncoding::Gzip) => Encoding::Gzip,
        Some(crate::cli::ContentEncoding::Identity) => Encoding::Identity,
    }
}

/// The consumer's Config from its options.
pub(crate) fn consumer(common: &Common, args: &ConsumerArgs) -> Result<redline_consumer::Config> {
    use redline_consumer::sink::{InfluxApi, InfluxConfig};
    use redline_consumer::{SinkConfig, StartFrom as Start};
    use redline_core::secret::Secret;
    let d = redline_consumer::Config::default();
    let sink = match args.sink.unwrap_or(SinkKind::Stdout) {
        SinkKind::Stdout => SinkConfig::Stdout,
        SinkKind::File => SinkConfig::File {
            path: args.file.clone().ok_or_else(|| {
                usage("--sink file needs --file PATH (env REDLINE_FILE, config key file)")
            })?,
            max_size: match &args.file_max_size {
                Some(v) => units::parse_size(v)
                    .map_err(|e| usage(format!("{}: {e}", describe("file_max_size"))))?,
                None => 0,
            },
            max_files: args
                .file_max_files
                .unwrap_or(redline_consumer::sink::DEFAULT_FILE_MAX_FILES),
        },
        SinkKind::Influxdb2 => {
            let required = |value: &Option<String>, name: &str| {
                value
                    .clone()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| usage(format!("--sink influxdb2 needs {}", describe(name))))
            };
            SinkConfig::Influxdb(InfluxConfig {
                api: InfluxApi::V2 {
                    token: Secret::new(required(&args.influx_token, "influx_token")?),
                    org: required(&args.influx_org, "influx_org")?,
                    bucket: args.influx_bucket.clone().or(args.influx_db.clone()),
                },
                ..influx_config(args)?
            })
        }
        SinkKind::Influxdb => SinkConfig::Influxdb(InfluxConfig {
            api: InfluxApi::V1 {
                db: args.influx_db.clone(),
                username: args.influx_username.clone(),
                password: args.influx_password.clone().map(Secret::new),
                create_database: !args.influx_skip_database_creation.unwrap_or(false),
            },
            ..influx_config(args)?
        }),
    };
    let consumer = match &args.consumer {
        Some(name) if !name.is_empty() => name.clone(),
        _ => format!(
            "{}-{}",
            gethostname::gethostname().to_string_lossy(),
            std::process::id()
        ),
    };
    let metrics_listen = args
        .metrics_listen
        .as_deref()
        .map(|v| address(Some(v), "metrics_listen", ""))
        .transpose()?;
    Ok(redline_consumer::Config {
        redis: common.redis.clone(),
        stream: common.stream.clone(),
        partitions: common.partitions,
        group: args.group.clone().unwrap_or(d.group.clone()),
        consumer,
        workers: args.workers.map_or(d.workers, |n| n as usize),
        start_from: match args.start_from.unwrap_or(StartFrom::Oldest) {
            StartFrom::Oldest => Start::Oldest,
            StartFrom::Latest => Start::Latest,
        },
        sink,
        batch_size: args.batch_size.map_or(d.batch_size, |n| n as usize),
        flush_interval: duration(
            args.flush_interval.as_deref(),
            "flush_interval",
            d.flush_interval,
        )?,
        min_idle: duration(args.min_idle.as_deref(), "min_idle", d.min_idle)?,
        max_deliveries: args.max_deliveries.unwrap_or(d.max_deliveries),
        metrics_listen,
        trim_interval: duration(
            args.trim_interval.as_deref(),
            "trim_interval",
            d.trim_interval,
        )?,
        prune_idle: duration(args.prune_idle.as_deref(), "prune_idle", d.prune_idle)?,
        ..d
    })
}

/// `redline config check`: the effective configuration of every command, secrets masked.
pub(crate) fn effective(
    common: &Common,
    producer: &redline_producer::Config,
    consumer: &redline_consumer::Config,
) -> Result<String> {
    let mut json = serde_json::json!({
        "producer": producer,
        "consumer": consumer,
    });
    drop_nulls(&mut json);
    // Passwords and tokens are `Secret`s and URLs serialise redacted: nothing to mask here.
    let value = toml::Value::try_from(json)?;
    let _ = common;
    Ok(toml::to_string_pretty(&value)?)
}

/// TOML has no null: an unset option is left out.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
