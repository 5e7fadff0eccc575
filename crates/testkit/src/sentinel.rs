//! [`RedisSentinel`]: a master, a replica and three sentinels on loopback, per test.
//!
//! Invariants:
//! - every process binds 127.0.0.1 only, on a free port, with its data, its `sentinel.conf`
//!   (which sentinels rewrite as they learn) and its logs in its own temp dir;
//! - [`RedisSentinel::start`] returns only once every sentinel knows the master, the replica
//!   (its link up) and the two other sentinels, and `SENTINEL CKQUORUM` says a failover can
//!   be authorised: a master killed from then on is failed over;
//! - drop SIGKILLs and reaps every process before its directory is deleted.
//!
//! Sentinels run with `down-after-milliseconds 2000` and `failover-timeout 4000`, and data
//! nodes with `repl-diskless-sync-delay 0`, so a failover takes a few seconds. (With 1000,
//! one run in six of the e2e failover test saw a second failover one second after a
//! promotion, most likely because the promotion's `CLIENT KILL TYPE normal` also cuts the
//! other sentinels' links to the new master and their reconnect outlasted 1 s.) What the test
//! waits on are the sentinels' own answers (`SENTINEL GET-MASTER-ADDR-BY-NAME`, `SENTINEL
//! REPLICAS`) and each node's `ROLE`/`INFO replication`, never a sleep.

mod watcher;

use std::time::{Duration, Instant};

use self::watcher::SentinelProcess;
use crate::redis::RedisServer;

/// The name the sentinels know the master by.
pub const MASTER_NAME: &str = "mymaster";

/// How long the set-up has to form, or to settle after a failover or a restart.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// How the data nodes and the sentinels authenticate.
#[derive(Debug, Clone, Default)]
pub struct SentinelOptions {
    /// `requirepass` of every data node (the default user's password), which the replica
    /// (`masterauth`) and the sentinels (`sentinel auth-pass`) use too.
    pub node_password: Option<String>,
    /// `requirepass` of every sentinel.
    pub sentinel_password: Option<String>,
    /// More arguments for every data node, e.g. an ACL user:
    /// `["--user", "relay", "on", ">pw", "~redline:*", "+@all"]`.
    pub node_args: Vec<String>,
}

/// One master, one replica and three sentinels watching them as [`MASTER_NAME`].
#[derive(Debug)]
pub struct RedisSentinel {
    /// The data nodes: the first started as master, the second as its replica.
    nodes: Vec<RedisServer>,
    /// The three sentinels.
    sentinels: Vec<SentinelProcess>,
    options: SentinelOptions,
}

impl RedisSentinel {
    /// Starts the set-up without passwords and waits until a failover could happen.
    ///
    /// # Panics
    /// If a process does not start or the sentinels do not settle within 30 s.
    pub fn start() -> Self {
        Self::start_with(SentinelOptions::default())
    }

    /// Starts the set-up with `options` and waits until a failover could happen.
    ///
    /// # Panics
    /// As [`RedisSentinel::start`].
    pub fn start_with(options: SentinelOptions) -> Self {
        let master = RedisServer::start(&refs(&node_args(&options, None)));
        let replica = RedisServer::start(&refs(&node_args(&options, Some(master.port()))));
        let sentinels = (0..3)
            .map(|_| SentinelProcess::start(master.port(), &options))
            .collect();
        let set = Self {
            nodes: vec![master, replica],
            sentinels,
            options,
        };
        set.wait_healthy();
        set
    }

    /// redline's URL: `redis+sentinel://127.0.0.1:<s1>,…/mymaster`, with
    /// `?sentinel_password=…` when the sentinels have one. `userinfo` (`user:pass`), when
    /// given, goes before the sentinels: the data nodes' credentials.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let query = self
            .options
            .sentinel_password
            .as_ref()
            .map(|p| format!("?sentinel_password={p}"))
            .unwrap_or_default();
        format!(
            "redis+sentinel://{auth}{}/{MASTER_NAME}{query}",
            hosts.join(",")
        )
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The data nodes' ports, the first master as started first.
    pub fn node_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The data node on `port`.
    ///
    /// # Panics
    /// If no data node listens there.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// The data node that is not on `port` (there are two).
    pub fn other(&self, port: u16) -> u16 {
        self.node_ports()
            .into_iter()
            .find(|p| *p != port)
            .unwrap_or_else(|| panic!("no data node other than {port}"))
    }

