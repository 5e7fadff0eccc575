//! `owned` and `touch` against a real `redis-server`: exact answers, the paging of
//! XPENDING, and which errors are the group being gone and which are errors.

use std::time::Duration;

use redline_core::redis::RedisConfig;
use redline_testkit::RedisServer;

use super::*;

const KEY: &str = "m";
const GROUP: &str = "g";

/// A Redis holding `n` entries of `KEY`, all read by consumer `c1` once; their ids in order.
async fn read_by_c1(n: usize) -> (RedisServer, Vec<String>) {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(KEY)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("XADD")
            .arg(KEY)
            .arg("*")
            .arg("lp")
            .arg(format!("m v={i}"));
    }
    let ids: Vec<String> = pipe.query_async(&mut conn).await.unwrap();
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("c1")
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(KEY)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(read.keys[0].ids.len(), n);
    (redis, ids)
}

async fn pooled(redis: &RedisServer) -> Connection {
    let pool = RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    }
    .pool()
    .unwrap();
    conn::get(&pool).await.unwrap()
}

/// `(id, consumer, idle ms, delivery count)` of every pending entry.
async fn pending_rows(redis: &RedisServer) -> Vec<(String, String, u64, u64)> {
    redis::cmd("XPENDING")
        .arg(KEY)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap()
}

/// Destroys the group: what `owned` and `touch` meet when Redis lost it.
async fn destroy_group(redis: &RedisServer) {
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(KEY)
        .arg(GROUP)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
}

async fn acl(redis: &RedisServer, rule: &str) {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg(rule)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn owned_pages_past_entries_of_the_consumer_that_are_not_asked_for() {
    // 250 entries held by c1; asked for the first and the last only, XPENDING answers in
    // pages of 100: the last id is on the third page.
    let (redis, ids) = read_by_c1(250).await;
    let mut conn = pooled(&redis).await;
    let mut c2 = redis.conn().await;
    let _: Vec<String> = redis::cmd("XCLAIM")
        .arg(KEY)
        .arg(GROUP)
        .arg("c2")
        .arg(0)
        .arg(&ids[100])
        .arg("JUSTID")
        .query_async(&mut c2)
        .await
        .unwrap();
    let asked = [ids[0].as_str(), ids[100].as_str(), ids[249].as_str()];
    xpending_calls(&redis).await;
    let found = owned(&mut conn, KEY, GROUP, "c1", &asked).await.unwrap();
    let expected: HashMap<String, u64> = [(ids[0].clone(), 1), (ids[249].clone(), 1)].into();
    assert_eq!(found, Some(expected), "ids[100] is c2's");
    assert_eq!(
        xpending_calls(&redis).await,
        3,
        "pages of 100, 100 and 49 rows: the last one not full ends it"
    );
    // One full page holding every id asked for: no second page.
    let first: Vec<&str> = ids[..100].iter().map(String::as_str).collect();
    let found = owned(&mut conn, KEY, GROUP, "c1", &first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.len(), 100);
    assert!(found.values().all(|n| *n == 1));
    assert_eq!(
        xpending_calls(&redis).await,
        1,
        "every id was on the first page"
    );
}

#[tokio::test]
async fn owned_is_none_when_the_group_is_gone_and_an_error_when_xpending_fails() {
    let (redis, ids) = read_by_c1(3).await;
    let mut conn = pooled(&redis).await;
    let asked: Vec<&str> = ids.iter().map(String::as_str).collect();

    // Redis refuses XPENDING itself (here an ACL): an error, not "the group is gone".
    acl(&redis, "-xpending").await;
    let refused = owned(&mut conn, KEY, GROUP, "c1", &asked).await;
    let error = refused
        .expect_err("a refused XPENDING is an error")
        .to_string();
    assert_eq!(
        error,
        "NoPerm: this user has no permissions to run the 'xpending' command"
    );
    acl(&redis, "+xpending").await;

    destroy_group(&redis).await;
    let gone = owned(&mut conn, KEY, GROUP, "c1", &asked).await.unwrap();
    assert_eq!(gone, None);
}

#[tokio::test]
async fn touch_sets_given_counts_keeps_the_others_and_ignores_only_a_lost_group() {
    let (redis, ids) = read_by_c1(3).await;
    let mut conn = pooled(&redis).await;
    // Idle time to reset: touching is what keeps a live consumer's retried entries from
    // being claimed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let touched = [(ids[0].as_str(), Some(7)), (ids[1].as_str(), None)];
    touch(&mut conn, KEY, GROUP, "c1", &touched).await.unwrap();
    let rows = pending_rows(&redis).await;
    let counts: Vec<u64> = rows.iter().map(|r| r.3).collect();
    assert_eq!(counts, [7, 1, 1]);
    let untouched = rows[2].2;
    assert!(untouched >= 50, "{rows:?}");
    assert!(rows[..2].iter().all(|row| row.2 < untouched), "{rows:?}");

    acl(&redis, "-xclaim").await;
    let refused = touch(&mut conn, KEY, GROUP, "c1", &touched).await;
    let error = refused
        .expect_err("a refused XCLAIM is an error")
        .to_string();
    let one = "NoPerm: this user has no permissions to run the 'xclaim' command";
    assert_eq!(
        error,
        format!("Pipeline failures: [(Index 0, error: {one}), (Index 1, error: {one})]")
    );
    acl(&redis, "+xclaim").await;

    destroy_group(&redis).await;
    touch(&mut conn, KEY, GROUP, "c1", &touched).await.unwrap();
}

/// XPENDING commands Redis ran since the last call (`INFO commandstats`, then reset).
async fn xpending_calls(redis: &RedisServer) -> u64 {
    let mut conn = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_xpending:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}
