//! Options: `--name VALUE` flags, each also an environment variable `REDLINE_CHAOS_<NAME>`,
//! flags winning (as `redline-bench` reads its own).

use std::path::PathBuf;
use std::time::Duration;

use crate::schedule::{self, Kind};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// How long faults are injected under load (the drain and the check come after).
    pub(crate) duration: Duration,
    /// The PRNG seed of the schedule.
    pub(crate) seed: u64,
    /// Metrics per second the writer offers.
    pub(crate) rate: u64,
    /// Kinds of faults to draw.
    pub(crate) faults: Vec<Kind>,
    /// Consumer processes; the second runs `--workers 2`.
    pub(crate) consumers: usize,
    /// Lines per request body.
    pub(crate) body_lines: u64,
    /// Writer connections, each with one request in flight.
    pub(crate) connections: usize,
    /// How long the drain may take after the faults stop.
    pub(crate) drain_timeout: Duration,
    /// The release `redline` binary.
    pub(crate) redline: PathBuf,
    /// Where the logs, the schedule and the verdict of this run are written.
    pub(crate) out: PathBuf,
}

const HELP: &str = "\
redline-chaos: seeded overlapping faults under a Telegraf-like load, then an exact check.

usage: redline-chaos [--duration 60s] [--seed N] [--rate METRICS_PER_S] [--faults LIST] [...]

  --duration D         how long faults are injected under load        [60s]
  --seed N             PRNG seed of the fault schedule (same seed, same schedule)
                                                                      [from the clock]
  --rate N             metrics per second the writer offers           [5000]
  --faults LIST        comma-separated: all, kill, stop, restart, oom, refuse, poison, or
                       kinds: kill-consumer kill-producer kill-redis stop-redis
                       stop-influxdb stop-consumer stop-producer restart-influxdb redis-full
                       redis-refuses poison [all]
  --consumers N        consumer processes (the second one runs --workers 2) [2]
  --body-lines N       lines per request body                         [5000]
  --connections N      writer connections (one request in flight each) [2]
  --drain-timeout D    longest wait for the drain after the faults    [180s]
  --redline PATH       the release binary (default: redline next to this one)
  --out DIR            logs, schedule and verdict of the run          [<target>/chaos/latest]

Every option is also an environment variable REDLINE_CHAOS_<NAME> (e.g.
REDLINE_CHAOS_SEED=42); flags win. Exit status: 0 PASS, 1 FAIL, 2 usage.";

impl Options {
    /// Reads the command line and the environment.
    ///
    /// # Errors
    /// A usage message (the help for `--help`).
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut flags: Vec<(String, String)> = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument '{arg}'\n\n{HELP}"));
            };
            if name == "help" {
                return Err(HELP.to_string());
            }
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let value = iter
                        .next()
                        .ok_or_else(|| format!("--{name} needs a value"))?;
                    (name.to_string(), value.clone())
                }
            };
            flags.push((name, value));
        }
        const KNOWN: [&str; 10] = [
            "duration",
            "seed",
            "rate",
            "faults",
            "consumers",
            "body-lines",
            "connections",
            "drain-timeout",
            "redline",
            "out",
        ];
        if let Some((unknown, _)) = flags.iter().find(|(n, _)| !KNOWN.contains(&n.as_str())) {
            return Err(format!("unknown option --{unknown}\n\n{HELP}"));
        }
        let lookup = |name: &str| -> Option<String> {
            if let Some((_, value)) = flags.iter().rev().find(|(n, _)| n == name) {
                return Some(value.clone());
            }
            let env = format!("REDLINE_CHAOS_{}", name.replace('-', "_").to_uppercase());
            std::env::var(env).ok().filter(|v| !v.is_empty())
        };
        let number = |name: &str, default: u64, min: u64| -> Result<u64, String> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => v
                    .replace('_', "")
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= min)
                    .ok_or_else(|| format!("--{name}: '{v}' is not a whole number ≥ {min}")),
            }
        };
        let duration = |name: &str, default: Duration| -> Result<Duration, String> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => humantime::parse_duration(&v)
                    .map_err(|e| format!("--{name}: '{v}' is not a duration like 90s: {e}")),
            }
        };
        let run_for = duration("duration", Duration::from_secs(60))?;
        if run_for < Duration::from_secs(5) {
            return Err("--duration: at least 5s".to_string());
        }
        let seed = match lookup("seed") {
            Some(_) => number("seed", 0, 0)?,
            None => clock_seed(),
        };
        let faults = schedule::parse_kinds(&lookup("faults").unwrap_or_else(|| "all".into()))?;
        let redline = lookup("redline").map_or_else(default_redline, PathBuf::from);
        let out = lookup("out").map_or_else(default_out, PathBuf::from);
        Ok(Self {
            duration: run_for,
            seed,
            rate: number("rate", 5_000, 1)?,
            faults,
            consumers: number("consumers", 2, 2)? as usize,
            body_lines: number("body-lines", 5_000, 1)?,
            connections: number("connections", 2, 1)? as usize,
            drain_timeout: duration("drain-timeout", Duration::from_secs(180))?,
            redline,
            out,
        })
    }

    /// The flags that reproduce this run's schedule and load.
    pub(crate) fn reproduce(&self) -> String {
        let faults: Vec<&str> = self.faults.iter().map(|k| k.name()).collect();
        let mut line = format!(
            "scripts/chaos --duration {} --seed {} --rate {}",
            seconds(self.duration),
            self.seed,
            self.rate
        );
        if faults.len() != schedule::KINDS.len() {
            line.push_str(&format!(" --faults {}", faults.join(",")));
        }
        if self.consumers != 2 {
            line.push_str(&format!(" --consumers {}", self.consumers));
        }
        if self.body_lines != 5_000 {
            line.push_str(&format!(" --body-lines {}", self.body_lines));
        }
        if self.connections != 2 {
            line.push_str(&format!(" --connections {}", self.connections));
        }
        line
    }
}

/// `90s`, or `1500ms` when not whole seconds: one shell word.
pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A seed from the clock, for runs that name none (printed, so any run can be repeated).
fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() % 1_000_000
}

/// `redline` next to this executable (`<target>/release/redline`).
fn default_redline() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("redline")))
        .unwrap_or_else(|| PathBuf::from("target/release/redline"))
}

/// `<target>/chaos/latest`, the target dir being two levels above this executable.
fn default_out() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("chaos").join("latest")))
        .unwrap_or_else(|| PathBuf::from("target/chaos/latest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        Options::parse(&args)
    }

    #[test]
    fn flags_parse_and_reproduce() {
        let o = parse(&["--duration", "90s", "--seed=42", "--faults", "kill,oom"]).unwrap();
        assert_eq!(o.duration, Duration::from_secs(90));
        assert_eq!(o.seed, 42);
        assert_eq!(o.rate, 5_000);
        assert_eq!(o.faults.len(), 4);
        assert_eq!(
            o.reproduce(),
            "scripts/chaos --duration 90s --seed 42 --rate 5000 \
             --faults kill-consumer,kill-producer,kill-redis,redis-full"
        );
        assert!(parse(&["--nope", "1"]).unwrap_err().contains("--nope"));
        assert!(parse(&["--consumers", "1"]).is_err());
        assert!(parse(&["--duration", "1s"]).is_err());
        assert!(parse(&["--help"]).unwrap_err().contains("usage:"));
    }
}
