//! Options: every size is a flag `--name N` or an environment variable
//! `REDLINE_BENCH_NAME`, flags winning; `--quick` picks small defaults for a run under a
//! minute.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::procs;

/// The sections, in the order they run.
pub(crate) const SECTIONS: [&str; 10] = [
    "line", "ceiling", "ingest", "drain", "e2e", "backlog", "latency", "scale", "burst", "abuse",
];

/// What to run and how big.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Small sizes.
    pub(crate) quick: bool,
    /// Sections to run.
    pub(crate) sections: Vec<String>,
    /// The release `redline` binary.
    pub(crate) redline: PathBuf,
    /// Where the JSON goes.
    pub(crate) out: PathBuf,
    /// Redis with `appendonly yes, appendfsync everysec` instead of no persistence.
    pub(crate) aof: bool,
    /// Load-generator connections.
    pub(crate) connections: usize,
    /// Alternating rounds of ceiling/ingest (the best of each counts) and of ceiling/drain
    /// pairs (the median pair counts).
    pub(crate) rounds: usize,
    /// Lines per request body in ingest and end to end.
    pub(crate) body_lines: u64,
    /// XADDs per redis-benchmark configuration.
    pub(crate) ceiling_requests: u64,
    /// Seconds of warm-up before ingest is measured.
    pub(crate) warmup_seconds: f64,
    /// Seconds ingest is measured.
    pub(crate) ingest_seconds: f64,
    /// Entries pre-filled for each drain.
    pub(crate) drain_entries: u64,
    /// Alternating direct/relayed pairs end to end, on shared cores and on own cores.
    pub(crate) e2e_rounds: usize,
    /// Metrics sent end to end (and straight to InfluxDB).
    pub(crate) e2e_metrics: u64,
    /// Entries of the consumer's backlog in the memory section.
    pub(crate) backlog_entries: u64,
    /// Seconds the full-load pipeline rate is measured before the latency run.
    pub(crate) max_rate_seconds: f64,
    /// Seconds of paced load for the latency figures.
    pub(crate) latency_seconds: f64,
    /// Lines per request in the latency run.
    pub(crate) latency_body_lines: u64,
    /// The consumer's `--batch-size`.
    pub(crate) batch_size: u64,
    /// The consumer's `--flush-interval`, in ms.
    pub(crate) flush_interval_ms: u64,
    /// The end-to-end consumer's `--workers` (batches in flight at once).
    pub(crate) e2e_workers: usize,
    /// Seconds the line micro-benchmark runs.
    pub(crate) line_seconds: f64,
    /// Seconds each burst (and the abuse run) lasts.
    pub(crate) burst_seconds: f64,
    /// Writers of the large burst.
    pub(crate) burst_connections: usize,
    /// An older `redline` build whose producer also takes the large burst.
    pub(crate) baseline_redline: Option<PathBuf>,
    /// Stalled bodies in the abuse run.
    pub(crate) abuse_slow_clients: usize,
    /// Lines of the one large request whose memory is compared with its size.
    pub(crate) amplification_lines: u64,
}

const HELP: &str = "\
redline-bench: redline's figures next to Redis's own ceilings, measured in one run.

usage: redline-bench [--quick] [--only SECTION,...] [--NAME VALUE]...

