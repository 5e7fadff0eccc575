//! Child processes: signals, bounded waits, and [`ChildGuard`] for our own binary.
//!
//! Invariant: every process the harness spawns is killed and reaped when its owner drops,
//! so a panicking test leaves neither zombies nor listeners on its ports behind.
//!
//! The crate forbids `unsafe`, so signals other than SIGKILL are sent with the `kill(1)`
//! utility rather than `libc::kill`.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How often bounded waits poll a child with `try_wait`.
const POLL: Duration = Duration::from_millis(20);

/// How long `Drop` and `stop()` wait for a child to exit before giving up or escalating.
pub(crate) const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// Sends `signal` (a name such as `TERM`) to `pid` with `kill -<signal> <pid>`.
///
/// Returns whether `kill` reported success (it fails when the process is already gone).
pub(crate) fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// Waits up to `timeout` for `child` to exit, reaping it; `None` if it is still running.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(POLL),
            // try_wait only fails if the child was already reaped; there is nothing to wait for.
            Err(_) => return None,
        }
    }
}

/// SIGTERMs `child` and waits for it; SIGKILLs it if it outlives [`EXIT_DEADLINE`].
pub(crate) fn terminate(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    send_signal(child.id(), "TERM");
    wait_timeout(child, EXIT_DEADLINE).or_else(|| kill_and_reap(child))
}

/// SIGKILLs `child` and reaps it.
pub(crate) fn kill_and_reap(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Whether `child` has not exited yet.
pub(crate) fn is_alive(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

/// The last `max_bytes` of the file at `path` (lossy UTF-8) written after its first `offset`
/// bytes (the part of an appended-to log that belongs to the latest run), or a note that it
/// can't be read.
pub(crate) fn tail_since(path: &Path, offset: u64, max_bytes: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max_bytes).max(offset)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|error| match error.kind() {
        std::io::ErrorKind::NotFound => "<not created>".to_owned(),
        _ => format!("<cannot read {}: {error}>", path.display()),
    })
}

/// The length of the file at `path`, or 0 if it doesn't exist.
pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

/// Opens (creating or appending to) a log file for a child's stdout or stderr.
pub(crate) fn log_file(path: &Path) -> File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|error| panic!("cannot open log file {}: {error}", path.display()))
}

/// Finds an executable: the path in env var `env` if set, else `name` on `PATH`, else
/// `fallback`. Panics with an install hint when none exists.
pub(crate) fn find_binary(env: &str, name: &str, fallback: &str, package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env).filter(|value| !value.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if let Some(path) = on_path {
        return path;
    }
    let fallback = PathBuf::from(fallback);
    if fallback.is_file() {
        return fallback;
    }
    panic!(
        "`{name}` not found (set {env}, or put it on PATH); \
         install it with `apt-get install {package}` or run scripts/test, which does"
    );
}

/// A spawned process of our own binary (a redline producer or consumer) that is killed and
/// reaped on drop, with stdout and stderr captured to files so a failing test can show them.
///
/// If the owning thread is panicking when the guard drops, the captured output is printed
/// to stderr, so a failed assertion comes with the process's logs.
#[derive(Debug)]
pub struct ChildGuard {
    /// Label used in messages, e.g. `"producer"`.
    name: String,
    /// The process; `Drop` kills and reaps it.
    child: Child,
    /// `stdout` and `stderr` below live here: a temporary directory removed after the child
    /// is reaped, or one the caller keeps ([`ChildGuard::spawn_logging_to`]).
    logs: Logs,
}

/// Where a [`ChildGuard`]'s output goes.
#[derive(Debug)]
enum Logs {
    /// `stdout.log` and `stderr.log` in a temporary directory, deleted on drop.
    Temp(TempDir),
    /// Two files the caller keeps, appended to across restarts under the same name.
    Kept {
        /// Standard output.
        stdout: PathBuf,
        /// Standard error.
        stderr: PathBuf,
    },
}

impl Logs {
    fn stdout(&self) -> PathBuf {
        match self {
            Self::Temp(dir) => dir.path().join("stdout.log"),
            Self::Kept { stdout, .. } => stdout.clone(),
        }
    }

