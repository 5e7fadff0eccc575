//! The read → write → ack loop with the file sink, whose output a test can read exactly.

use std::collections::HashSet;
use std::time::Duration;

use redline_testkit::{wait_until, RedisServer};

use crate::support::{
    add_metrics, config, dead_letters, file_lines, file_sink, influx_sink, line, pending,
    pending_entries, wait_nothing_pending, xadd, Consumer, PATIENCE, STREAM,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_starts_at_the_oldest_entry() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    // Buffered before any consumer group exists.
    add_metrics(&mut conn, STREAM, "cpu", 0..100, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(config(&redis, "c1", file_sink(&path)));

    wait_until("100 lines in the file", PATIENCE, || async {
        file_lines(&path).len() >= 100
    })
    .await;
    wait_nothing_pending(&conn).await;
    consumer.stop().await;
    let lines = file_lines(&path);
    let expected: Vec<String> = (0..100).map(|i| line("cpu", i)).collect();
    assert_eq!(
        lines, expected,
        "every buffered entry, once, in stream order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_entries_arrive_once_and_nothing_stays_pending() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..5_000, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(config(&redis, "c1", file_sink(&path)));
    add_metrics(&mut conn, STREAM, "cpu", 5_000..10_000, None).await;

    wait_until("10,000 lines in the file", PATIENCE, || async {
        file_lines(&path).len() >= 10_000
    })
    .await;
    wait_nothing_pending(&conn).await;
    consumer.stop().await;
    let lines = file_lines(&path);
    assert_eq!(lines.len(), 10_000);
    let unique: HashSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), 10_000, "no duplicates");
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partition_is_read() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    for (p, key) in [
        "redline:metrics:{0}",
        "redline:metrics:{1}",
        "redline:metrics:{2}",
    ]
    .iter()
    .enumerate()
    {
        add_metrics(&mut conn, key, "cpu", p * 1000..p * 1000 + 300, None).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(redline_consumer::Config {
        partitions: 3,
        batch_size: 100, // a read returns up to 100 from each partition: split in three
        ..config(&redis, "c1", file_sink(&path))
    });
    wait_until("900 lines", PATIENCE, || async {
        file_lines(&path).len() >= 900
    })
    .await;
    consumer.stop().await;
    assert_eq!(file_lines(&path).len(), 900);
    for key in [
        "redline:metrics:{0}",
        "redline:metrics:{1}",
        "redline:metrics:{2}",
    ] {
        assert_eq!(pending(&mut conn, key).await, 0, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_redelivers_its_own_pending_entries() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    // First life: the sink is unreachable, so everything read stays pending.
    let unreachable = format!("http://127.0.0.1:{}", redline_testkit::free_port());
    let first = Consumer::start(config(&redis, "worker-1", influx_sink(&unreachable, "db")));
    add_metrics(&mut conn, STREAM, "cpu", 0..200, None).await;
    wait_until("200 entries pending for worker-1", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 200 }
    })
    .await;
    first.stop().await;
    assert_eq!(
        pending(&mut conn, STREAM).await,
        200,
        "nothing acked without the sink"
    );
    let owners: HashSet<String> = pending_entries(&mut conn, STREAM)
        .await
        .into_iter()
        .map(|(_, c, _)| c)
        .collect();
    assert_eq!(owners, HashSet::from(["worker-1".to_string()]));

    // Second life under the same name, min_idle far away: only the own-pending re-read can
    // deliver them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let second = Consumer::start(redline_consumer::Config {
        min_idle: Duration::from_secs(600),
        ..config(&redis, "worker-1", file_sink(&path))
    });
    add_metrics(&mut conn, STREAM, "cpu", 200..250, None).await;
    wait_until("250 lines", PATIENCE, || async {
        file_lines(&path).len() >= 250
    })
    .await;
    wait_nothing_pending(&conn).await;
    second.stop().await;
    let lines = file_lines(&path);
    assert_eq!(lines.len(), 250);
    assert_eq!(
        lines[..200],
        (0..200).map(|i| line("cpu", i)).collect::<Vec<_>>()[..],
        "re-read first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_entries_are_dead_lettered_and_the_rest_written() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..10, None).await;
    let foreign = xadd(
        &mut conn,
        STREAM,
        &[
            vec![("message", b"hello".to_vec())],
            vec![("lp", vec![0xff, 0xfe, 0x00]), ("db", b"x".to_vec())],
        ],
    )
    .await;
    // A field name that is not UTF-8 (Redis allows any bytes).
    let binary_name: String = redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg(&[0xff_u8, 0xfe][..])
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    add_metrics(&mut conn, STREAM, "cpu", 10..20, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(config(&redis, "c1", file_sink(&path)));

    wait_until("3 dead letters", PATIENCE, || {
        let mut conn = conn.clone();
        async move { dead_letters(&mut conn).await.len() >= 3 }
    })
    .await;
    wait_until("20 lines", PATIENCE, || async {
        file_lines(&path).len() >= 20
    })
    .await;
    wait_nothing_pending(&conn).await;
    consumer.stop().await;
    assert_eq!(file_lines(&path).len(), 20);
    let letters = dead_letters(&mut conn).await;
    assert_eq!(letters.len(), 3);
    assert_eq!(letters[0]["source_id"], foreign[0]);
    assert_eq!(
        letters[0]["reason"],
        "undecodable entry: entry has no 'lp' field"
    );
    assert_eq!(letters[0]["source_stream"], STREAM);
    assert_eq!(letters[0]["group"], "redline");
    assert_eq!(letters[0]["consumer"], "c1");
    assert_eq!(letters[0]["deliveries"], "1");
    assert!(letters[0]["failed_at_ms"].parse::<u64>().unwrap() > 1_600_000_000_000);
    assert_eq!(letters[1]["source_id"], foreign[1]);
    assert_eq!(
        letters[1]["reason"],
        "undecodable entry: entry field 'lp' is not a UTF-8 string"
    );
    assert_eq!(letters[1]["db"], "x");
    assert_eq!(letters[2]["source_id"], binary_name);
    assert_eq!(
        letters[2]["reason"],
        "undecodable entry: entry has no 'lp' field"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_survives_a_redis_restart() {
    let mut redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut conn = redis.conn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(config(&redis, "c1", file_sink(&path)));
    add_metrics(&mut conn, STREAM, "cpu", 0..100, None).await;
    wait_until("100 lines", PATIENCE, || async {
        file_lines(&path).len() >= 100
    })
    .await;

    redis.restart();
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 100..200, None).await;
    wait_until("200 lines", PATIENCE, || async {
        file_lines(&path).len() >= 200
    })
    .await;
    wait_nothing_pending(&conn).await;
    consumer.stop().await;
    let unique: HashSet<String> = file_lines(&path).into_iter().collect();
    assert_eq!(
        unique.len(),
        200,
        "every entry arrived (duplicates allowed, losses not)"
    );
}
