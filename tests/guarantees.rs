//! The README's guarantees ("What redline guarantees"), one end-to-end test each, named
//! after it: the one place to look for what proves a promise. Edge cases live in the
//! crates' own tests; every fault is in `faults` and docs/faults.md.
//!
//! "Order is not promised" is a non-promise and has no test.

use std::time::{Duration, Instant};

use redline_testkit::{wait_until, InfluxServer, RedisServer};

use crate::support::{
    self, consumer, dead_letters, lines, metrics_address, post, post_until_stored, sample, scrape,
    Producer, GROUP, STREAM,
};

/// "No acknowledged write is lost": Redis killed (`kill -9`) under load with
/// `appendfsync always`; every metric that got a 204 reaches InfluxDB.
#[tokio::test(flavor = "multi_thread")]
async fn no_acknowledged_write_is_lost() {
    let mut redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let _c = consumer(&redis.url(), &influx.url(), "c1", &["--batch-size", "1000"]);

    let write = format!("{}/write?db=db0", producer.url);
    let total = 100_000;
    let sender = tokio::spawn(async move {
        let mut retried = 0;
        for start in (0..total).step_by(2_000) {
            // Every line carries its timestamp, as Telegraf's do: a retried request whose
            // first attempt was partly stored then writes the same points again. (A line
            // without one is stamped per attempt, and a retry makes it a second point, as
            // with InfluxDB itself.)
            let body = support::timestamped_lines(start, 2_000);
            retried += post_until_stored(&write, &body).await - 1;
        }
        retried
    });
    // Kill Redis once the load is well under way.
    let conn = redis.conn().await;
    wait_until("20,000 entries stored", Duration::from_secs(60), || {
        let mut conn = conn.clone();
        async move {
            redis::cmd("XLEN")
                .arg(STREAM)
                .query_async::<u64>(&mut conn)
                .await
                .unwrap_or(0)
                >= 20_000
        }
    })
    .await;
    assert!(!sender.is_finished(), "the load finished before the kill");
    redis.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.start_again();
    let retried = sender.await.unwrap();
    assert!(
        retried > 0,
        "the kill should have cost the client at least one retry"
    );

    support::wait_for_count(&influx, "db0", total as u64, Duration::from_secs(120)).await;
    support::wait_nothing_pending(&redis.conn().await).await;
}

/// "At-least-once to the sink": a consumer killed (`kill -9`) while it holds a batch it
/// could not deliver re-reads it when restarted under its name, and every metric arrives.
#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_to_the_sink() {
    let redis = RedisServer::start(&[]);
    let mut influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    let mut conn = redis.conn().await;
    influx.stop();

    let mut c1 = consumer(&redis.url(), &influx.url(), "c1", &["--batch-size", "2000"]);
    for start in (0..30_000).step_by(5_000) {
        assert_eq!(post(&write, lines(start, 5_000)).await.status(), 204);
    }
    // InfluxDB is down: the consumer holds a batch it cannot deliver.
    wait_until("c1 holds pending entries", Duration::from_secs(15), || {
        let mut conn = conn.clone();
        async move { support::pending(&mut conn).await.unwrap_or(0) > 0 }
    })
    .await;
    c1.sigkill();
    let held = support::pending(&mut conn).await.unwrap();
    assert!(held > 0);

    influx.start_again();
    // A --min-idle longer than the wait: only its own re-read can deliver what it held.
    let _c1 = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--batch-size", "2000", "--min-idle", "10m"],
    );
    support::wait_for_count(&influx, "db0", 30_000, Duration::from_secs(60)).await;
    support::wait_nothing_pending(&conn).await;
}

