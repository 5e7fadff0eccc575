use std::time::Duration;

use redline_core::keys::StreamKeys;
use redline_streams::consumers;
use redline_testkit::RedisServer;

use crate::setup;

/// Group `g` on `rl`: `holder` holds 2 entries, `done` read and acked 1, `fresh` never read.
async fn three_consumers(conn: &mut redis::aio::MultiplexedConnection) {
    setup::group(conn, "rl", "g", "0").await;
    setup::add_n(conn, "rl", 3).await;
    setup::read(conn, "rl", "g", "holder", 2).await;
    let done = setup::read(conn, "rl", "g", "done", 1).await;
    setup::ack(conn, "rl", "g", &done).await;
    let _: u64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg("rl")
        .arg("g")
        .arg("fresh")
        .query_async(conn)
        .await
        .unwrap();
}

async fn names(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(String, u64)> {
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("rl")
        .arg("g")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .consumers
        .into_iter()
        .map(|c| (c.name, c.pending as u64))
        .collect()
}

#[tokio::test]
async fn consumers_are_listed_as_xinfo_lists_them() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    three_consumers(&mut conn).await;
    let report = consumers(&mut conn, &StreamKeys::new("rl", 1), None, None)
        .await
        .unwrap();
    let listed: Vec<_> = report
        .consumers
        .iter()
        .map(|c| (c.name.clone(), c.pending))
        .collect();
    assert_eq!(listed, names(&mut conn).await);
    assert!(report.removed.is_empty());
    assert!(report
        .consumers
        .iter()
        .all(|c| c.stream == "rl" && c.group == "g"));
}

#[tokio::test]
async fn pruning_keeps_every_consumer_that_holds_entries() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    three_consumers(&mut conn).await;
    let keys = StreamKeys::new("rl", 1);
    let pending_before = setup::xpending(&mut conn, "rl", "g").await;

    let nothing = consumers(&mut conn, &keys, Some("g"), Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(
        nothing.removed.is_empty(),
        "nobody has been idle for an hour"
    );
    assert_eq!(names(&mut conn).await.len(), 3);

    let report = consumers(&mut conn, &keys, Some("g"), Some(Duration::ZERO))
        .await
        .unwrap();
    let removed: Vec<_> = report.removed.iter().map(|c| c.name.as_str()).collect();
    let kept: Vec<_> = report.consumers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(removed, ["done", "fresh"]);
    assert_eq!(kept, ["holder"]);
    assert_eq!(names(&mut conn).await, [("holder".to_string(), 2)]);
    assert_eq!(
        setup::xpending(&mut conn, "rl", "g").await.len(),
        pending_before.len()
    );

    let error = consumers(&mut conn, &keys, Some("nope"), None)
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "no consumer group 'nope' on stream 'rl'");
}
