use redline_core::keys::StreamKeys;
use redline_streams::{status, Error};
use redline_testkit::RedisServer;

use crate::setup;

#[tokio::test]
async fn status_reports_what_xinfo_and_xpending_say() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 2);
    let key = keys.partition(0);
    setup::group(&mut conn, key, "g1", "0").await;
    setup::group(&mut conn, key, "idle", "0").await;
    let ids = setup::add_n(&mut conn, key, 5).await;
    let read = setup::read(&mut conn, key, "g1", "a", 3).await;
    setup::ack(&mut conn, key, "g1", &read[..1]).await;
    setup::add(&mut conn, &keys.dlq(), "bad v=1 1").await;
    setup::add(&mut conn, &keys.dlq(), "bad v=2 2").await;

    let report = status(&mut conn, &keys).await.unwrap();

    assert_eq!(report.streams.len(), 2);
    let s = &report.streams[0];
    assert!(s.exists);
    assert_eq!(s.key, "rl:{0}");
    assert_eq!(s.length, 5);
    assert_eq!(s.first_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(s.last_id.as_deref(), Some(ids[4].as_str()));
    assert!(s.memory_bytes.unwrap() > 0);
    let info = setup::xinfo_groups(&mut conn, key).await;
    assert_eq!(s.groups.len(), 2);
    let g1 = s.groups.iter().find(|g| g.name == "g1").unwrap();
    let raw = info
        .iter()
        .find(|g| g.get("name") == Some(&redis::Value::BulkString(b"g1".to_vec())))
        .unwrap();
    assert_eq!(g1.consumers, 1);
    assert_eq!(Some(g1.pending), setup::int(raw, "pending"));
    assert_eq!(g1.pending, 2);
    assert_eq!(g1.lag, Some(2));
    assert_eq!(g1.lag, setup::int(raw, "lag"));
    assert_eq!(g1.last_delivered_id, ids[2]);
    assert_eq!(g1.entries_read, Some(3));
    assert_eq!(g1.oldest_pending_id.as_deref(), Some(ids[1].as_str()));
    assert!(g1.oldest_pending_age_ms.is_some());
    assert!(g1.oldest_pending_idle_ms.is_some());
    let idle = s.groups.iter().find(|g| g.name == "idle").unwrap();
    assert_eq!((idle.consumers, idle.pending, idle.lag), (0, 0, Some(5)));
    assert_eq!(idle.last_delivered_id, "0-0");
    assert_eq!(idle.oldest_pending_id, None);

    let missing = &report.streams[1];
    assert_eq!((missing.key.as_str(), missing.exists), ("rl:{1}", false));
    assert_eq!(missing.length, 0);
    assert!(missing.groups.is_empty());
    assert_eq!(report.dlq_length, 2);
    assert_eq!(report.dlq_key, "rl:dlq");

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["dlq_length"], 2);
    assert_eq!(json["streams"][0]["key"], "rl:{0}");
    assert_eq!(json["streams"][0]["length"], 5);
    for field in ["name", "consumers", "pending", "lag", "last_delivered_id"] {
        assert!(
            json["streams"][0]["groups"][0].get(field).is_some(),
            "{field}"
        );
    }
}

#[tokio::test]
async fn lag_is_counted_when_redis_cannot_tell() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    let key = keys.partition(0);
    setup::group(&mut conn, key, "g", "0").await;
    let ids = setup::add_n(&mut conn, key, 6).await;
    setup::read(&mut conn, key, "g", "a", 2).await;
    // A deletion among the undelivered entries makes Redis' own lag unknowable.
    let _: u64 = redis::cmd("XDEL")
        .arg(key)
        .arg(&ids[3])
        .query_async(&mut conn)
        .await
        .unwrap();
    let info = setup::xinfo_groups(&mut conn, key).await;
    assert_eq!(
        setup::int(&info[0], "lag"),
        None,
        "Redis knows the lag after all"
    );

    let report = status(&mut conn, &keys).await.unwrap();
    assert_eq!(report.streams[0].groups[0].lag, Some(3));
}

#[tokio::test]
async fn a_key_of_another_type_is_named() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg("rl")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let error = status(&mut conn, &StreamKeys::new("rl", 1))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotAStream { .. }));
    assert_eq!(error.to_string(), "'rl' is a Redis string, not a stream");
}
