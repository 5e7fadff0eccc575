//! What operators watch: `/metrics` counts that match reality, `/ready` that follows the
//! dependencies.

use std::time::{Duration, Instant};

use redline_testkit::{free_port, wait_until, InfluxServer, RedisServer};

use crate::support::{
    self, client, consumer, lines, ready, sample, scrape, Producer, GROUP, STREAM,
};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_match_the_test_counts_and_xinfo() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let mut conn = redis.conn().await;
    support::create_group(&mut conn, "archive").await;
    let producer = Producer::start(&redis.url(), &[]).await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let _c = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--metrics-listen", &metrics_addr],
    );
    let consumer_url = format!("http://{metrics_addr}");
    let write = format!("{}/write?db=db0", producer.url);

    // Make `v` an integer, then send 10,000 good lines, 3 bad ones and 5 type conflicts.
    assert_eq!(
        client()
            .post(&write)
            .body("m v=1i 1600000000000000000")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    support::wait_for_count(&influx, "db0", 1, Duration::from_secs(30)).await;
    let mut body: Vec<String> = lines(100, 10_000).lines().map(str::to_owned).collect();
    for i in 0..5 {
        body.push(format!(
            "m,host=bad v=\"s\" {}",
            1_600_000_000_000_000_000_i64 + 50_000 + i
        ));
    }
    body.extend(["bad line".to_owned(), "m".to_owned(), "m v=".to_owned()]);
    let response = client()
        .post(&write)
        .body(body.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "three bad lines");

    support::wait_for_count(&influx, "db0", 1 + 10_000, Duration::from_secs(60)).await;
    let conn2 = conn.clone();
    wait_until("5 dead letters", Duration::from_secs(30), || {
        let mut conn = conn2.clone();
        async move {
            redis::cmd("XLEN")
                .arg(format!("{STREAM}:dlq"))
                .query_async::<u64>(&mut conn)
                .await
                .unwrap()
                == 5
        }
    })
    .await;
    support::wait_nothing_pending(&conn).await;

    let produced = scrape(&producer.url).await;
    assert_eq!(
        sample(&produced, "redline_lines_accepted_total", ""),
        Some(10_006.0),
        "{produced}"
    );
    assert_eq!(
        sample(
            &produced,
            "redline_lines_rejected_total",
            "reason=\"parse\""
        ),
        Some(3.0)
    );

    let consumed = scrape(&consumer_url).await;
    assert_eq!(
        sample(&consumed, "redline_metrics_written_total", ""),
        Some(10_001.0),
        "{consumed}"
    );
    assert_eq!(
        sample(&consumed, "redline_metrics_acked_total", ""),
        Some(10_006.0),
        "{consumed}"
    );
    let dead: f64 = consumed
        .lines()
        .filter(|l| l.starts_with("redline_metrics_dead_lettered_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dead, 5.0, "{consumed}");
    assert!(
        consumed.contains("redline_sink_write_duration_seconds_bucket"),
        "a histogram"
    );

    // Lag and pending are Redis's own figures, for our group and for one we did not create.
    let (pending, _) = support::group_state(&mut conn, STREAM, GROUP)
        .await
        .unwrap();
    let archive_lag: u64 = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(&mut conn)
        .await
        .unwrap();
    let labels = |g: &str| format!("group=\"{g}\",stream=\"{STREAM}\"");
    let find = |text: &str, name: &str, g: &str| {
        sample(text, name, &labels(g))
            .or_else(|| sample(text, name, &format!("stream=\"{STREAM}\",group=\"{g}\"")))
    };
    assert_eq!(
        find(&consumed, "redline_group_pending", GROUP),
        Some(pending as f64),
        "{consumed}"
    );
    assert_eq!(find(&consumed, "redline_group_lag", GROUP), Some(0.0));
    assert_eq!(
        find(&consumed, "redline_group_lag", "archive"),
        Some(archive_lag as f64)
    );
    assert_eq!(
        find(&produced, "redline_group_lag", "archive"),
        Some(archive_lag as f64),
        "any process reports the truth"
    );
    assert_eq!(sample(&consumed, "redline_dlq_length", ""), Some(5.0));
}

async fn wait_ready(url: &str, want: u16, what: &str) -> Duration {
    let started = Instant::now();
    let url = url.to_owned();
    wait_until(what, Duration::from_secs(10), || {
        let url = url.clone();
        async move { ready(&url).await.0 == want }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_follows_redis_and_the_sink() {
    let mut redis = RedisServer::start(&["--appendonly", "yes"]);
    let mut influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let _c = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--metrics-listen", &metrics_addr],
    );
    let consumer_url = format!("http://{metrics_addr}");
    wait_ready(&consumer_url, 200, "the consumer is ready").await;
    assert_eq!(ready(&producer.url).await.0, 200);

    influx.stop();
    let took = wait_ready(
        &consumer_url,
        503,
        "the consumer is not ready without InfluxDB",
    )
    .await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (_, body) = ready(&consumer_url).await;
    assert_eq!(body["checks"][1]["name"], "sink");
    assert!(
        body["checks"][1]["error"]
            .as_str()
            .unwrap()
            .contains("InfluxDB"),
        "{body}"
    );
    assert_eq!(
        ready(&producer.url).await.0,
        200,
        "the producer does not need InfluxDB"
    );
    influx.start_again();
    wait_ready(&consumer_url, 200, "the consumer is ready again").await;

    redis.kill();
    for url in [&producer.url, &consumer_url] {
        let took = wait_ready(url, 503, "not ready without Redis").await;
        assert!(took < Duration::from_secs(2), "{url}: {took:?}");
        let (_, body) = ready(url).await;
        assert_eq!(body["checks"][0]["name"], "redis");
        assert_eq!(body["checks"][0]["status"], "fail", "{body}");
    }
    redis.start_again();
    wait_ready(&producer.url, 200, "the producer is ready again").await;
    wait_ready(&consumer_url, 200, "the consumer is ready again").await;
}

/// `--threads` sets the threads of the process's runtime, and `/metrics` says how many run;
/// without it, one per CPU.
#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_runs_the_threads_asked_for() {
    let redis = RedisServer::start(&[]);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    for (args, threads) in [
        (&["--threads", "1"][..], 1),
        (&["--threads", "3"], 3),
        (&[], cpus),
    ] {
        let producer = Producer::start(&redis.url(), args).await;
        let metrics = scrape(&producer.url).await;
        assert_eq!(
            sample(&metrics, "redline_runtime_threads", ""),
            Some(threads as f64),
            "{args:?}"
        );
    }
}
