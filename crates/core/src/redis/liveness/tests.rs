use std::time::Duration;

use redis::aio::ConnectionLike;
use redline_testkit::RedisServer;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::*;
use crate::redis::{Pool, RedisConfig};

#[test]
fn a_reply_or_an_error_reply_vouches_for_a_connection_a_lost_one_breaks_it() {
    let hour = Duration::from_secs(3600);
    let losses = Arc::new(AtomicU64::new(0));
    let mut liveness = Liveness::new(losses.clone());
    assert_eq!(liveness.verdict(hour), Verdict::Proven);
    assert_eq!(liveness.verdict(Duration::ZERO), Verdict::Unknown);

    let wrongtype = RedisError::from((
        redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
        "WRONGTYPE",
    ));
    liveness.note::<()>(&Err(wrongtype));
    assert_eq!(
        liveness.verdict(hour),
        Verdict::Proven,
        "the server answered"
    );

    for kind in [std::io::ErrorKind::BrokenPipe, std::io::ErrorKind::TimedOut] {
        let mut lost = Liveness::new(losses.clone());
        lost.note::<()>(&Err(RedisError::from(std::io::Error::from(kind))));
        assert_eq!(lost.verdict(hour), Verdict::Broken, "{kind:?}");
        lost.note(&Ok(()));
        assert_eq!(lost.verdict(hour), Verdict::Broken, "{kind:?}: for good");
        // Its pool's other connections are asked before they go out again, until they
        // answer.
        assert_eq!(liveness.verdict(hour), Verdict::Unknown, "{kind:?}");
        liveness.answered();
        assert_eq!(liveness.verdict(hour), Verdict::Proven, "{kind:?}");
    }
}

/// A standalone pool of one connection on which a reply vouches for `proven_for`.
fn pool(redis: &RedisServer, proven_for: Duration) -> Pool {
    pool_of(redis, 1, proven_for)
}

/// [`pool`] of `size` connections.
fn pool_of(redis: &RedisServer, size: usize, proven_for: Duration) -> Pool {
    let config = RedisConfig {
        url: redis.url(),
        pool_size: size,
        ..RedisConfig::default()
    };
    config
        .standalone_pool(proven_for)
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn answer(conn: &mut impl ConnectionLike) -> RedisResult<i64> {
    redis::cmd("EXISTS").arg("k").query_async(conn).await
}

/// How many PINGs Redis has served (the harness pings it once when it starts).
fn pings(redis: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.sync_conn())
        .unwrap_or_else(|e| panic!("INFO commandstats: {e}"));
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_ping:calls="))
        .map_or(0, |rest| {
            rest.split(',').next().unwrap_or("0").parse().unwrap_or(0)
        })
}

/// Closes every normal client connection but the one asking: `expected` of them.
fn kill_clients(redis: &RedisServer, expected: u64) {
    let killed: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query(&mut redis.sync_conn())
        .unwrap_or_else(|e| panic!("CLIENT KILL: {e}"));
    assert_eq!(killed, expected, "the pool's connections were killed");
}

#[tokio::test]
async fn a_connection_that_just_answered_goes_out_again_without_a_ping() {
    let redis = RedisServer::start(&[]);
    let before = pings(&redis);
    let pool = pool(&redis, Duration::from_secs(3600));
    for _ in 0..20 {
        let mut conn = pool.get().await.unwrap_or_else(|e| panic!("{e}"));
        answer(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    }
    // deadpool-redis pings at every checkout: 19 here.
    assert_eq!(pings(&redis) - before, 0);
}

#[tokio::test]
async fn a_connection_that_broke_is_replaced_not_handed_out_again() {
    let redis = RedisServer::start(&[]);
    let before = pings(&redis);
    let pool = pool(&redis, Duration::from_secs(3600));
    answer(&mut pool.get().await.unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    kill_clients(&redis, 1);
    // It answered a moment ago, so it goes out unchecked, and its command meets the loss.
    let lost = answer(&mut pool.get().await.unwrap_or_else(|e| panic!("{e}"))).await;
    let error = lost.expect_err("a killed connection cannot answer");
    assert!(is_gone(&error), "{error}");
    // The next checkout makes a new connection instead of handing out the broken one.
    for _ in 0..3 {
        let mut conn = pool.get().await.unwrap_or_else(|e| panic!("{e}"));
        answer(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(pings(&redis) - before, 0);
}

#[tokio::test]
async fn a_quiet_connection_is_pinged_and_replaced_if_it_died() {
    let redis = RedisServer::start(&[]);
    let before = pings(&redis);
    // Nothing vouches: every checkout pings, as deadpool-redis does.
    let pool = pool(&redis, Duration::ZERO);
    answer(&mut pool.get().await.unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    kill_clients(&redis, 1);
    // The PING finds it dead; the checkout makes a new one, whose first command answers.
    let mut conn = pool.get().await.unwrap_or_else(|e| panic!("{e}"));
    answer(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    let mut conn = pool.get().await.unwrap_or_else(|e| panic!("{e}"));
    answer(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pings(&redis) - before,
        1,
        "the last checkout pinged the new connection (the dead one's PING never arrived)"
    );
}

#[tokio::test]
async fn after_one_connection_of_a_pool_is_lost_the_others_are_pinged_before_use() {
    let redis = RedisServer::start(&[]);
    let pool = pool_of(&redis, 3, Duration::from_secs(3600));
    // Three connections, each of which just answered.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = pool.get().await.unwrap_or_else(|e| panic!("{e}"));
        answer(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
        held.push(conn);
    }
    drop(held);
    // Redis restarted, in effect: every one of them is gone.
    kill_clients(&redis, 3);
    let lost = answer(&mut pool.get().await.unwrap_or_else(|e| panic!("{e}"))).await;
    let error = lost.expect_err("a killed connection cannot answer");
    assert!(is_gone(&error), "{error}");
    // One command met the loss; the next ones go over connections that were checked.
    for _ in 0..6 {
        let mut conn = pool.get().await.unwrap_or_else(|e| panic!("{e}"));
        answer(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    }
}
