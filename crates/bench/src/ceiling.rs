//! The ceiling: how many XADDs of one stored entry (the workload's typical `lp` plus its
//! `db`, exactly what the producer writes) Redis accepts on this machine, from
//! `redis-benchmark`. [`tune`] tries pipeline depths 64 and 128 with 4 and 8 clients and
//! keeps the best; [`once`] re-measures that configuration between ingest rounds, so the
//! ingest ratio compares figures taken under the same background load.

use std::process::Command;

use redline_testkit::RedisServer;
use serde_json::{json, Value};

use crate::procs::{shell_words, Load};
use crate::report::Figure;
use crate::workload;

/// The key redis-benchmark writes to.
const KEY: &str = "bench:ceiling";

/// A redis-benchmark configuration and what it measured.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// `-P`.
    pub(crate) pipeline: u32,
    /// `-c`.
    pub(crate) clients: u32,
    /// XADDs per second.
    pub(crate) rps: f64,
    /// The command line.
    pub(crate) command: String,
    /// Cores other processes used meanwhile.
    pub(crate) other_cores: f64,
}

impl Run {
    fn to_json(&self) -> Value {
        json!({
            "pipeline": self.pipeline,
            "clients": self.clients,
            "xadd_per_s": self.rps.round(),
            "other_cores": (self.other_cores * 100.0).round() / 100.0,
        })
    }
}

/// Every run so far; the best is the ceiling.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ceiling {
    /// In the order measured.
    pub(crate) runs: Vec<Run>,
}

impl Ceiling {
    /// The fastest run.
    pub(crate) fn best(&self) -> &Run {
        self.runs
            .iter()
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
            .expect("at least one run")
    }

    /// The figure: the best run, every run in the detail.
    pub(crate) fn figure(&self) -> Figure {
        let best = self.best();
        Figure::new(
            "ceiling.xadd_per_s",
            "ceiling: redis-benchmark XADD (best of -P 64/128, -c 4/8)",
            best.rps,
            "metrics/s",
        )
        .command(best.command.clone())
        .detail(
            "runs",
            self.runs.iter().map(Run::to_json).collect::<Vec<_>>(),
        )
        .detail("entry_lp_bytes", workload::typical_line().len())
    }
}

/// Runs the four configurations.
pub(crate) fn tune(requests: u64, redis: &RedisServer) -> Ceiling {
    let mut ceiling = Ceiling::default();
    for pipeline in [64, 128] {
        for clients in [4, 8] {
            ceiling.runs.push(once(requests, redis, pipeline, clients));
        }
    }
    ceiling
}

/// One redis-benchmark run of `requests` XADDs; the key is deleted afterwards.
pub(crate) fn once(requests: u64, redis: &RedisServer, pipeline: u32, clients: u32) -> Run {
    let line = workload::typical_line();
    let args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &redis.port().to_string(),
        "-c",
        &clients.to_string(),
        "-P",
        &pipeline.to_string(),
        "-n",
        &requests.to_string(),
        "-q",
        "XADD",
        KEY,
        "*",
        "lp",
        &line,
        "db",
        workload::DB,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let (rps, other_cores) = benchmark(&args);
    // DEL, not UNLINK: freeing in the background would compete with the next run.
    let _: () = redis::cmd("DEL")
        .arg(KEY)
        .query(&mut redis.sync_conn())
        .unwrap_or_else(|e| panic!("DEL {KEY}: {e}"));
    Run {
        pipeline,
        clients,
        rps,
        command: format!("redis-benchmark {}", shell_words(&args)),
        other_cores,
    }
}

/// The read ceiling: `redis-benchmark` repeating `XREADGROUP … COUNT batch STREAMS key 0`
/// over `batch` entries pending for one consumer (pre-filled, read once), 4 clients: how many
/// entries per second Redis hands out to a client that does nothing with them. The best of
/// `tries` runs, as for the XADD ceiling: one run varies by ±20% on a shared machine
/// (481k–711k/s seen in consecutive runs), and a ratio to an unlucky ceiling flatters. The
/// key is deleted afterwards.
pub(crate) fn xreadgroup(
    redis: &RedisServer,
    batch: u64,
    entries_to_read: u64,
    tries: usize,
) -> Figure {
    const READ_KEY: &str = "bench:ceiling:read";
    let mut conn = redis.sync_conn();
    let lines = workload::canonical(0, 10_000);
    crate::redisx::prefill(&mut conn, READ_KEY, batch, &lines);
    crate::redisx::create_group(&mut conn, READ_KEY, "ceiling");
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "ceiling", "c", "COUNT"])
        .arg(batch)
        .arg(&["STREAMS", READ_KEY, ">"])
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("XREADGROUP {READ_KEY}: {e}"));
    let requests = entries_to_read.div_ceil(batch).max(20);
    let args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &redis.port().to_string(),
        "-c",
        "4",
        "-n",
        &requests.to_string(),
        "-q",
        "XREADGROUP",
        "GROUP",
        "ceiling",
        "c",
        "COUNT",
        &batch.to_string(),
        "STREAMS",
        READ_KEY,
        "0",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let runs: Vec<(f64, f64)> = (0..tries.max(1)).map(|_| benchmark(&args)).collect();
    let (rps, other_cores) = runs
        .iter()
        .copied()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .expect("at least one run");
    let _: () = redis::cmd("DEL")
        .arg(READ_KEY)
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("DEL {READ_KEY}: {e}"));
    Figure::new(
        "ceiling.xreadgroup_per_s",
        "ceiling: redis-benchmark XREADGROUP (entries handed out, -c 4)",
        rps * batch as f64,
        "metrics/s",
    )
    .command(format!("redis-benchmark {}", shell_words(&args)))
    .detail("requests_per_s", rps)
    .detail("other_cores", other_cores)
    .detail(
        "runs_entries_per_s",
        runs.iter()
            .map(|(rps, _)| (rps * batch as f64).round())
            .collect::<Vec<_>>(),
    )
}

/// Runs `redis-benchmark args`: requests per second, and the cores other processes used
/// meanwhile.
fn benchmark(args: &[String]) -> (f64, f64) {
    let load = Load::sample();
    let output = Command::new("redis-benchmark")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-benchmark: {e}"));
    let other_cores = load.other_cores();
    let text = String::from_utf8_lossy(&output.stdout);
    let rps = requests_per_second(&text).unwrap_or_else(|| {
        panic!(
            "redis-benchmark printed no rate:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (rps, other_cores)
}

/// The rate from `redis-benchmark -q` output: `XADD …: 612345.67 requests per second, …`.
fn requests_per_second(text: &str) -> Option<f64> {
    text.split(['\r', '\n'])
        .filter_map(|line| line.split_once(" requests per second"))
        .filter_map(|(before, _)| before.split_whitespace().last()?.parse::<f64>().ok())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rate_after_progress_lines() {
        let text = "XADD k * lp a,b=c: rps=0.0\rXADD k * lp a,b=c: 612345.67 requests per second, p50=0.503 msec\n";
        assert_eq!(requests_per_second(text), Some(612_345.67));
    }
}
