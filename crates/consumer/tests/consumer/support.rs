//! Helpers shared by the consumer tests: a consumer running in-process, stream set-up and
//! the pending / dead-letter views the assertions read.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redline_consumer::{Config, SinkConfig};
use redline_core::Shutdown;
use redline_testkit::{wait_until, RedisServer};
use tokio::task::JoinHandle;

/// The stream every test uses (the default name).
pub(crate) const STREAM: &str = "redline:metrics";
/// Its dead-letter stream.
pub(crate) const DLQ: &str = "redline:metrics:dlq";
/// The group every test uses (the default).
pub(crate) const GROUP: &str = "redline";
/// Patience for anything a test waits on.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

/// A consumer running as a task of the test's runtime.
pub(crate) struct Consumer {
    shutdown: Shutdown,
    task: JoinHandle<redline_consumer::Result<()>>,
}

impl Consumer {
    /// Starts `redline_consumer::run(config)`.
    pub(crate) fn start(config: Config) -> Self {
        init_logs();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(redline_consumer::run(config, shutdown.clone()));
        Self { shutdown, task }
    }

    /// Triggers shutdown and waits for `run` to return, at most `bound`.
    ///
    /// # Panics
    /// If `run` takes longer, fails or panics.
    pub(crate) async fn stop_within(self, bound: Duration) {
        self.shutdown.trigger();
        match tokio::time::timeout(bound, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => panic!("the consumer failed: {error}"),
            Ok(Err(join)) => panic!("the consumer panicked: {join}"),
            Err(_) => panic!("the consumer did not return within {bound:?} of shutdown"),
        }
    }

    /// Triggers shutdown and waits for `run` to return.
    pub(crate) async fn stop(self) {
        self.stop_within(PATIENCE).await;
    }
}

/// A configuration for tests: short intervals, `consumer` as the name.
pub(crate) fn config(redis: &RedisServer, consumer: &str, sink: SinkConfig) -> Config {
    Config {
        redis: redline_core::redis::RedisConfig {
            url: redis.url(),
            ..Default::default()
        },
        consumer: consumer.to_string(),
        sink,
        flush_interval: Duration::from_millis(100),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(300),
        shutdown_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// A file sink writing to `path`.
pub(crate) fn file_sink(path: &Path) -> SinkConfig {
    SinkConfig::File {
        path: path.to_path_buf(),
        max_size: 0,
        max_files: 1,
    }
}

/// An InfluxDB sink for `url`, databases created on demand, `default_db` for entries
/// without one.
pub(crate) fn influx_sink(url: &str, default_db: &str) -> SinkConfig {
    SinkConfig::Influxdb(redline_consumer::sink::InfluxConfig {
        url: url.to_string(),
        timeout: Duration::from_secs(5),
        ..redline_consumer::sink::InfluxConfig::v1(Some(default_db))
    })
}

/// The line of metric `i` of measurement `m`: unique series per `i`, fixed timestamp.
pub(crate) fn line(measurement: &str, i: usize) -> String {
    format!(
        "{measurement},host=h{i} v={i} {}",
        1_700_000_000_000_000_000u64 + i as u64
    )
}

/// XADDs one entry per `(fields)` to `key`, pipelined; returns the ids.
pub(crate) async fn xadd(
    conn: &mut MultiplexedConnection,
    key: &str,
    entries: &[Vec<(&str, Vec<u8>)>],
) -> Vec<String> {
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(1000) {
        let mut pipe = redis::pipe();
        for fields in chunk {
            let cmd = pipe.cmd("XADD").arg(key).arg("*");
            for (name, value) in fields {
                cmd.arg(*name).arg(value.as_slice());
            }
        }
        let chunk_ids: Vec<String> = pipe.query_async(conn).await.expect("XADD");
        ids.extend(chunk_ids);
    }
    ids
}

/// XADDs `count` metric entries `line(measurement, first + i)` with database `db`.
pub(crate) async fn add_metrics(
    conn: &mut MultiplexedConnection,
    key: &str,
    measurement: &str,
    range: std::ops::Range<usize>,
    db: Option<&str>,
) -> Vec<String> {
    let entries: Vec<Vec<(&str, Vec<u8>)>> = range
        .map(|i| {
            let mut fields = vec![("lp", line(measurement, i).into_bytes())];
            if let Some(db) = db {
                fields.push(("db", db.as_bytes().to_vec()));
            }
            fields
        })
        .collect();
    xadd(conn, key, &entries).await
}

/// How many entries of `key` the group holds as delivered but not acknowledged;
/// `u64::MAX` while the group does not exist yet.
/// Waits (up to [`PATIENCE`]) until the group holds nothing pending on [`STREAM`].
pub(crate) async fn wait_nothing_pending(conn: &MultiplexedConnection) {
    wait_until("nothing pending", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 0 }
    })
    .await;
}

pub(crate) async fn pending(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    let summary = redis::cmd("XPENDING")
        .arg(key)
        .arg(GROUP)
        .query_async::<redis::Value>(conn)
        .await;
    match summary {
        Err(e) if e.code() == Some("NOGROUP") => u64::MAX,
        Ok(redis::Value::Array(items)) => match items.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            other => panic!("unexpected XPENDING summary {other:?}"),
        },
        other => panic!("unexpected XPENDING summary {other:?}"),
    }
}

/// The pending entries of `key`: (id, consumer, deliveries).
pub(crate) async fn pending_entries(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Vec<(String, String, u64)> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(key)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(100_000)
        .query_async(conn)
        .await
        .expect("XPENDING range");
    rows.into_iter().map(|(id, c, _, n)| (id, c, n)).collect()
}

/// How many times Redis ran `command` (lower case), from `INFO commandstats`.
pub(crate) async fn command_calls(conn: &mut MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a call count"))
}

/// Every entry of the dead-letter stream, fields as text.
pub(crate) async fn dead_letters(conn: &mut MultiplexedConnection) -> Vec<HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(DLQ)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE dlq");
    reply
        .ids
        .into_iter()
        .map(|entry| {
            entry
                .map
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => format!("{other:?}"),
                    };
                    (k, text)
                })
                .collect()
        })
        .collect()
}

/// The lines of `path` (none when it does not exist yet).
pub(crate) fn file_lines(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

/// Reads `count` new entries as `consumer` without acknowledging them, as a consumer that
/// crashes right after its read would.
pub(crate) async fn read_and_abandon(
    conn: &mut MultiplexedConnection,
    key: &str,
    consumer: &str,
    count: usize,
) -> usize {
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(conn)
        .await
        .or_else(|e| {
            if e.code() == Some("BUSYGROUP") {
                Ok(())
            } else {
                Err(e)
            }
        })
        .expect("XGROUP CREATE");
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    reply.keys.iter().map(|k| k.ids.len()).sum()
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "redline_consumer=info".into()),
        )
        .with_test_writer()
        .try_init();
}
