//! Entries other consumers left behind: claimed after `min_idle` and not before,
//! dead-lettered once delivered more than `max_deliveries` times.

use std::collections::HashSet;
use std::time::Duration;

use redline_testkit::{wait_until, RedisServer};

use crate::support::{
    add_metrics, command_calls, config, dead_letters, file_lines, file_sink, line, pending,
    pending_entries, read_and_abandon, wait_nothing_pending, Consumer, GROUP, PATIENCE, STREAM,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_consumer_entries_are_claimed_after_min_idle() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..30, None).await;
    assert_eq!(read_and_abandon(&mut conn, STREAM, "dead", 30).await, 30);
    add_metrics(&mut conn, STREAM, "cpu", 30..40, None).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(redline_consumer::Config {
        min_idle: Duration::from_millis(500),
        ..config(&redis, "alive", file_sink(&path))
    });
    wait_until("40 lines", PATIENCE, || async {
        file_lines(&path).len() >= 40
    })
    .await;
    wait_nothing_pending(&conn).await;
    consumer.stop().await;
    let unique: HashSet<String> = file_lines(&path).into_iter().collect();
    assert_eq!(unique.len(), 40);
    assert_eq!(file_lines(&path).len(), 40, "each entry written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_entries_are_claimed_in_every_partition() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let keys = redline_core::keys::StreamKeys::new(STREAM, 3);
    for (n, key) in keys.partitions().iter().enumerate() {
        add_metrics(&mut conn, key, "cpu", n * 10..n * 10 + 10, None).await;
        assert_eq!(read_and_abandon(&mut conn, key, "dead", 10).await, 10);
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(redline_consumer::Config {
        partitions: 3,
        min_idle: Duration::from_millis(500),
        ..config(&redis, "alive", file_sink(&path))
    });
    wait_until("30 lines", PATIENCE, || async {
        file_lines(&path).len() >= 30
    })
    .await;
    consumer.stop().await;
    for key in keys.partitions() {
        assert_eq!(pending(&mut conn, key).await, 0, "{key}");
    }
    let unique: HashSet<String> = file_lines(&path).into_iter().collect();
    assert_eq!(unique.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimer_takes_nothing_a_live_consumer_just_read() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..30, None).await;
    // A live consumer has just read 30 entries and is busy with them.
    assert_eq!(read_and_abandon(&mut conn, STREAM, "live", 30).await, 30);
    add_metrics(&mut conn, STREAM, "cpu", 30..40, None).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let claimer = Consumer::start(redline_consumer::Config {
        min_idle: Duration::from_secs(30),
        ..config(&redis, "claimer", file_sink(&path))
    });
    // Its first claim pass runs before its first read: once the ten new entries are
    // written, and a pass is seen in Redis's command counts, it has looked at the 30.
    wait_until("the 10 new lines", PATIENCE, || async {
        file_lines(&path).len() >= 10
    })
    .await;
    wait_until("an XAUTOCLAIM pass", PATIENCE, || {
        let mut conn = conn.clone();
        async move { command_calls(&mut conn, "xautoclaim").await >= 1 }
    })
    .await;
    wait_until("the claimer's own entries acked", PATIENCE, || {
        let mut conn = conn.clone();
        async move {
            let held = pending_entries(&mut conn, STREAM).await;
            held.iter().all(|(_, owner, _)| owner != "claimer")
        }
    })
    .await;
    claimer.stop().await;

    let held = pending_entries(&mut conn, STREAM).await;
    assert_eq!(held.len(), 30, "the live consumer still holds what it read");
    assert!(
        held.iter()
            .all(|(_, owner, deliveries)| owner == "live" && *deliveries == 1),
        "a claimer with a 30 s min_idle took entries read a moment ago: {held:?}"
    );
    assert_eq!(
        file_lines(&path).len(),
        10,
        "only the new entries were written"
    );
}

/// What a claim pass takes is delivered by that pass, not left for the claimer's next
/// re-read of its own pending entries (with a 10-minute `min_idle` and `trim_interval`, five
/// minutes away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_entries_are_delivered_by_the_claim_not_the_next_re_read() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(redline_consumer::Config {
        min_idle: Duration::from_secs(600),
        trim_interval: Duration::from_secs(600),
        ..config(&redis, "alive", file_sink(&path))
    });
    // Past its start: its first claim pass, and the re-read of its own entries, are done.
    wait_until("the first claim pass", PATIENCE, || {
        let mut conn = conn.clone();
        async move { command_calls(&mut conn, "xautoclaim").await >= 1 }
    })
    .await;

    // At once, so that the live consumer's blocked read gets none of them: ten entries, read
    // by a consumer that then died, which has held them for an hour (XCLAIM to itself with
    // IDLE; JUSTID leaves their delivery counts at 1).
    let ids: Vec<String> = (1..=10).map(|i| format!("1-{i}")).collect();
    let mut atomic = redis::pipe();
    atomic.atomic();
    for (i, id) in ids.iter().enumerate() {
        atomic
            .cmd("XADD")
            .arg(STREAM)
            .arg(id)
            .arg("lp")
            .arg(line("cpu", i))
            .ignore();
    }
    atomic
        .cmd("XREADGROUP")
        .arg(&[
            "GROUP", GROUP, "dead", "COUNT", "10", "STREAMS", STREAM, ">",
        ])
        .ignore();
    atomic
        .cmd("XCLAIM")
        .arg(&[STREAM, GROUP, "dead", "0"])
        .arg(&ids)
        .arg(&["IDLE", "3600000", "JUSTID"])
        .ignore();
    atomic.query_async::<()>(&mut conn).await.unwrap();
    let held = pending_entries(&mut conn, STREAM).await;
    assert!(held.iter().all(|(_, owner, _)| owner == "dead"), "{held:?}");

    wait_until("the 10 claimed lines", PATIENCE, || async {
        file_lines(&path).len() >= 10
    })
    .await;
    wait_nothing_pending(&conn).await;
    consumer.stop().await;
    assert_eq!(file_lines(&path).len(), 10, "each entry written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_delivered_more_than_max_deliveries_are_dead_lettered() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..20, None).await;
    assert_eq!(read_and_abandon(&mut conn, STREAM, "crashy", 20).await, 20);
    // Ten of them were delivered to crashing consumers five times already.
    let entries = pending_entries(&mut conn, STREAM).await;
    let poisoned: Vec<&str> = entries[..10].iter().map(|(id, _, _)| id.as_str()).collect();
    redis::cmd("XCLAIM")
        .arg(STREAM)
        .arg(GROUP)
        .arg("crashy")
        .arg(0)
        .arg(&poisoned)
        .arg("RETRYCOUNT")
        .arg(5)
        .arg("JUSTID")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    // Restarted under the same name: the re-read is delivery 6 for those ten.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(redline_consumer::Config {
        max_deliveries: 5,
        ..config(&redis, "crashy", file_sink(&path))
    });
    wait_until("10 dead letters", PATIENCE, || {
        let mut conn = conn.clone();
        async move { dead_letters(&mut conn).await.len() >= 10 }
    })
    .await;
    wait_until("10 lines", PATIENCE, || async {
        file_lines(&path).len() >= 10
    })
    .await;
    wait_nothing_pending(&conn).await;
    consumer.stop().await;

    let letters = dead_letters(&mut conn).await;
    assert_eq!(letters.len(), 10);
    let ids: Vec<&str> = letters.iter().map(|l| l["source_id"].as_str()).collect();
    assert_eq!(ids, poisoned);
    for letter in &letters {
        assert_eq!(letter["deliveries"], "6");
        assert_eq!(
            letter["reason"],
            "max deliveries exceeded: delivered 6 times without being acknowledged"
        );
    }
    assert_eq!(file_lines(&path).len(), 10, "the other ten were written");
}