sections: line ceiling ingest drain e2e backlog latency scale burst abuse (default: all)

  --quick                      small sizes (whole run under a minute)
  --only LIST                  comma-separated sections
  --redline PATH               the release binary (default: redline next to this one)
  --out PATH                   JSON report (default: <target>/bench/latest.json)
  --aof                        Redis with appendonly yes / everysec (default: no persistence)
  --connections N              load-generator connections            [4]
  --rounds N                   alternating baseline/measure rounds   [3 | 1]
  --body-lines N               lines per request                     [5000]
  --ceiling-requests N         XADDs per redis-benchmark config      [2000000 | 300000]
  --warmup-seconds S           before ingest is measured             [2 | 1]
  --ingest-seconds S           ingest measurement                    [10 | 3]
  --drain-entries N            pre-filled entries per drain          [1000000 | 200000]
  --e2e-metrics N              metrics sent end to end               [1000000 | 150000]
  --e2e-rounds N               direct/relayed pairs end to end       [3 | 1]
  --backlog-entries N          consumer backlog for the memory check [5000000 | 500000]
  --max-rate-seconds S         full-load pipeline rate               [8 | 3]
  --latency-seconds S          paced load at half that rate          [20 | 5]
  --latency-body-lines N       lines per request when paced          [1000]
  --batch-size N               consumer --batch-size                 [5000]
  --flush-interval-ms N        consumer --flush-interval             [1000]
  --e2e-workers N              end-to-end consumer --workers         [2 × --connections]
  --line-seconds S             parse/normalise/encode micro-benchmark [2 | 0.5]
  --burst-seconds S            each burst, and the abuse run          [20 | 5]
  --burst-connections N        writers of the large burst             [256]
  --baseline-redline PATH      an older build that takes the large burst too (its peak RSS)
  --abuse-slow-clients N       stalled bodies in the abuse run        [1000]
  --amplification-lines N      lines of the one large request         [130000]

Every option is also an environment variable REDLINE_BENCH_<NAME> (e.g.
REDLINE_BENCH_DRAIN_ENTRIES=500000); flags win.";

