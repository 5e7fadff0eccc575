//! The command line: DESIGN.md's commands and flags, nothing else.
//!
//! Every option is `Option<_>` here so that `config.rs` can tell a flag (or its
//! `REDLINE_*` variable, which clap reads) from one left unset, and layer the TOML file and
//! the defaults beneath. Field names are also the TOML keys.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// redline: a durable metrics relay on Redis Streams.
///
/// InfluxDB line protocol in (HTTP /write and /api/v2/write), one Redis stream entry per
/// metric, consumer groups writing batches to InfluxDB, a file or stdout, acked only
/// after the sink accepted them.
#[derive(Debug, Parser)]
#[command(name = "redline", version, propagate_version = true)]
pub(crate) struct Cli {
    /// TOML configuration file; flags win over REDLINE_* variables, which win over it.
    #[arg(long, env = "REDLINE_CONFIG", global = true, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, env = "REDLINE_LOG_FORMAT", global = true, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `redline_consumer=debug,info` (RUST_LOG also works).
    #[arg(long, env = "REDLINE_LOG_LEVEL", global = true)]
    pub(crate) log_level: Option<String>,
    /// What to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Accept line protocol over HTTP and store one stream entry per metric.
    #[command(
        after_help = "Example:\n  redline producer --listen 127.0.0.1:8186 --redis-url redis://127.0.0.1:6379/"
    )]
    Producer {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Producer options.
        #[command(flatten)]
        producer: ProducerArgs,
    },
    /// Read the stream in a consumer group and write batches to a sink.
    #[command(
        after_help = "Example:\n  redline consumer --sink influxdb --influx-url http://127.0.0.1:8086 --influx-db telegraf"
    )]
    Consumer {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Consumer options.
        #[command(flatten)]
        consumer: ConsumerArgs,
    },
    /// Producer and consumer in one process.
    #[command(after_help = "Example:\n  redline run --sink file --file metrics.lp")]
    Run {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Producer options.
        #[command(flatten)]
        producer: ProducerArgs,
        /// Consumer options.
        #[command(flatten)]
        consumer: ConsumerArgs,
    },
    /// Streams, groups, lag, pending and dead letters at a glance.
    #[command(
        after_help = "Examples:\n  redline status\n  redline status --json | jq '.streams[].groups'\n  redline status --watch 2s"
    )]
    Status {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Refresh in place every INTERVAL until Ctrl-C (with --json: one object per line).
        #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s")]
        watch: Option<String>,
    },
    /// Pending entries: who holds what, for how long, delivered how often.
    #[command(
        after_help = "Examples:\n  redline pending\n  redline pending --group redline --consumer host-1234 --min-idle 1m --show"
    )]
    Pending {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Only this consumer.
        #[arg(long)]
        consumer: Option<String>,
        /// Only entries idle at least this long.
        #[arg(long, value_name = "DURATION")]
        min_idle: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// Also print each entry's line.
        #[arg(long)]
        show: bool,
        /// Print JSON (the entries) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Hand pending entries over to another consumer.
    #[command(
        after_help = "Examples:\n  redline claim --group redline --to host-2 --min-idle 5m\n  redline claim --group redline --to host-2 --id 1700000000000-0 --id 1700000000000-1"
    )]
    Claim {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// The group.
        #[arg(long)]
        group: String,
        /// The consumer that receives the entries.
        #[arg(long)]
        to: String,
        /// Only entries idle at least this long.
        #[arg(long, value_name = "DURATION")]
        min_idle: Option<String>,
        /// Only these entry ids (repeatable): ID, or STREAM/ID to name the partition (ids
        /// repeat across partitions); without it, every matching pending entry.
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<String>,
        /// Only partition N (0-based) of a partitioned stream.
        #[arg(long, value_name = "N")]
        partition: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List consumers; remove idle ones that hold nothing.
    #[command(
        after_help = "Examples:\n  redline consumers\n  redline consumers --group redline --prune-idle 1h"
    )]
    Consumers {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Remove consumers idle this long that hold no pending entry.
        #[arg(long, value_name = "DURATION")]
        prune_idle: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect, re-inject and drop dead letters.
    // Global: `redline dlq list --redis-url …` must work, not only `dlq --redis-url … list`.
    #[command(
        mut_args(|arg| arg.global(true)),
        after_help = "Examples:\n  redline dlq list\n  redline dlq replay --all\n  redline dlq purge --all --yes"
    )]
    Dlq {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// What to do.
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Print an example configuration file, or check one.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Store line protocol from a file or stdin, as the producer would (exit 1 if any line
    /// was not stored).
    #[command(
        after_help = "Examples:\n  redline send metrics.lp --db telegraf\n  gunzip -c old.lp.gz | redline send - --precision s"
    )]
    Send {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// What to send and where.
        #[command(flatten)]
        send: SendArgs,
    },
    /// Remove entries every group has acknowledged (XTRIM MINID).
    #[command(after_help = "Examples:\n  redline trim --dry-run\n  redline trim")]
    Trim {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Show what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// The options every command shares; `config` has none of its own.
    pub(crate) fn common(&self) -> Option<&CommonArgs> {
        Some(match self {
            Command::Producer { common, .. }
            | Command::Consumer { common, .. }
            | Command::Run { common, .. }
            | Command::Status { common, .. }
            | Command::Pending { common, .. }
            | Command::Claim { common, .. }
            | Command::Consumers { common, .. }
            | Command::Dlq { common, .. }
            | Command::Trim { common, .. }
            | Command::Send { common, .. } => common,
            Command::Config { .. } => return None,
        })
    }
}

