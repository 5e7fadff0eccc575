use redline_core::keys::StreamKeys;
use redline_streams::rates::{publish, read, withdraw, ProcessRate};
use redline_streams::status;
use redline_testkit::RedisServer;

use crate::setup;

fn report(consumer: &str, limit: Option<u64>, routing: &str) -> ProcessRate {
    ProcessRate {
        group: "g".into(),
        consumer: consumer.into(),
        limit,
        rate: 1_000.0,
        routing: routing.into(),
        expires_ms: 0,
    }
}

#[tokio::test]
async fn reports_meet_in_redis_and_lapse_or_are_withdrawn() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    setup::group(&mut conn, keys.partition(0), "g", "0").await;
    setup::add_n(&mut conn, keys.partition(0), 30).await;

    let peers = publish(
        &mut conn,
        &keys,
        &report("c1", Some(10), "every entry"),
        60_000,
    )
    .await
    .unwrap();
    assert!(peers.is_empty());
    // A second process of the group, routing differently: the first one is its peer.
    let second = report("c2", Some(20), "--include-db a");
    let peers = publish(&mut conn, &keys, &second, 60_000).await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].consumer, "c1");
    assert_eq!(peers[0].routing, "every entry");

    let status = status(&mut conn, &keys).await.unwrap();
    let g = &status.rates[0];
    assert_eq!(
        (g.processes, g.max_write_rate, g.backlog, g.drain_seconds),
        (2, Some(30), 30, Some(1))
    );
    assert_eq!(g.routings, ["--include-db a", "every entry"]);

    // A report past its expiry (a process that died) and a value that is no report are
    // ignored, and deleted by the next report published.
    let lapsed = serde_json::json!({"group": "g", "consumer": "c3", "limit": null,
        "rate": 5.0, "routing": "every entry", "expires_ms": 1});
    redis::pipe()
        .hset(keys.rates(), "g\0c3", lapsed.to_string())
        .hset(keys.rates(), "junk", "not json")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let live = read(&mut conn, &keys, 2).await.unwrap();
    assert_eq!(live.len(), 2, "{live:?}");
    publish(&mut conn, &keys, &second, 60_000).await.unwrap();
    let mut fields: Vec<String> = redis::cmd("HKEYS")
        .arg(keys.rates())
        .query_async(&mut conn)
        .await
        .unwrap();
    fields.sort();
    assert_eq!(fields, ["g\0c1", "g\0c2"]);
    // A clean shutdown withdraws its report.
    withdraw(&mut conn, &keys, "g", "c1").await.unwrap();
    let left = read(&mut conn, &keys, 0).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].consumer, "c2");
}
