//! Trimming: a drained stream shrinks to a few batches; a group that reads nothing (one
//! redline did not create) keeps every entry until it has acknowledged them; with groups at
//! different positions, the one furthest behind sets the bound.

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

/// Reads `count` new entries of the metric stream as `consumer` of `group`, and
/// acknowledges the first `ack` of them.
async fn read_and_ack(
    conn: &mut redis::aio::MultiplexedConnection,
    group: &str,
    count: usize,
    ack: usize,
) {
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(group)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    let ids: Vec<&str> = read.keys[0].ids.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), count);
    let acked: u64 = redis::cmd("XACK")
        .arg(STREAM)
        .arg(group)
        .arg(&ids[..ack])
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(acked, ack as u64);
}

/// Waits until the consumer's trim has brought the stream down to `expected` entries, and
/// fails at once if it removed more.
async fn wait_trimmed_to(redis: &RedisServer, expected: u64, why: &str) {
    let left = redline_testkit::wait_for(why, Duration::from_secs(10), || async {
        let len = xlen(redis, STREAM).await;
        (len <= expected).then_some(len)
    })
    .await;
    assert_eq!(
        left, expected,
        "{why}: the trim removed entries a group still needs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_at_different_positions_trim_to_the_one_furthest_behind() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    for group in ["ahead", "behind"] {
        support::create_group(&mut conn, group).await;
    }
    let producer = Producer::start(&redis.url(), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    // redline's own group reads and acknowledges everything; its consumer trims.
    let _c = support::file_consumer(
        &redis.url(),
        "redline",
        &path,
        &["--trim-interval", "200ms"],
    );
    let write = format!("{}/write?db=db0", producer.url);
    for start in (0..20_000).step_by(5_000) {
        post_until_stored(&write, &lines(start, 5_000)).await;
    }
    wait_until("20,000 lines", Duration::from_secs(30), || {
        let path = path.clone();
        async move { support::line_count(&path) >= 20_000 }
    })
    .await;
    support::wait_nothing_pending(&conn).await;
    assert_eq!(
        xlen(&redis, STREAM).await,
        20_000,
        "`ahead` and `behind` have read nothing: every entry is kept"
    );

    // Two other groups at different positions: `ahead` acknowledged 12,000, `behind` 7,000.
    read_and_ack(&mut conn, "ahead", 12_000, 12_000).await;
    read_and_ack(&mut conn, "behind", 7_000, 7_000).await;
    wait_trimmed_to(
        &redis,
        13_000,
        "the stream trimmed to what `behind` has not read",
    )
    .await;

    // `behind` reads 6,000 more and acknowledges only 3,000: its oldest pending entry, the
    // 10,000th, is now the bound, though `ahead` is at 12,000.
    read_and_ack(&mut conn, "behind", 6_000, 3_000).await;
    wait_trimmed_to(
        &redis,
        10_000,
        "the stream trimmed to `behind`'s oldest pending",
    )
    .await;
}
