//! The happy path and the partial write: what goes in over HTTP comes out in InfluxDB,
//! exactly, and the group ends with nothing pending.

use std::{io::Write, time::Duration};

use redline_testkit::{InfluxServer, RedisServer};

use crate::support::{self, client, consumer, lines, Producer};

const BATCH: usize = 5_000;
const TOTAL: usize = 100_000;
const DBS: [&str; 3] = ["db0", "db1", "db2"];

/// Sends TOTAL metrics in BATCH-line bodies round-robin over DBS; returns sent per db.
async fn send_all(url: impl Fn(&str) -> String, gzip: bool) -> [u64; 3] {
    let http = client();
    let mut sent = [0_u64; 3];
    for (n, start) in (0..TOTAL).step_by(BATCH).enumerate() {
        let db = n % DBS.len();
        let body = lines(start, BATCH);
        let request = http.post(url(DBS[db]));
        let request = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(body.as_bytes()).unwrap();
            request
                .header("Content-Encoding", "gzip")
                .body(enc.finish().unwrap())
        } else {
            request.body(body)
        };
        let response = request.send().await.expect("write request");
        let status = response.status();
        assert_eq!(
            status,
            204,
            "batch {n}: {}",
            response.text().await.unwrap_or_default()
        );
        sent[db] += BATCH as u64;
    }
    sent
}

