//! Trimming: a drained stream shrinks to a few batches; a group that reads nothing (one
//! redline did not create) keeps every entry until it has acknowledged them.

use std::time::Duration;

use redline_testkit::{wait_until, InfluxServer, RedisServer};

use crate::support::{self, consumer, lines, post_until_stored, Producer, STREAM};

async fn xlen(redis: &RedisServer, key: &str) -> u64 {
    support::xlen(&mut redis.conn().await, key).await
}

#[tokio::test(flavor = "multi_thread")]
async fn drained_streams_are_trimmed_to_a_few_batches() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let _c = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--trim-interval", "500ms"],
    );
    let write = format!("{}/write?db=db0", producer.url);
    for start in (0..200_000).step_by(5_000) {
        post_until_stored(&write, &lines(start, 5_000)).await;
    }
    support::wait_for_count(&influx, "db0", 200_000, Duration::from_secs(120)).await;
    support::wait_nothing_pending(&redis.conn().await).await;
    wait_until(
        "the stream trimmed to at most a few batches",
        Duration::from_secs(10),
        || async { xlen(&redis, STREAM).await <= 3 * 5_000 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_that_reads_nothing_keeps_every_entry() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let mut conn = redis.conn().await;
    support::create_group(&mut conn, "archive").await;
    let producer = Producer::start(&redis.url(), &[]).await;
    let _c = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--trim-interval", "200ms"],
    );
    let write = format!("{}/write?db=db0", producer.url);
    for start in (0..20_000).step_by(5_000) {
        post_until_stored(&write, &lines(start, 5_000)).await;
    }
    support::wait_for_count(&influx, "db0", 20_000, Duration::from_secs(60)).await;
    support::wait_nothing_pending(&redis.conn().await).await;
    // The trim the consumer runs every 200 ms names the idle group as what holds it back.
    let plan = crate::ops::ops(&redis.url(), &["trim", "--dry-run", "--json"]).json();
    assert_eq!(plan["removed"], 0, "{plan}");
    assert_eq!(plan["streams"][0]["limiting_group"], "archive", "{plan}");
    assert_eq!(xlen(&redis, STREAM).await, 20_000);
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("archive")
        .arg("a1")
        .arg("COUNT")
        .arg(30_000)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 20_000);
    // Once it has read and acknowledged them all, the consumer's trim removes them: it was
    // running all along, held back by the idle group alone.
    let _: u64 = redis::cmd("XACK")
        .arg(STREAM)
        .arg("archive")
        .arg(&ids)
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_until("the stream trimmed", Duration::from_secs(10), || async {
        xlen(&redis, STREAM).await == 0
    })
    .await;
}
