//! InfluxDB faults: a database the user may not use, wrong credentials, a full disk, a hang.
//! Only a verdict on the points (or on one route, after `--max-deliveries`) may end in the
//! dead-letter stream; everything else is an outage that is waited out.

use std::time::Duration;

use redline_testkit::{wait_until, ChildGuard, InfluxOptions, InfluxServer, RedisServer, Tmpfs};

use crate::support::{
    self, consumer, dead_letters, post_until_stored, ready, sample, timestamped_lines, Producer,
};

const ADMIN: (&str, &str) = ("admin", "admin-secret");

/// An InfluxDB with authentication on, database `telegraf`, and a user `writer` that may
/// write to `telegraf` only (no admin: it cannot create databases).
async fn locked_influx() -> InfluxServer {
    let influx = InfluxServer::start_with(InfluxOptions {
        admin: Some((ADMIN.0.into(), ADMIN.1.into())),
        ..InfluxOptions::default()
    });
    influx.create_db("telegraf").await;
    influx
        .admin("CREATE USER writer WITH PASSWORD 'writer-secret'")
        .await;
    influx.admin("GRANT WRITE ON telegraf TO writer").await;
    influx
}

/// `redline_sink_retries_total{kind}` of the consumer at `url`; 0 while it does not listen
/// yet (it is polled from the consumer's start).
async fn retries(url: &str, kind: &str) -> f64 {
    let Ok(answer) = support::client().get(format!("{url}/metrics")).send().await else {
        return 0.0;
    };
    let text = answer.text().await.unwrap_or_default();
    sample(
        &text,
        "redline_sink_retries_total",
        &format!("kind=\"{kind}\""),
    )
    .unwrap_or(0.0)
}

/// Asserts that the consumer at `url` waits out an outage: at least `attempts` failed writes
/// of `kind` (`redline_sink_retries_total{kind}`), `/ready` 503 naming `reason`, and nothing
/// dead-lettered.
async fn waiting_out(url: &str, redis: &RedisServer, (kind, attempts): (&str, u32), reason: &str) {
    wait_until(
        &format!("{attempts} failed writes ({kind})"),
        Duration::from_secs(60),
        || async { retries(url, kind).await >= f64::from(attempts) },
    )
    .await;
    let (status, body) = ready(url).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains(reason), "{body}");
    let mut conn = redis.conn().await;
    assert!(
        dead_letters(&mut conn).await.is_empty(),
        "an outage is not the metrics' fault"
    );
}

