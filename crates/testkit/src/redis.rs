//! [`RedisServer`]: a `redis-server` of its own per test, on a free port, in a temp dir.
//!
//! Invariants:
//! - the server binds 127.0.0.1 only and writes nothing outside its temp dir
//!   (`--save ""` disables RDB snapshots unless the test asks for them);
//! - [`RedisServer::start`] returns only once PING answers PONG (not `-LOADING`);
//! - a server started with `--requirepass P` is probed, and [`RedisServer::url`] connects,
//!   with that password;
//! - drop SIGKILLs and reaps the server before its directory is deleted.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;

use crate::free_port;
use crate::process::{
    await_ready, file_len, find_binary, is_alive, kill_and_reap, log_file, send_signal, tail_since,
    terminate, LaunchError, Probe,
};

/// How long a starting server has to answer PING, counted again while it loads its data.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// The server's own log (`--logfile`), in its directory.
const LOG: &str = "redis.log";

/// The server's stdout and stderr (early startup errors go there, not to `--logfile`).
const OUT: &str = "redis.out";

/// How many fresh ports [`RedisServer::start`] tries when the chosen one was taken.
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` child process listening on `127.0.0.1:<port>` with its data in a
/// temporary directory.
///
/// [`RedisServer::stop`] and [`RedisServer::kill`] keep the directory, so
/// [`RedisServer::start_again`] brings the same data back (as far as the persistence
/// settings passed to [`RedisServer::start`] preserved it). Drop kills the server and
/// deletes the directory.
#[derive(Debug)]
pub struct RedisServer {
    /// The server process; replaced by `start_again`, killed and reaped by `Drop`.
    child: Child,
    /// `--dir`: AOF/RDB files, `redis.log` and `redis.out`; deleted after `child` is reaped.
    dir: TempDir,
    /// The port, kept across restarts.
    port: u16,
    /// The caller's extra arguments, reused by `start_again`.
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port with `--bind 127.0.0.1 --port P --dir <tempdir>
    /// --logfile <tempdir>/redis.log --save "" --daemonize no` followed by `extra`, e.g.
    /// `&["--appendonly", "yes", "--appendfsync", "always"]`, and waits until it answers
    /// PING. If the port was taken meanwhile, retries on a new one.
    ///
    /// The binary is `$REDLINE_REDIS_SERVER`, else `redis-server` on `PATH`.
    ///
    /// # Panics
    /// If the server doesn't answer within 10 s, with the tail of its log.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redline-redis-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temp dir for redis-server: {error}"));
        let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match launch(dir.path(), port, &extra) {
                Ok(child) => {
                    return Self {
                        child,
                        dir,
                        port,
                        extra,
                    }
                }
                Err(LaunchError::PortTaken) => continue,
                Err(LaunchError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("redis-server: {PORT_ATTEMPTS} free ports in a row were taken before it bound them")
    }

    /// Starts `redis-server` as [`RedisServer::start`] does, on exactly `port` (a cluster node
    /// also needs `port + 10000` for its bus, so the caller picks both). `None` when another
    /// process took the port first.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub(crate) fn start_on(port: u16, extra: &[String]) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("redline-redis-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temp dir for redis-server: {error}"));
        match launch(dir.path(), port, extra) {
            Ok(child) => Some(Self {
                child,
                dir,
                port,
                extra: extra.to_vec(),
            }),
            Err(LaunchError::PortTaken) => None,
            Err(LaunchError::Failed(message)) => panic!("{message}"),
        }
    }

    /// The server's process id (the current one after a restart).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL, `redis://127.0.0.1:<port>/`, or `redis://:P@127.0.0.1:<port>/`
    /// when the server was started with `--requirepass P`.
    pub fn url(&self) -> String {
        url(self.port, &self.extra)
    }

    /// A client for [`RedisServer::url`].
    pub fn client(&self) -> ::redis::Client {
        ::redis::Client::open(self.url())
            .unwrap_or_else(|error| panic!("invalid redis url {}: {error}", self.url()))
    }

    /// A new multiplexed async connection (needs a Tokio runtime).
    ///
    /// # Panics
    /// If the server can't be reached.
    pub async fn conn(&self) -> ::redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {}: {error}", self.url()))
    }

    /// A new synchronous connection, for sync tests and bench set-up.
    ///
    /// # Panics
    /// If the server can't be reached.
    pub fn sync_conn(&self) -> ::redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|error| panic!("cannot connect to {}: {error}", self.url()))
    }

    /// The data directory (`--dir`), which also holds `redis.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last 4 KiB of the server's log and of its stdout/stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        logs(self.dir.path(), LogOffsets::default())
    }

    /// Whether the server process is alive (it may still be starting or stopping).
    pub fn is_running(&mut self) -> bool {
        is_alive(&mut self.child)
    }

    /// Graceful shutdown: SIGTERM, then waits for the exit (SIGKILL after 10 s).
    ///
    /// Redis flushes and fsyncs the AOF on SIGTERM when `appendonly` is on, and writes an
    /// RDB only if a `save` policy was passed. The directory is kept for
    /// [`RedisServer::start_again`].
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Crash: SIGKILL and reap. With `--appendfsync always`, every acknowledged write
    /// survives; with `everysec`, up to about a second of writes may not.
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// Starts the server again on the same port, directory and arguments after
    /// [`RedisServer::stop`] or [`RedisServer::kill`], and waits until it answers PING
    /// (which, with persistence, is after it loaded its data).
    ///
    /// # Panics
    /// If the server is still running, if the port has been taken by someone else
    /// meanwhile, or if it isn't ready within 10 s.
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "redis-server on port {} is still running; stop() or kill() it first",
            self.port
        );
        match launch(self.dir.path(), self.port, &self.extra) {
            Ok(child) => self.child = child,
            Err(LaunchError::PortTaken) => panic!(
                "redis-server cannot restart: port {} was taken while it was down\n{}",
                self.port,
                self.log_tail()
            ),
            Err(LaunchError::Failed(message)) => panic!("{message}"),
        }
    }

    /// A hang: SIGSTOP. Connections are still accepted by the kernel, but nothing answers
    /// until [`RedisServer::resume`].
    pub fn pause(&mut self) {
        send_signal(self.child.id(), "STOP");
    }

    /// The end of a hang: SIGCONT.
    pub fn resume(&mut self) {
        send_signal(self.child.id(), "CONT");
    }

    /// As [`RedisServer::start_again`], with `extra` instead of the arguments given so far
    /// (e.g. to come back as a replica of another node: `--replicaof 127.0.0.1 <port>`).
    ///
    /// # Panics
    /// As [`RedisServer::start_again`].
    pub fn start_again_with(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|arg| (*arg).to_owned()).collect();
        self.start_again();
    }

    /// The extra arguments the server runs with.
    pub fn extra(&self) -> &[String] {
        &self.extra
    }

    /// A crash and recovery: [`RedisServer::kill`] then [`RedisServer::start_again`].
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
        // `dir` drops after this and deletes the data.
    }
}

