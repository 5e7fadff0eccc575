//! Layering of configuration: flags > `REDLINE_*` environment variables > TOML file >
//! defaults, validated once, into each crate's `Config`.
//!
//! The TOML file is flat: its keys are the long flag names with `_` for `-`
//! (`redis_url`, `batch_size`, …). A key no command knows is an error naming the key and
//! its line, so a typo never silently falls back to a default.

use std::{net::SocketAddr, time::Duration};

use anyhow::Result;
use redline_core::units;
use serde_json::Value;

use crate::cli::{CommonArgs, ConsumerArgs, ProducerArgs, SinkKind};

/// The smallest `max_inflight_bytes`: a request must have room to be read, parsed (the
/// estimate of one piece) and stored (one round of pipelines).
const MIN_INFLIGHT_BYTES: u64 = 8 * 1024 * 1024;

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

mod defaults;
mod file;

pub(crate) use defaults::{example, with_defaults, DEFAULT_LOG_LEVEL};
pub(crate) use file::{File, GlobalArgs};

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
pub(crate) fn describe(name: &str) -> String {
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
        buffer_full: args.buffer_full.unwrap_or(d.buffer_full),
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
        max_inflight_bytes: match &args.max_inflight_bytes {
            Some(v) => {
                let bytes = units::parse_size(v)
                    .map_err(|e| usage(format!("{}: {e}", describe("max_inflight_bytes"))))?;
                if bytes < MIN_INFLIGHT_BYTES {
                    return Err(usage(format!(
                        "{}: {v} is too small: at least 8MiB, so that one request (which may hold half) has room to be read, parsed and stored",
                        describe("max_inflight_bytes")
                    )));
                }
                bytes
            }
            None => d.max_inflight_bytes,
        },
        enqueue_timeout: duration(
            args.enqueue_timeout.as_deref(),
            "enqueue_timeout",
            d.enqueue_timeout,
        )?,
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
    })
    .and_then(|config| match (&config.tls_cert, &config.tls_key) {
        (Some(_), None) | (None, Some(_)) => Err(usage(format!(
            "{} and {} go together: HTTPS needs both",
            describe("tls_cert"),
            describe("tls_key")
        ))),
        (Some(cert), Some(key)) => {
            readable(cert, "tls_cert")?;
            readable(key, "tls_key")?;
            Ok(config)
        }
        (None, None) => Ok(config),
    })
}

/// A file option that names no readable file is a usage error (what it holds is checked
/// when it is used).
fn readable(path: &std::path::Path, name: &str) -> Result<()> {
    std::fs::File::open(path).map(drop).map_err(|e| {
        usage(format!(
            "{}: cannot read {}: {e}",
            describe(name),
            path.display()
        ))
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
            usage(format!(
                "{}: cannot read {}: {e}",
                describe("auth_token_file"),
                path.display()
            ))
        })?;
        if from_file.is_empty() {
            return Err(usage(format!(
                "{}: {} holds no token",
                describe("auth_token_file"),
                path.display()
            )));
        }
        tokens.extend(from_file);
    }
    Ok(redline_producer::auth::Tokens::new(tokens))
}

/// `--influx-url` (one or more, in order), each checked to be an http(s) URL; the sink
/// takes them comma-separated.
fn influx_url(args: &ConsumerArgs) -> Result<String> {
    if args.influx_url.is_empty() {
        return Ok(redline_consumer::sink::DEFAULT_INFLUX_URL.to_string());
    }
    for url in &args.influx_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(usage(format!(
                "{}: '{}' is not an http(s) URL",
                describe("influx_url"),
                redline_core::redis::redact_url(url)
            )));
        }
    }
    Ok(args.influx_url.join(","))
}

/// `--influx-ping-path`: empty, or a path starting with `/`.
fn ping_path(args: &ConsumerArgs) -> Result<String> {
    let Some(path) = &args.influx_ping_path else {
        return Ok(redline_consumer::sink::DEFAULT_PING_PATH.to_string());
    };
    if !(path.is_empty() || path.starts_with('/')) {
        return Err(usage(format!(
            "{}: '{path}' must start with '/' (or be empty for no probe)",
            describe("influx_ping_path")
        )));
    }
    Ok(path.clone())
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
        content_encoding: args.influx_content_encoding.unwrap_or_default(),
        ping_path: ping_path(args)?,
        ..redline_consumer::sink::InfluxConfig::v1(None)
    })
}

/// The consumer's Config from its options.
pub(crate) fn consumer(common: &Common, args: &ConsumerArgs) -> Result<redline_consumer::Config> {
    use redline_consumer::sink::{InfluxApi, InfluxConfig};
    use redline_consumer::SinkConfig;
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
        start_from: args.start_from.unwrap_or(d.start_from),
        sink,
        max_write_rate: args.max_write_rate,
        batch_size: args.batch_size.map_or(d.batch_size, |n| n as usize),
        flush_interval: duration(
            args.flush_interval.as_deref(),
            "flush_interval",
            d.flush_interval,
        )?,
        min_idle: duration(args.min_idle.as_deref(), "min_idle", d.min_idle)?,
        max_deliveries: args.max_deliveries.unwrap_or(d.max_deliveries),
        routing: redline_consumer::routes::Routing {
            include_db: args.include_db.clone(),
            exclude_db: args.exclude_db.clone(),
            include_measurement: args.include_measurement.clone(),
            exclude_measurement: args.exclude_measurement.clone(),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: serde::Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn an_empty_configuration_is_the_libraries_default() {
        let common = Common::new(&CommonArgs::default()).unwrap();
        let producer = producer(&common, &ProducerArgs::default()).unwrap();
        assert_eq!(json(&producer), json(&redline_producer::Config::default()));
        let consumer = consumer(&common, &ConsumerArgs::default()).unwrap();
        // The consumer's name is the one computed default: HOSTNAME-PID.
        let expected = redline_consumer::Config {
            consumer: consumer.consumer.clone(),
            ..redline_consumer::Config::default()
        };
        assert_eq!(json(&consumer), json(&expected));
        assert!(consumer
            .consumer
            .ends_with(&format!("-{}", std::process::id())));
    }

    #[test]
    fn every_option_of_the_file_has_its_default_in_the_example() {
        let example = example();
        let aliases: Vec<&str> = file::ALIASES.iter().map(|(alias, _)| *alias).collect();
        for key in file::known_keys()
            .into_iter()
            .filter(|k| !aliases.contains(k))
        {
            let set = format!("\n{key} = ");
            let unset = format!("\n# {key} = ");
            assert!(
                example.contains(&set) || example.contains(&unset),
                "{key} is missing from `config example`"
            );
            if let Some(default) = defaults::value(key) {
                assert!(example.contains(&format!("{set}{default}\n")), "{key}");
            }
        }
    }
}