    fn stderr(&self) -> PathBuf {
        match self {
            Self::Temp(dir) => dir.path().join("stderr.log"),
            Self::Kept { stderr, .. } => stderr.clone(),
        }
    }
}

impl ChildGuard {
    /// Spawns `cmd`, redirecting its stdout and stderr to files in a fresh temporary directory.
    ///
    /// `name` labels the process in messages. Stdin is set to null.
    ///
    /// # Panics
    /// If the temporary directory can't be created or the program can't be spawned.
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("redline-{name}-"))
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temp dir for {name}: {error}"));
        Self::spawn_with(name, cmd, Logs::Temp(dir))
    }

    /// Spawns `cmd` as [`ChildGuard::spawn`] does, but appends its output to
    /// `<dir>/<name>.stdout.log` and `<dir>/<name>.stderr.log`, which outlive the guard: a
    /// harness that kills and restarts a process under the same name gets one log across its
    /// lives, and keeps it for a post-mortem after the run.
    ///
    /// # Panics
    /// If a log file can't be opened or the program can't be spawned.
    pub fn spawn_logging_to(name: &str, cmd: &mut Command, dir: &Path) -> Self {
        let logs = Logs::Kept {
            stdout: dir.join(format!("{name}.stdout.log")),
            stderr: dir.join(format!("{name}.stderr.log")),
        };
        Self::spawn_with(name, cmd, logs)
    }

    fn spawn_with(name: &str, cmd: &mut Command, logs: Logs) -> Self {
        let child = crate::tied::spawn(cmd, log_file(&logs.stdout()), log_file(&logs.stderr()))
            .unwrap_or_else(|error| {
                panic!("cannot spawn {name} ({:?}): {error}", cmd.get_program())
            });
        Self {
            name: name.to_owned(),
            child,
            logs,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful shutdown) without waiting; see [`ChildGuard::wait_exit`].
    pub fn sigterm(&mut self) {
        if is_alive(&mut self.child) {
            send_signal(self.child.id(), "TERM");
        }
    }

    /// Sends SIGKILL and reaps the process (a crash at an arbitrary instant).
    pub fn sigkill(&mut self) -> Option<ExitStatus> {
        kill_and_reap(&mut self.child)
    }

    /// Sends SIGSTOP: the process hangs (its sockets stay open) until [`ChildGuard::resume`].
    pub fn pause(&mut self) {
        send_signal(self.child.id(), "STOP");
    }

    /// Sends SIGCONT, ending a [`ChildGuard::pause`].
    pub fn resume(&mut self) {
        send_signal(self.child.id(), "CONT");
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, timeout)
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        is_alive(&mut self.child)
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.logs.stdout())
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.logs.stderr())
    }

    /// Stdout and stderr so far, under headers naming the process, for a failure message.
    pub fn logs(&self) -> String {
        format!(
            "----- {name} (pid {pid}) stdout -----\n{out}\n----- {name} stderr -----\n{err}",
            name = self.name,
            pid = self.child.id(),
            out = self.stdout(),
            err = self.stderr(),
        )
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The whole file as (lossy) UTF-8, or an empty string if it can't be read.
fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Why a server launch did not give a ready server.
pub(crate) enum LaunchError {
    /// Another process bound the port between `free_port` and the server's bind.
    PortTaken,
    /// Anything else; the message carries the logs.
    Failed(String),
}

/// What a readiness probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The server answers.
    Ready,
    /// Not answering (yet).
    NotYet,
    /// Alive and at work before it can answer (Redis loading its RDB and AOF, which on a
    /// busy 2-core machine took over 10 s for a few MB): the patience starts again.
    Loading,
}

impl From<bool> for Probe {
    fn from(ready: bool) -> Self {
        if ready {
            Self::Ready
        } else {
            Self::NotYet
        }
    }
}

