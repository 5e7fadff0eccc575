//! What the end-to-end tests share: spawning redline processes, generating line protocol,
//! and reading the group's state from Redis.

use std::{process::Command, time::Duration};

use redline_testkit::{free_port, wait_until, ChildGuard};

/// The default stream and group.
pub(crate) const STREAM: &str = "redline:metrics";
pub(crate) const GROUP: &str = "redline";

/// A `redline` command with logs quiet enough to read in a failure.
pub(crate) fn redline() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redline"));
    cmd.env_remove("REDLINE_CONFIG")
        .env("RUST_LOG", "info,redline_consumer=debug");
    cmd
}

/// A running producer and the base URL of its HTTP API.
pub(crate) struct Producer {
    pub(crate) guard: ChildGuard,
    pub(crate) url: String,
}

impl Producer {
    /// Starts `redline producer` on a free port and waits until `/ping` answers.
    pub(crate) async fn start(redis_url: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let guard = ChildGuard::spawn(
            "producer",
            redline()
                .args(["producer", "--redis-url", redis_url, "--listen", &listen])
                .args(extra),
        );
        let url = format!("http://{listen}");
        let ping = format!("{url}/ping");
        wait_until("the producer answers /ping", Duration::from_secs(15), || {
            let ping = ping.clone();
            async move {
                matches!(client().get(&ping).send().await, Ok(r) if r.status() == 204)
            }
        })
        .await;
        Self { guard, url }
    }
}

/// Starts `redline consumer NAME` writing to InfluxDB at `influx_url`.
pub(crate) fn consumer(
    redis_url: &str,
    influx_url: &str,
    name: &str,
    extra: &[&str],
) -> ChildGuard {
    ChildGuard::spawn(
        name,
        redline()
            .args(["consumer", "--redis-url", redis_url, "--consumer", name])
            .args(["--sink", "influxdb", "--influx-url", influx_url])
            .args(["--flush-interval", "200ms"])
            .args(extra),
    )
}

/// A free loopback address for a consumer's `--metrics-listen`, and the base URL of its
/// `/metrics` and `/ready` there.
pub(crate) fn metrics_address() -> (String, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    (listen, url)
}

/// `POST body` to `url`, panicking only when no answer came.
pub(crate) async fn post(url: &str, body: String) -> reqwest::Response {
    client().post(url).body(body).send().await.expect("request")
}

/// An HTTP client for the tests.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// `count` lines of measurement `m` numbered from `start`; every tenth has no timestamp
/// (the producer stamps it; its unique tag keeps it a distinct point).
pub(crate) fn lines(start: usize, count: usize) -> String {
    let mut body = String::with_capacity(count * 64);
    for i in start..start + count {
        if i % 10 == 0 {
            body.push_str(&format!("m,host=h{},seq=n{i} v={i}i\n", i % 7));
        } else {
            body.push_str(&format!(
                "m,host=h{} v={i}i {}\n",
                i % 7,
                1_600_000_000_000_000_000_i64 + i as i64
            ));
        }
    }
    body
}

/// `count` lines like [`lines`], all with a timestamp.
pub(crate) fn timestamped_lines(start: usize, count: usize) -> String {
    (start..start + count)
        .map(|i| {
            format!(
                "m,host=h{} v={i}i {}\n",
                i % 7,
                1_600_000_000_000_000_000_i64 + i as i64
            )
        })
        .collect()
}

/// XINFO GROUPS of `stream` for `group`: (pending, entries-read); `None` while the group
/// (or the stream) does not exist.
pub(crate) async fn group_state(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
) -> Option<(u64, u64)> {
    let groups = redline_streams::groups(conn, stream).await.ok()?;
    let g = groups.into_iter().find(|g| g.name == group)?;
    Some((g.pending, g.entries_read.unwrap_or(0)))
}

/// Pending entries of the group (0 when the group does not exist yet is NOT assumed).
pub(crate) async fn pending(conn: &mut redis::aio::MultiplexedConnection) -> Option<u64> {
    group_state(conn, STREAM, GROUP).await.map(|(p, _)| p)
}

/// Waits until the group has nothing pending (every entry read was acknowledged).
pub(crate) async fn wait_nothing_pending(conn: &redis::aio::MultiplexedConnection) {
    redline_testkit::wait_until(
        "nothing pending in the group",
        Duration::from_secs(30),
        || {
            let mut conn = conn.clone();
            async move { pending(&mut conn).await == Some(0) }
        },
    )
    .await;
}

/// Creates consumer group `group` on the metric stream at its oldest entry, as a tool other
/// than redline would.
pub(crate) async fn create_group(conn: &mut redis::aio::MultiplexedConnection, group: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .unwrap();
}

/// Waits until InfluxDB holds exactly `expected` values of field `v` in `db`.
pub(crate) async fn wait_for_count(
    influx: &redline_testkit::InfluxServer,
    db: &str,
    expected: u64,
    timeout: Duration,
) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let last = count(influx, db).await;
        if last == expected {
            return;
        }
        assert!(
            last < expected,
            "{db}: {last} points, more than the {expected} sent"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{db}: {last} of {expected} points after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Points with field `v` in measurement `m` of `db` (0 when the database is missing).
pub(crate) async fn count(influx: &redline_testkit::InfluxServer, db: &str) -> u64 {
    influx.count_field(db, "m", "v").await
}

/// Posts `body` until it gets a 204, as a client that retries every non-204 (and every
/// failed request) does; returns the attempts it took.
pub(crate) async fn post_until_stored(url: &str, body: &str) -> u32 {
    let http = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut attempts = 0;
    loop {
        attempts += 1;
        if let Ok(response) = http.post(url).body(body.to_owned()).send().await {
            if response.status() == 204 {
                return attempts;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 204 for a batch within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the sample `name{labels…}` (labels as rendered, or none) in `text`.
pub(crate) fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// `GET {url}/metrics`.
pub(crate) async fn scrape(url: &str) -> String {
    client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `/ready`'s status and body; status 0 while nothing listens yet.
pub(crate) async fn ready(url: &str) -> (u16, serde_json::Value) {
    match client().get(format!("{url}/ready")).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or_default())
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// `XLEN key`.
pub(crate) async fn xlen(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

/// The entries of the default dead-letter stream, oldest first, as field maps.
pub(crate) async fn dead_letters(
    conn: &mut redis::aio::MultiplexedConnection,
) -> Vec<std::collections::HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{STREAM}:dlq"))
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| {
            e.map
                .keys()
                .map(|k| (k.clone(), e.get::<String>(k).unwrap_or_default()))
                .collect()
        })
        .collect()
}

/// `redline consumer` in `group`, named like it, writing to the file at `path`.
pub(crate) fn file_consumer(
    redis_url: &str,
    group: &str,
    path: &std::path::Path,
    extra: &[&str],
) -> ChildGuard {
    ChildGuard::spawn(
        group,
        redline()
            .args(["consumer", "--redis-url", redis_url, "--group", group])
            .args(["--consumer", group, "--sink", "file", "--file"])
            .arg(path)
            .args(["--flush-interval", "100ms"])
            .args(extra),
    )
}

/// The lines of the file at `path` (0 when it does not exist).
pub(crate) fn line_count(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}
