//! The InfluxDB sink with several URLs, against real `influxd`s: which server a write goes
//! to, when it moves on, and what it does not move on for.

use std::time::Duration;

use redline_consumer::sink::{InfluxConfig, InfluxSink, Route, Sink};
use redline_consumer::SinkError;
use redline_core::entry::Entry;
use redline_testkit::{free_port, InfluxServer};

fn sink(urls: &[String]) -> InfluxSink {
    InfluxSink::new(&InfluxConfig {
        url: urls.join(","),
        timeout: Duration::from_secs(2),
        ..InfluxConfig::v1(Some("db0"))
    })
    .unwrap()
}

fn entries(range: std::ops::Range<usize>) -> Vec<Entry> {
    range
        .map(|i| Entry {
            lp: format!("m v={i}i {}", 1_600_000_000_000_000_000_i64 + i as i64),
            db: Some("db0".into()),
            rp: None,
        })
        .collect()
}

async fn write(sink: &mut InfluxSink, batch: &[Entry]) -> Result<(), SinkError> {
    let refs: Vec<&Entry> = batch.iter().collect();
    sink.write(Route::of(&batch[0]), &refs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_stay_on_the_url_that_answers_until_it_stops_answering() {
    let mut first = InfluxServer::start();
    let second = InfluxServer::start();
    let mut sink = sink(&[first.url(), second.url()]);

    write(&mut sink, &entries(0..100)).await.unwrap();
    assert_eq!(first.count_points("db0", "m").await, 100);
    assert_eq!(second.count_points("db0", "m").await, 0);

    // The first stops: the same write goes to the second, which creates the database there
    // too (created on the first is not created everywhere).
    first.stop();
    write(&mut sink, &entries(100..200)).await.unwrap();
    assert_eq!(second.count_points("db0", "m").await, 100);

    // Back again, the first is not preferred: writes stay where they went.
    first.start_again();
    write(&mut sink, &entries(200..300)).await.unwrap();
    assert_eq!(second.count_points("db0", "m").await, 200);
    assert_eq!(first.count_points("db0", "m").await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_on_the_points_is_not_taken_to_the_next_url() {
    let first = InfluxServer::start();
    let second = InfluxServer::start();
    let mut sink = sink(&[first.url(), second.url()]);
    write(&mut sink, &entries(0..10)).await.unwrap();
    // `v` was an integer: a float is a type conflict, the same answer from any server.
    let conflict = [Entry {
        lp: "m v=1.5 1600000000000000999".into(),
        db: Some("db0".into()),
        rp: None,
    }];
    let error = write(&mut sink, &conflict).await.unwrap_err();
    assert!(matches!(error, SinkError::Rejected { .. }), "{error}");
    assert_eq!(second.count_points("db0", "m").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_url_answers_the_outage_names_each_one() {
    let closed = [free_port(), free_port()].map(|p| format!("http://127.0.0.1:{p}"));
    let mut sink = sink(&closed);
    let error = write(&mut sink, &entries(0..10)).await.unwrap_err();
    assert!(error.is_outage(), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with("sink unavailable: no InfluxDB URL is available: "),
        "{text}"
    );
    for url in &closed {
        assert!(
            text.contains(&format!("{url}: sink unavailable: ")),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_url_costs_one_timeout_then_writes_go_to_the_next() {
    let mut first = InfluxServer::start();
    let second = InfluxServer::start();
    let mut sink = sink(&[first.url(), second.url()]);
    write(&mut sink, &entries(0..100)).await.unwrap();

    // Hung: connections are accepted, nothing answers. The write waits out the timeout
    // (2 s) there, then the second takes it, and it is the URL in use from then on: the
    // next write does not wait for the hung one again.
    first.pause();
    write(&mut sink, &entries(100..200)).await.unwrap();
    assert_eq!(second.count_points("db0", "m").await, 100);
    let started = std::time::Instant::now();
    write(&mut sink, &entries(200..300)).await.unwrap();
    // Less than the timeout: it did not wait for the hung URL first.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(second.count_points("db0", "m").await, 200);

    // The write that timed out may still land on the first once it wakes (its outcome was
    // unknown, as after any timeout); the first sees nothing after that.
    first.resume();
    let on_first = first.count_points("db0", "m").await;
    assert!(on_first == 100 || on_first == 200, "{on_first}");
}
