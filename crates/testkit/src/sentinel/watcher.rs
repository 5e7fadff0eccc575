//! One `redis-sentinel` process of a [`RedisSentinel`](super::RedisSentinel): its generated
//! `sentinel.conf` (which it rewrites as it learns the topology) and its log in a temp dir,
//! on a free loopback port, killed and reaped on drop before the directory goes.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;

use super::{SentinelOptions, MASTER_NAME};
use crate::free_port;
use crate::process::{
    await_ready, file_len, find_binary, kill_and_reap, log_file, tail_since, LaunchError,
};

/// How many fresh ports a sentinel tries when the chosen one was taken.
const PORT_ATTEMPTS: usize = 5;

/// One `redis-sentinel` process.
#[derive(Debug)]
pub(super) struct SentinelProcess {
    /// Killed and reaped by `Drop`.
    child: Child,
    /// `sentinel.conf` and `sentinel.log`; deleted after `child` is reaped.
    dir: TempDir,
    pub(super) port: u16,
    password: Option<String>,
}

impl SentinelProcess {
    /// Starts a sentinel watching the master on `master_port` and waits until it answers.
    pub(super) fn start(master_port: u16, options: &SentinelOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redline-sentinel-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temp dir for a sentinel: {error}"));
        let password = options.sentinel_password.clone();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            write_config(dir.path(), port, master_port, options);
            match launch(dir.path(), port, password.as_deref()) {
                Ok(child) => {
                    return Self {
                        child,
                        dir,
                        port,
                        password,
                    }
                }
                Err(LaunchError::PortTaken) => continue,
                Err(LaunchError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!(
            "redis-sentinel: {PORT_ATTEMPTS} free ports in a row were taken before it bound them"
        )
    }

    /// A connection to this sentinel (authenticated when it has a password).
    pub(super) fn conn(&self) -> Option<::redis::Connection> {
        client(self.port, self.password.as_deref())
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()
    }

    /// True when this sentinel sees the master up, the two other sentinels, every port of
    /// `replicas` as a replica with its link up, and a quorum (`SENTINEL CKQUORUM`).
    pub(super) fn sees(&self, replicas: &[u16]) -> bool {
        let Some(mut conn) = self.conn() else {
            return false;
        };
        let master: Option<std::collections::HashMap<String, String>> = ::redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(MASTER_NAME)
            .query(&mut conn)
            .ok();
        let Some(master) = master else {
            return false;
        };
        if master.get("flags").map(String::as_str) != Some("master")
            || master.get("num-other-sentinels").map(String::as_str) != Some("2")
        {
            return false;
        }
        let known: Vec<std::collections::HashMap<String, String>> = ::redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg(MASTER_NAME)
            .query(&mut conn)
            .unwrap_or_default();
        let healthy = |port: u16| {
            known.iter().any(|r| {
                r.get("port") == Some(&port.to_string())
                    && r.get("flags").map(String::as_str) == Some("slave")
                    && r.get("master-link-status").map(String::as_str) == Some("ok")
            })
        };
        replicas.iter().all(|port| healthy(*port))
            && ::redis::cmd("SENTINEL")
                .arg("CKQUORUM")
                .arg(MASTER_NAME)
                .query::<String>(&mut conn)
                .is_ok()
    }

    /// The last 4 KiB of its log.
    pub(super) fn log_tail(&self) -> String {
        tail_since(&self.dir.path().join(LOG), 0, 4096)
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
        // `dir` drops after this and deletes the config and the log.
    }
}

/// The sentinel's log, in its directory.
const LOG: &str = "sentinel.log";

/// The sentinel's config file, which it rewrites as it learns the topology.
const CONFIG: &str = "sentinel.conf";

fn write_config(dir: &Path, port: u16, master_port: u16, options: &SentinelOptions) {
    let mut config = format!(
        "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {log}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} 2000\n\
         sentinel failover-timeout {MASTER_NAME} 4000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display(),
        log = dir.join(LOG).display(),
    );
    if let Some(password) = &options.node_password {
        config.push_str(&format!("sentinel auth-pass {MASTER_NAME} {password}\n"));
    }
    if let Some(password) = &options.sentinel_password {
        config.push_str(&format!("requirepass {password}\n"));
    }
    std::fs::write(dir.join(CONFIG), config)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", dir.join(CONFIG).display()));
}

fn client(port: u16, password: Option<&str>) -> ::redis::Client {
    let url = match password {
        Some(password) => format!("redis://:{password}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    ::redis::Client::open(url).unwrap_or_else(|error| panic!("invalid sentinel url: {error}"))
}

/// Spawns `redis-sentinel <dir>/sentinel.conf` and waits until it answers PING as itself.
fn launch(dir: &Path, port: u16, password: Option<&str>) -> Result<Child, LaunchError> {
    let bin = find_binary(
        "REDLINE_REDIS_SENTINEL",
        "redis-sentinel",
        "/usr/bin/redis-sentinel",
        "redis-sentinel",
    );
    // Nothing may panic between spawn and return, or the child would outlive its owner.
    let client = client(port, password);
    let since = file_len(&dir.join(LOG));
    let out = log_file(&dir.join("sentinel.out"));
    let err = out
        .try_clone()
        .unwrap_or_else(|error| panic!("cannot clone a file handle: {error}"));
    let mut cmd = Command::new(&bin);
    cmd.arg(dir.join(CONFIG));
    let child = crate::tied::spawn(&cmd, out, err)
        .unwrap_or_else(|error| panic!("cannot spawn {}: {error}", bin.display()));
    await_ready(
        child,
        "redis-sentinel",
        port,
        Duration::from_secs(10),
        || {
            format!(
                "{}\n{}",
                tail_since(&dir.join(LOG), since, 4096),
                tail_since(&dir.join("sentinel.out"), 0, 4096)
            )
        },
        |pid| answers(&client, pid).into(),
    )
}

/// Whether the process `pid` answers PING on the client's port (not another process that
/// took the port first).
fn answers(client: &::redis::Client, pid: u32) -> bool {
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    if conn.set_read_timeout(timeout).is_err() {
        return false;
    }
    let info: String = match ::redis::cmd("INFO").arg("server").query(&mut conn) {
        Ok(info) => info,
        Err(_) => return false,
    };
    info.lines()
        .any(|line| line.trim() == format!("process_id:{pid}"))
}
