//! The InfluxDB 1.x sink against a real `influxd`.

use std::time::Duration;

use redline_consumer::sink::ContentEncoding;
use redline_consumer::SinkConfig;
use redline_testkit::{wait_until, InfluxOptions, InfluxServer, RedisServer};

use crate::support::{
    add_metrics, config, dead_letters, influx_sink, pending, xadd, Consumer, PATIENCE, STREAM,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_reach_their_own_database() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..100, Some("alpha")).await;
    add_metrics(&mut conn, STREAM, "cpu", 0..200, Some("beta")).await;
    add_metrics(&mut conn, STREAM, "cpu", 0..300, None).await;
    add_metrics(&mut conn, STREAM, "mem", 0..50, Some("alpha")).await;
    let consumer = Consumer::start(config(&redis, "c1", influx_sink(&influx.url(), "fallback")));

    wait_until("nothing pending", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 0 && redis_lag(&mut conn).await == 0 }
    })
    .await;
    consumer.stop().await;
    assert_eq!(influx.count_points("alpha", "cpu").await, 100);
    assert_eq!(influx.count_points("alpha", "mem").await, 50);
    assert_eq!(influx.count_points("beta", "cpu").await, 200);
    assert_eq!(influx.count_points("fallback", "cpu").await, 300);
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_bodies_arrive_like_gzipped_ones() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..2_500, Some("plain")).await;
    let mut sink = influx_sink(&influx.url(), "plain");
    if let SinkConfig::Influxdb(influx) = &mut sink {
        influx.content_encoding = ContentEncoding::Identity;
    }
    let consumer = Consumer::start(config(&redis, "c1", sink));
    wait_until("nothing pending", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 0 && redis_lag(&mut conn).await == 0 }
    })
    .await;
    consumer.stop().await;
    assert_eq!(influx.count_points("plain", "cpu").await, 2_500);
    assert!(dead_letters(&mut conn).await.is_empty());
}