/// `redline config` actions.
// Parsed once at start; the size of the enum does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// Print a commented configuration file with every option and its default.
    #[command(after_help = "Example:\n  redline config example > redline.toml")]
    Example,
    /// Validate a file and print the effective configuration (flags and REDLINE_* applied,
    /// secrets masked).
    #[command(after_help = "Example:\n  redline config check redline.toml")]
    Check {
        /// The file to check.
        #[arg(value_name = "FILE")]
        path: std::path::PathBuf,
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// Producer options.
        #[command(flatten)]
        producer: ProducerArgs,
        /// Consumer options.
        #[command(flatten)]
        consumer: ConsumerArgs,
    },
}

/// `redline send` options (not config-file keys: they describe one run).
#[derive(Debug, Clone, Args)]
pub(crate) struct SendArgs {
    /// Line-protocol file; `-` reads standard input.
    #[arg(value_name = "FILE|-", default_value = "-")]
    pub(crate) file: std::path::PathBuf,
    /// Unit of the timestamps in the input: n, ns, u, us, ms, s, m, h.
    #[arg(long, env = "REDLINE_PRECISION", default_value = "ns",
        value_parser = ["n", "ns", "u", "us", "µ", "µs", "ms", "s", "m", "h"])]
    pub(crate) precision: String,
    /// Database (or bucket) stored with every metric.
    #[arg(long, env = "REDLINE_DB", value_name = "DB")]
    pub(crate) db: Option<String>,
    /// Retention policy stored with every metric.
    #[arg(long, env = "REDLINE_RP", value_name = "RP")]
    pub(crate) rp: Option<String>,
    /// Lines per pipelined batch.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) batch_size: u64,
}

