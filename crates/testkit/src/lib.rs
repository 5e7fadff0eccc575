//! redline-testkit: real servers for tests and benchmarks, one set per test.
//!
//! - [`RedisServer`] runs `redis-server` and [`InfluxServer`] runs InfluxDB 1.x `influxd`, each
//!   on free loopback ports with its data in its own temporary directory. Both can be stopped,
//!   killed and started again on the same ports and data, and are killed, reaped and deleted
//!   on drop.
//! - [`RedisCluster`] runs a Redis Cluster of such servers on loopback (3 masters, with or
//!   without a replica each) and can kill a master to make its replica take over.
//! - [`RedisSentinel`] runs a master, a replica and three `redis-sentinel`s watching them,
//!   optionally with passwords on both, and can kill the master and bring it back as a
//!   replica of the one the sentinels promoted.
//! - [`Tmpfs`] mounts a small tmpfs (as root) that tests fill to make a disk full.
//! - [`ChildGuard`] runs our own binary (`env!("CARGO_BIN_EXE_redline")`) with its output
//!   captured (in a temp dir, or in files the caller keeps across restarts), and kills it on
//!   drop.
//! - [`wait_until`], [`wait_for`] and [`wait_until_sync`] poll a condition with a deadline;
//!   tests never sleep to synchronise; [`within`] bounds a future that must end by itself
//!   (a delivery), so a bug that loops for ever fails in seconds.
//!
//! Invariant: every process a test starts dies with the test, and every temp dir goes with
//! it, even when the test panics (`Drop` of each guard, `process.rs`).
//!
//! Process management is synchronous (`std::process`), so the harness works from plain
//! `#[test]`s, `#[tokio::test]`s and bench binaries alike; only the client helpers
//! ([`RedisServer::conn`], the [`InfluxServer`] queries) are async and need a Tokio runtime.
//!
//! Binaries are found through `REDLINE_REDIS_SERVER` / `REDLINE_REDIS_SENTINEL` /
//! `REDLINE_INFLUXD`, else on `PATH`. `scripts/test` installs them (`apt-get install
//! redis-server redis-sentinel influxdb`) when missing.
//!
//! ```no_run
//! # async fn example() {
//! use std::time::Duration;
//! use redline_testkit::{wait_until, InfluxServer, RedisServer};
//!
//! let redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
//! let influx = InfluxServer::start();
//! influx.create_db("telegraf").await;
//! // ... run the producer and consumer against redis.url() and influx.url() ...
//! wait_until("3 points in InfluxDB", Duration::from_secs(10), || async {
//!     influx.count_points("telegraf", "cpu").await == 3
//! })
//! .await;
//! # }
//! ```

mod cluster;
mod influx;
mod process;
mod redis;
mod sentinel;
mod tied;
mod tmpfs;
mod wait;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

pub use crate::cluster::RedisCluster;
pub use crate::influx::{InfluxOptions, InfluxServer};
pub use crate::process::ChildGuard;
pub use crate::redis::RedisServer;
pub use crate::sentinel::{RedisSentinel, SentinelOptions, MASTER_NAME};
pub use crate::tmpfs::Tmpfs;
pub use crate::wait::{wait_for, wait_until, wait_until_sync, within, POLL_INTERVAL};

/// Ports this process has already handed out. Tests run in parallel threads; without this,
/// two of them could be handed the same just-released port before either server binds it.
/// (A port taken by another process is handled by the servers' retry on a new port.)
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed
/// out before: binds `127.0.0.1:0`, reads the port the OS chose, and drops the listener.
///
/// # Panics
/// If no loopback port can be bound.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|error| panic!("cannot bind 127.0.0.1:0: {error}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|error| panic!("bound socket has no address: {error}"))
            .port();
        // A poisoned lock only means another test panicked while holding it; the set is
        // still a valid set of ports.
        let mut handed_out = HANDED_OUT
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// A free port `p` on 127.0.0.1 whose `p + offset` is free too, both reserved in this
/// process: a Redis Cluster node listens on `p` and on its cluster bus, `p + 10000`.
///
/// # Panics
/// If no loopback port can be bound.
pub(crate) fn free_port_pair(offset: u16) -> u16 {
    loop {
        let port = free_port();
        let Some(other) = port.checked_add(offset) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, other)).is_err() {
            continue;
        }
        let mut handed_out = HANDED_OUT
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if handed_out.insert(other) {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable_and_never_repeats() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let unique: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        TcpListener::bind((Ipv4Addr::LOCALHOST, ports[0])).expect("the port is free");
    }
}
