//! [`RedisCluster`]: a Redis Cluster of `redis-server` processes on loopback, per test.
//!
//! Invariants:
//! - every node binds 127.0.0.1 only, on a port `p` whose cluster bus port `p + 10000` was
//!   free too, with its data and `nodes.conf` in its own temp dir;
//! - [`RedisCluster::start`] returns only once `redis-cli --cluster create` assigned every
//!   slot, every node says `cluster_state:ok` and knows every other node, and every replica's
//!   link to its master is up (so a killed master can fail over at once);
//! - drop SIGKILLs and reaps every node before its directory is deleted.
//!
//! Nodes run with `cluster-node-timeout 1000` (a dead master is detected within about a
//! second) and `cluster-replica-validity-factor 0` (a replica may always take over), and
//! replicas sync without the 5 s diskless delay, so a failover takes a few seconds.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::find_binary;
use crate::redis::RedisServer;
use crate::{free_port_pair, wait_until_sync};

/// The offset of a node's cluster bus port.
const BUS_OFFSET: u16 = 10_000;

/// How long the cluster has to form, or to settle after a failover or a restart.
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);

/// How many port pairs in a row may be taken before a node binds them.
const PORT_ATTEMPTS: usize = 5;

/// A Redis Cluster on loopback: `masters` masters, each with `replicas` replicas.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes, in the order given to `redis-cli --cluster create` (masters first).
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each (`redis-cli --cluster create …
    /// --cluster-replicas <replicas>`) and waits until the cluster is healthy. Every node
    /// gets `extra` after the cluster options, e.g. `&["--appendonly", "yes"]`.
    ///
    /// # Panics
    /// If a node does not start, `redis-cli` fails, or the cluster is not healthy within
    /// 20 s; with the logs.
    pub fn start(masters: usize, replicas: usize, extra: &[&str]) -> Self {
        assert!(masters >= 3, "Redis Cluster needs at least 3 masters");
        let nodes: Vec<RedisServer> = (0..masters * (replicas + 1))
            .map(|_| start_node(extra))
            .collect();
        let cluster = Self { nodes };
        let mut create = Command::new(find_binary(
            "REDLINE_REDIS_CLI",
            "redis-cli",
            "/usr/bin/redis-cli",
            "redis-tools",
        ));
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null());
        let output = create
            .output()
            .unwrap_or_else(|error| panic!("cannot run redis-cli --cluster create: {error}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}):\n{}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            cluster.log_tails()
        );
        cluster.wait_healthy();
        cluster
    }

    /// Every node's URL, `redis://127.0.0.1:<port>/`, masters first as created.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Every node's URL joined by commas: redline's `--redis-url` for a cluster.
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// The first node's URL: a seed for `--redis-url … --redis-cluster`.
    pub fn seed(&self) -> String {
        self.nodes[0].url()
    }

    /// Every node's port, in creation order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The node on `port`.
    ///
    /// # Panics
    /// If no node listens there.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        let index = self.index_of(port);
        &mut self.nodes[index]
    }

    /// A cluster client over every node (needs a Tokio runtime for async connections).
    ///
    /// # Panics
    /// Never for the URLs this cluster makes.
    pub fn client(&self) -> ::redis::cluster::ClusterClient {
        ::redis::cluster::ClusterClient::new(self.urls())
            .unwrap_or_else(|error| panic!("invalid cluster URLs: {error}"))
    }

    /// A new async cluster connection (needs a Tokio runtime).
    ///
    /// # Panics
    /// If the cluster can't be reached.
    pub async fn conn(&self) -> ::redis::cluster_async::ClusterConnection {
        self.client()
            .get_async_connection()
            .await
            .unwrap_or_else(|error| panic!("cannot connect to the cluster: {error}"))
    }

    /// The port of the master serving `key`'s slot now, as a live node sees it.
    ///
    /// # Panics
    /// If no live node answers or no master serves the slot.
    pub fn master_of(&mut self, key: &str) -> u16 {
        let mut conn = self.live_conn();
        let slot: u16 = ::redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .unwrap_or_else(|error| panic!("CLUSTER KEYSLOT {key}: {error}"));
        slot_masters(&mut conn)
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, port)| port)
            .unwrap_or_else(|| panic!("no master serves slot {slot} ({key})"))
    }

    /// The ports of the masters that serve slots now, as a live node sees it.
    ///
    /// # Panics
    /// If no live node answers.
    pub fn masters(&mut self) -> BTreeSet<u16> {
        let mut conn = self.live_conn();
        slot_masters(&mut conn)
            .into_iter()
            .map(|(_, _, port)| port)
            .collect()
    }

    /// The ports of the replicas the master on `port` has now, as `INFO replication` there
    /// lists them.
    ///
    /// # Panics
    /// If that node does not answer.
    pub fn replicas_of(&self, port: u16) -> Vec<u16> {
        let info = node_info(port, "INFO", Some("replication"))
            .unwrap_or_else(|| panic!("INFO replication on {port}: no answer"));
        let count: usize = field(&info, "connected_slaves").map_or(0, |n| n.parse().unwrap_or(0));
        // `slave0:ip=127.0.0.1,port=7001,state=online,offset=…,lag=0`
        (0..count)
            .filter_map(|i| {
                field(&info, &format!("slave{i}"))?
                    .split(',')
                    .find_map(|part| part.strip_prefix("port="))?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Crash: SIGKILLs the node on `port` (its directory is kept for
    /// [`RedisCluster::start_again`]).
    pub fn kill(&mut self, port: u16) {
        self.node(port).kill();
    }

    /// Starts the node on `port` again after [`RedisCluster::kill`]: it reads its
    /// `nodes.conf`, finds its replica promoted, and rejoins as that replica's replica.
    /// Returns once the cluster is healthy again.
    ///
    /// # Panics
    /// As [`RedisServer::start_again`], or if the cluster does not settle within 20 s.
    pub fn start_again(&mut self, port: u16) {
        self.node(port).start_again();
        self.wait_healthy();
    }

    /// Waits until every live node says `cluster_state:ok` with every slot served, knows
    /// every node, agrees on the masters, and every live replica's link to its master is up.
    ///
    /// # Panics
    /// When that takes longer than 20 s, with the logs.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        let expected = self.nodes.len();
        loop {
            if self.is_healthy(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster on ports {:?} did not become healthy within {SETTLE_DEADLINE:?}\n{}",
                self.ports(),
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the master serving `key` is another node than `old_master`, and the
    /// live nodes are `cluster_state:ok` (the failover is over).
    ///
    /// # Panics
    /// When that takes longer than 20 s.
    pub fn wait_failover(&mut self, key: &str, old_master: u16) {
        wait_until_sync(
            &format!("a replica to take over {key} from {old_master}"),
            SETTLE_DEADLINE,
            || {
                self.try_master_of(key)
                    .is_some_and(|port| port != old_master)
                    && self.live_ok()
            },
        );
    }

    /// The last lines of every node's logs, for failure messages.
    pub fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("===== node {} =====\n{}", node.port(), node.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
    }

    /// A connection to the first node that answers.
    fn live_conn(&mut self) -> ::redis::Connection {
        self.nodes
            .iter_mut()
            .filter_map(|node| {
                if !node.is_running() {
                    return None;
                }
                node.client()
                    .get_connection_with_timeout(Duration::from_millis(500))
                    .ok()
            })
            .next()
            .unwrap_or_else(|| panic!("no node of the cluster answers"))
    }

    fn try_master_of(&mut self, key: &str) -> Option<u16> {
        let mut conn = self.live_conn();
        let slot: u16 = ::redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .ok()?;
        slot_masters(&mut conn)
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, port)| port)
    }

    /// Every live node is `cluster_state:ok`.
    fn live_ok(&mut self) -> bool {
        let ports: Vec<u16> = self
            .nodes
            .iter_mut()
            .filter_map(|node| node.is_running().then_some(node.port()))
            .collect();
        ports.iter().all(|port| {
            node_info(*port, "CLUSTER", Some("INFO"))
                .is_some_and(|info| field(&info, "cluster_state") == Some("ok"))
        })
    }

    fn is_healthy(&self, expected_nodes: usize) -> bool {
        let mut masters_seen: Option<Vec<(u16, u16, u16)>> = None;
        for node in &self.nodes {
            let port = node.port();
            let Some(info) = node_info(port, "CLUSTER", Some("INFO")) else {
                return false;
            };
            if field(&info, "cluster_state") != Some("ok")
                || field(&info, "cluster_slots_ok") != Some("16384")
                || field(&info, "cluster_known_nodes") != Some(&expected_nodes.to_string())
            {
                return false;
            }
            let Some(replication) = node_info(port, "INFO", Some("replication")) else {
                return false;
            };
            if field(&replication, "role") == Some("slave")
                && field(&replication, "master_link_status") != Some("up")
            {
                return false;
            }
            let Ok(client) = ::redis::Client::open(node.url()) else {
                return false;
            };
            let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500))
            else {
                return false;
            };
            let mut masters = slot_masters(&mut conn);
            masters.sort_unstable();
            match &masters_seen {
                None => masters_seen = Some(masters),
                Some(seen) if *seen != masters => return false,
                Some(_) => {}
            }
        }
        true
    }
}

/// Starts one cluster node on a port whose bus port is free too.
fn start_node(extra: &[&str]) -> RedisServer {
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port_pair(BUS_OFFSET);
        let mut args: Vec<String> = [
            "--cluster-enabled",
            "yes",
            // Relative to the node's --dir, its own temp dir.
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            "--cluster-replica-validity-factor",
            "0",
            "--repl-diskless-sync-delay",
            "0",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        if let Some(node) = RedisServer::start_on(port, &args) {
            return node;
        }
    }
    panic!("redis-server: {PORT_ATTEMPTS} free port pairs in a row were taken before it bound them")
}

/// `CMD [SUB]` on the node at `port` as text, `None` when it does not answer.
fn node_info(port: u16, command: &str, sub: Option<&str>) -> Option<String> {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let mut cmd = ::redis::cmd(command);
    if let Some(sub) = sub {
        cmd.arg(sub);
    }
    cmd.query::<String>(&mut conn).ok()
}

/// The value of `name:value` in an INFO-style text.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
}

