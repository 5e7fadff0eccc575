//! The ceiling: how many XADDs of one stored entry (the workload's typical `lp` plus its
//! `db`, exactly what the producer writes) Redis accepts on this machine, from
//! `redis-benchmark`. [`tune`] tries pipeline depths 64 and 128 with 4 and 8 clients and
//! keeps the best; [`once`] re-measures that configuration between ingest rounds, so the
//! ingest ratio compares figures taken under the same background load.

use std::process::Command;

use redline_testkit::RedisServer;
use serde_json::{json, Value};

use crate::procs::{shell_words, Load};
use crate::report::{median_by, Figure};
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
    let args = benchmark_args(
        redis,
        clients,
        requests,
        &[
            "-P",
            &pipeline.to_string(),
            "XADD",
            KEY,
            "*",
            "lp",
            &line,
            "db",
            workload::DB,
        ],
    );
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
/// entries per second Redis hands out to a client that does nothing with them.
///
/// One run varies by ±20% on a shared machine (481k–711k/s seen in consecutive runs), so a
/// drain is not compared with a ceiling measured at another time: each drain runs right
/// after a run of its own ([`ReadCeiling::run`]), and the pair's ratio is the drain's.
pub(crate) struct ReadCeiling {
    conn: redis::Connection,
    batch: u64,
    args: Vec<String>,
    /// Entries per second of every run so far, and the cores other processes used.
    runs: Vec<(f64, f64)>,
}

impl ReadCeiling {
    const KEY: &'static str = "bench:ceiling:read";

    /// Sets up the pending entries; each run reads `entries_to_read` of them (at least 20
    /// batches).
    pub(crate) fn new(redis: &RedisServer, batch: u64, entries_to_read: u64) -> Self {
        let mut conn = redis.sync_conn();
        let lines = workload::canonical(0, 10_000);
        crate::redisx::prefill(&mut conn, Self::KEY, batch, &lines);
        crate::redisx::create_group(&mut conn, Self::KEY, "ceiling");
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg(&["GROUP", "ceiling", "c", "COUNT"])
            .arg(batch)
            .arg(&["STREAMS", Self::KEY, ">"])
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("XREADGROUP {}: {e}", Self::KEY));
        let requests = entries_to_read.div_ceil(batch).max(20);
        let args = benchmark_args(
            redis,
            4,
            requests,
            &[
                "XREADGROUP",
                "GROUP",
                "ceiling",
                "c",
                "COUNT",
                &batch.to_string(),
                "STREAMS",
                Self::KEY,
                "0",
            ],
        );
        Self {
            conn,
            batch,
            args,
            runs: Vec::new(),
        }
    }

    /// One run: entries handed out per second.
    pub(crate) fn run(&mut self) -> f64 {
        let (rps, other_cores) = benchmark(&self.args);
        let rate = rps * self.batch as f64;
        self.runs.push((rate, other_cores));
        rate
    }

    /// The figure: the median of the runs (each drain's ratio is to its own run), every run
    /// in the detail. The key is deleted.
    ///
    /// # Panics
    /// Before any run.
    pub(crate) fn figure(mut self) -> Figure {
        let _: () = redis::cmd("DEL")
            .arg(Self::KEY)
            .query(&mut self.conn)
            .unwrap_or_else(|e| panic!("DEL {}: {e}", Self::KEY));
        let &(rate, other_cores) = median_by(&self.runs, |run| run.0);
        Figure::new(
            "ceiling.xreadgroup_per_s",
            "ceiling: redis-benchmark XREADGROUP (entries handed out, -c 4; median run)",
            rate,
            "metrics/s",
        )
        .command(format!("redis-benchmark {}", shell_words(&self.args)))
        .detail("other_cores", other_cores)
        .detail(
            "runs_entries_per_s",
            self.runs
                .iter()
                .map(|(rate, _)| rate.round())
                .collect::<Vec<_>>(),
        )
    }
}

/// `redis-benchmark`'s arguments: `clients` connections to `redis`, `requests` requests in
/// all, quiet output, then `rest` (options and the command).
fn benchmark_args(redis: &RedisServer, clients: u32, requests: u64, rest: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        redis.port().to_string(),
        "-c".into(),
        clients.to_string(),
        "-n".into(),
        requests.to_string(),
        "-q".into(),
    ];
    args.extend(rest.iter().map(ToString::to_string));
    args
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
