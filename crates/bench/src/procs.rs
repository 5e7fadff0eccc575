//! Processes under test: the release `redline` binary as producer or consumer, killed on
//! drop, and what `/proc` tells about them (peak RSS, CPU time).
//!
//! Unlike testkit's `ChildGuard`, the consumer's stdout may go to `/dev/null`: the stdout
//! sink into `/dev/null` is the cheapest honest discarding sink (it flushes every batch
//! before the ack, and the file sink's `fdatasync` fails with EINVAL on `/dev/null`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running `redline` process.
pub(crate) struct Proc {
    name: String,
    child: Child,
    /// The command line, for the report.
    command: String,
    /// Holds `stderr.log` (and `stdout.log` unless stdout is discarded).
    dir: TempDir,
}

/// Where a process's standard output goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stdout {
    /// To a log file in the process's temp dir.
    Log,
    /// To `/dev/null`.
    Discard,
}

impl Proc {
    /// Spawns `bin args…` with stdin closed and stderr in a log file.
    pub(crate) fn spawn(name: &str, bin: &Path, args: &[String], stdout: Stdout) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("redline-bench-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let log = |file: &str| {
            fs::File::create(dir.path().join(file))
                .unwrap_or_else(|e| panic!("cannot create {file}: {e}"))
        };
        let out = match stdout {
            Stdout::Log => Stdio::from(log("stdout.log")),
            Stdout::Discard => Stdio::null(),
        };
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log("stderr.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));
        let mut command = format!("{} {}", bin.display(), shell_words(args));
        if matches!(stdout, Stdout::Discard) {
            command.push_str(" >/dev/null");
        }
        Self {
            name: name.to_string(),
            child,
            command,
            dir,
        }
    }

    /// The command line, shell-quoted.
    pub(crate) fn command(&self) -> &str {
        &self.command
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub(crate) fn peak_rss(&self) -> u64 {
        status_kib(self.child.id(), "VmHWM:").unwrap_or(0) * 1024
    }

    /// CPU seconds (user + system) used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&format!("/proc/{}/stat", self.child.id())).unwrap_or(0.0)
    }

    /// Panics with the process's stderr when it has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited with {status}:\n{}",
                self.name,
                self.stderr_tail()
            );
        }
    }

    /// The last 4 KiB of stderr.
    pub(crate) fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let cut = text.len().saturating_sub(4096);
        let cut = (cut..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[cut..].to_string()
    }

    /// SIGTERM, then waits up to 10 s for a clean exit (SIGKILL after).
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Drop kills it.
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- {} stderr -----\n{}", self.name, self.stderr_tail());
        }
    }
}

/// Arguments joined for display, quoted where the shell would need it.
pub(crate) fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of a `/proc/…/stat` file, in seconds.
fn cpu_seconds_of(path: &str) -> Option<f64> {
    let stat = fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; fields after ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// CPU use of the whole machine and of this process's tree (itself, its children and the
/// children it reaped), to tell how busy *other* processes kept the cores during a
/// measurement: on a shared machine that is what makes one run differ from the next.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    at: std::time::Instant,
    machine_busy: f64,
    ours: f64,
    by_name: BTreeMap<String, f64>,
}

impl Load {
    /// A sample now.
    pub(crate) fn sample() -> Self {
        let by_name = tree_cpu_by_name();
        Self {
            at: std::time::Instant::now(),
            machine_busy: machine_busy_seconds(),
            ours: by_name.values().sum(),
            by_name,
        }
    }

    /// CPU seconds this process's tree (the servers and redline processes it started
    /// included) used since `self`.
    pub(crate) fn our_cpu_seconds(&self) -> f64 {
        tree_cpu_seconds() - self.ours
    }

    /// [`Self::our_cpu_seconds`] per process name, in µs per one of `metrics`, rounded to
    /// 0.01 µs; names that used no CPU are left out.
    pub(crate) fn our_cpu_us_per_metric(&self, metrics: u64) -> BTreeMap<String, f64> {
        let before = &self.by_name;
        tree_cpu_by_name()
            .into_iter()
            .map(|(name, cpu)| {
                let used = cpu - before.get(&name).copied().unwrap_or(0.0);
                let us = (used * 1e6 / metrics.max(1) as f64 * 100.0).round() / 100.0;
                (name, us)
            })
            .filter(|(_, us)| *us > 0.0)
            .collect()
    }

    /// Cores other processes kept busy on average since `self`.
    pub(crate) fn other_cores(&self) -> f64 {
        let now = Self::sample();
        let seconds = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        ((now.machine_busy - self.machine_busy) - (now.ours - self.ours)).max(0.0) / seconds
    }
}

/// Busy CPU seconds of the machine since boot (`/proc/stat`, every core).
fn machine_busy_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal …: all but idle and iowait are busy.
    let ticks: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, t)| t)
        .sum();
    busy / clock_ticks()
}

/// CPU seconds of this process, the children it reaped, and every live descendant.
fn tree_cpu_seconds() -> f64 {
    tree_cpu_by_name().values().sum()
}

/// [`tree_cpu_seconds`] per process name (`comm`: `redis-server`, `influxd`, `redline`,
/// `redline-bench`); what a process reaped counts under its own name.
pub(crate) fn tree_cpu_by_name() -> BTreeMap<String, f64> {
    let me = std::process::id();
    let mut procs: Vec<(u32, u32, String, f64)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = stat[open + 1..close].to_string();
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let num = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let ppid = num(1) as u32;
            // utime + stime, plus cutime + cstime for what it reaped.
            let cpu = (num(11) + num(12) + num(13) + num(14)) / clock_ticks();
            procs.push((pid, ppid, name, cpu));
        }
    }
    let mut totals = BTreeMap::new();
    let mut add = |name: &str, cpu: f64| *totals.entry(name.to_string()).or_insert(0.0) += cpu;
    for (_, _, name, cpu) in procs.iter().filter(|(pid, ..)| *pid == me) {
        add(name, *cpu);
    }
    let mut frontier = vec![me];
    while let Some(parent) = frontier.pop() {
        for (child, ppid, name, cpu) in &procs {
            if *ppid == parent {
                add(name, *cpu);
                frontier.push(*child);
            }
        }
    }
    totals
}

/// Restricts every thread of process `pid` to `cpus` (a `taskset` list such as `0` or
/// `0-1`); threads it starts later inherit that. Panics when `taskset` fails.
pub(crate) fn pin(pid: u32, cpus: &str) {
    let status = Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|error| panic!("cannot run taskset: {error}"));
    assert!(
        status.success(),
        "taskset --cpu-list {cpus} --pid {pid}: {status}"
    );
}

/// CPU seconds this process used so far.
pub(crate) fn self_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat").unwrap_or(0.0)
}

/// `getconf CLK_TCK` (100 on Linux unless told otherwise).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The `redline` binary: `--redline`, else `redline` next to this executable.
pub(crate) fn default_redline() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("redline")))
        .unwrap_or_else(|| PathBuf::from("target/release/redline"))
}
