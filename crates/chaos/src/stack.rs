//! The stack under test, on loopback: redis-server (`appendonly yes`, `appendfsync always`,
//! `maxmemory-policy noeviction`), influxd, one producer and the consumer processes (the
//! second with `--workers 2`), every one of them started by this harness, and the
//! primitives the nemesis applies to them: SIGKILL and start again, SIGSTOP and SIGCONT,
//! Redis's `maxmemory`.
//!
//! Invariant: a process is either up (possibly hung by SIGSTOP) or marked down by a kill of
//! ours; one that exited while marked up exited by itself, and [`Stack::exited_by_themselves`]
//! reports it (the verdict fails) and starts it again so the run carries on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use redline_testkit::{free_port, ChildGuard, InfluxServer, RedisServer};

use crate::options::Options;
use crate::schedule::Target;

/// Redis's usual `maxmemory`: far above what the run needs, so only the fault fills it.
pub(crate) const MAXMEMORY: u64 = 1 << 30;

/// Bound on the harness's own Redis commands: a hung Redis must not hang the nemesis.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// A redline process the harness starts, kills and starts again under the same name.
pub(crate) struct Redline {
    /// `producer`, `consumer-a`, …: its log files are `<out>/<name>.stderr.log`.
    pub(crate) name: String,
    args: Vec<String>,
    guard: ChildGuard,
    /// Killed by the nemesis and not started again yet.
    down: bool,
}

impl Redline {
    fn spawn(bin: &Path, name: &str, args: Vec<String>, out: &Path) -> Self {
        let guard = ChildGuard::spawn_logging_to(name, &mut command(bin, &args), out);
        Self {
            name: name.to_string(),
            args,
            guard,
            down: false,
        }
    }

    /// The process id of its current life.
    pub(crate) fn pid(&self) -> u32 {
        self.guard.pid()
    }
}

/// Every process of the run.
pub(crate) struct Stack {
    /// redis-server; its data dir is deleted when the stack drops.
    pub(crate) redis: RedisServer,
    /// influxd; its data dir is deleted when the stack drops.
    pub(crate) influx: InfluxServer,
    /// The producer.
    pub(crate) producer: Redline,
    /// The consumer processes.
    pub(crate) consumers: Vec<Redline>,
    /// The producer's HTTP address, kept across its restarts.
    pub(crate) producer_addr: SocketAddr,
    /// Redis was killed by the nemesis and not started again yet.
    redis_down: bool,
    /// InfluxDB was killed by the nemesis and not started again yet.
    influx_down: bool,
    bin: PathBuf,
    out: PathBuf,
}

