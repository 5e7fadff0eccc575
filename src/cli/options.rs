//! The options that are also config-file keys: every command's, the producer's and the
//! consumer's. Each is `Option<_>` so `config.rs` can layer flag, variable, file and default.

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// Options of every command.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommonArgs {
    /// Redis URL (`redis://[user:pass@]host:port/db`, `rediss://…`); for Redis Cluster,
    /// node URLs separated by commas, or one seed URL with --redis-cluster; for Sentinel,
    /// `redis+sentinel://[user:pass@]host:port[,host:port…]/master_name[?sentinel_password=…]`
    /// (`rediss+sentinel://` for TLS).
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
    /// HTTP listen address: POST /write, /api/v2/write, GET|POST /query, GET /ping,
    /// /health, /ready, /metrics.
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
    /// One memory budget for all HTTP requests (bodies, gzip inflated, parsed metrics); a
    /// request that does not fit waits, then gets 503; one larger than it gets 413.
    #[arg(long, env = "REDLINE_MAX_INFLIGHT_BYTES", value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_inflight_bytes: Option<String>,
    /// How long a request waits for room in --max-inflight-bytes before its 503.
    #[arg(long, env = "REDLINE_ENQUEUE_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) enqueue_timeout: Option<String>,
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
    /// InfluxDB base URL; repeatable or comma-separated for failover: writes go to one, the next is tried when it is unavailable.
    #[arg(
        long,
        env = "REDLINE_INFLUX_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub(crate) influx_url: Vec<String>,
    /// Path /ready probes with GET on each InfluxDB URL; empty = no probe.
    #[arg(long, env = "REDLINE_INFLUX_PING_PATH", value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) influx_ping_path: Option<String>,
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
    /// Most metrics per second this process reads and writes, in bursts of one batch (workers
    /// wait for their turn before reading); unset = no limit.
    #[arg(long, env = "REDLINE_MAX_WRITE_RATE", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_write_rate: Option<u64>,
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
    /// Databases this group writes (glob, repeatable or comma-separated); others are acked unwritten.
    #[arg(
        long,
        env = "REDLINE_INCLUDE_DB",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) include_db: Vec<String>,
    /// Databases this group never writes (glob, repeatable); they are acked unwritten.
    #[arg(
        long,
        env = "REDLINE_EXCLUDE_DB",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) exclude_db: Vec<String>,
    /// Measurements this group writes (glob, repeatable); others are acked unwritten.
    #[arg(
        long,
        env = "REDLINE_INCLUDE_MEASUREMENT",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) include_measurement: Vec<String>,
    /// Measurements this group never writes (glob, repeatable); they are acked unwritten.
    #[arg(
        long,
        env = "REDLINE_EXCLUDE_MEASUREMENT",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) exclude_measurement: Vec<String>,
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
    /// Address serving GET /metrics, /health and /ready (off when unset).
    #[arg(long, env = "REDLINE_METRICS_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metrics_listen: Option<String>,
}

/// A config file value that is one string or a list of them (`influx_url = "…"` or
/// `influx_url = ["…", "…"]`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}
