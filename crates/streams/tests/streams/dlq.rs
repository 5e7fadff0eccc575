use redis::aio::MultiplexedConnection;
use redline_core::keys::StreamKeys;
use redline_core::series;
use redline_streams::{dlq_list, dlq_purge, dlq_replay, dlq_show, Error};
use redline_testkit::RedisServer;

use crate::setup;

const LINES: [&str; 3] = [
    "cpu,host=a usage=1 1",
    "mem,host=b used=2i 2",
    "disk,host=c,path=/ free=3i 3",
];

/// Dead letters as the consumer writes them, one per line of [`LINES`].
async fn letters(conn: &mut MultiplexedConnection, keys: &StreamKeys) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, lp) in LINES.iter().enumerate() {
        let id: String = redis::cmd("XADD")
            .arg(keys.dlq())
            .arg("*")
            .arg(&[
                ("lp", *lp),
                ("db", "telegraf"),
                ("reason", "field type conflict"),
                ("source_id", "1-0"),
                ("source_stream", keys.partition(0)),
                ("deliveries", "5"),
                ("group", "redline"),
                ("consumer", "c1"),
                (
                    "failed_at_ms",
                    if i == 0 {
                        "1700000000000"
                    } else {
                        "1700000000001"
                    },
                ),
            ])
            .query_async(conn)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// (lp, db) of every entry of `key`.
async fn metrics(conn: &mut MultiplexedConnection, key: &str) -> Vec<(String, Option<String>)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| (e.get("lp").unwrap(), e.get("db")))
        .collect()
}

#[tokio::test]
async fn dead_letters_are_listed_and_shown_with_every_field() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    let ids = letters(&mut conn, &keys).await;

    let list = dlq_list(&mut conn, &keys, 2).await.unwrap();
    assert_eq!((list.length, list.letters.len()), (3, 2));
    let first = &list.letters[0];
    assert_eq!(first.id, ids[0]);
    assert_eq!(first.lp.as_deref(), Some(LINES[0]));
    assert_eq!(first.db.as_deref(), Some("telegraf"));
    assert_eq!(first.reason.as_deref(), Some("field type conflict"));
    assert_eq!(first.deliveries, Some(5));
    assert_eq!(first.failed_at_ms, Some(1_700_000_000_000));
    assert_eq!(first.source_stream.as_deref(), Some("rl"));
    let json = serde_json::to_value(&list.letters).unwrap();
    for field in ["id", "lp", "db", "reason", "deliveries"] {
        assert!(json[0].get(field).is_some(), "{field}");
    }
    assert_eq!((list.length, list.letters.len()), (3, 2));

    let shown = dlq_show(&mut conn, &keys, &ids[1]).await.unwrap();
    assert_eq!(shown.lp.as_deref(), Some(LINES[1]));
    assert_eq!(shown.reason.as_deref(), Some("field type conflict"));
    let error = dlq_show(&mut conn, &keys, "1-1").await.unwrap_err();
    assert!(matches!(error, Error::NoSuchDeadLetter { .. }));
    assert_eq!(error.to_string(), "no dead letter '1-1' in 'rl:dlq'");
}

#[tokio::test]
async fn replay_puts_each_letter_back_in_its_partition_and_empties_the_dlq() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 4);
    letters(&mut conn, &keys).await;

    let mut calls = Vec::new();
    let report = dlq_replay(&mut conn, &keys, None, |done, total| {
        calls.push((done, total))
    })
    .await
    .unwrap();

    assert_eq!((report.replayed, report.failed.len()), (3, 0));
    assert_eq!(calls, [(1, 3), (2, 3), (3, 3)]);
    assert_eq!(setup::len(&mut conn, &keys.dlq()).await, 0);
    let mut expected: Vec<Vec<(String, Option<String>)>> = vec![Vec::new(); 4];
    for lp in LINES {
        let partition = series::partition(series::key_of_line(lp), 4);
        expected[partition].push((lp.to_string(), Some("telegraf".to_string())));
    }
    for (i, key) in keys.partitions().iter().enumerate() {
        assert_eq!(metrics(&mut conn, key).await, expected[i], "{key}");
    }
    assert_eq!((report.replayed, report.failed.len()), (3, 0));
}

#[tokio::test]
async fn replay_by_id_moves_only_those_and_keeps_what_it_cannot_replay() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    let ids = letters(&mut conn, &keys).await;
    let foreign: String = redis::cmd("XADD")
        .arg(keys.dlq())
        .arg("*")
        .arg("reason")
        .arg("not a metric")
        .query_async(&mut conn)
        .await
        .unwrap();

    let asked = [ids[1].clone(), foreign.clone(), "1-1".to_string()];
    let report = dlq_replay(&mut conn, &keys, Some(&asked), |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.replayed, 1);
    let failed: Vec<_> = report
        .failed
        .iter()
        .map(|f| (f.id.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (foreign.as_str(), "dead letter has no 'lp' field"),
            ("1-1", "not in the dead-letter stream")
        ]
    );
    assert_eq!(
        metrics(&mut conn, "rl").await,
        [(LINES[1].to_string(), Some("telegraf".into()))]
    );
    let left = setup::ids(&mut conn, &keys.dlq()).await;
    assert_eq!(left, [ids[0].clone(), ids[2].clone(), foreign.clone()]);

    // Replaying everything leaves only the letter that cannot be replayed.
    let all = dlq_replay(&mut conn, &keys, None, |_, _| {}).await.unwrap();
    assert_eq!((all.replayed, all.failed.len()), (2, 1));
    assert_eq!(setup::ids(&mut conn, &keys.dlq()).await, [foreign]);
    assert_eq!(setup::len(&mut conn, "rl").await, 3);
}

#[tokio::test]
async fn purge_removes_the_ids_given_or_everything() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = StreamKeys::new("rl", 1);
    let ids = letters(&mut conn, &keys).await;

    let some = dlq_purge(&mut conn, &keys, Some(&[ids[0].clone(), "1-1".into()]))
        .await
        .unwrap();
    assert_eq!(some.removed, 1);
    assert_eq!(setup::ids(&mut conn, &keys.dlq()).await, ids[1..]);
    let all = dlq_purge(&mut conn, &keys, None).await.unwrap();
    assert_eq!(all.removed, 2);
    assert_eq!(setup::len(&mut conn, &keys.dlq()).await, 0);
    let none = dlq_purge(&mut conn, &StreamKeys::new("absent", 1), None)
        .await
        .unwrap();
    assert_eq!(none.removed, 0);
    let error = dlq_purge(&mut conn, &keys, Some(&["x".into()]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidId { .. }));
}