impl Stack {
    /// Starts Redis and InfluxDB, then the producer and `options.consumers` consumers.
    ///
    /// # Panics
    /// If a server does not start (testkit panics with its log).
    pub(crate) fn start(options: &Options) -> Self {
        let maxmemory = MAXMEMORY.to_string();
        let redis = RedisServer::start(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--maxmemory",
            &maxmemory,
            "--maxmemory-policy",
            "noeviction",
        ]);
        let influx = InfluxServer::start();
        let producer_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let producer = Redline::spawn(
            &options.redline,
            "producer",
            producer_args(&redis.url(), producer_addr),
            &options.out,
        );
        let consumers = (0..options.consumers)
            .map(|i| {
                let name = consumer_name(i);
                let args = consumer_args(&redis.url(), &influx.url(), &name, i);
                Redline::spawn(&options.redline, &name, args, &options.out)
            })
            .collect();
        Self {
            redis,
            influx,
            producer,
            consumers,
            producer_addr,
            redis_down: false,
            influx_down: false,
            bin: options.redline.clone(),
            out: options.out.clone(),
        }
    }

    /// The command lines of the redline processes, for the report.
    pub(crate) fn commands(&self) -> Vec<String> {
        std::iter::once(&self.producer)
            .chain(&self.consumers)
            .map(|p| format!("{} {}", self.bin.display(), p.args.join(" ")))
            .collect()
    }

    fn redline(&mut self, target: Target) -> Option<&mut Redline> {
        match target {
            Target::Producer => Some(&mut self.producer),
            Target::Consumer(i) => self.consumers.get_mut(i),
            _ => None,
        }
    }

    /// The name and pid of a process target, for the log.
    pub(crate) fn describe(&mut self, target: Target) -> String {
        match target {
            Target::Redis | Target::RedisMemory | Target::RedisWrites => {
                format!("redis-server (pid {})", self.redis.pid())
            }
            Target::Influxdb => format!("influxd (pid {})", self.influx.pid()),
            Target::Database(i) => crate::workload::DATABASES[i].to_string(),
            other => self
                .redline(other)
                .map(|p| format!("{} (pid {})", p.name, p.pid()))
                .unwrap_or_default(),
        }
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self, target: Target) {
        match target {
            Target::Redis => {
                self.redis.kill();
                self.redis_down = true;
            }
            Target::Influxdb => {
                self.influx.kill();
                self.influx_down = true;
            }
            other => {
                if let Some(p) = self.redline(other) {
                    p.guard.sigkill();
                    p.down = true;
                }
            }
        }
    }

    /// Starts a killed process again (Redis and InfluxDB on their data, a redline process
    /// under its name); returns how long until it was ready (Redis: loaded its AOF and
    /// answers PING; InfluxDB: answers `/ping`; redline: spawned).
    ///
    /// # Panics
    /// If Redis or InfluxDB do not come back (testkit panics with the log).
    pub(crate) fn start_again(&mut self, target: Target) -> Duration {
        let started = std::time::Instant::now();
        match target {
            Target::Redis => {
                self.redis.start_again();
                self.redis_down = false;
            }
            Target::Influxdb => {
                self.influx.start_again();
                self.influx_down = false;
            }
            other => {
                let (bin, out) = (self.bin.clone(), self.out.clone());
                if let Some(p) = self.redline(other) {
                    p.guard =
                        ChildGuard::spawn_logging_to(&p.name, &mut command(&bin, &p.args), &out);
                    p.down = false;
                }
            }
        }
        started.elapsed()
    }

    /// SIGSTOP: the process hangs with its sockets open.
    pub(crate) fn pause(&mut self, target: Target) {
        match target {
            Target::Redis => self.redis.pause(),
            Target::Influxdb => self.influx.pause(),
            other => {
                if let Some(p) = self.redline(other) {
                    p.guard.pause();
                }
            }
        }
    }

    /// SIGCONT.
    pub(crate) fn resume(&mut self, target: Target) {
        match target {
            Target::Redis => self.redis.resume(),
            Target::Influxdb => self.influx.resume(),
            other => {
                if let Some(p) = self.redline(other) {
                    p.guard.resume();
                }
            }
        }
    }

    /// Resumes everything, and starts again whatever is down: the end of every fault.
    pub(crate) fn heal_processes(&mut self) {
        for target in self.targets() {
            self.resume(target);
        }
        if self.redis_down {
            self.start_again(Target::Redis);
        }
        if self.influx_down {
            self.start_again(Target::Influxdb);
        }
        for target in self.targets() {
            if self.redline(target).is_some_and(|p| p.down) {
                self.start_again(target);
            }
        }
    }

    fn targets(&self) -> Vec<Target> {
        let mut all = vec![Target::Redis, Target::Influxdb, Target::Producer];
        all.extend((0..self.consumers.len()).map(Target::Consumer));
        all
    }

    /// The processes that exited although no fault of ours killed them, each with the end
    /// of its log; each is started again.
    pub(crate) fn exited_by_themselves(&mut self) -> Vec<String> {
        let mut found = Vec::new();
        if !self.redis_down && !self.redis.is_running() {
            found.push(format!(
                "redis-server exited by itself:\n{}",
                self.redis.log_tail()
            ));
            self.redis.start_again();
        }
        if !self.influx_down && !self.influx.is_running() {
            found.push(format!(
                "influxd exited by itself:\n{}",
                self.influx.log_tail()
            ));
            self.influx.start_again();
        }
        for target in self.targets() {
            let Some(p) = self.redline(target) else {
                continue;
            };
            if p.down || p.guard.is_running() {
                continue;
            }
            let status = p.guard.wait_exit(Duration::ZERO);
            let stderr = p.guard.stderr();
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            found.push(format!(
                "{} exited by itself ({status:?}); last lines of its stderr:\n  {}",
                p.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
            ));
            self.start_again(target);
        }
        found
    }
}

