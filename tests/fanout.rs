//! Fan-out: one consumer group per backend, each with its own progress, lag and retries; the
//! stream is trimmed only behind the slowest group. This is what replaces influxdb-relay, and
//! unlike its RAM buffer the backlog of a backend that is down survives restarts.

mod failover;
mod rate;

use std::time::{Duration, Instant};

use redline_testkit::{wait_until, InfluxServer, RedisServer};

use crate::ops::ops;
use crate::support::{self, consumer, post_until_stored, timestamped_lines, Producer, STREAM};

const METRICS: usize = 100_000;
const BODY: usize = 5_000;
/// How long the second InfluxDB stays down: the scenario, not a synchronisation.
const OUTAGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn two_groups_feed_two_influxdbs_and_one_down_for_a_minute_costs_the_other_nothing() {
    let redis = RedisServer::start(&[]);
    let a = InfluxServer::start();
    let mut b = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let group = |name: &'static str| ["--group", name, "--trim-interval", "500ms"];
    let _to_a = consumer(&redis.url(), &a.url(), "a1", &group("to-a"));
    let _to_b = consumer(&redis.url(), &b.url(), "b1", &group("to-b"));
    let url = redis.url();
    wait_until("both groups exist", Duration::from_secs(30), || async {
        let status = ops(&url, &["status", "--json"]).json();
        status["streams"][0]["groups"]
            .as_array()
            .is_some_and(|groups| groups.len() == 2)
    })
    .await;

    b.stop();
    let down = Instant::now();
    let write = format!("{}/write?db=db0", producer.url);
    for start in (0..METRICS).step_by(BODY) {
        post_until_stored(&write, &timestamped_lines(start, BODY)).await;
    }
    support::wait_for_count(&a, "db0", METRICS as u64, Duration::from_secs(120)).await;

    // Side by side: the first group is done, the second holds everything; nothing is trimmed.
    let status = ops(&url, &["status", "--json"]).json();
    let stream = &status["streams"][0];
    let lag = |name: &str| {
        let groups = stream["groups"].as_array().expect("groups");
        let g = groups
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("group {name} in {stream}"));
        (
            g["lag"].as_u64().unwrap_or(0),
            g["pending"].as_u64().unwrap_or(0),
        )
    };
    assert_eq!(lag("to-a"), (0, 0), "{stream}");
    let (b_lag, b_pending) = lag("to-b");
    assert_eq!(b_lag + b_pending, METRICS as u64, "{stream}");
    assert_eq!(stream["length"], METRICS as u64, "{stream}");
    assert_eq!(status["dlq_length"], 0);

    tokio::time::sleep_until((down + OUTAGE).into()).await;
    b.start_again();
    support::wait_for_count(&b, "db0", METRICS as u64, Duration::from_secs(120)).await;
    assert_eq!(a.count_points("db0", "m").await, METRICS as u64);
    wait_until(
        "the stream trimmed once both groups acked",
        Duration::from_secs(30),
        || async { support::xlen(&mut redis.conn().await, STREAM).await <= 3 * BODY as u64 },
    )
    .await;
    let status = ops(&url, &["status", "--json"]).json();
    assert_eq!(
        status["dlq_length"], 0,
        "an outage never becomes dead letters"
    );
    for group in status["streams"][0]["groups"].as_array().expect("groups") {
        assert_eq!(
            (&group["lag"], &group["pending"]),
            (&0.into(), &0.into()),
            "{group}"
        );
    }
}

/// Routing: a group that includes one database and a group that excludes it split three
/// databases between two InfluxDBs; each holds exactly its share, and what a group skips is
/// acknowledged and counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_that_includes_a_database_and_one_that_excludes_it_split_the_stream() {
    const EACH: usize = 5_000;
    let redis = RedisServer::start(&[]);
    let (a, b) = (InfluxServer::start(), InfluxServer::start());
    let producer = Producer::start(&redis.url(), &[]).await;
    let (listen_a, metrics_a) = support::metrics_address();
    let (listen_b, metrics_b) = support::metrics_address();
    let only = [
        "--group",
        "only-db1",
        "--include-db",
        "db1",
        "--metrics-listen",
        &listen_a,
    ];
    let _only = consumer(&redis.url(), &a.url(), "a1", &only);
    let others = [
        "--group",
        "not-db1",
        "--exclude-db",
        "db1",
        "--metrics-listen",
        &listen_b,
    ];
    let _others = consumer(&redis.url(), &b.url(), "b1", &others);
    for db in ["db1", "db2", "db3"] {
        let write = format!("{}/write?db={db}", producer.url);
        post_until_stored(&write, &timestamped_lines(0, EACH)).await;
    }
    support::wait_for_count(&a, "db1", EACH as u64, Duration::from_secs(60)).await;
    support::wait_for_count(&b, "db2", EACH as u64, Duration::from_secs(60)).await;
    support::wait_for_count(&b, "db3", EACH as u64, Duration::from_secs(60)).await;
    let url = redis.url();
    wait_until(
        "both groups acked everything",
        Duration::from_secs(30),
        || async {
            let status = ops(&url, &["status", "--json"]).json();
            status["streams"][0]["groups"]
                .as_array()
                .is_some_and(|groups| groups.iter().all(|g| g["lag"] == 0 && g["pending"] == 0))
        },
    )
    .await;
    let skipped = |url: String| async move {
        let text = support::scrape(&url).await;
        support::sample(&text, "redline_entries_skipped_total", "").unwrap_or(-1.0)
    };
    assert_eq!(skipped(metrics_a).await, (2 * EACH) as f64);
    assert_eq!(skipped(metrics_b).await, EACH as f64);
    // Nothing crossed over.
    assert_eq!(b.count_points("db1", "m").await, 0);
    for db in ["db2", "db3"] {
        assert_eq!(
            a.count_points(db, "m").await,
            0,
            "{db} on the db1-only InfluxDB"
        );
    }
    assert_eq!(a.count_points("db1", "m").await, EACH as u64);
}
