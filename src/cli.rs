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
    /// Threads that run the process's work. On a machine shared with Redis, leave Redis
    /// its core: e.g. 1 on 2 cores (a consumer drains faster so).
    #[arg(long, env = "REDLINE_THREADS", global = true, value_name = "N")]
    pub(crate) threads: Option<usize>,
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
    /// Unit of the timestamps in the input.
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

mod options;

pub(crate) use options::{CommonArgs, ConsumerArgs, ProducerArgs, SinkKind};