/// "Duplicates are harmless for InfluxDB": every metric delivered a second time (the group
/// moved back to the start, as a redelivery after a crash would) leaves InfluxDB's count
/// exactly where it was, lines the producer stamped included.
#[tokio::test(flavor = "multi_thread")]
async fn duplicates_are_harmless_for_influxdb() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let (listen, metrics) = metrics_address();
    // No trim during the test: the second delivery needs the entries still in the stream.
    let _consumer = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--trim-interval", "1h", "--metrics-listen", &listen],
    );
    let write = format!("{}/write?db=db0", producer.url);
    let total = 20_000;
    for start in (0..total).step_by(5_000) {
        post_until_stored(&write, &lines(start, 5_000)).await;
    }
    support::wait_for_count(&influx, "db0", total as u64, Duration::from_secs(60)).await;
    let mut conn = redis.conn().await;
    support::wait_nothing_pending(&conn).await;

    // Deliver everything again.
    let _: () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let written = || async {
        sample(&scrape(&metrics).await, "redline_metrics_written_total", "").unwrap_or(0.0)
    };
    wait_until(
        "every metric written a second time",
        Duration::from_secs(60),
        || async { written().await >= 2.0 * total as f64 },
    )
    .await;
    support::wait_nothing_pending(&conn).await;
    assert_eq!(support::count(&influx, "db0").await, total as u64);
    assert!(dead_letters(&mut conn).await.is_empty());
}

/// "A new group starts at the oldest entry": metrics buffered before any consumer (or
/// group) existed all reach InfluxDB once the first consumer starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_group_starts_at_the_oldest_entry() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    for start in (0..20_000).step_by(5_000) {
        post_until_stored(&write, &lines(start, 5_000)).await;
    }
    let mut conn = redis.conn().await;
    assert_eq!(support::xlen(&mut conn, STREAM).await, 20_000);
    assert_eq!(support::pending(&mut conn).await, None, "no group yet");

    let _consumer = consumer(&redis.url(), &influx.url(), "c1", &[]);
    support::wait_for_count(&influx, "db0", 20_000, Duration::from_secs(60)).await;
    support::wait_nothing_pending(&conn).await;
}

/// "An outage never becomes dead letters": InfluxDB down for a while under load, with
/// `--max-deliveries 1` so a single counted attempt would dead-letter; nothing is acked or
/// counted, `/ready` says so, and everything arrives after. (Hung, full and refusing
/// InfluxDB, full and hung Redis, restarts mid-outage: `faults`.)
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_never_becomes_dead_letters() {
    let redis = RedisServer::start(&[]);
    let mut influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let (listen, metrics) = metrics_address();
    let _consumer = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &[
            "--batch-size",
            "1000",
            "--max-deliveries",
            "1",
            "--metrics-listen",
            &listen,
        ],
    );
    let write = format!("{}/write?db=db0", producer.url);
    let mut conn = redis.conn().await;

    for start in (0..20_000).step_by(5_000) {
        assert_eq!(post(&write, lines(start, 5_000)).await.status(), 204);
    }
    support::wait_for_count(&influx, "db0", 20_000, Duration::from_secs(60)).await;

    influx.stop();
    // Once /ready says InfluxDB is unavailable, a write has failed: any batch that was on
    // its way has been settled, and from here the acks must stand still.
    wait_until(
        "/ready reports the outage",
        Duration::from_secs(15),
        || async { support::ready(&metrics).await.0 == 503 },
    )
    .await;
    let acked = |(pending, read): (u64, u64)| read - pending;
    let acked_at_outage = acked(
        support::group_state(&mut conn, support::STREAM, support::GROUP)
            .await
            .unwrap(),
    );
    let retries = || async {
        let text = scrape(&metrics).await;
        sample(&text, "redline_sink_retries_total", "kind=\"unavailable\"").unwrap_or(0.0)
    };
    let retries_at_outage = retries().await;
    let outage_end = Instant::now() + Duration::from_secs(10);
    let mut sent = 20_000;
    while Instant::now() < outage_end {
        assert_eq!(
            post(&write, lines(sent, 5_000)).await.status(),
            204,
            "the producer keeps taking writes"
        );
        sent += 5_000;
        let state = support::group_state(&mut conn, support::STREAM, support::GROUP)
            .await
            .unwrap();
        assert_eq!(
            acked(state),
            acked_at_outage,
            "nothing is acked while InfluxDB is down"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The consumer kept trying (with --max-deliveries 1, a counted attempt would have
    // dead-lettered the batch at once), and told /ready.
    assert!(
        retries().await >= retries_at_outage + 3.0,
        "the consumer retried during the outage"
    );
    assert_eq!(support::ready(&metrics).await.0, 503);
    assert!(dead_letters(&mut conn).await.is_empty());

    influx.start_again();
    support::wait_for_count(&influx, "db0", sent as u64, Duration::from_secs(90)).await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty());
}