/// A batch's lines reach InfluxDB grouped by series; two points of one series with the same
/// timestamp must still arrive in stream order, so the later one wins, as it does written
/// one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_of_two_points_with_one_timestamp_wins_within_a_batch() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let mut conn = redis.conn().await;
    // 20 rounds over 50 series, interleaved: every series' point at t=1000 is written 20
    // times in one batch, v=0 first and v=19 last.
    let lines: Vec<String> = (0..20)
        .flat_map(|round| (0..50).map(move |s| format!("last,host=h{s:02} v={round}i 1000")))
        .collect();
    let entries: Vec<Vec<(&str, Vec<u8>)>> = lines
        .iter()
        .map(|l| vec![("lp", l.clone().into_bytes())])
        .collect();
    xadd(&mut conn, STREAM, &entries).await;
    let consumer = Consumer::start(config(&redis, "c1", influx_sink(&influx.url(), "last")));
    wait_until("nothing pending", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 0 && redis_lag(&mut conn).await == 0 }
    })
    .await;
    consumer.stop().await;
    let answer = influx
        .query("last", r#"SELECT "v" FROM "last" GROUP BY "host""#)
        .await;
    let series = answer["results"][0]["series"]
        .as_array()
        .unwrap_or_else(|| panic!("no series in {answer}"));
    let values: Vec<(String, serde_json::Value)> = series
        .iter()
        .map(|s| (s["tags"]["host"].to_string(), s["values"].clone()))
        .collect();
    assert_eq!(values.len(), 50, "{answer}");
    for (host, points) in values {
        assert_eq!(points, serde_json::json!([[1000, 19]]), "host {host}");
    }
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_conflicts_are_dead_lettered_and_the_rest_arrive() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    influx.create_db("telegraf").await;
    // `v` exists as a float in `cpu`.
    influx.write("telegraf", "cpu,host=seed v=0.5 1").await;
    let mut conn = redis.conn().await;
    let mut entries: Vec<Vec<(&str, Vec<u8>)>> = Vec::new();
    for i in 0..1000u64 {
        let ts = 1_700_000_000_000_000_000u64 + i;
        let lp = if i % 100 == 7 {
            format!("cpu,host=h{i} v=\"text\" {ts}") // conflicts with the existing float
        } else {
            format!("cpu,host=h{i} v={i} {ts}")
        };
        entries.push(vec![("lp", lp.into_bytes())]);
    }
    // A brand-new field whose types conflict inside one batch: InfluxDB stores nothing of
    // such a batch (`{"error":"field type conflict"}`); the first point sets the type.
    for i in 0..50u64 {
        let ts = 1_700_000_000_000_000_000u64 + i;
        let lp = if i % 10 == 9 {
            format!("disk,host=h{i} used=\"full\" {ts}")
        } else {
            format!("disk,host=h{i} used={i} {ts}")
        };
        entries.push(vec![("lp", lp.into_bytes())]);
    }
    xadd(&mut conn, STREAM, &entries).await;
    let consumer = Consumer::start(config(&redis, "c1", influx_sink(&influx.url(), "telegraf")));

    wait_until("nothing pending", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 0 && redis_lag(&mut conn).await == 0 }
    })
    .await;
    consumer.stop().await;
    let letters = dead_letters(&mut conn).await;
    assert_eq!(
        letters.len(),
        15,
        "10 conflicts with an existing field, 5 inside the batch"
    );
    for letter in &letters {
        assert!(
            letter["lp"].contains('"'),
            "a string point: {}",
            letter["lp"]
        );
        assert!(
            letter["reason"].contains("field type conflict"),
            "{}",
            letter["reason"]
        );
        assert_eq!(letter["deliveries"], "1");
    }
    assert_eq!(influx.count_points("telegraf", "cpu").await, 990 + 1);
    assert_eq!(influx.count_points("telegraf", "disk").await, 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_retention_policy_dead_letters_only_its_entries() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..40, Some("telegraf")).await;
    let with_rp: Vec<Vec<(&str, Vec<u8>)>> = (0..7)
        .map(|i| {
            vec![
                ("lp", crate::support::line("cpu", 100 + i).into_bytes()),
                ("db", b"telegraf".to_vec()),
                ("rp", b"nope".to_vec()),
            ]
        })
        .collect();
    xadd(&mut conn, STREAM, &with_rp).await;
    add_metrics(&mut conn, STREAM, "cpu", 40..60, Some("telegraf")).await;
    // The refused route is retried at each re-read of the consumer's pending entries.
    let consumer = Consumer::start(redline_consumer::Config {
        trim_interval: Duration::from_millis(200),
        ..config(&redis, "c1", influx_sink(&influx.url(), "telegraf"))
    });
    // The other route is not held back: its 60 points arrive while the refused 7 wait.
    wait_until("60 points", PATIENCE, || async {
        influx.count_points("telegraf", "cpu").await == 60
    })
    .await;

    wait_until("nothing pending", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 0 && redis_lag(&mut conn).await == 0 }
    })
    .await;
    consumer.stop().await;
    assert_eq!(influx.count_points("telegraf", "cpu").await, 60);
    let letters = dead_letters(&mut conn).await;
    assert_eq!(letters.len(), 7);
    for letter in &letters {
        assert_eq!(letter["rp"], "nope");
        assert_eq!(letter["deliveries"], "5", "after --max-deliveries");
        assert_eq!(
            letter["reason"],
            "max deliveries exceeded: sink refuses the route: 500: retention policy not found: nope"
        );
    }
}

/// Entries of the stream the group has not read yet (`lag`); `u64::MAX` while unknown.
async fn redis_lag(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    redline_streams::groups(conn, STREAM)
        .await
        .ok()
        .and_then(|groups| groups.first().and_then(|g| g.lag))
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_writes_are_split_and_an_oversized_point_dead_lettered() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start_with(InfluxOptions {
        max_body_size: 20_000,
        ..InfluxOptions::default()
    });
    let mut conn = redis.conn().await;
    // InfluxDB 1.6 applies max-body-size to the bytes on the wire, gzip included: 4,000
    // lines gzip to ~30 kB (over the limit), 2,000 to ~15 kB (under it).
    add_metrics(&mut conn, STREAM, "cpu", 0..2_000, Some("telegraf")).await;
    // 40,000 random letters: ~25 kB even gzipped.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let noise: String = (0..40_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect();
    let huge = format!("log,host=h msg=\"{noise}\" 1700000000000000000");
    xadd(
        &mut conn,
        STREAM,
        &[vec![
            ("lp", huge.into_bytes()),
            ("db", b"telegraf".to_vec()),
        ]],
    )
    .await;
    add_metrics(&mut conn, STREAM, "cpu", 2_000..4_000, Some("telegraf")).await;
    let consumer = Consumer::start(config(&redis, "c1", influx_sink(&influx.url(), "telegraf")));

    wait_until("nothing pending", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 0 && redis_lag(&mut conn).await == 0 }
    })
    .await;
    consumer.stop().await;
    assert_eq!(influx.count_points("telegraf", "cpu").await, 4_000);
    let letters = dead_letters(&mut conn).await;
    assert_eq!(letters.len(), 1);
    assert!(letters[0]["lp"].starts_with("log,host=h"));
    assert!(
        letters[0]["reason"].contains("too large"),
        "{}",
        letters[0]["reason"]
    );
}
