use std::time::Duration;

use redline_core::keys::StreamKeys;
use redline_streams::{claim, Error};
use redline_testkit::RedisServer;

use crate::setup;

const HOUR_MS: u64 = 3_600_000;
const HALF_HOUR: Duration = Duration::from_secs(1800);

/// Owner of each pending entry of `key`, in id order.
async fn owners(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<(String, String)> {
    setup::xpending(conn, key, "g")
        .await
        .into_iter()
        .map(|(id, consumer, _, _)| (id, consumer))
        .collect()
}

#[tokio::test]
async fn claiming_ids_moves_exactly_those_idle_long_enough() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    setup::group(&mut conn, "rl", "g", "0").await;
    let ids = setup::add_n(&mut conn, "rl", 4).await;
    setup::read(&mut conn, "rl", "g", "dead", 4).await;
    setup::age(&mut conn, "rl", "g", "dead", &ids[0], HOUR_MS).await;
    setup::age(&mut conn, "rl", "g", "dead", &ids[1], HOUR_MS).await;
    let deliveries_before = setup::xpending(&mut conn, "rl", "g").await;

    let asked = vec![ids[0].clone(), ids[2].clone(), "1-0".to_string()];
    let report = claim(&mut conn, &keys, "g", "alive", HALF_HOUR, &asked, None)
        .await
        .unwrap();

    assert_eq!(report.moved, 1);
    assert_eq!(
        report.claimed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&ids[0]]
    );
    assert_eq!(report.not_claimed, [ids[2].clone(), "1-0".to_string()]);
    let expected = vec![
        (ids[0].clone(), "alive".to_string()),
        (ids[1].clone(), "dead".to_string()),
        (ids[2].clone(), "dead".to_string()),
        (ids[3].clone(), "dead".to_string()),
    ];
    assert_eq!(owners(&mut conn, "rl").await, expected);
    let after = setup::xpending(&mut conn, "rl", "g").await;
    assert_eq!(
        after[0].3, deliveries_before[0].3,
        "a hand-over is not a delivery"
    );
}

#[tokio::test]
async fn claiming_without_ids_takes_every_idle_entry_of_every_partition() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 2);
    let mut idle = Vec::new();
    for key in keys.partitions() {
        setup::group(&mut conn, key, "g", "0").await;
        let ids = setup::add_n(&mut conn, key, 3).await;
        setup::read(&mut conn, key, "g", "dead", 3).await;
        setup::age(&mut conn, key, "g", "dead", &ids[1], HOUR_MS).await;
        idle.push((key.clone(), ids[1].clone()));
    }

    let report = claim(&mut conn, &keys, "g", "alive", HALF_HOUR, &[], None)
        .await
        .unwrap();
    let claimed: Vec<_> = report
        .claimed
        .iter()
        .map(|c| (c.stream.clone(), c.id.clone()))
        .collect();
    assert_eq!(claimed, idle);
    assert_eq!(report.moved, 2);
    for key in keys.partitions() {
        let by_alive = owners(&mut conn, key)
            .await
            .into_iter()
            .filter(|(_, c)| c == "alive");
        assert_eq!(by_alive.count(), 1);
    }

    let all = claim(&mut conn, &keys, "g", "alive", Duration::ZERO, &[], None)
        .await
        .unwrap();
    assert_eq!(all.moved, 6);
    for key in keys.partitions() {
        assert!(owners(&mut conn, key)
            .await
            .iter()
            .all(|(_, c)| c == "alive"));
    }
}

#[tokio::test]
async fn pending_entries_deleted_from_the_stream_are_dropped_and_counted() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    setup::group(&mut conn, "rl", "g", "0").await;
    let ids = setup::add_n(&mut conn, "rl", 2).await;
    setup::read(&mut conn, "rl", "g", "dead", 2).await;
    let _: u64 = redis::cmd("XDEL")
        .arg("rl")
        .arg(&ids[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let keys = StreamKeys::new("rl", 1);
    let report = claim(&mut conn, &keys, "g", "alive", Duration::ZERO, &[], None)
        .await
        .unwrap();
    assert_eq!((report.moved, report.deleted), (1, 1));
    assert_eq!(
        owners(&mut conn, "rl").await,
        [(ids[1].clone(), "alive".to_string())]
    );
}

#[tokio::test]
async fn bad_group_and_bad_ids_are_refused_before_anything_moves() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    setup::group(&mut conn, "rl", "g", "0").await;
    let keys = StreamKeys::new("rl", 1);
    let error = claim(&mut conn, &keys, "nope", "x", Duration::ZERO, &[], None)
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "no consumer group 'nope' on stream 'rl'");
    let bad = ["12-x".to_string()];
    let error = claim(&mut conn, &keys, "g", "x", Duration::ZERO, &bad, None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidId { .. }), "{error:?}");
    let missing = StreamKeys::new("absent", 1);
    let error = claim(&mut conn, &missing, "g", "x", Duration::ZERO, &[], None)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "no consumer group 'g' on stream 'absent'"
    );
}
