//! Starting before Redis, stopping on time, and the consumer's own HTTP listener.

use std::time::Duration;

use redline_testkit::{free_port, wait_until, RedisServer};

use crate::support::{
    add_metrics, config, dead_letters, file_lines, file_sink, influx_sink, pending,
    pending_entries, Consumer, PATIENCE, STREAM,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_before_redis_waits_for_it() {
    let mut redis = RedisServer::start(&[]);
    redis.stop();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(config(&redis, "c1", file_sink(&path)));
    // Let it fail to connect a few times (retries every 20-300 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.start_again();
    let mut conn = redis.conn().await;
    add_metrics(&mut conn, STREAM, "cpu", 0..20, None).await;
    wait_until("20 lines", PATIENCE, || async {
        file_lines(&path).len() >= 20
    })
    .await;
    consumer.stop().await;
    assert_eq!(file_lines(&path).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_gets_the_group_created_again() {
    let mut redis = RedisServer::start(&[]); // no persistence: a restart loses everything
    let mut conn = redis.conn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(config(&redis, "c1", file_sink(&path)));
    add_metrics(&mut conn, STREAM, "cpu", 0..10, None).await;
    wait_until("10 lines", PATIENCE, || async {
        file_lines(&path).len() >= 10
    })
    .await;

    redis.restart();
    let mut conn = redis.conn().await;
    // The stream is gone; the consumer creates it again (MKSTREAM) with its group at 0.
    wait_until("the group exists again", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 0 }
    })
    .await;
    add_metrics(&mut conn, STREAM, "cpu", 10..30, None).await;
    wait_until("30 lines", PATIENCE, || async {
        file_lines(&path).len() >= 30
    })
    .await;
    consumer.stop().await;
    assert_eq!(file_lines(&path).len(), 30);
}

/// A read error other than `NOGROUP` (the stream key replaced by a string: `WRONGTYPE`) is
/// retried, not taken for a lost group: creating the group on that key would fail for good
/// and end the consumer. Once the key is a stream again, delivery resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_error_other_than_nogroup_is_retried_without_creating_the_group() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = Consumer::start(config(&redis, "c1", file_sink(&path)));
    add_metrics(&mut conn, STREAM, "cpu", 0..1, None).await;
    wait_until("1 line", PATIENCE, || async {
        file_lines(&path).len() == 1
    })
    .await;

    redis::pipe()
        .cmd("DEL")
        .arg(STREAM)
        .cmd("SET")
        .arg(STREAM)
        .arg("not a stream")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    wait_until("reads refused with WRONGTYPE", PATIENCE, || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("errorstats")
                .query_async(&mut conn)
                .await
                .unwrap();
            info.lines()
                .find_map(|line| line.strip_prefix("errorstat_WRONGTYPE:count="))
                .is_some_and(|n| n.trim().parse::<u64>().unwrap() >= 3)
        }
    })
    .await;
    redis::cmd("DEL")
        .arg(STREAM)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    // A new stream without the group: `NOGROUP`, which does create it (at 0).
    add_metrics(&mut conn, STREAM, "cpu", 1..3, None).await;
    wait_until("3 lines", PATIENCE, || async {
        file_lines(&path).len() >= 3
    })
    .await;
    consumer.stop().await;
    assert_eq!(file_lines(&path).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let consumer = Consumer::start(redline_consumer::Config {
        metrics_listen: Some(addr),
        ..config(&redis, "c1", file_sink(&path))
    });
    add_metrics(&mut conn, STREAM, "cpu", 0..10, None).await;
    wait_until("10 lines", PATIENCE, || async {
        file_lines(&path).len() >= 10
    })
    .await;
    let http = reqwest::Client::new();
    let health = wait_until_get(&http, &format!("http://{addr}/health")).await;
    assert!(health.contains("\"status\":\"pass\""), "{health}");
    let ready = wait_until_get(&http, &format!("http://{addr}/ready")).await;
    assert!(ready.contains("\"status\":\"ready\""), "{ready}");
    let metrics = wait_until_get(&http, &format!("http://{addr}/metrics")).await;
    for name in [
        "redline_metrics_written_total",
        "redline_metrics_acked_total",
        "redline_batches_written_total",
        "redline_sink_write_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    consumer.stop().await;
    assert!(
        http.get(format!("http://{addr}/health"))
            .send()
            .await
            .is_err(),
        "listener closed"
    );
}

/// GETs `url` until it answers 200 (the listener may still be binding); returns the body.
async fn wait_until_get(http: &reqwest::Client, url: &str) -> String {
    redline_testkit::wait_for(url, PATIENCE, || async {
        let response = http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_within_shutdown_timeout_while_the_sink_is_down() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let unreachable = format!("http://127.0.0.1:{}", redline_testkit::free_port());
    let settings = config(&redis, "c1", influx_sink(&unreachable, "db"));
    let bound = settings.shutdown_timeout + Duration::from_secs(1);
    let consumer = Consumer::start(settings);
    add_metrics(&mut conn, STREAM, "cpu", 0..50, None).await;
    wait_until("50 entries read", PATIENCE, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, STREAM).await == 50 }
    })
    .await;
    consumer.stop_within(bound).await;
    assert_eq!(
        pending(&mut conn, STREAM).await,
        50,
        "the unwritten batch stays pending"
    );
    assert!(
        dead_letters(&mut conn).await.is_empty(),
        "an outage dead-letters nothing"
    );
    let deliveries: Vec<u64> = pending_entries(&mut conn, STREAM)
        .await
        .into_iter()
        .map(|(_, _, n)| n)
        .collect();
    // Not even the read that brought them counts: it met an outage, and a restart's re-read
    // will count it again.
    assert!(
        deliveries.iter().all(|&n| n == 0),
        "unreachable attempts are not deliveries: {deliveries:?}"
    );
}
