//! Children tied to this process: each gets SIGKILL when the test process dies, however it
//! dies. A panic unwinds and the guards' `Drop` kills their children, but a test binary that
//! cargo-mutants kills on a timeout, or any `kill -9`, runs no `Drop`: its `redline
//! producer`s, `redis-server`s and `influxd`s used to live on (one mutation run left eight
//! producers spinning on a Redis that was gone, one at 5 GB).
//!
//! The child asks for a parent-death signal (`PR_SET_PDEATHSIG`, set with util-linux's
//! `setpriv --pdeathsig KILL`, as the crate forbids `unsafe`). prctl(2) says it comes when
//! the *thread* that forked the child ends, not the process, and tests spawn from threads
//! that end before their children should (a test's own thread; Tokio's blocking threads,
//! which exit after 10 s idle). Recent kernels (6.18 here) hand such children to a sibling
//! thread without a signal, older ones may not: every child is forked by one thread that
//! lives as long as the process, so that it holds on both.
//!
//! Invariant: a child spawned by [`spawn`] never outlives this process (when `setpriv` is
//! missing, children are spawned untied, as before, and a note says so once).

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;

/// Something for the spawning thread to run.
type Job = Box<dyn FnOnce() + Send>;

/// Spawns `cmd` with stdin from `/dev/null` and its output to `out` and `err`, tied to this
/// process: it is SIGKILLed when the process dies. `cmd` itself is left as it was (its
/// program, arguments, environment changes and directory are copied; nothing else of it
/// may matter, and `env_clear` is not carried over).
///
/// # Errors
/// As [`Command::spawn`]: the program cannot be run.
pub(crate) fn spawn(cmd: &Command, out: File, err: File) -> io::Result<Child> {
    let mut run = match setpriv() {
        Some(setpriv) => {
            let mut wrapped = Command::new(setpriv);
            wrapped
                .args(["--pdeathsig", "KILL", "--"])
                .arg(cmd.get_program())
                .args(cmd.get_args());
            wrapped
        }
        None => {
            let mut plain = Command::new(cmd.get_program());
            plain.args(cmd.get_args());
            plain
        }
    };
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => run.env(name, value),
            None => run.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        run.current_dir(dir);
    }
    run.stdin(Stdio::null()).stdout(out).stderr(err);
    on_spawning_thread(move || run.spawn())
}

/// `setpriv` on `PATH`, looked up once.
fn setpriv() -> Option<&'static PathBuf> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join("setpriv"))
                .find(|path| path.is_file());
            if found.is_none() {
                eprintln!(
                    "note: setpriv (util-linux) is not on PATH: children of a test process \
                     that is killed outright will outlive it"
                );
            }
            found
        })
        .as_ref()
}

/// Runs `job` on the one thread that forks every child, and returns what it returned.
fn on_spawning_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    static JOBS: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (send, receive) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || receive.into_iter().for_each(|job| job()))
            .expect("cannot start the thread that spawns children");
        send
    });
    let (send, receive) = mpsc::channel();
    jobs.send(Box::new(move || {
        // The caller waits for this answer; it can only be gone if it panicked meanwhile.
        let _ = send.send(job());
    }))
    .expect("the spawning thread lives as long as the process");
    receive
        .recv()
        .expect("the spawning thread answers every job")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::process::kill_and_reap;

    fn devnull() -> File {
        File::create("/dev/null").unwrap()
    }

    /// The program and arguments process `pid` runs, as `ps` shows them.
    fn cmdline(pid: u32) -> Vec<String> {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .split(|&b| b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect()
    }

    /// Whether process `pid` runs (a zombie left for a container's init to reap does not).
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
    }

    #[test]
    fn the_child_runs_its_own_program_with_the_commands_arguments_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo \"$TIED_VALUE\" > seen; exec sleep 30"])
            .env("TIED_VALUE", "from the command")
            .current_dir(dir.path());
        let mut child = spawn(&cmd, devnull(), devnull()).unwrap();
        let seen = dir.path().join("seen");
        // setpriv and then sh exec'd: the pid is the program's (signals reach it).
        crate::wait_until_sync("the child runs sleep", Duration::from_secs(10), || {
            cmdline(child.id()) == ["sleep", "30"]
        });
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap(),
            "from the command\n"
        );
        kill_and_reap(&mut child);
    }

    #[test]
    fn a_child_dies_with_the_process_that_spawned_it_not_with_the_thread() {
        // A process that spawns a tied child from a thread that then ends, and is then
        // SIGKILLed: this very test binary, re-run on `tied_child_helper` (below).
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let mut helper = Command::new(exe)
            .args(["--exact", "tied::tests::tied_child_helper", "--nocapture"])
            .env("TIED_CHILD_PID_FILE", &pid_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        crate::wait_until_sync("the helper's child", Duration::from_secs(20), || {
            std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
        });
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            running(pid),
            "the child outlives the thread that spawned it"
        );
        kill_and_reap(&mut helper);
        crate::wait_until_sync(
            "the child to die with the helper",
            Duration::from_secs(10),
            || !running(pid),
        );
    }

    /// Not a test on its own: run by the test above in a process of its own. Spawns a
    /// child from a thread that ends at once, writes the child's pid and waits to be killed.
    #[test]
    fn tied_child_helper() {
        let Some(pid_file) = std::env::var_os("TIED_CHILD_PID_FILE") else {
            return;
        };
        let mut child = std::thread::spawn(|| {
            spawn(Command::new("sleep").arg("60"), devnull(), devnull()).unwrap()
        })
        .join()
        .unwrap();
        std::fs::write(pid_file, format!("{}\n", child.id())).unwrap();
        // Killed meanwhile by the test that runs this one.
        std::thread::sleep(Duration::from_secs(60));
        kill_and_reap(&mut child);
    }
}
