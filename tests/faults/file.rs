//! The file sink's faults: a torn last line left by a crash, a full disk.

use std::time::Duration;

use redline_testkit::{wait_until, RedisServer, Tmpfs};

use crate::support::{
    self, dead_letters, file_consumer, line_count, post_until_stored, ready, sample, scrape,
    timestamped_lines, Producer, GROUP,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_line_left_by_a_crash_is_cut_off_and_no_metric_is_glued_to_it() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.lp");
    // What a kill -9 in the middle of an append leaves: whole lines, then half of one.
    let whole = timestamped_lines(0, 3);
    std::fs::write(&out, format!("{whole}m,host=h3 v=3i 160000")).unwrap();

    let consumer = file_consumer(&redis.url(), GROUP, &out, &[]);
    let sent = timestamped_lines(3, 1_000);
    post_until_stored(&format!("{}/write?db=db0", producer.url), &sent).await;
    wait_until("1003 lines", Duration::from_secs(30), || async {
        line_count(&out) == 1_003
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{whole}{sent}"),
        "every line whole, the first acknowledged one included"
    );
    assert!(
        consumer.stderr().contains("ended in a partial line"),
        "the cut is reported:\n{}",
        consumer.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_under_the_file_sink_waits_and_loses_nothing() {
    let disk = match Tmpfs::mount("16m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: a full disk needs a tmpfs ({why}); CI runs as root");
            return;
        }
    };
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let out = disk.path().join("out.lp");
    let (listen, url) = support::metrics_address();
    let _consumer = file_consumer(
        &redis.url(),
        GROUP,
        &out,
        &["--max-deliveries", "1", "--metrics-listen", &listen],
    );
    let write = format!("{}/write?db=db0", producer.url);
    post_until_stored(&write, &timestamped_lines(0, 5_000)).await;
    wait_until("5000 lines", Duration::from_secs(30), || async {
        line_count(&out) == 5_000
    })
    .await;

    disk.fill();
    for start in (5_000..15_000).step_by(5_000) {
        post_until_stored(&write, &timestamped_lines(start, 5_000)).await;
    }
    wait_until("5 failed appends", Duration::from_secs(30), || async {
        let text = scrape(&url).await;
        sample(&text, "redline_sink_retries_total", "kind=\"unavailable\"").unwrap_or(0.0) >= 5.0
    })
    .await;
    let (status, body) = ready(&url).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string().contains("No space left on device"),
        "{body}"
    );
    let mut conn = redis.conn().await;
    assert!(dead_letters(&mut conn).await.is_empty());
    assert!(
        std::fs::read_to_string(&out).unwrap().ends_with('\n'),
        "a failed append leaves no half line"
    );

    disk.free();
    wait_until("15000 lines", Duration::from_secs(30), || async {
        line_count(&out) == 15_000
    })
    .await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty());
    let expected: String = (0..15_000)
        .step_by(5_000)
        .map(|s| timestamped_lines(s, 5_000))
        .collect();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
}