async fn assert_delivered(influx: &InfluxServer, redis: &RedisServer, sent: [u64; 3]) {
    for (db, expected) in DBS.iter().zip(sent) {
        support::wait_for_count(influx, db, expected, Duration::from_secs(90)).await;
    }
    let mut conn = redis.conn().await;
    support::wait_nothing_pending(&conn).await;
    let len: u64 = redis::cmd("XLEN")
        .arg(support::STREAM)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, TOTAL as u64, "one stream entry per metric");
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_writes_reach_influxdb_exactly_per_database() {
    let redis = RedisServer::start(&["--appendonly", "yes"]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let _consumer = consumer(&redis.url(), &influx.url(), "c1", &[]);

    let sent = send_all(|db| format!("{}/write?db={db}", producer.url), false).await;
    assert_eq!(sent.iter().sum::<u64>(), TOTAL as u64);
    assert_delivered(&influx, &redis, sent).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_gzip_writes_reach_influxdb_exactly_per_bucket() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let _consumer = consumer(&redis.url(), &influx.url(), "c1", &[]);

    let sent = send_all(
        |db| {
            format!(
                "{}/api/v2/write?org=acme&bucket={db}&precision=ns",
                producer.url
            )
        },
        true,
    )
    .await;
    assert_delivered(&influx, &redis, sent).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lines_are_named_and_only_the_good_ones_are_stored() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let _consumer = consumer(&redis.url(), &influx.url(), "c1", &[]);

    let mut body: Vec<String> = lines(0, 100).lines().map(str::to_owned).collect();
    body.insert(10, "m,host=x".into()); // line 11: no fields
    body.insert(50, "m v=1.2.3".into());
    body.insert(80, "m v=1 not-a-time".into());
    let response = client()
        .post(format!("{}/write?db=db0", producer.url))
        .body(body.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("line 11 'm,host=x'") && message.contains("3 of 103 lines rejected"),
        "{message}"
    );

    support::wait_for_count(&influx, "db0", 100, Duration::from_secs(30)).await;
    let mut conn = redis.conn().await;
    let len: u64 = redis::cmd("XLEN")
        .arg(support::STREAM)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 100, "only the good lines are stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_health_and_bad_requests_answer_like_influxdb() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &["--max-body-size", "1KiB"]).await;
    let http = client();

    let health = http
        .get(format!("{}/health", producer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = http
        .get(format!("{}/ready", producer.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"][0]["status"], "pass", "{ready}");

    let cases = [
        ("/write", "m v=1", None, 400, "database is required"),
        (
            "/api/v2/write?bucket=b&precision=fortnight",
            "m v=1",
            None,
            400,
            "invalid precision 'fortnight'; valid precision units are ns, us, ms, and s",
        ),
        (
            "/api/v2/write?org=o",
            "m v=1",
            None,
            400,
            "missing required parameter 'bucket'",
        ),
        (
            "/write?db=x",
            "m v=1",
            Some("gzip"),
            400,
            "invalid gzip body",
        ),
        (
            "/write?db=x",
            "m v=1",
            Some("br"),
            415,
            "unsupported Content-Encoding 'br'",
        ),
    ];
    for (path, body, encoding, status, text) in cases {
        let mut request = http.post(format!("{}{path}", producer.url)).body(body);
        if let Some(e) = encoding {
            request = request.header("Content-Encoding", e);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let answer = response.text().await.unwrap();
        assert!(answer.contains(text), "{path}: {answer}");
    }
    let big = "m v=1\n".repeat(500);
    let response = http
        .post(format!("{}/write?db=x", producer.url))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    let mut conn = redis.conn().await;
    let len: u64 = redis::cmd("XLEN")
        .arg(support::STREAM)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0, "nothing of a refused request is stored");
}

/// `redline_xadd_duration_seconds` observes each request's XADDs once: a request stored in
/// several rounds, and one Redis refuses, count one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xadd_histogram_observes_each_request_once() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=d", producer.url);
    // Several rounds of at most 256 KiB of lines.
    let big = lines(0, 20_000);
    assert!(big.len() > 2 * 256 * 1024, "{} bytes", big.len());
    assert_eq!(support::post(&write, big).await.status(), 204);
    assert_eq!(support::post(&write, lines(20_000, 10)).await.status(), 204);
    // The stream key holding a string: Redis refuses the XADDs (WRONGTYPE).
    let mut conn = redis.conn().await;
    redis::pipe()
        .cmd("DEL")
        .arg(support::STREAM)
        .cmd("SET")
        .arg(support::STREAM)
        .arg("not a stream")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let refused = support::post(&write, lines(30_000, 10)).await.status();
    assert!(refused.is_server_error(), "{refused}");
    let text = support::scrape(&producer.url).await;
    let observed = support::sample(&text, "redline_xadd_duration_seconds_count", "");
    assert_eq!(observed, Some(3.0), "{text}");
}

/// The producer keeps its Redis connections between requests: 50 requests one after the
/// other open none after the first (a connection per request would churn sockets, and leave
/// thousands in TIME_WAIT under load).
#[tokio::test(flavor = "multi_thread")]
async fn sequential_requests_reuse_the_producers_redis_connections() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    let mut conn = redis.conn().await;
    assert_eq!(support::post(&write, lines(0, 100)).await.status(), 204);
    let before = connections_received(&mut conn).await;
    for i in 1..=50 {
        assert_eq!(
            support::post(&write, lines(i * 100, 100)).await.status(),
            204
        );
    }
    let opened = connections_received(&mut conn).await - before;
    assert!(opened <= 2, "{opened} connections opened for 50 requests");
    assert_eq!(support::xlen(&mut conn, support::STREAM).await, 5_100);
}

/// The stdout sink prints every line exactly once, whole, with `--workers 2` taking turns.
#[tokio::test(flavor = "multi_thread")]
async fn the_stdout_sink_prints_every_line_once() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let consumer = redline_testkit::ChildGuard::spawn(
        "stdout-consumer",
        support::redline()
            .args(["consumer", "--redis-url", &redis.url(), "--sink", "stdout"])
            .args(["--workers", "2", "--batch-size", "1000"])
            .args(["--flush-interval", "100ms"]),
    );
    let mut sent = Vec::new();
    for start in (0..20_000).step_by(5_000) {
        let body = support::timestamped_lines(start, 5_000);
        sent.extend(body.lines().map(str::to_string));
        let write = format!("{}/write?db=db0", producer.url);
        assert_eq!(support::post(&write, body).await.status(), 204);
    }
    redline_testkit::wait_until("20,000 lines printed", Duration::from_secs(20), || {
        let printed = consumer.stdout().lines().count();
        async move { printed >= 20_000 }
    })
    .await;
    let mut printed: Vec<String> = consumer.stdout().lines().map(str::to_string).collect();
    printed.sort();
    sent.sort();
    assert_eq!(printed.len(), sent.len(), "each line once");
    assert!(printed == sent, "the printed lines are the lines sent");
}

/// Connections Redis accepted since it started (`total_connections_received`).
async fn connections_received(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_connections_received in INFO stats")
}