/// Waits until the freshly spawned server `child` (`what`, on `port`) is `ready`, exits, or
/// `patience` runs out with no sign of progress (then it is killed and reaped); a probe that
/// finds the server [`Probe::Loading`] gives it `patience` again. `logs` gives what it logged since it
/// was spawned, for the error and to tell a port taken by another process ("address already
/// in use") from any other failure. Nothing here panics, so the child never outlives its
/// owner.
pub(crate) fn await_ready(
    mut child: Child,
    what: &str,
    port: u16,
    patience: Duration,
    logs: impl Fn() -> String,
    mut ready: impl FnMut(u32) -> Probe,
) -> Result<Child, LaunchError> {
    let mut deadline = Instant::now() + patience;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let logs = logs();
            if logs.to_lowercase().contains("address already in use") {
                return Err(LaunchError::PortTaken);
            }
            return Err(LaunchError::Failed(format!(
                "{what} on port {port} exited with {status} while starting\n{logs}"
            )));
        }
        match ready(child.id()) {
            Probe::Ready => return Ok(child),
            Probe::Loading => deadline = Instant::now() + patience,
            Probe::NotYet => {}
        }
        if Instant::now() >= deadline {
            kill_and_reap(&mut child);
            return Err(LaunchError::Failed(format!(
                "{what} on port {port} did not answer within {patience:?}\n{}",
                logs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_still_loading_gets_patience_again_one_that_does_not_answer_does_not() {
        let spawn = || Command::new("sleep").arg("30").spawn().unwrap();
        let patience = Duration::from_millis(100);
        let started = Instant::now();
        let loading_for = Duration::from_millis(400);
        let child = await_ready(spawn(), "sleep", 1, patience, String::new, |_| {
            if started.elapsed() < loading_for {
                Probe::Loading
            } else {
                Probe::Ready
            }
        });
        kill_and_reap(&mut child.ok().expect("ready after loading"));

        let started = Instant::now();
        let silent = await_ready(spawn(), "sleep", 1, patience, String::new, |_| {
            (started.elapsed() >= loading_for).into()
        });
        let Err(LaunchError::Failed(message)) = silent else {
            panic!("a server silent for longer than the patience is given up");
        };
        assert!(message.contains("did not answer within 100ms"), "{message}");
    }

    #[test]
    fn child_guard_captures_output_and_reports_sigterm() {
        let mut child = ChildGuard::spawn(
            "sh",
            Command::new("sh").args(["-c", "echo out; echo err >&2; exec sleep 30"]),
        );
        crate::wait_until_sync("the child printed", Duration::from_secs(5), || {
            child.stdout() == "out\n" && child.stderr() == "err\n"
        });
        assert!(child.is_running());
        assert!(child.logs().contains("out\n"));

        child.sigterm();
        let status = child
            .wait_exit(Duration::from_secs(5))
            .expect("sleep exits on SIGTERM");
        assert!(!status.success());
        assert!(!child.is_running());
    }

    #[test]
    fn child_guard_kills_and_cleans_up_on_drop() {
        let child = ChildGuard::spawn("sleep", Command::new("sleep").arg("30"));
        let pid = child.pid();
        let Logs::Temp(dir) = &child.logs else {
            unreachable!("spawn logs to a temp dir");
        };
        let dir = dir.path().to_path_buf();
        drop(child);
        assert!(!dir.exists(), "log dir {} survived the drop", dir.display());
        // Killed and reaped: not even a zombie is left.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn logs_kept_in_a_dir_span_restarts_and_outlive_the_guard() {
        let dir = tempfile::tempdir().unwrap();
        for life in ["first", "second"] {
            let mut child = ChildGuard::spawn_logging_to(
                "echo",
                Command::new("sh").args(["-c", &format!("echo {life}; echo err-{life} >&2")]),
                dir.path(),
            );
            child.wait_exit(Duration::from_secs(5)).expect("sh exits");
        }
        let read = |file: &str| fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(read("echo.stdout.log"), "first\nsecond\n");
        assert_eq!(read("echo.stderr.log"), "err-first\nerr-second\n");
    }

    #[test]
    fn tail_since_returns_the_end_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(&path, "0123456789").unwrap();
        assert_eq!(tail_since(&path, 0, 4), "6789");
        assert_eq!(tail_since(&path, 0, 100), "0123456789");
        assert_eq!(tail_since(&path, 8, 100), "89");
        assert!(tail_since(&dir.path().join("missing"), 0, 4).starts_with("<not created>"));
    }
}
