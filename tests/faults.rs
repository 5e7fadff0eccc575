//! Faults, each as a user meets it: Redis down, full or hung; InfluxDB down, full, hung or
//! refusing; a consumer or producer killed or hung; a torn file; an operator's hand. Every
//! row of the README's fault table names its test here.

mod file;
mod influxdb;
mod operator;
mod processes;
mod producer;
mod redis;
mod routes;

use std::time::{Duration, Instant};

use redline_testkit::{free_port, wait_until, InfluxServer, RedisServer};

use crate::support::{self, client, consumer, dead_letters, lines, sample, scrape, Producer};

/// A free loopback address for a consumer's `--metrics-listen`, and the base URL of its
/// `/metrics` and `/ready` there.
pub(crate) fn metrics_address() -> (String, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    (listen, url)
}

/// Asserts the answer a write gets while Redis cannot take it: 503, `Retry-After: 1`, and
/// an error that says so.
pub(crate) async fn assert_redis_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert_eq!(response.headers()["retry-after"], "1", "{what}");
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("Redis is unavailable"), "{what}: {body}");
}

async fn post(url: &str, body: String) -> reqwest::Response {
    client().post(url).body(body).send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_gives_503_never_204_and_recovers_without_restart() {
    let mut redis = RedisServer::start(&["--appendonly", "yes"]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    assert_eq!(post(&write, lines(0, 10)).await.status(), 204);

    redis.kill();
    for i in 0..5 {
        let started = Instant::now();
        let response = post(&write, lines(10, 10)).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "503 took {:?}",
            started.elapsed()
        );
        assert_redis_unavailable(response, &format!("attempt {i} while Redis is down")).await;
    }

    redis.start_again();
    let url = write.clone();
    wait_until("a 204 once Redis is back", Duration::from_secs(10), || {
        let url = url.clone();
        async move { post(&url, lines(20, 10)).await.status() == 204 }
    })
    .await;
    // The first ten and the recovered ten are there, each once; a 503 stored nothing.
    let mut conn = redis.conn().await;
    let stored: ::redis::streams::StreamRangeReply = ::redis::cmd("XRANGE")
        .arg(support::STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let values: Vec<String> = stored
        .ids
        .iter()
        .map(|e| {
            let lp: String = e.get("lp").unwrap();
            let v = lp.split(" v=").nth(1).unwrap();
            v.split(['i', ' ']).next().unwrap().to_string()
        })
        .collect();
    let expected: Vec<String> = (0..10).chain(20..30).map(|i| i.to_string()).collect();
    assert_eq!(values, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn influxdb_outage_acks_nothing_and_everything_arrives_after() {
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
    // Let a batch that was already on its way settle, then watch the acks for the outage.
    tokio::time::sleep(Duration::from_millis(500)).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn consumer_killed_mid_batch_redelivers_its_pending_under_the_same_name() {
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
