//! Delivery guarantees under faults: reclaim, dead letters, durability, safe trimming,
//! backpressure.

use std::time::Duration;

use redline_testkit::{wait_until, ChildGuard, InfluxServer, RedisServer};

use crate::support::{self, client, consumer, lines, post_until_stored, Producer, GROUP, STREAM};

async fn wait_nothing_pending(redis: &RedisServer) {
    support::wait_nothing_pending(&redis.conn().await).await;
}

async fn xlen(redis: &RedisServer, key: &str) -> u64 {
    let mut conn = redis.conn().await;
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_killed_consumers_are_replaced_and_every_metric_arrives() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let args = ["--min-idle", "2s", "--batch-size", "1000"];
    let mut consumers: Vec<ChildGuard> = (0..3)
        .map(|i| consumer(&redis.url(), &influx.url(), &format!("c{i}"), &args))
        .collect();

    let write = format!("{}/write?db=db0", producer.url);
    let total = 150_000;
    let sender = tokio::spawn(async move {
        for start in (0..total).step_by(5_000) {
            post_until_stored(&write, &lines(start, 5_000)).await;
        }
    });
    let mut next = 3;
    let mut kills = 0;
    while !sender.is_finished() || kills < 4 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let victim = kills % consumers.len();
        consumers[victim].sigkill();
        consumers[victim] = consumer(&redis.url(), &influx.url(), &format!("c{next}"), &args);
        next += 1;
        kills += 1;
        assert!(kills < 60, "the load did not finish");
    }
    sender.await.unwrap();

    support::wait_for_count(&influx, "db0", total as u64, Duration::from_secs(120)).await;
    wait_nothing_pending(&redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn field_type_conflicts_are_dead_lettered_and_the_rest_flows() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let _c = consumer(&redis.url(), &influx.url(), "c1", &["--batch-size", "5000"]);
    let write = format!("{}/write?db=db0", producer.url);

    // `v` becomes an integer field.
    assert_eq!(
        client()
            .post(&write)
            .body("m v=1i 1")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    support::wait_for_count(&influx, "db0", 1, Duration::from_secs(30)).await;

    let mut body: Vec<String> = lines(1_000, 5_000).lines().map(str::to_owned).collect();
    for i in 0..10 {
        body[i * 450 + 7] = // Same shard week as the integer points: InfluxDB checks field types per shard.
        format!("m,host=bad v=\"str{i}\" {}", 1_600_000_000_000_000_000_i64 + i as i64);
    }
    assert_eq!(
        client()
            .post(&write)
            .body(body.join("\n"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    support::wait_for_count(&influx, "db0", 1 + 4_990, Duration::from_secs(60)).await;

    let dlq = format!("{STREAM}:dlq");
    let mut conn = redis.conn().await;
    wait_until("10 dead letters", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        let dlq = dlq.clone();
        async move {
            redis::cmd("XLEN")
                .arg(&dlq)
                .query_async::<u64>(&mut conn)
                .await
                .unwrap()
                == 10
        }
    })
    .await;
    let letters: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&dlq)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    for letter in &letters.ids {
        let lp: String = letter.get("lp").unwrap();
        let reason: String = letter.get("reason").unwrap();
        assert!(lp.starts_with("m,host=bad v=\"str"), "{lp}");
        assert!(reason.contains("field type conflict"), "{reason}");
        for field in [
            "source_id",
            "deliveries",
            "group",
            "consumer",
            "failed_at_ms",
        ] {
            assert!(
                letter.map.contains_key(field),
                "{field} missing in {:?}",
                letter.map
            );
        }
    }

    // Metrics written afterwards keep flowing.
    assert_eq!(
        client()
            .post(&write)
            .body(lines(10_000, 500))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    support::wait_for_count(&influx, "db0", 1 + 4_990 + 500, Duration::from_secs(30)).await;
    wait_nothing_pending(&redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_under_appendfsync_always_loses_no_acknowledged_write() {
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
    wait_nothing_pending(&redis).await;
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
    wait_nothing_pending(&redis).await;
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
    wait_nothing_pending(&redis).await;
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
    let _ = GROUP;
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
    wait_nothing_pending(&redis).await;
    assert!(held > 0);
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
    let mut conn = redis.conn().await;
    let oldest: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let lp: String = oldest.ids[0].get("lp").unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn wait_replicas_answers_204_only_when_a_replica_confirmed() {
    let primary = RedisServer::start(&[]);
    let port = primary.port().to_string();
    let mut replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let conn = primary.conn().await;
    wait_until("the replica is connected", Duration::from_secs(15), || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .unwrap();
            info.contains("connected_slaves:1") && info.contains("state=online")
        }
    })
    .await;
    let producer = Producer::start(
        &primary.url(),
        &["--wait-replicas", "1", "--wait-timeout", "3s"],
    )
    .await;
    let write = format!("{}/write?db=db0", producer.url);
    assert_eq!(
        client()
            .post(&write)
            .body(lines(0, 1_000))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let mut rconn = replica.conn().await;
    let on_replica: u64 = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(&mut rconn)
        .await
        .unwrap();
    assert_eq!(on_replica, 1_000, "a 204 means the replica has every entry");

    replica.kill();
    wait_until(
        "the primary notices the replica is gone",
        Duration::from_secs(15),
        || {
            let mut conn = conn.clone();
            async move {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                info.contains("connected_slaves:0")
            }
        },
    )
    .await;
    let response = client()
        .post(&write)
        .body(lines(1_000, 1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only 0 of 1 replicas confirmed"),
        "{body}"
    );
}
