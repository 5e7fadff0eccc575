//! Connections under Sentinel against real processes (a master, a replica, three
//! sentinels from `redline-testkit`): the pool and the dedicated connections find the
//! master through the sentinels, follow it after a failover, and never keep writing to a
//! node that stopped being the master.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redline_core::redis::{Pool, RedisConfig};
use redline_testkit::{wait_for, RedisSentinel};

fn config(set: &RedisSentinel) -> RedisConfig {
    RedisConfig {
        url: set.url(None),
        pool_size: 2,
        ..RedisConfig::default()
    }
}

async fn xadd<C: ConnectionLike + Send>(conn: &mut C) -> redis::RedisResult<String> {
    redis::cmd("XADD")
        .arg("s")
        .arg("*")
        .arg("lp")
        .arg("m v=1i 1")
        .query_async(conn)
        .await
}

/// Writes through the pool until a write succeeds; returns the master it went to.
async fn write_through(pool: &Pool, within: Duration) -> String {
    wait_for("a write through the pool", within, || async {
        let mut conn = pool.get().await.ok()?;
        xadd(&mut conn).await.ok()?;
        conn.master().map(str::to_string)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_follows_a_killed_master_to_the_promoted_replica() {
    let mut set = RedisSentinel::start();
    let first = set.master();
    let pool = config(&set).pool().unwrap();
    assert_eq!(
        write_through(&pool, Duration::from_secs(5)).await,
        format!("127.0.0.1:{first}")
    );

    set.kill(first);
    let second = set.wait_failover(first);
    assert_eq!(
        write_through(&pool, Duration::from_secs(10)).await,
        format!("127.0.0.1:{second}")
    );

    // A dedicated connection finds the new master too, and says which it is.
    let conn = config(&set).connect().await.unwrap();
    assert_eq!(conn.master(), Some(format!("127.0.0.1:{second}").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_meets_readonly_takes_its_idle_siblings_out_of_the_pool() {
    let mut set = RedisSentinel::start();
    let first = set.master();
    let pool = config(&set).pool().unwrap();
    // Two connections to the master, back in the pool.
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    xadd(&mut a).await.unwrap();
    xadd(&mut b).await.unwrap();
    drop((a, b));

    // The master stops being one without closing its connections (as after a partition,
    // before the sentinels reconfigure it): it still answers PING, and refuses writes.
    let mut node = set
        .node(first)
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let unused = redline_testkit::free_port();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(unused)
        .query_async(&mut node)
        .await
        .unwrap();

    let mut conn = pool.get().await.unwrap();
    let refused = xadd(&mut conn).await.unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");
    drop(conn);
    // The other idle connection still answers PING, but it is never handed out again: the
    // next connection is made through the sentinels, which name a node that is no master.
    match pool.get().await {
        Ok(conn) => {
            panic!(
            "a connection to {:?} was handed out (first master {first}, nodes {:?}, roles {:?})",
            conn.master(),
            set.node_ports(),
            set.node_ports().iter().map(|p| set.role(*p)).collect::<Vec<_>>()
        )
        }
        Err(error) => {
            let error = error.to_string();
            assert!(error.contains("mymaster"), "{error}");
        }
    }
}