/// Waits until InfluxDB holds exactly `count` points in `db0`, then checks that nothing is
/// pending and nothing was dead-lettered.
async fn all_arrived(influx: &InfluxServer, redis: &RedisServer, count: u64) {
    support::wait_for_count(influx, "db0", count, Duration::from_secs(90)).await;
    let mut conn = redis.conn().await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_the_user_may_not_use_holds_back_no_other_and_is_dead_lettered() {
    let redis = RedisServer::start(&[]);
    let influx = locked_influx().await;
    let producer = Producer::start(&redis.url(), &[]).await;
    let _consumer = ChildGuard::spawn(
        "c1",
        support::redline()
            .env("REDLINE_INFLUX_PASSWORD", "writer-secret")
            .args(["consumer", "--redis-url", &redis.url(), "--consumer", "c1"])
            .args(["--sink", "influxdb", "--influx-url", &influx.url()])
            .args(["--influx-username", "writer", "--max-deliveries", "3"])
            .args(["--flush-interval", "100ms", "--trim-interval", "300ms"]),
    );
    let allowed = format!("{}/write?db=telegraf", producer.url);
    let refused = format!("{}/write?db=other", producer.url);
    // Interleaved, so that batches mix both databases.
    for round in 0..5 {
        post_until_stored(&allowed, &timestamped_lines(round * 2_000, 2_000)).await;
        post_until_stored(&refused, &timestamped_lines(100_000 + round * 20, 20)).await;
    }

    support::wait_for_count(&influx, "telegraf", 10_000, Duration::from_secs(60)).await;
    let mut conn = redis.conn().await;
    wait_until("100 dead letters", Duration::from_secs(60), || {
        let mut conn = conn.clone();
        async move { dead_letters(&mut conn).await.len() == 100 }
    })
    .await;
    support::wait_nothing_pending(&conn).await;
    let letters = dead_letters(&mut conn).await;
    for letter in &letters {
        assert_eq!(letter["db"], "other");
        assert_eq!(letter["deliveries"], "3", "after --max-deliveries");
        assert!(
            letter["reason"].starts_with("max deliveries exceeded: sink refuses the route: ")
                && letter["reason"].contains("CREATE DATABASE")
                && letter["reason"].contains("requires admin privilege"),
            "InfluxDB's answer is in the reason: {}",
            letter["reason"]
        );
    }
    assert_eq!(influx.count_field("telegraf", "m", "v").await, 10_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_an_outage_not_dead_letters() {
    let redis = RedisServer::start(&[]);
    let influx = locked_influx().await;
    let producer = Producer::start(&redis.url(), &[]).await;
    let (listen, url) = support::metrics_address();
    let args = |password: &str| {
        let mut cmd = support::redline();
        cmd.env("REDLINE_INFLUX_PASSWORD", password)
            .args(["consumer", "--redis-url", &redis.url(), "--consumer", "c1"])
            .args(["--sink", "influxdb", "--influx-url", &influx.url()])
            .args(["--influx-username", "writer", "--max-deliveries", "1"])
            .args(["--flush-interval", "100ms", "--trim-interval", "300ms"])
            .args(["--metrics-listen", &listen]);
        cmd
    };
    let mut wrong = ChildGuard::spawn("wrong-password", &mut args("not-the-password"));
    let write = format!("{}/write?db=telegraf", producer.url);
    post_until_stored(&write, &timestamped_lines(0, 5_000)).await;

    // Many attempts with --max-deliveries 1: a counted attempt would dead-letter at once.
    wait_until("10 refused attempts", Duration::from_secs(60), || async {
        retries(&url, "unauthorized").await >= 10.0
    })
    .await;
    let (status, body) = ready(&url).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string().contains("refuses the credentials"),
        "/ready says why: {body}"
    );
    let mut conn = redis.conn().await;
    assert!(dead_letters(&mut conn).await.is_empty());
    assert!(
        wrong
            .stderr()
            .contains("The sink refuses the credentials on every route"),
        "the log says it plainly:\n{}",
        wrong.logs()
    );
    assert!(!wrong.logs().contains("not-the-password"));
    assert_eq!(influx.count_field("telegraf", "m", "v").await, 0);

    // The operator fixes the password: everything arrives, nothing was lost.
    wrong.sigterm();
    assert!(wrong.wait_exit(Duration::from_secs(10)).is_some());
    let _right = ChildGuard::spawn("right-password", &mut args("writer-secret"));
    support::wait_for_count(&influx, "telegraf", 5_000, Duration::from_secs(60)).await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_on_influxdb_is_an_outage_and_dead_letters_nothing() {
    let disk = match Tmpfs::mount("64m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: a full disk needs a tmpfs ({why}); CI runs as root");
            return;
        }
    };
    let redis = RedisServer::start(&[]);
    let mut influx = InfluxServer::start_with(InfluxOptions {
        data_root: Some(disk.path().to_path_buf()),
        ..InfluxOptions::default()
    });
    let producer = Producer::start(&redis.url(), &[]).await;
    let (listen, url) = support::metrics_address();
    let _consumer = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--max-deliveries", "1", "--metrics-listen", &listen],
    );
    let write = format!("{}/write?db=db0", producer.url);
    post_until_stored(&write, &timestamped_lines(0, 5_000)).await;
    support::wait_for_count(&influx, "db0", 5_000, Duration::from_secs(60)).await;

    disk.fill();
    for start in (5_000..25_000).step_by(5_000) {
        post_until_stored(&write, &timestamped_lines(start, 5_000)).await;
    }
    // InfluxDB answers 500 "engine: error writing WAL entry: … no space left on device".
    waiting_out(&url, &redis, ("unavailable", 10), "no space left on device").await;

    // Space is freed and influxd restarted (it keeps failing until then).
    disk.free();
    influx.stop();
    influx.start_again();
    all_arrived(&influx, &redis, 25_000).await;
    wait_until("ready again", Duration::from_secs(30), || async {
        ready(&url).await.0 == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_influxdb_is_an_outage_and_everything_arrives_after() {
    let redis = RedisServer::start(&[]);
    let mut influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let (listen, url) = support::metrics_address();
    let _consumer = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &[
            "--max-deliveries",
            "1",
            "--influx-timeout",
            "1s",
            "--metrics-listen",
            &listen,
        ],
    );
    let write = format!("{}/write?db=db0", producer.url);
    post_until_stored(&write, &timestamped_lines(0, 1_000)).await;
    support::wait_for_count(&influx, "db0", 1_000, Duration::from_secs(60)).await;

    influx.pause();
    for start in (1_000..11_000).step_by(5_000) {
        post_until_stored(&write, &timestamped_lines(start, 5_000)).await;
    }
    waiting_out(&url, &redis, ("timeout", 3), "timed out").await;

    influx.resume();
    all_arrived(&influx, &redis, 11_000).await;
}