/// `redline dlq` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqAction {
    /// List dead letters with their reasons.
    #[command(after_help = "Example:\n  redline dlq list --json")]
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// Print JSON (an array of dead letters).
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter.
    #[command(after_help = "Example:\n  redline dlq show 1700000000000-0")]
    Show {
        /// Its id in the dead-letter stream.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back into the metric stream once their cause is fixed.
    #[command(
        after_help = "Examples:\n  redline dlq replay --all\n  redline dlq replay --id 1700000000000-0"
    )]
    Replay {
        /// These ids (repeatable).
        #[arg(long = "id", value_name = "ID", required_unless_present = "all")]
        ids: Vec<String>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop dead letters for good.
    #[command(
        after_help = "Examples:\n  redline dlq purge --id 1700000000000-0\n  redline dlq purge --all --yes"
    )]
    Purge {
        /// These ids (repeatable).
        #[arg(long = "id", value_name = "ID", required_unless_present = "all")]
        ids: Vec<String>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Options of every command.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommonArgs {
    /// Redis URL (`redis://[user:pass@]host:port/db`, `rediss://…`); for Redis Cluster,
    /// node URLs separated by commas, or one seed URL with --redis-cluster.
    #[arg(long, env = "REDLINE_REDIS_URL", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_url: Option<String>,
    /// Redis is a Redis Cluster (implied by several URLs in --redis-url).
    #[arg(long, env = "REDLINE_REDIS_CLUSTER", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_cluster: Option<bool>,
    /// Base name of the metric stream.
    #[arg(long, env = "REDLINE_STREAM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream: Option<String>,
    /// Number of stream partitions.
    #[arg(long, env = "REDLINE_PARTITIONS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partitions: Option<u32>,
    /// Start the producer or consumer even if Redis's maxmemory-policy may evict streams.
    #[arg(long, env = "REDLINE_ALLOW_EVICTION", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) allow_eviction: Option<bool>,
    /// Bound on one Redis reply.
    #[arg(long, env = "REDLINE_REDIS_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_timeout: Option<String>,
}

/// Producer options.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProducerArgs {
    /// HTTP listen address.
    #[arg(long, env = "REDLINE_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) listen: Option<String>,
    /// Largest request body after decoding, e.g. 25MB.
    #[arg(long, env = "REDLINE_MAX_BODY_SIZE", value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_body_size: Option<String>,
    /// Most entries the slowest group may leave unacknowledged; 0 = no limit.
    #[arg(long, env = "REDLINE_BUFFER_LIMIT", value_name = "ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) buffer_limit: Option<u64>,
    /// When the buffer is full: answer 503 (block) or drop the oldest entries.
    #[arg(long, env = "REDLINE_BUFFER_FULL", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) buffer_full: Option<redline_producer::buffer::BufferFull>,
    /// Replicas that must confirm each write (Redis WAIT) before the 204.
    #[arg(long, env = "REDLINE_WAIT_REPLICAS", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wait_replicas: Option<u32>,
    /// How long to wait for those replicas before answering 503.
    #[arg(long, env = "REDLINE_WAIT_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wait_timeout: Option<String>,
    /// Retry-After sent with 503 answers.
    #[arg(long, env = "REDLINE_RETRY_AFTER", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after: Option<String>,
    /// Also accept newline-delimited line protocol over TCP on ADDR (timestamps in ns).
    #[arg(long, env = "REDLINE_TCP_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tcp_listen: Option<String>,
    /// Database stored with metrics received over TCP.
    #[arg(long, env = "REDLINE_TCP_DB", value_name = "DB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tcp_db: Option<String>,
    /// Database of a v1 /write that names none; without it such a write gets 400
    /// "database is required", as InfluxDB answers.
    #[arg(long, env = "REDLINE_DEFAULT_DB", value_name = "DB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) default_db: Option<String>,
    /// Most TCP connections served at once.
    #[arg(long, env = "REDLINE_TCP_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65_536))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tcp_max_connections: Option<u64>,
    /// A token that may write over HTTP (repeatable; REDLINE_AUTH_TOKENS takes a
    /// comma-separated list). Prefer the variable or --auth-token-file: a flag shows in `ps`
    ///.
    #[arg(
        long = "auth-token",
        env = "REDLINE_AUTH_TOKENS",
        value_name = "TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) auth_token: Option<Vec<String>>,
    /// File of tokens that may write over HTTP, one per line (`#` comments).
    #[arg(long, env = "REDLINE_AUTH_TOKEN_FILE", value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) auth_token_file: Option<std::path::PathBuf>,
    /// Also require a token for GET /metrics.
    #[arg(long, env = "REDLINE_AUTH_METRICS", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) auth_metrics: Option<bool>,
    /// Longest accepted line, e.g. 64KiB; longer lines are refused by number.
    #[arg(long, env = "REDLINE_MAX_LINE_LENGTH", value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_line_length: Option<String>,
    /// Most fields on one line; lines with more are refused by number.
    #[arg(long, env = "REDLINE_MAX_FIELDS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_fields: Option<u64>,
    /// Bound on receiving one request body; a slower client gets 408.
    #[arg(long, env = "REDLINE_READ_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) read_timeout: Option<String>,
    /// Most write requests served at once; one more gets 503 + Retry-After.
    #[arg(long, env = "REDLINE_MAX_CONCURRENT_REQUESTS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_concurrent_requests: Option<u64>,
    /// Most write requests parsed and stored at once; the others wait, holding only their
    /// body.
    #[arg(long, env = "REDLINE_MAX_CONCURRENT_WRITES", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_concurrent_writes: Option<u64>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "REDLINE_TLS_CERT", value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "REDLINE_TLS_KEY", value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
}

