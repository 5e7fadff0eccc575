use redis::aio::MultiplexedConnection;
use redline_core::keys::StreamKeys;
use redline_streams::{trim, trim_plan};
use redline_testkit::RedisServer;

use crate::setup;

/// Every entry `group` has not acknowledged: its pending ids and every id after its
/// last-delivered id.
async fn unacked(conn: &mut MultiplexedConnection, key: &str, group: &str) -> Vec<String> {
    let mut ids: Vec<String> = setup::xpending(conn, key, group)
        .await
        .into_iter()
        .map(|row| row.0)
        .collect();
    let info = setup::xinfo_groups(conn, key).await;
    let name = redis::Value::BulkString(group.as_bytes().to_vec());
    let g = info.iter().find(|g| g.get("name") == Some(&name)).unwrap();
    let last: String = redis::from_redis_value(g["last-delivered-id"].clone()).unwrap();
    let after: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg(format!("({last}"))
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    ids.extend(after.ids.into_iter().map(|id| id.id));
    ids
}

/// Trims and checks that every entry some group had not acknowledged is still there.
async fn trim_checked(conn: &mut MultiplexedConnection, keys: &StreamKeys, groups: &[&str]) -> u64 {
    let key = keys.partition(0);
    let mut needed = Vec::new();
    for group in groups {
        needed.extend(unacked(conn, key, group).await);
    }
    let report = trim(conn, keys, false).await.unwrap();
    let left = setup::ids(conn, key).await;
    for id in needed {
        assert!(
            left.contains(&id),
            "{id} was trimmed before every group acked it"
        );
    }
    report.removed
}

#[tokio::test]
async fn a_group_that_read_nothing_holds_everything_back() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    setup::group(&mut conn, "rl", "redline", "0").await;
    setup::group(&mut conn, "rl", "someone-else", "0").await;
    let ids = setup::add_n(&mut conn, "rl", 6).await;
    let read = setup::read(&mut conn, "rl", "redline", "a", 6).await;
    setup::ack(&mut conn, "rl", "redline", &read).await;

    let plan = trim_plan(&mut conn, &keys).await.unwrap();
    assert_eq!(plan.removed, 0);
    assert_eq!(
        plan.streams[0].limiting_group.as_deref(),
        Some("someone-else")
    );
    assert_eq!(plan.streams[0].minid.as_deref(), Some(ids[0].as_str()));
    assert_eq!(
        trim_checked(&mut conn, &keys, &["redline", "someone-else"]).await,
        0
    );
    assert_eq!(setup::len(&mut conn, "rl").await, 6);
}

#[tokio::test]
async fn trim_removes_exactly_what_every_group_acked() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    setup::group(&mut conn, "rl", "g1", "0").await;
    setup::group(&mut conn, "rl", "g2", "0").await;
    let ids = setup::add_n(&mut conn, "rl", 8).await;
    // g1: acked 0..3, holds 3 and 4 pending, has not read 5..7.
    let read = setup::read(&mut conn, "rl", "g1", "a", 5).await;
    setup::ack(&mut conn, "rl", "g1", &read[..3]).await;
    // g2: read and acked 0..5, nothing pending: its bound is the entry after 5.
    let read = setup::read(&mut conn, "rl", "g2", "b", 6).await;
    setup::ack(&mut conn, "rl", "g2", &read).await;

    let plan = trim_plan(&mut conn, &keys).await.unwrap();
    assert!(plan.dry_run);
    assert_eq!(plan.removed, 3);
    assert_eq!(plan.streams[0].minid.as_deref(), Some(ids[3].as_str()));
    assert_eq!(plan.streams[0].limiting_group.as_deref(), Some("g1"));
    assert_eq!(
        setup::len(&mut conn, "rl").await,
        8,
        "a dry run removes nothing"
    );

    assert_eq!(trim_checked(&mut conn, &keys, &["g1", "g2"]).await, 3);
    assert_eq!(setup::ids(&mut conn, "rl").await, ids[3..]);

    // g1 acks everything it holds and reads the rest: now g2 holds the bound at 6.
    let rest = setup::read(&mut conn, "rl", "g1", "a", 10).await;
    setup::ack(&mut conn, "rl", "g1", &[ids[3].clone(), ids[4].clone()]).await;
    setup::ack(&mut conn, "rl", "g1", &rest).await;
    assert_eq!(trim_checked(&mut conn, &keys, &["g1", "g2"]).await, 3);
    assert_eq!(setup::ids(&mut conn, "rl").await, ids[6..]);
    // Again: nothing more to do.
    assert_eq!(trim_checked(&mut conn, &keys, &["g1", "g2"]).await, 0);
}