/// `bin args…`, its logs without colours (they go to files).
fn command(bin: &Path, args: &[String]) -> Command {
    let mut command = Command::new(bin);
    command.args(args).env("NO_COLOR", "1");
    command
}

/// The name of consumer process `i`: `consumer-a`, `consumer-b`, …
pub(crate) fn consumer_name(i: usize) -> String {
    let letter = char::from(b'a' + (i % 26) as u8);
    format!("consumer-{letter}")
}

/// The producer's flags: a short `--redis-timeout`, so a hung Redis gets 503 + Retry-After
/// quickly.
fn producer_args(redis_url: &str, listen: SocketAddr) -> Vec<String> {
    [
        "producer",
        "--redis-url",
        redis_url,
        "--listen",
        &listen.to_string(),
        "--redis-timeout",
        "2s",
        "--retry-after",
        "1s",
        "--log-level",
        "info",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// Consumer `i`'s flags: `--min-idle 5s` so claims happen within the run, `--trim-interval
/// 2s` so re-reads and trims do too, short timeouts so hangs are noticed; the second
/// process runs two workers.
fn consumer_args(redis_url: &str, influx_url: &str, name: &str, i: usize) -> Vec<String> {
    let mut args: Vec<String> = [
        "consumer",
        "--redis-url",
        redis_url,
        "--consumer",
        name,
        "--sink",
        "influxdb",
        "--influx-url",
        influx_url,
        "--influx-timeout",
        "5s",
        "--influx-content-encoding",
        "identity",
        "--redis-timeout",
        "2s",
        "--min-idle",
        "5s",
        "--trim-interval",
        "2s",
        "--log-level",
        "info",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    if i == 1 {
        args.extend(["--workers".to_string(), "2".to_string()]);
    }
    args
}

/// A connection to `url` whose every command gives up after a second.
///
/// # Errors
/// Redis unreachable or hung.
pub(crate) fn redis_conn(url: &str) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(url)?;
    let conn = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
    conn.set_read_timeout(Some(REDIS_TIMEOUT))?;
    conn.set_write_timeout(Some(REDIS_TIMEOUT))?;
    Ok(conn)
}

/// `CONFIG SET min-replicas-to-write n`: with 1 and no replica, Redis refuses every write.
///
/// # Errors
/// Redis unreachable or hung.
pub(crate) fn set_min_replicas(url: &str, n: u32) -> redis::RedisResult<()> {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("min-replicas-to-write")
        .arg(n)
        .query(&mut redis_conn(url)?)
}

/// `CONFIG SET maxmemory <bytes>`; returns what Redis used just before.
///
/// # Errors
/// Redis unreachable or hung.
pub(crate) fn set_maxmemory(url: &str, bytes: Option<u64>) -> redis::RedisResult<u64> {
    let mut conn = redis_conn(url)?;
    let info: String = redis::cmd("INFO").arg("memory").query(&mut conn)?;
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // The fault: the limit at what is used now, so the next write is refused (`noeviction`).
    let limit = bytes.unwrap_or(used);
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit)
        .query::<()>(&mut conn)?;
    Ok(used)
}