/// The sinks a consumer can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SinkKind {
    /// InfluxDB 1.x `/write`.
    Influxdb,
    /// InfluxDB 2.x `/api/v2/write` (token, org, bucket).
    Influxdb2,
    /// Append line protocol to a file, fsynced before the ack.
    File,
    /// Print line protocol to standard output.
    Stdout,
}

/// Consumer options.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsumerArgs {
    /// Consumer group.
    #[arg(long, env = "REDLINE_GROUP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) group: Option<String>,
    /// Consumer name, unique per process.
    #[arg(long, env = "REDLINE_CONSUMER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) consumer: Option<String>,
    /// Consumers in this process, each with one batch in flight: CONSUMER-1 … CONSUMER-N when
    /// more than 1.
    #[arg(long, env = "REDLINE_WORKERS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=redline_consumer::MAX_WORKERS as u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) workers: Option<u64>,
    /// Where new groups start.
    #[arg(long, env = "REDLINE_START_FROM", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) start_from: Option<redline_consumer::StartFrom>,
    /// Sink.
    #[arg(long, env = "REDLINE_SINK", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sink: Option<SinkKind>,
    /// InfluxDB base URL.
    #[arg(long, env = "REDLINE_INFLUX_URL", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_url: Option<String>,
    /// Database for entries that name none.
    #[arg(long, env = "REDLINE_INFLUX_DB", value_name = "DB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_db: Option<String>,
    /// InfluxDB user, when InfluxDB has auth enabled.
    #[arg(long, env = "REDLINE_INFLUX_USERNAME", value_name = "USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_username: Option<String>,
    /// InfluxDB password; prefer the environment variable to the flag, which shows in `ps`.
    #[arg(
        long,
        env = "REDLINE_INFLUX_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_password: Option<String>,
    /// Bound on one InfluxDB write.
    #[arg(long, env = "REDLINE_INFLUX_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_timeout: Option<String>,
    /// InfluxDB v2 API token (--sink influxdb2); prefer the environment variable to the flag.
    #[arg(
        long,
        env = "REDLINE_INFLUX_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_token: Option<String>,
    /// InfluxDB v2 organization (--sink influxdb2).
    #[arg(long, env = "REDLINE_INFLUX_ORG", value_name = "ORG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_org: Option<String>,
    /// InfluxDB v2 bucket for entries that name none (--sink influxdb2).
    #[arg(long, env = "REDLINE_INFLUX_BUCKET", value_name = "BUCKET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_bucket: Option<String>,
    /// Request body encoding for InfluxDB writes: gzip or identity.
    #[arg(long, env = "REDLINE_INFLUX_CONTENT_ENCODING", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_content_encoding: Option<redline_consumer::sink::ContentEncoding>,
    /// Do not create a missing database (InfluxDB answers 404).
    #[arg(long, env = "REDLINE_INFLUX_SKIP_DATABASE_CREATION", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_skip_database_creation: Option<bool>,
    /// File for `--sink file`.
    #[arg(long, env = "REDLINE_FILE", value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<std::path::PathBuf>,
    /// Rotate the file before a batch would take it past SIZE; 0 = never.
    #[arg(long, env = "REDLINE_FILE_MAX_SIZE", value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file_max_size: Option<String>,
    /// Rotated files kept: FILE.1 (newest) … FILE.N.
    #[arg(long, env = "REDLINE_FILE_MAX_FILES", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file_max_files: Option<u32>,
    /// Most metrics per batch.
    #[arg(long, env = "REDLINE_BATCH_SIZE", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) batch_size: Option<u64>,
    /// Longest wait for a batch to fill.
    #[arg(long, env = "REDLINE_FLUSH_INTERVAL", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) flush_interval: Option<String>,
    /// Idle time after which another consumer's pending entries are claimed.
    #[arg(long, env = "REDLINE_MIN_IDLE", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) min_idle: Option<String>,
    /// Deliveries after which an entry goes to the dead-letter stream.
    #[arg(long, env = "REDLINE_MAX_DELIVERIES", value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_deliveries: Option<u64>,
    /// How often to trim entries every group acknowledged; 0s = never.
    #[arg(long, env = "REDLINE_TRIM_INTERVAL", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) trim_interval: Option<String>,
    /// Remove group consumers idle this long that hold nothing pending; 0s = never.
    #[arg(long, env = "REDLINE_PRUNE_IDLE", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prune_idle: Option<String>,
    /// Address for GET /metrics and /health (off when unset).
    #[arg(long, env = "REDLINE_METRICS_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metrics_listen: Option<String>,
}