/// Spawns `redis-server` on `port` in `dir` and waits until it answers PING.
fn launch(dir: &Path, port: u16, extra: &[String]) -> Result<Child, LaunchError> {
    let bin = find_binary(
        "REDLINE_REDIS_SERVER",
        "redis-server",
        "/usr/bin/redis-server",
        "redis-server",
    );
    // Nothing may panic between spawn and return, or the child would outlive its owner.
    let client = ::redis::Client::open(url(port, extra))
        .unwrap_or_else(|error| panic!("invalid redis url for port {port}: {error}"));
    // Where this attempt's output starts: the log files are appended to across launches, and
    // an earlier attempt's "Address already in use" must not be mistaken for this one's.
    let since = LogOffsets::now(dir);
    let out = log_file(&dir.join(OUT));
    let err = out
        .try_clone()
        .unwrap_or_else(|error| panic!("cannot clone a file handle: {error}"));
    let mut cmd = Command::new(&bin);
    cmd.args(["--bind", "127.0.0.1"])
        .arg("--port")
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(LOG))
        .args(["--save", "", "--daemonize", "no"])
        .args(extra);
    let child = crate::tied::spawn(&cmd, out, err)
        .unwrap_or_else(|error| panic!("cannot spawn {}: {error}", bin.display()));

    await_ready(
        child,
        "redis-server",
        port,
        READY_DEADLINE,
        || logs(dir, since),
        |pid| match ready(&client, pid) {
            // Loading its data answers nothing (or LOADING) for seconds at a time.
            Probe::NotYet if loading(dir, since) => Probe::Loading,
            probe => probe,
        },
    )
}

/// Whether this launch's log says the server is between initialising and accepting
/// connections: loading its RDB or AOF.
fn loading(dir: &Path, since: LogOffsets) -> bool {
    let log = tail_since(&dir.join(LOG), since.log, 64 * 1024);
    log.contains("Server initialized") && !log.contains("Ready to accept connections")
}

