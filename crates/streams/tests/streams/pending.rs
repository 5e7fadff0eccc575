use std::time::Duration;

use redline_core::keys::StreamKeys;
use redline_streams::{pending, Error, PendingFilter};
use redline_testkit::RedisServer;

use crate::setup;

const HOUR_MS: u64 = 3_600_000;

/// Stream `rl` with group `g`: consumer `a` holds 3 entries (the first idle for an hour),
/// `b` holds 1; one more entry is unread.
async fn held(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    setup::group(conn, "rl", "g", "0").await;
    let ids = setup::add_n(conn, "rl", 5).await;
    setup::read(conn, "rl", "g", "a", 3).await;
    setup::read(conn, "rl", "g", "b", 1).await;
    setup::age(conn, "rl", "g", "a", &ids[0], HOUR_MS).await;
    ids
}

#[tokio::test]
async fn pending_lists_what_xpending_lists() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let ids = held(&mut conn).await;
    let keys = StreamKeys::new("rl", 1);

    let report = pending(&mut conn, &keys, &PendingFilter::default())
        .await
        .unwrap();

    let summary: Vec<_> = report
        .consumers
        .iter()
        .map(|c| (c.consumer.as_str(), c.pending, c.oldest_id.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", 3, Some(ids[0].as_str())),
            ("b", 1, Some(ids[3].as_str()))
        ]
    );
    assert!(report.consumers[0].oldest_idle_ms.unwrap() >= HOUR_MS);
    let raw = setup::xpending(&mut conn, "rl", "g").await;
    let listed: Vec<_> = report
        .entries
        .iter()
        .map(|e| (e.id.clone(), e.consumer.clone(), e.deliveries))
        .collect();
    let expected: Vec<_> = raw
        .iter()
        .map(|(id, c, _, d)| (id.clone(), c.clone(), *d))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(report.entries.len(), 4);
    assert!(!report.more);
    assert!(report
        .entries
        .iter()
        .all(|e| e.stream == "rl" && e.group == "g" && e.lp.is_none()));

    let json = serde_json::to_value(&report.entries).unwrap();
    for field in ["id", "consumer", "idle_ms", "deliveries"] {
        assert!(json[0].get(field).is_some(), "{field}");
    }
    assert!(json[0].get("lp").is_none());
}

#[tokio::test]
async fn filters_select_consumer_idle_and_count() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let ids = held(&mut conn).await;
    let keys = StreamKeys::new("rl", 1);
    let run = |filter: PendingFilter| {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move { pending(&mut conn, &keys, &filter).await.unwrap() }
    };

    let only_b = run(PendingFilter {
        consumer: Some("b".into()),
        ..PendingFilter::default()
    })
    .await;
    assert_eq!(only_b.consumers.len(), 1);
    assert_eq!(
        only_b.entries.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&ids[3]]
    );

    let idle = run(PendingFilter {
        min_idle: Some(Duration::from_secs(1800)),
        ..PendingFilter::default()
    })
    .await;
    assert_eq!(
        idle.entries.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&ids[0]]
    );
    assert_eq!(
        idle.consumers.len(),
        2,
        "the summary counts every pending entry"
    );

    let two = run(PendingFilter {
        count: 2,
        ..PendingFilter::default()
    })
    .await;
    assert_eq!(
        two.entries.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&ids[0], &ids[1]]
    );
    assert!(two.more);
    let four = run(PendingFilter {
        count: 4,
        ..PendingFilter::default()
    })
    .await;
    assert!(!four.more);

    let shown = run(PendingFilter {
        show: true,
        count: 1,
        ..PendingFilter::default()
    })
    .await;
    assert_eq!(shown.entries[0].lp.as_deref(), Some("m,i=0 v=0i 0"));
}

#[tokio::test]
async fn pending_over_partitions_and_groups() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 2);
    for key in keys.partitions() {
        setup::group(&mut conn, key, "g", "0").await;
        setup::group(&mut conn, key, "other", "0").await;
        setup::add_n(&mut conn, key, 2).await;
        setup::read(&mut conn, key, "g", "a", 2).await;
        setup::read(&mut conn, key, "other", "z", 1).await;
    }
    let all = pending(&mut conn, &keys, &PendingFilter::default())
        .await
        .unwrap();
    assert_eq!(all.entries.len(), 6);
    let g_only = PendingFilter {
        group: Some("g".into()),
        ..PendingFilter::default()
    };
    let g = pending(&mut conn, &keys, &g_only).await.unwrap();
    assert_eq!(g.entries.len(), 4);
    let streams: Vec<_> = g.entries.iter().map(|e| e.stream.as_str()).collect();
    assert_eq!(streams, ["rl:{0}", "rl:{0}", "rl:{1}", "rl:{1}"]);
}

#[tokio::test]
async fn an_unknown_group_is_named() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    held(&mut conn).await;
    let filter = PendingFilter {
        group: Some("nope".into()),
        ..PendingFilter::default()
    };
    let error = pending(&mut conn, &StreamKeys::new("rl", 1), &filter)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoSuchGroup { .. }));
    assert_eq!(error.to_string(), "no consumer group 'nope' on stream 'rl'");
    let empty = pending(
        &mut conn,
        &StreamKeys::new("absent", 1),
        &PendingFilter::default(),
    )
    .await
    .unwrap();
    assert!(empty.consumers.is_empty() && empty.entries.is_empty());
}