    /// The master's port once every sentinel names the same one and it answers `ROLE` as
    /// master (on a loaded machine the sentinels may fail over again on their own; this
    /// waits for them to agree rather than assume nothing changed).
    ///
    /// # Panics
    /// If they do not agree within 30 s.
    pub fn master(&self) -> u16 {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let named = self.named_masters();
            if let Some(Some(master)) = named.first().copied() {
                if named.iter().all(|n| *n == Some(master))
                    && self.role(master).as_deref() == Some("master")
                {
                    return master;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels do not agree on a master within {SETTLE_DEADLINE:?}: {named:?}\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What each sentinel names as master (`None`: it did not answer).
    pub fn named_masters(&self) -> Vec<Option<u16>> {
        self.sentinels
            .iter()
            .map(|s| {
                let mut conn = s.conn()?;
                let addr: Option<(String, u16)> = ::redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(MASTER_NAME)
                    .query(&mut conn)
                    .ok()?;
                addr.map(|(_, port)| port)
            })
            .collect()
    }

    /// Crash: SIGKILLs the data node on `port`; its directory is kept.
    pub fn kill(&mut self, port: u16) {
        self.node(port).kill();
    }

    /// Waits until every sentinel names a master other than `old` and that node answers
    /// `ROLE` as master; returns its port.
    ///
    /// # Panics
    /// When that takes longer than 30 s, with the sentinels' logs.
    pub fn wait_failover(&self, old: u16) -> u16 {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let named = self.named_masters();
            if let Some(Some(new)) = named.first() {
                if *new != old
                    && named.iter().all(|n| *n == Some(*new))
                    && self.role(*new).as_deref() == Some("master")
                {
                    return *new;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no failover from {old} within {SETTLE_DEADLINE:?}: the sentinels name {named:?}\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the killed node on `port` again as a replica of the current master, and waits
    /// until it replicates and every sentinel counts it as a healthy replica (so the next
    /// failover may promote it).
    ///
    /// # Panics
    /// If it does not start or settle within 30 s.
    pub fn restart_as_replica(&mut self, port: u16) {
        let master = self.master();
        let args = node_args(&self.options, Some(master));
        self.node(port).start_again_with(&refs(&args));
        self.wait_healthy();
    }

    /// Waits until every sentinel agrees on a master that answers `ROLE` as master, lists
    /// every other data node as a replica with its link up, knows the two other sentinels,
    /// and `SENTINEL CKQUORUM` passes.
    ///
    /// # Panics
    /// When that takes longer than 30 s, with the logs.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        while !self.is_healthy() {
            assert!(
                Instant::now() < deadline,
                "the sentinels did not settle within {SETTLE_DEADLINE:?} (they name {:?})\n{}",
                self.named_masters(),
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_healthy(&self) -> bool {
        let named = self.named_masters();
        let Some(Some(master)) = named.first().copied() else {
            return false;
        };
        if named.iter().any(|n| *n != Some(master))
            || self.role(master).as_deref() != Some("master")
        {
            return false;
        }
        let replicas: Vec<u16> = self
            .node_ports()
            .into_iter()
            .filter(|p| *p != master)
            .collect();
        if !replicas.iter().all(|r| self.link_up(*r)) {
            return false;
        }
        self.sentinels.iter().all(|s| s.sees(&replicas))
    }

    /// `ROLE` of the data node on `port` (`master`, `slave`), `None` if it does not answer.
    pub fn role(&self, port: u16) -> Option<String> {
        let node = self.nodes.iter().find(|n| n.port() == port)?;
        let mut conn = node
            .client()
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let role: Vec<::redis::Value> = ::redis::cmd("ROLE").query(&mut conn).ok()?;
        match role.first() {
            Some(::redis::Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into()),
            Some(::redis::Value::SimpleString(text)) => Some(text.clone()),
            _ => None,
        }
    }

    /// True when the data node on `port` is a replica whose link to its master is up.
    fn link_up(&self, port: u16) -> bool {
        let Some(node) = self.nodes.iter().find(|n| n.port() == port) else {
            return false;
        };
        let Ok(mut conn) = node
            .client()
            .get_connection_with_timeout(Duration::from_millis(500))
        else {
            return false;
        };
        let info: String = ::redis::cmd("INFO")
            .arg("replication")
            .query(&mut conn)
            .unwrap_or_default();
        info.lines().any(|l| l.trim() == "master_link_status:up")
    }

    /// The last lines of every process's logs, for failure messages.
    pub fn log_tails(&self) -> String {
        let nodes = self
            .nodes
            .iter()
            .map(|n| format!("===== node {} =====\n{}", n.port(), n.log_tail()));
        let sentinels = self
            .sentinels
            .iter()
            .map(|s| format!("===== sentinel {} =====\n{}", s.port, s.log_tail()));
        nodes.chain(sentinels).collect::<Vec<_>>().join("\n")
    }
}

/// The arguments of a data node: quick diskless sync, the options' passwords and arguments,
/// and `--replicaof 127.0.0.1 <port>` for a replica.
fn node_args(options: &SentinelOptions, replica_of: Option<u16>) -> Vec<String> {
    let mut args: Vec<String> = vec!["--repl-diskless-sync-delay".into(), "0".into()];
    if let Some(password) = &options.node_password {
        args.extend(["--requirepass".into(), password.clone()]);
        args.extend(["--masterauth".into(), password.clone()]);
    }
    args.extend(options.node_args.iter().cloned());
    if let Some(port) = replica_of {
        args.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
    }
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_master_is_replaced_by_its_replica_and_can_come_back_as_a_replica() {
        let mut set = RedisSentinel::start();
        let first = set.master();
        assert_eq!(first, set.node_ports()[0]);
        set.kill(first);
        let second = set.wait_failover(first);
        assert_eq!(second, set.other(first));
        set.restart_as_replica(first);
        assert_eq!(set.role(first).as_deref(), Some("slave"));
        assert!(set.url(None).starts_with("redis+sentinel://127.0.0.1:"));
    }
}
