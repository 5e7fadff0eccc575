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
        /// Refresh in place every INTERVAL until Ctrl-C.
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
        #[arg(long, default_value_t = 100)]
        count: usize,
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
        /// Only entries idle at least this long [default: 0s].
        #[arg(long, value_name = "DURATION")]
        min_idle: Option<String>,
        /// Only these entry ids (repeatable); without it, every matching pending entry.
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<String>,
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
    Dlq {
        /// Options every command shares.
        #[command(flatten)]
        common: CommonArgs,
        /// What to do.
        #[command(subcommand)]
        action: DlqAction,
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
    /// The options every command shares.
    pub(crate) fn common(&self) -> &CommonArgs {
        match self {
            Command::Producer { common, .. }
            | Command::Consumer { common, .. }
            | Command::Run { common, .. }
            | Command::Status { common, .. }
            | Command::Pending { common, .. }
            | Command::Claim { common, .. }
            | Command::Consumers { common, .. }
            | Command::Dlq { common, .. }
            | Command::Trim { common, .. } => common,
        }
    }
}

/// `redline dlq` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqAction {
    /// List dead letters with their reasons.
    #[command(after_help = "Example:\n  redline dlq list --json")]
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        count: usize,
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
    /// Redis URL (`redis://[user:pass@]host:port/db`, `rediss://…`).
    #[arg(long, env = "REDLINE_REDIS_URL", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_url: Option<String>,
    /// Base name of the metric stream [default: redline:metrics].
    #[arg(long, env = "REDLINE_STREAM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream: Option<String>,
    /// Number of stream partitions [default: 1].
    #[arg(long, env = "REDLINE_PARTITIONS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partitions: Option<u32>,
    /// Bound on one Redis reply [default: 10s].
    #[arg(long, env = "REDLINE_REDIS_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_timeout: Option<String>,
}

/// Producer options.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProducerArgs {
    /// HTTP listen address [default: 127.0.0.1:8186].
    #[arg(long, env = "REDLINE_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) listen: Option<String>,
    /// Largest request body after decoding, e.g. 25MB [default: 25MB].
    #[arg(long, env = "REDLINE_MAX_BODY_SIZE", value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_body_size: Option<String>,
    /// Most entries the slowest group may leave unacknowledged; 0 = no limit [default: 0].
    #[arg(long, env = "REDLINE_BUFFER_LIMIT", value_name = "ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) buffer_limit: Option<u64>,
    /// When the buffer is full: answer 503 (block) or drop the oldest entries [default: block].
    #[arg(long, env = "REDLINE_BUFFER_FULL", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) buffer_full: Option<BufferFull>,
    /// Replicas that must confirm each write (Redis WAIT) before the 204 [default: 0].
    #[arg(long, env = "REDLINE_WAIT_REPLICAS", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wait_replicas: Option<u32>,
    /// How long to wait for those replicas before answering 503 [default: 1s].
    #[arg(long, env = "REDLINE_WAIT_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wait_timeout: Option<String>,
    /// Retry-After sent with 503 answers [default: 1s].
    #[arg(long, env = "REDLINE_RETRY_AFTER", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after: Option<String>,
}

/// What the producer does when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BufferFull {
    /// Answer 503 with Retry-After; store nothing of the request.
    Block,
    /// Drop the oldest unacknowledged entries (Telegraf's behaviour), counting each.
    #[value(name = "drop_oldest", alias = "drop-oldest")]
    DropOldest,
}

/// The sinks a consumer can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SinkKind {
    /// InfluxDB 1.x `/write`.
    Influxdb,
    /// Append line protocol to a file, fsynced before the ack.
    File,
    /// Print line protocol to standard output.
    Stdout,
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StartFrom {
    /// The oldest entry: nothing already buffered is skipped.
    Oldest,
    /// Only entries added after the group is created.
    Latest,
}

/// Consumer options.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsumerArgs {
    /// Consumer group [default: redline].
    #[arg(long, env = "REDLINE_GROUP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) group: Option<String>,
    /// Consumer name, unique per process [default: <hostname>-<pid>].
    #[arg(long, env = "REDLINE_CONSUMER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) consumer: Option<String>,
    /// Where new groups start [default: oldest].
    #[arg(long, env = "REDLINE_START_FROM", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) start_from: Option<StartFrom>,
    /// Sink [default: stdout].
    #[arg(long, env = "REDLINE_SINK", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sink: Option<SinkKind>,
    /// InfluxDB base URL [default: http://127.0.0.1:8086].
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
    /// Bound on one InfluxDB write [default: 10s].
    #[arg(long, env = "REDLINE_INFLUX_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_timeout: Option<String>,
    /// Do not create a missing database (InfluxDB answers 404).
    #[arg(long, env = "REDLINE_INFLUX_SKIP_DATABASE_CREATION", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_skip_database_creation: Option<bool>,
    /// File for `--sink file`.
    #[arg(long, env = "REDLINE_FILE", value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<std::path::PathBuf>,
    /// Most metrics per batch [default: 5000].
    #[arg(long, env = "REDLINE_BATCH_SIZE", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) batch_size: Option<u64>,
    /// Longest wait for a batch to fill [default: 1s].
    #[arg(long, env = "REDLINE_FLUSH_INTERVAL", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) flush_interval: Option<String>,
    /// Idle time after which another consumer's pending entries are claimed [default: 30s].
    #[arg(long, env = "REDLINE_MIN_IDLE", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) min_idle: Option<String>,
    /// Deliveries after which an entry goes to the dead-letter stream [default: 5].
    #[arg(long, env = "REDLINE_MAX_DELIVERIES", value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_deliveries: Option<u64>,
    /// How often to trim entries every group acknowledged; 0s = never [default: 10s].
    #[arg(long, env = "REDLINE_TRIM_INTERVAL", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) trim_interval: Option<String>,
    /// Remove group consumers idle this long that hold nothing pending; 0s = never [default: 1h].
    #[arg(long, env = "REDLINE_PRUNE_IDLE", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prune_idle: Option<String>,
    /// Address for GET /metrics and /health (off when unset).
    #[arg(long, env = "REDLINE_METRICS_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metrics_listen: Option<String>,
}
