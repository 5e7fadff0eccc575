//! Several `--influx-url`s: writes go to the first, the next takes over when it is
//! unavailable, and nothing is lost or dead-lettered on the way.

use std::collections::BTreeSet;
use std::time::Duration;

use redline_testkit::{wait_until, InfluxServer, RedisServer};

use crate::ops::ops;
use crate::support::{self, consumer, post_until_stored, timestamped_lines, Producer};

const METRICS: usize = 60_000;
const BODY: usize = 2_000;

/// The `v` of every point of `m` in `db0`.
async fn values(influx: &InfluxServer) -> Vec<u64> {
    let answer = influx.query("db0", "SELECT v FROM m").await;
    answer["results"][0]["series"][0]["values"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|row| row[1].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_first_influxdb_stops_the_second_takes_every_write_and_none_is_lost() {
    let redis = RedisServer::start(&[]);
    let mut first = InfluxServer::start();
    let second = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let (listen, metrics) = support::metrics_address();
    let second_url = second.url();
    let args = [
        "--influx-url",
        &second_url,
        "--influx-timeout",
        "2s",
        "--max-deliveries",
        "1",
        "--batch-size",
        "1000",
        "--metrics-listen",
        &listen,
    ];
    let _consumer = consumer(&redis.url(), &first.url(), "c1", &args);
    let write = format!("{}/write?db=db0", producer.url);

    // Half while both answer: all of it goes to the first.
    for start in (0..METRICS / 2).step_by(BODY) {
        post_until_stored(&write, &timestamped_lines(start, BODY)).await;
    }
    support::wait_for_count(&first, "db0", (METRICS / 2) as u64, Duration::from_secs(60)).await;
    assert_eq!(support::count(&second, "db0").await, 0);

    // The first stops mid-run; the rest keeps coming.
    first.stop();
    for start in (METRICS / 2..METRICS).step_by(BODY) {
        post_until_stored(&write, &timestamped_lines(start, BODY)).await;
    }
    let url = redis.url();
    wait_until(
        "the group acked everything",
        Duration::from_secs(60),
        || async {
            let status = ops(&url, &["status", "--json"]).json();
            status["streams"][0]["groups"][0]["lag"] == 0
                && status["streams"][0]["groups"][0]["pending"] == 0
        },
    )
    .await;

    // While the first is down: the consumer is ready (the second answers), and says which
    // URL is down.
    let (ready, body) = support::ready(&metrics).await;
    assert_eq!(ready, 200, "{body}");
    let text = support::scrape(&metrics).await;
    let up = |url: &str| support::sample(&text, "redline_sink_url_up", &format!("url=\"{url}\""));
    assert_eq!(up(&first.url()), Some(0.0), "{text}");
    assert_eq!(up(&second.url()), Some(1.0), "{text}");

    // Across both: every metric exactly, none dead-lettered.
    first.start_again();
    let (on_first, on_second) = (values(&first).await, values(&second).await);
    let all: BTreeSet<u64> = on_first.iter().chain(&on_second).copied().collect();
    assert_eq!(all.len(), METRICS, "distinct metrics across both InfluxDBs");
    assert_eq!(all.last(), Some(&(METRICS as u64 - 1)));
    assert!(
        on_second.len() >= METRICS / 2,
        "the second holds {} of the {} sent after the first stopped",
        on_second.len(),
        METRICS / 2
    );
    let status = ops(&url, &["status", "--json"]).json();
    assert_eq!(
        status["dlq_length"], 0,
        "an outage never becomes dead letters"
    );
}

/// `/ready` probes each URL at `--influx-ping-path`: a path the server does not answer is
/// not ready, with what it answered; an empty path probes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_ready_probe_uses_the_configured_path() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let nothing = format!("http://127.0.0.1:{}", redline_testkit::free_port());
    let probe = |name: &str, influx_url: &str, path: &str| {
        let (listen, url) = support::metrics_address();
        let args = ["--influx-ping-path", path, "--metrics-listen", &listen];
        (consumer(&redis.url(), influx_url, name, &args), url)
    };
    let (_wrong, wrong) = probe("wrong", &influx.url(), "/nope");
    let (_ping, ping) = probe("ping", &influx.url(), "/ping");
    let (_none, none) = probe("none", &nothing, "");
    for (url, expected) in [(&ping, 200), (&none, 200), (&wrong, 503)] {
        wait_until("/ready answers", Duration::from_secs(15), || async {
            support::ready(url).await.0 == expected
        })
        .await;
    }
    let (_, body) = support::ready(&wrong).await;
    let expected = format!(
        "InfluxDB at {} answered 404 Not Found to GET /nope",
        influx.url()
    );
    assert!(body.to_string().contains(&expected), "{body}");
}
