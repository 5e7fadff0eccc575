//! The ops commands (`status`, `pending`, `claim`, `consumers`, `dlq`, `trim`) as an on-call
//! engineer runs them: the `redline` binary against a real Redis (and a real InfluxDB for
//! dead letters), checked against what Redis itself reports.

mod claim;
mod dlq;
mod errors;
mod inspect;

use std::collections::BTreeMap;
use std::process::{Output, Stdio};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoConsumersReply, StreamPendingCountReply, StreamPendingReply};
use serde_json::Value;

use crate::support::{redline, GROUP, STREAM};

/// The dead-letter stream of the default stream.
const DLQ: &str = "redline:metrics:dlq";
/// A timestamp in the week InfluxDB 1.6 keeps in one shard: field types are checked per
/// shard, so every point of a test stays near it.
const T: i64 = 1_600_000_000_000_000_000;

/// What one run of `redline` left behind.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The stdout of a run that must have succeeded.
    pub(crate) fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        self.stdout
    }

    /// The stdout of a successful run, as JSON.
    pub(crate) fn json(self) -> Value {
        let stdout = self.ok();
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
    }

    /// Asserts exit 1, nothing on stdout, and exactly one line on stderr; returns that line.
    pub(crate) fn failed(self, what: &str) -> String {
        self.one_line(1, what)
    }

    /// As [`Run::failed`] for a usage error: exit 2.
    fn usage(self, what: &str) -> String {
        self.one_line(2, what)
    }

    fn one_line(self, code: i32, what: &str) -> String {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: {}{}",
            self.stdout,
            self.stderr
        );
        assert_eq!(self.stdout, "", "{what} printed to stdout");
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "{what}: not one line:\n{}",
            self.stderr
        );
        for dump in [
            "panicked",
            "RUST_BACKTRACE",
            "RedisError",
            "Error {",
            "Some(",
        ] {
            assert!(!self.stderr.contains(dump), "{what}: {}", self.stderr);
        }
        self.stderr.trim_end().to_owned()
    }
}

/// Runs `redline ARGS --redis-url URL` with no terminal on stdin and waits for it.
pub(crate) fn ops(redis_url: &str, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = redline()
        .args(args)
        .args(["--redis-url", redis_url])
        .stdin(Stdio::null())
        .output()
        .expect("run redline");
    Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(stderr).expect("UTF-8 stderr"),
    }
}

async fn xlen(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

/// `XPENDING STREAM GROUP - + 10000`: id → (consumer, deliveries), in id order.
async fn xpending(conn: &mut MultiplexedConnection) -> Vec<(String, String, u64)> {
    let reply: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|p| (p.id, p.consumer, p.times_delivered as u64))
        .collect()
}

/// Pending entries per consumer, as `XPENDING STREAM GROUP` (the summary form) counts them.
async fn xpending_summary(
    conn: &mut MultiplexedConnection,
) -> (u64, String, BTreeMap<String, u64>) {
    let reply: StreamPendingReply = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg(GROUP)
        .query_async(conn)
        .await
        .unwrap();
    match reply {
        StreamPendingReply::Data(data) => (
            data.count as u64,
            data.start_id,
            data.consumers
                .into_iter()
                .map(|c| (c.name, c.pending as u64))
                .collect(),
        ),
        _ => (0, String::new(), BTreeMap::new()),
    }
}

/// `XINFO CONSUMERS STREAM GROUP`: name → pending.
async fn xinfo_consumers(conn: &mut MultiplexedConnection) -> BTreeMap<String, u64> {
    let reply: StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(STREAM)
        .arg(GROUP)
        .query_async(conn)
        .await
        .unwrap();
    reply
        .consumers
        .into_iter()
        .map(|c| (c.name, c.pending as u64))
        .collect()
}

/// The whitespace-separated cells of the first line of `table` starting with `prefix`.
fn row<'a>(table: &'a str, prefix: &[&str]) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.starts_with(prefix))
        .unwrap_or_else(|| panic!("no row starting with {prefix:?} in:\n{table}"))
}

fn ids_of(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A stream with group `redline` in which `c1` read the first `c1` entries and `c2` the next
/// `c2`; returns every id, oldest first.
pub(crate) async fn held_entries(
    conn: &mut MultiplexedConnection,
    total: usize,
    c1: usize,
    c2: usize,
) -> Vec<String> {
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..total {
        let id: String = redis::cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("lp")
            .arg(format!("m,host=h v={i}i {}", T + i as i64))
            .query_async(conn)
            .await
            .unwrap();
        ids.push(id);
    }
    for (name, count) in [("c1", c1), ("c2", c2)] {
        if count == 0 {
            // A consumer that exists and holds nothing (COUNT 0 would mean no limit).
            let _: u64 = redis::cmd("XGROUP")
                .arg("CREATECONSUMER")
                .arg(STREAM)
                .arg(GROUP)
                .arg(name)
                .query_async(conn)
                .await
                .unwrap();
            continue;
        }
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(name)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(">")
            .query_async(conn)
            .await
            .unwrap();
    }
    ids
}