/// `redis://127.0.0.1:<port>/`, with the password of a `--requirepass` among `extra`.
fn url(port: u16, extra: &[String]) -> String {
    let password = extra
        .iter()
        .position(|arg| arg == "--requirepass")
        .and_then(|at| extra.get(at + 1));
    match password {
        Some(password) => format!("redis://:{password}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    }
}

/// Whether the server on the client's port answers PING with PONG (not an error such as
/// `-LOADING`) and is the process `pid`. The second check matters: when another process
/// took the port first, our server exits, but PINGs sent before it did would be answered by
/// the other one.
fn ready(client: &::redis::Client, pid: u32) -> Probe {
    let timeout = Some(Duration::from_millis(500));
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return Probe::NotYet;
    };
    if conn.set_read_timeout(timeout).is_err() || conn.set_write_timeout(timeout).is_err() {
        return Probe::NotYet;
    }
    let info: String = match ::redis::cmd("INFO").arg("server").query(&mut conn) {
        Ok(info) => info,
        Err(_) => return Probe::NotYet,
    };
    // Our server (not another that took the port), and done loading its data: while it
    // loads, PING answers `LOADING`.
    if !info
        .lines()
        .any(|line| line.trim() == format!("process_id:{pid}"))
    {
        return Probe::NotYet;
    }
    match ::redis::cmd("PING").query::<String>(&mut conn) {
        Ok(pong) if pong == "PONG" => Probe::Ready,
        Err(error) if error.code() == Some("LOADING") => Probe::Loading,
        _ => Probe::NotYet,
    }
}

/// Byte offsets into `redis.log` and `redis.out` where one launch's output begins.
#[derive(Clone, Copy, Default)]
struct LogOffsets {
    log: u64,
    out: u64,
}

impl LogOffsets {
    /// The current ends of the log files in `dir`: what is written next belongs to a new launch.
    fn now(dir: &Path) -> Self {
        Self {
            log: file_len(&dir.join(LOG)),
            out: file_len(&dir.join(OUT)),
        }
    }
}

/// The last 4 KiB of `redis.log` and `redis.out` in `dir` written after `since`.
fn logs(dir: &Path, since: LogOffsets) -> String {
    let section = |name: &str, offset: u64| {
        let path = dir.join(name);
        format!(
            "----- {} (tail) -----\n{}",
            path.display(),
            tail_since(&path, offset, 4096)
        )
    };
    format!("{}\n{}", section(LOG, since.log), section(OUT, since.out))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    async fn xlen(redis: &RedisServer) -> u64 {
        ::redis::cmd("XLEN")
            .arg("s")
            .query_async(&mut redis.conn().await)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn aof_always_keeps_every_write_across_kill_and_stop() {
        let mut redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
        let port = redis.port();
        let mut conn = redis.conn().await;
        let mut pipe = ::redis::pipe();
        for i in 0..100 {
            pipe.cmd("XADD").arg("s").arg("*").arg("lp").arg(i).ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
        assert_eq!(xlen(&redis).await, 100);

        redis.restart();
        assert!(redis.is_running());
        assert_eq!(redis.port(), port);
        assert_eq!(xlen(&redis).await, 100);

        redis.stop();
        assert!(!redis.is_running());
        redis.start_again();
        assert_eq!(xlen(&redis).await, 100);
        assert!(redis.dir().join("appendonlydir").is_dir());
    }

    #[test]
    fn without_persistence_a_kill_loses_everything() {
        let mut redis = RedisServer::start(&[]);
        let mut conn = redis.sync_conn();
        ::redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query::<()>(&mut conn)
            .unwrap();
        redis.restart();
        let value: Option<String> = ::redis::cmd("GET")
            .arg("k")
            .query(&mut redis.sync_conn())
            .unwrap();
        assert_eq!(value, None);
        assert!(redis.log_tail().contains("Ready to accept connections"));
    }

    #[test]
    fn a_restart_loading_its_data_for_longer_than_the_patience_is_waited_out() {
        // 2 ms per key loaded (a Redis test setting): 5,500 keys take 11 s to load, longer
        // than READY_DEADLINE, and Redis answers nothing meanwhile (it looks at its clients
        // only every 2 MB loaded).
        let mut redis = RedisServer::start(&["--key-load-delay", "2000"]);
        let mut conn = redis.sync_conn();
        let mut pipe = ::redis::pipe();
        for i in 0..5_500 {
            pipe.cmd("SET").arg(i).arg(i).ignore();
        }
        pipe.cmd("SAVE").ignore().query::<()>(&mut conn).unwrap();
        redis.kill();
        redis.start_again();
        let keys: u64 = ::redis::cmd("DBSIZE")
            .query(&mut redis.sync_conn())
            .unwrap();
        assert_eq!(keys, 5_500);
        assert!(READY_DEADLINE < Duration::from_secs(11));
    }

    #[test]
    fn drop_kills_the_server_and_deletes_its_dir() {
        let redis = RedisServer::start(&[]);
        let dir = redis.dir().to_path_buf();
        let port = redis.port();
        assert!(dir.join(LOG).is_file());
        drop(redis);
        assert!(!dir.exists(), "{} survived the drop", dir.display());
        assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }

    #[test]
    fn a_port_taken_by_another_redis_is_reported_as_such() {
        // The other server answers PING on that port; launch must not mistake it for ours.
        let other = RedisServer::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            launch(dir.path(), other.port(), &[]),
            Err(LaunchError::PortTaken)
        ));
    }

    #[test]
    #[should_panic(expected = "exited with")]
    fn a_bad_argument_panics_with_the_log() {
        RedisServer::start(&["--no-such-option", "1"]);
    }
}
