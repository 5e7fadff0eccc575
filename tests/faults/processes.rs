//! redline's own processes hung (SIGSTOP) or killed (SIGKILL) at any instant.

use std::time::{Duration, Instant};

use redline_testkit::{wait_until, InfluxServer, RedisServer};

use crate::support::{
    self, consumer, dead_letters, lines, post, post_until_stored, timestamped_lines, Producer,
    GROUP, STREAM,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_consumers_entries_are_claimed_and_it_leaves_them_when_it_wakes() {
    let redis = RedisServer::start(&[]);
    let mut influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    let mut conn = redis.conn().await;
    let args = ["--min-idle", "2s", "--batch-size", "2000"];

    // c1 holds a batch it cannot deliver (InfluxDB hangs), then hangs itself.
    influx.pause();
    let mut c1 = consumer(&redis.url(), &influx.url(), "c1", &args);
    post_until_stored(&write, &timestamped_lines(0, 10_000)).await;
    wait_until("c1 holds entries", Duration::from_secs(15), || {
        let mut conn = conn.clone();
        async move { support::pending(&mut conn).await.unwrap_or(0) > 0 }
    })
    .await;
    c1.pause();
    influx.resume();

    // c2 takes over what c1 held once it is idle for --min-idle, and the rest.
    let _c2 = consumer(&redis.url(), &influx.url(), "c2", &args);
    support::wait_for_count(&influx, "db0", 10_000, Duration::from_secs(60)).await;
    support::wait_nothing_pending(&conn).await;

    // c1 wakes mid-retry: its entries are someone else's now; it leaves them and carries on.
    c1.resume();
    post_until_stored(&write, &timestamped_lines(10_000, 5_000)).await;
    support::wait_for_count(&influx, "db0", 15_000, Duration::from_secs(60)).await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty());
    assert!(c1.is_running(), "{}", c1.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_or_killed_producer_costs_the_client_a_retry_and_nothing_else() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let mut producer = Producer::start(&redis.url(), &[]).await;
    let _c1 = consumer(&redis.url(), &influx.url(), "c1", &[]);
    let write = format!("{}/write?db=db0", producer.url);
    post_until_stored(&write, &timestamped_lines(0, 5_000)).await;

    // Hung: the client's request times out, it gets no answer (so no 204), and retries.
    producer.guard.pause();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let body = timestamped_lines(5_000, 5_000);
    let hung = impatient.post(&write).body(body.clone()).send().await;
    assert!(
        hung.is_err_and(|e| e.is_timeout()),
        "no answer from a hung producer"
    );
    producer.guard.resume();
    post_until_stored(&write, &body).await;

    // Killed: the next one is refused until a producer is back (any one: they are stateless).
    producer.guard.sigkill();
    let body = timestamped_lines(10_000, 5_000);
    assert!(support::client()
        .post(&write)
        .body(body.clone())
        .send()
        .await
        .is_err());
    let again = Producer::start(&redis.url(), &[]).await;
    post_until_stored(&format!("{}/write?db=db0", again.url), &body).await;

    support::wait_for_count(&influx, "db0", 15_000, Duration::from_secs(60)).await;
    let mut conn = redis.conn().await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn another_consumer_claims_what_a_killed_one_held() {
    let redis = RedisServer::start(&[]);
    let mut influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    influx.stop();
    let mut c1 = consumer(&redis.url(), &influx.url(), "c1", &["--batch-size", "3000"]);
    for start in (0..20_000).step_by(5_000) {
        post_until_stored(&write, &lines(start, 5_000)).await;
    }
    let mut conn = redis.conn().await;
    wait_until("c1 holds pending entries", Duration::from_secs(15), || {
        let mut conn = conn.clone();
        async move { support::pending(&mut conn).await.unwrap_or(0) > 0 }
    })
    .await;
    c1.sigkill();
    let held = support::pending(&mut conn).await.unwrap();

    influx.start_again();
    let _c2 = consumer(&redis.url(), &influx.url(), "c2", &["--min-idle", "1s"]);
    support::wait_for_count(&influx, "db0", 20_000, Duration::from_secs(60)).await;
    support::wait_nothing_pending(&redis.conn().await).await;
    assert!(held > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_consumers_entries_are_claimed_after_the_min_idle_it_was_given() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let mut conn = redis.conn().await;
    support::create_group(&mut conn, GROUP).await;
    post_until_stored(
        &format!("{}/write?db=db0", producer.url),
        &timestamped_lines(0, 5_000),
    )
    .await;
    // Consumer c1 reads 3,000 entries and dies before acknowledging any.
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("c1")
        .arg("COUNT")
        .arg(3_000)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(read.keys[0].ids.len(), 3_000);

    // Another consumer, with --min-idle 2s (the default, 30s, is past the deadline below):
    // only XAUTOCLAIM can hand it c1's entries.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let _c2 = support::file_consumer(&redis.url(), GROUP, &path, &["--min-idle", "2s"]);
    wait_until("5,000 lines", Duration::from_secs(20), || {
        let path = path.clone();
        async move { support::line_count(&path) >= 5_000 }
    })
    .await;
    support::wait_nothing_pending(&conn).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5_000, "each entry written once");
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), 5_000);
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_both_cleanly_and_a_restarted_consumer_finishes() {
    let redis = RedisServer::start(&["--appendonly", "yes"]);
    let influx = InfluxServer::start();
    let mut producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    let mut c1 = consumer(&redis.url(), &influx.url(), "c1", &["--batch-size", "500"]);

    let mut sent = 0;
    for _ in 0..8 {
        assert_eq!(post(&write, lines(sent, 5_000)).await.status(), 204);
        sent += 5_000;
    }
    c1.sigterm();
    producer.guard.sigterm();
    let started = Instant::now();
    let consumer_exit = c1.wait_exit(Duration::from_secs(5));
    let producer_exit = producer.guard.wait_exit(Duration::from_secs(5));
    assert!(
        consumer_exit.is_some_and(|s| s.success()),
        "consumer exit {consumer_exit:?} after {:?}\n{}",
        started.elapsed(),
        c1.logs()
    );
    assert!(
        producer_exit.is_some_and(|s| s.success()),
        "producer exit {producer_exit:?}\n{}",
        producer.guard.logs()
    );
    assert!(c1.stderr().contains("Stopped cleanly"), "{}", c1.logs());

    let _c2 = consumer(&redis.url(), &influx.url(), "c1", &[]);
    support::wait_for_count(&influx, "db0", sent as u64, Duration::from_secs(60)).await;
    support::wait_nothing_pending(&redis.conn().await).await;
}