#[tokio::test]
async fn a_stream_every_group_consumed_is_emptied() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    setup::group(&mut conn, "rl", "g", "0").await;
    let ids = setup::add_n(&mut conn, "rl", 3).await;
    let read = setup::read(&mut conn, "rl", "g", "a", 3).await;
    setup::ack(&mut conn, "rl", "g", &read).await;

    let plan = trim_plan(&mut conn, &keys).await.unwrap();
    let last: Vec<&str> = ids[2].split('-').collect();
    let next = format!("{}-{}", last[0], last[1].parse::<u64>().unwrap() + 1);
    assert_eq!(plan.streams[0].minid.as_deref(), Some(next.as_str()));
    assert_eq!(
        (plan.removed, plan.streams[0].limiting_group.clone()),
        (3, None)
    );
    let report = trim(&mut conn, &keys, false).await.unwrap();
    assert_eq!(report.removed, 3);
    assert_eq!(setup::len(&mut conn, "rl").await, 0);
    // New entries after an empty trim are kept until read.
    setup::add(&mut conn, "rl", "m v=1 1").await;
    assert_eq!(trim(&mut conn, &keys, false).await.unwrap().removed, 0);
}

#[tokio::test]
async fn streams_without_groups_are_left_alone_and_say_why() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 2);
    setup::add_n(&mut conn, keys.partition(0), 4).await;
    let report = trim(&mut conn, &keys, false).await.unwrap();
    assert_eq!(report.removed, 0);
    assert_eq!(setup::len(&mut conn, keys.partition(0)).await, 4);
    let skipped: Vec<_> = report
        .streams
        .iter()
        .map(|s| s.skipped.clone().unwrap())
        .collect();
    assert_eq!(
        skipped,
        [
            "no consumer group reads this stream, so nothing is acknowledged",
            "the stream does not exist"
        ]
    );
}

#[tokio::test]
async fn a_group_moved_back_with_setid_keeps_what_it_will_read_again() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    setup::group(&mut conn, "rl", "g", "0").await;
    setup::add_n(&mut conn, "rl", 300).await;
    let read = setup::read(&mut conn, "rl", "g", "c1", 300).await;
    setup::ack(&mut conn, "rl", "g", &read[..200]).await;
    // The operator makes the group read everything again; 100 entries are still pending.
    let _: () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg("rl")
        .arg("g")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();

    assert_eq!(trim_checked(&mut conn, &keys, &["g"]).await, 0);
    assert_eq!(setup::len(&mut conn, "rl").await, 300);
    let plan = trim_plan(&mut conn, &keys).await.unwrap();
    assert_eq!(plan.streams[0].minid.as_deref(), Some(read[0].as_str()));
    assert_eq!(plan.streams[0].limiting_group.as_deref(), Some("g"));
}

#[tokio::test]
async fn an_entry_forced_into_the_pending_list_does_not_hide_the_unread_ones() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    setup::group(&mut conn, "rl", "g", "0").await;
    let ids = setup::add_n(&mut conn, "rl", 300).await;
    let read = setup::read(&mut conn, "rl", "g", "c1", 100).await;
    setup::ack(&mut conn, "rl", "g", &read).await;
    // The operator hands entry 250, which the group has not read yet, to c2.
    let _: Vec<String> = redis::cmd("XCLAIM")
        .arg("rl")
        .arg("g")
        .arg("c2")
        .arg(0)
        .arg(&ids[250])
        .arg("FORCE")
        .arg("JUSTID")
        .query_async(&mut conn)
        .await
        .unwrap();

    assert_eq!(trim_checked(&mut conn, &keys, &["g"]).await, 100);
    assert_eq!(setup::ids(&mut conn, "rl").await, ids[100..]);
}

#[tokio::test]
async fn near_maxmemory_acked_entries_behind_a_held_entry_are_deleted() {
    let redis = RedisServer::start(&["--maxmemory-policy", "noeviction"]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    setup::group(&mut conn, "rl", "g1", "0").await;
    setup::group(&mut conn, "rl", "g2", "0").await;
    let ids = setup::add_n(&mut conn, "rl", 3000).await;
    // g1 read everything and holds entry 10 (a dead letter Redis refused); g2 read 2000.
    let read = setup::read(&mut conn, "rl", "g1", "c1", 3000).await;
    let acked: Vec<String> = read.iter().filter(|id| **id != ids[10]).cloned().collect();
    setup::ack(&mut conn, "rl", "g1", &acked).await;
    let read = setup::read(&mut conn, "rl", "g2", "c1", 2000).await;
    setup::ack(&mut conn, "rl", "g2", &read).await;

    // With room to spare, only the entries below the held one go.
    assert_eq!(trim_checked(&mut conn, &keys, &["g1", "g2"]).await, 10);
    assert_eq!(setup::len(&mut conn, "rl").await, 2990);

    // At maxmemory, every entry both groups read and acked goes too: 11..2000.
    let used: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .to_string();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(&used)
        .query_async(&mut conn)
        .await
        .unwrap();
    let report = trim(&mut conn, &keys, false).await.unwrap();
    assert_eq!((report.removed, report.streams[0].punched), (1989, 1989));
    let mut expected = vec![ids[10].clone()];
    expected.extend_from_slice(&ids[2000..]);
    assert_eq!(setup::ids(&mut conn, "rl").await, expected);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
}
