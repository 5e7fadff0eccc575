//! Backpressure (`--buffer-limit`): `block` answers 503 until consumers drain the buffer;
//! `drop_oldest` keeps the newest and counts every drop.

use std::time::Duration;

use redline_testkit::{wait_until, InfluxServer, RedisServer};

use crate::support::{self, client, consumer, lines, Producer, STREAM};

async fn xlen(redis: &RedisServer, key: &str) -> u64 {
    support::xlen(&mut redis.conn().await, key).await
}

/// The line of the oldest entry of `key`.
async fn oldest_line(redis: &RedisServer, key: &str) -> String {
    let oldest: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    oldest.ids[0].get("lp").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_buffer_answers_503_until_a_consumer_drains_it() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &["--buffer-limit", "20000"]).await;
    let write = format!("{}/write?db=db0", producer.url);
    let http = client();

    let mut stored = 0;
    let mut start = 0;
    let refused = loop {
        let response = http
            .post(&write)
            .body(lines(start, 5_000))
            .send()
            .await
            .unwrap();
        start += 5_000;
        match response.status().as_u16() {
            204 => stored += 5_000,
            503 => break response,
            other => panic!("unexpected {other}"),
        }
        assert!(stored <= 20_000, "the buffer limit was not enforced");
    };
    assert_eq!(stored, 20_000);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("buffer full"),
        "{body}"
    );
    assert_eq!(
        xlen(&redis, STREAM).await,
        20_000,
        "nothing of the refused request is stored"
    );

    let _c = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--trim-interval", "200ms"],
    );
    support::wait_for_count(&influx, "db0", 20_000, Duration::from_secs(60)).await;
    let url = write.clone();
    wait_until("writes succeed again", Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            client()
                .post(&url)
                .body(lines(100_000, 5_000))
                .send()
                .await
                .unwrap()
                .status()
                == 204
        }
    })
    .await;
    support::wait_for_count(&influx, "db0", 25_000, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_oldest_keeps_the_newest_and_counts_every_drop() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(
        &redis.url(),
        &["--buffer-limit", "10000", "--buffer-full", "drop_oldest"],
    )
    .await;
    let write = format!("{}/write?db=db0", producer.url);
    for start in (0..30_000).step_by(5_000) {
        assert_eq!(
            client()
                .post(&write)
                .body(lines(start, 5_000))
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
    }
    assert_eq!(
        xlen(&redis, STREAM).await,
        10_000,
        "the buffer holds the limit"
    );
    let lp = oldest_line(&redis, STREAM).await;
    assert!(
        lp.contains("v=20000i"),
        "the oldest kept metric is the first of the last two batches: {lp}"
    );

    let metrics = client()
        .get(format!("{}/metrics", producer.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("redline_metrics_dropped_total"))
        .unwrap_or_else(|| panic!("no drop counter in:\n{metrics}"));
    assert!(dropped.ends_with(" 20000"), "{dropped}");
    assert!(
        producer.guard.stderr().contains("dropped the oldest"),
        "{}",
        producer.guard.logs()
    );
}

/// With partitions, `drop_oldest` gives each partition its share of the limit and makes
/// room where the request's metrics go: in the partition of their series, not another.
#[tokio::test(flavor = "multi_thread")]
async fn drop_oldest_makes_room_in_the_partition_the_metrics_go_to() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(
        &redis.url(),
        &[
            "--partitions",
            "2",
            "--buffer-limit",
            "100",
            "--buffer-full",
            "drop_oldest",
        ],
    )
    .await;
    // A series of partition 1 (the second): a writer counting it in partition 0 would trim
    // the wrong one.
    let host = (0..)
        .find(|h| redline_core::series::partition(&format!("pm,host=h{h}"), 2) == 1)
        .unwrap();
    let body = |first: u64| -> String {
        (first..first + 60)
            .map(|i| format!("pm,host=h{host} v={i}i {}\n", 1_600_000_000_000_000_000 + i))
            .collect()
    };
    let write = format!("{}/write?db=db0", producer.url);
    for first in [0, 60] {
        let answer = client()
            .post(&write)
            .body(body(first))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
    }
    // Its share is 50: the second request (60 + 60 > 100) leaves room for itself only.
    let (p0, p1) = (format!("{STREAM}:{{0}}"), format!("{STREAM}:{{1}}"));
    assert_eq!(xlen(&redis, &p0).await, 0);
    assert_eq!(
        xlen(&redis, &p1).await,
        60,
        "partition 1 holds the second request"
    );
    let lp = oldest_line(&redis, &p1).await;
    assert!(lp.contains(" v=60i "), "{lp}");
}
