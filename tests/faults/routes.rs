//! A metric goes where its writer said: a v2 bucket `db/rp` is a database and retention
//! policy through both sinks and after a replay; an entry that is not a metric is kept whole.

use std::collections::HashMap;
use std::time::Duration;

use redline_testkit::{wait_until, ChildGuard, InfluxServer, RedisServer};

use crate::ops::ops;
use crate::support::{
    self, client, consumer, dead_letters, file_consumer, post_until_stored, redline,
    timestamped_lines, Producer, GROUP, STREAM,
};

/// Points of `m` in `db`.`rp`.
async fn count_in(influx: &InfluxServer, db: &str, rp: &str) -> u64 {
    let answer = influx
        .query(db, &format!("SELECT count(v) FROM \"{rp}\".\"m\""))
        .await;
    answer["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_v2_bucket_db_rp_lands_in_that_database_and_retention_policy() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    influx.create_db("telegraf").await;
    influx
        .admin("CREATE RETENTION POLICY forever ON telegraf DURATION INF REPLICATION 1")
        .await;
    let producer = Producer::start(&redis.url(), &[]).await;
    let _c1 = consumer(&redis.url(), &influx.url(), "c1", &[]);

    // Telegraf's outputs.influxdb_v2 with bucket = "telegraf/forever".
    let v2 = format!(
        "{}/api/v2/write?org=any&bucket=telegraf/forever",
        producer.url
    );
    post_until_stored(&v2, &timestamped_lines(0, 1_000)).await;
    wait_until(
        "1000 points in telegraf.forever",
        Duration::from_secs(30),
        || async { count_in(&influx, "telegraf", "forever").await == 1_000 },
    )
    .await;
    assert_eq!(count_in(&influx, "telegraf", "autogen").await, 0);

    // A bucket InfluxDB 1.8 would refuse is refused, not stored.
    let bad = format!("{}/api/v2/write?org=any&bucket=a/b/c", producer.url);
    let response = client().post(&bad).body("m v=1i 1").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "bucket name 'a/b/c' may not contain more than one slash"
    );

    // A letter dead-lettered by an older redline, which stored the bucket as a database.
    let mut conn = redis.conn().await;
    let _: String = redis::cmd("XADD")
        .arg(format!("{STREAM}:dlq"))
        .arg("*")
        .arg("lp")
        .arg("m,host=old v=7i 1600000000000000000")
        .arg("db")
        .arg("telegraf/forever")
        .arg("reason")
        .arg("database 'telegraf/forever' not found, and CREATE DATABASE failed: invalid name")
        .query_async(&mut conn)
        .await
        .unwrap();
    let replay = ops(&redis.url(), &["dlq", "replay", "--all"]).ok();
    assert!(replay.contains("replayed 1 dead letter"), "{replay}");
    wait_until(
        "the replayed point in telegraf.forever",
        Duration::from_secs(30),
        || async { count_in(&influx, "telegraf", "forever").await == 1_001 },
    )
    .await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_v2_sink_writes_a_retention_policy_as_the_bucket_db_rp() {
    const TOKEN: &str = "t0ken";
    let source = RedisServer::start(&[]);
    let target = RedisServer::start(&[]);
    let server = Producer::start(&target.url(), &[]).await;
    let producer = Producer::start(&source.url(), &[]).await;
    let v2 = format!(
        "{}/api/v2/write?org=any&bucket=telegraf/forever",
        producer.url
    );
    post_until_stored(&v2, &timestamped_lines(0, 500)).await;

    let _consumer = ChildGuard::spawn(
        "v2",
        redline()
            .env("REDLINE_INFLUX_TOKEN", TOKEN)
            .args(["consumer", "--redis-url", &source.url(), "--consumer", "v2"])
            .args(["--sink", "influxdb2", "--influx-url", &server.url])
            .args(["--influx-org", "acme", "--flush-interval", "100ms"]),
    );
    let mut conn = target.conn().await;
    wait_until(
        "500 entries at the v2 server",
        Duration::from_secs(30),
        || {
            let mut conn = conn.clone();
            async move { support::xlen(&mut conn, STREAM).await == 500 }
        },
    )
    .await;
    let delivered: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    for entry in &delivered.ids {
        assert_eq!(entry.get::<String>("db").as_deref(), Some("telegraf"));
        assert_eq!(entry.get::<String>("rp").as_deref(), Some("forever"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_that_is_not_a_metric_is_dead_lettered_with_all_its_fields() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    support::create_group(&mut conn, GROUP).await;
    // What another program might add to the stream.
    let id: String = redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("sensor")
        .arg("t1")
        .arg("value")
        .arg("21.5")
        .arg("rp")
        .arg("week")
        .query_async(&mut conn)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _c1 = file_consumer(&redis.url(), GROUP, &dir.path().join("out.lp"), &[]);
    wait_until("one dead letter", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move { dead_letters(&mut conn).await.len() == 1 }
    })
    .await;

    let letter = &dead_letters(&mut conn).await[0];
    assert_eq!(letter["source_id"], id);
    assert_eq!(letter["rp"], "week");
    assert_eq!(
        letter["reason"],
        "undecodable entry: entry has no 'lp' field"
    );
    let raw: HashMap<String, String> = serde_json::from_str(&letter["raw"]).unwrap();
    assert_eq!(
        raw,
        HashMap::from([
            ("sensor".to_string(), "t1".to_string()),
            ("value".to_string(), "21.5".to_string()),
            ("rp".to_string(), "week".to_string()),
        ])
    );
    let listed = ops(&redis.url(), &["dlq", "list", "--json"]).json();
    let letter_id = listed[0]["id"].as_str().unwrap().to_string();
    let shown = ops(&redis.url(), &["dlq", "show", &letter_id]).ok();
    assert!(
        shown.contains(r#"raw            {"rp":"week","sensor":"t1","value":"21.5"}"#),
        "{shown}"
    );
}