impl Options {
    /// Reads the command line and the environment.
    ///
    /// # Errors
    /// A usage message.
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut flags: Vec<(String, Option<String>)> = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument '{arg}'\n\n{HELP}"));
            };
            match name {
                "help" => return Err(HELP.to_string()),
                "quick" | "aof" => flags.push((name.to_string(), None)),
                _ => {
                    let (name, value) = match name.split_once('=') {
                        Some((n, v)) => (n.to_string(), v.to_string()),
                        None => {
                            let value = iter
                                .next()
                                .ok_or_else(|| format!("--{name} needs a value"))?;
                            (name.to_string(), value.clone())
                        }
                    };
                    flags.push((name, Some(value)));
                }
            }
        }
        let lookup = |name: &str| -> Option<String> {
            if let Some((_, value)) = flags.iter().rev().find(|(n, _)| n == name) {
                return Some(value.clone().unwrap_or_else(|| "true".to_string()));
            }
            let env = format!("REDLINE_BENCH_{}", name.replace('-', "_").to_uppercase());
            std::env::var(env).ok().filter(|v| !v.is_empty())
        };
        let known = [
            "quick",
            "aof",
            "only",
            "redline",
            "out",
            "connections",
            "rounds",
            "body-lines",
            "ceiling-requests",
            "warmup-seconds",
            "ingest-seconds",
            "drain-entries",
            "e2e-metrics",
            "e2e-rounds",
            "backlog-entries",
            "max-rate-seconds",
            "latency-seconds",
            "latency-body-lines",
            "batch-size",
            "flush-interval-ms",
            "e2e-workers",
            "line-seconds",
            "burst-seconds",
            "burst-connections",
            "baseline-redline",
            "abuse-slow-clients",
            "amplification-lines",
        ];
        if let Some((unknown, _)) = flags.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            return Err(format!("unknown option --{unknown}\n\n{HELP}"));
        }
        let boolean = |name: &str| lookup(name).is_some_and(|v| v != "0" && v != "false");
        let quick = boolean("quick");
        let pick = |full: f64, quick_value: f64| if quick { quick_value } else { full };
        let number = |name: &str, default: f64| -> Result<f64, String> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => v
                    .replace('_', "")
                    .parse::<f64>()
                    .ok()
                    .filter(|n| *n > 0.0)
                    .ok_or_else(|| format!("--{name}: '{v}' is not a positive number")),
            }
        };
        let sections = match lookup("only") {
            None => SECTIONS.iter().map(ToString::to_string).collect(),
            Some(list) => {
                let chosen: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = chosen.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!(
                        "unknown section '{bad}'; sections: {}",
                        SECTIONS.join(" ")
                    ));
                }
                chosen
            }
        };
        let redline = lookup("redline").map_or_else(procs::default_redline, PathBuf::from);
        let out = lookup("out").map_or_else(default_out, PathBuf::from);
        let connections = number("connections", 4.0)? as usize;
        Ok(Self {
            quick,
            sections,
            redline,
            out,
            aof: boolean("aof"),
            connections,
            rounds: number("rounds", pick(3.0, 1.0))? as usize,
            body_lines: number("body-lines", 5000.0)? as u64,
            ceiling_requests: number("ceiling-requests", pick(2_000_000.0, 300_000.0))? as u64,
            warmup_seconds: number("warmup-seconds", pick(2.0, 1.0))?,
            ingest_seconds: number("ingest-seconds", pick(10.0, 3.0))?,
            drain_entries: number("drain-entries", pick(1_000_000.0, 200_000.0))? as u64,
            e2e_metrics: number("e2e-metrics", pick(1_000_000.0, 150_000.0))? as u64,
            e2e_rounds: number("e2e-rounds", pick(3.0, 1.0))? as usize,
            backlog_entries: number("backlog-entries", pick(5_000_000.0, 500_000.0))? as u64,
            max_rate_seconds: number("max-rate-seconds", pick(8.0, 3.0))?,
            latency_seconds: number("latency-seconds", pick(20.0, 5.0))?,
            latency_body_lines: number("latency-body-lines", 1000.0)? as u64,
            batch_size: number("batch-size", 5000.0)? as u64,
            flush_interval_ms: number("flush-interval-ms", 1000.0)? as u64,
            // A worker spends about 60% of its time in InfluxDB's write (the rest reading,
            // grouping, acking): twice the load generator's connections keep about as many
            // writes in flight to InfluxDB as it keeps (`sink_writes_in_flight` in the JSON).
            e2e_workers: (number("e2e-workers", 2.0 * connections as f64)? as usize).max(1),
            line_seconds: number("line-seconds", pick(2.0, 0.5))?,
            burst_seconds: number("burst-seconds", pick(20.0, 5.0))?,
            burst_connections: number("burst-connections", 256.0)? as usize,
            baseline_redline: lookup("baseline-redline").map(PathBuf::from),
            abuse_slow_clients: number("abuse-slow-clients", 1000.0)? as usize,
            amplification_lines: number("amplification-lines", 130_000.0)? as u64,
        })
    }

    /// Whether `section` runs.
    pub(crate) fn runs(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }

    /// The settings, for the JSON report.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "quick": self.quick,
            "sections": self.sections,
            "redline": self.redline.display().to_string(),
            "redis_persistence": if self.aof { "appendonly yes, appendfsync everysec" } else { "none" },
            "connections": self.connections,
            "rounds": self.rounds,
            "body_lines": self.body_lines,
            "ceiling_requests": self.ceiling_requests,
            "warmup_seconds": self.warmup_seconds,
            "ingest_seconds": self.ingest_seconds,
            "drain_entries": self.drain_entries,
            "e2e_metrics": self.e2e_metrics,
            "e2e_rounds": self.e2e_rounds,
            "backlog_entries": self.backlog_entries,
            "max_rate_seconds": self.max_rate_seconds,
            "latency_seconds": self.latency_seconds,
            "latency_body_lines": self.latency_body_lines,
            "batch_size": self.batch_size,
            "flush_interval_ms": self.flush_interval_ms,
            "e2e_workers": self.e2e_workers,
            "line_seconds": self.line_seconds,
            "burst_seconds": self.burst_seconds,
            "burst_connections": self.burst_connections,
            "baseline_redline": self.baseline_redline.as_ref().map(|p| p.display().to_string()),
            "abuse_slow_clients": self.abuse_slow_clients,
            "amplification_lines": self.amplification_lines,
        })
    }

    /// Redis's extra arguments.
    pub(crate) fn redis_args(&self) -> Vec<&'static str> {
        if self.aof {
            vec!["--appendonly", "yes", "--appendfsync", "everysec"]
        } else {
            vec!["--appendonly", "no"]
        }
    }
}

/// `<target>/bench/latest.json`, the target dir being two levels above this executable
/// (`target/release/redline-bench`).
fn default_out() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("bench").join("latest.json")))
        .unwrap_or_else(|| PathBuf::from("target/bench/latest.json"))
}