/// `CLUSTER SLOTS` as (first slot, last slot, master port) ranges; empty on any error.
fn slot_masters(conn: &mut ::redis::Connection) -> Vec<(u16, u16, u16)> {
    let ranges: Vec<::redis::Value> = match ::redis::cmd("CLUSTER").arg("SLOTS").query(conn) {
        Ok(ranges) => ranges,
        Err(_) => return Vec::new(),
    };
    ranges
        .into_iter()
        .filter_map(|range| {
            let ::redis::Value::Array(parts) = range else {
                return None;
            };
            let int = |value: &::redis::Value| match value {
                ::redis::Value::Int(i) => u16::try_from(*i).ok(),
                _ => None,
            };
            let start = int(parts.first()?)?;
            let end = int(parts.get(1)?)?;
            let ::redis::Value::Array(master) = parts.get(2)? else {
                return None;
            };
            Some((start, end, int(master.get(1)?)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_masters_share_every_slot() {
        let mut cluster = RedisCluster::start(3, 0, &[]);
        assert_eq!(cluster.masters().len(), 3);
        assert_eq!(cluster.urls().len(), 3);
        assert!(cluster.url().contains(','));
        let ports = cluster.ports();
        for port in &ports {
            assert!(ports.contains(&cluster.master_of(&format!("k{port}"))));
        }
        let dirs: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| n.dir().to_path_buf())
            .collect();
        drop(cluster);
        assert!(dirs.iter().all(|dir| !dir.exists()));
    }

    #[test]
    fn a_killed_master_is_replaced_by_its_replica() {
        let mut cluster = RedisCluster::start(3, 1, &[]);
        assert_eq!(cluster.ports().len(), 6);
        let old = cluster.master_of("key");
        cluster.kill(old);
        cluster.wait_failover("key", old);
        let new = cluster.master_of("key");
        assert_ne!(new, old);
        cluster.start_again(old);
        assert_eq!(
            cluster.master_of("key"),
            new,
            "the old master rejoins as a replica"
        );
        assert_eq!(cluster.masters().len(), 3);
    }
}
