//! Sources and sinks besides HTTP and InfluxDB 1.x: line protocol over TCP, `redline send`,
//! the InfluxDB v2 sink (against a second producer, which speaks `/api/v2/write`), and the
//! file sink's rotation. Every count is exact.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

use redline_testkit::{free_port, wait_until, ChildGuard, InfluxServer, RedisServer};
use tokio::io::AsyncWriteExt;

use crate::support::{self, client, file_consumer, line_count, lines, redline, Producer, STREAM};

const PATIENCE: Duration = Duration::from_secs(15);

async fn xlen(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

/// Every entry of `key`: its fields by name (read in pages, each well within a reply timeout).
async fn entries(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Vec<HashMap<String, String>> {
    let mut all = Vec::new();
    let mut start = "-".to_string();
    loop {
        let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(5_000)
            .query_async(conn)
            .await
            .unwrap();
        let Some(last) = page.ids.last() else {
            return all;
        };
        start = format!("({}", last.id);
        all.extend(page.ids.into_iter().map(|id| {
            id.map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                .collect::<HashMap<_, _>>()
        }));
    }
}

/// Waits until `group` has read `count` entries of the stream and holds none pending.
async fn wait_consumed(redis: &RedisServer, group: &str, count: u64) {
    let conn = redis.conn().await;
    wait_until(
        &format!("group {group} read {count} entries and acked them all"),
        PATIENCE,
        || {
            let mut conn = conn.clone();
            async move { support::group_state(&mut conn, STREAM, group).await == Some((0, count)) }
        },
    )
    .await;
}

/// Runs `redline send ARGS` to completion, feeding `stdin`.
pub(crate) async fn send(redis_url: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = tokio::process::Command::from(redline());
    cmd.args(["send", "--redis-url", redis_url])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn redline send");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
        drop(pipe);
    }
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("redline send finishes in time")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// The sum of a counter over its label sets on a `/metrics` page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_lines_over_three_connections_arrive_exactly_and_bad_lines_are_only_counted() {
    const PER_CONNECTION: usize = 16_667;
    const TOTAL: usize = 3 * PER_CONNECTION - 1; // 50,000
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let tcp = format!("127.0.0.1:{}", free_port());
    let producer =
        Producer::start(&redis.url(), &["--tcp-listen", &tcp, "--tcp-db", "tcpdb"]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.lp");
    let _files = file_consumer(&redis.url(), "files", &out, &[]);
    let _influx = support::consumer(&redis.url(), &influx.url(), "influx", &[]);

    let mut clients = Vec::new();
    for c in 0..3 {
        let tcp = tcp.clone();
        clients.push(tokio::spawn(async move {
            let count = if c == 2 {
                PER_CONNECTION - 1
            } else {
                PER_CONNECTION
            };
            let mut body = lines(c * PER_CONNECTION, count);
            let middle = body.match_indices('\n').nth(count / 2).unwrap().0 + 1;
            match c {
                // A bad line in the middle: counted and skipped, the connection goes on.
                1 => body.insert_str(middle, "not line protocol\n"),
                // A line past the 64 KiB limit, spread over many reads: skipped, not held.
                0 => body.insert_str(middle, &format!("m v=\"{}\"\n", "x".repeat(300_000))),
                _ => {}
            }
            let mut stream = tokio::net::TcpStream::connect(&tcp).await.unwrap();
            // Small writes, so lines straddle reads.
            for piece in body.as_bytes().chunks(7_919) {
                stream.write_all(piece).await.unwrap();
            }
            stream.shutdown().await.unwrap();
        }));
    }
    for client in clients {
        client.await.unwrap();
    }

    let mut conn = redis.conn().await;
    wait_until("50,000 entries in the stream", PATIENCE, || {
        let mut conn = conn.clone();
        async move { xlen(&mut conn, STREAM).await >= TOTAL as u64 }
    })
    .await;
    assert_eq!(xlen(&mut conn, STREAM).await, TOTAL as u64);
    let stored = entries(&mut conn, STREAM).await;
    assert!(stored
        .iter()
        .all(|e| e.get("db").map(String::as_str) == Some("tcpdb")));

    wait_consumed(&redis, "files", TOTAL as u64).await;
    assert_eq!(
        line_count(&out),
        TOTAL,
        "the file consumer wrote each line once"
    );
    support::wait_for_count(&influx, "tcpdb", TOTAL as u64, PATIENCE).await;

    let page = client()
        .get(format!("{}/metrics", producer.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        counter(&page, "redline_lines_rejected_total"),
        2.0,
        "{page}"
    );
    assert_eq!(
        counter(&page, "redline_lines_accepted_total"),
        TOTAL as f64,
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_lines_read_while_redis_is_down_are_held_and_stored_when_it_returns() {
    let mut redis = RedisServer::start(&[]);
    let tcp = format!("127.0.0.1:{}", free_port());
    let producer = Producer::start(&redis.url(), &["--tcp-listen", &tcp]).await;
    redis.stop();

    let mut stream = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    stream.write_all(lines(0, 1_000).as_bytes()).await.unwrap();
    wait_until(
        "the producer holds the lines and retries",
        PATIENCE,
        || async { producer.guard.stderr().contains("holding them") },
    )
    .await;
    redis.start_again();
    stream
        .write_all(lines(1_000, 500).as_bytes())
        .await
        .unwrap();
    stream.shutdown().await.unwrap();

    let mut conn = redis.conn().await;
    wait_until("1,500 entries once Redis is back", PATIENCE, || {
        let mut conn = conn.clone();
        async move { xlen(&mut conn, STREAM).await >= 1_500 }
    })
    .await;
    assert_eq!(
        xlen(&mut conn, STREAM).await,
        1_500,
        "{}",
        producer.guard.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_stores_a_200k_line_file_exactly() {
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "big.lp", &lines(0, 200_000));
    let file = path.to_str().unwrap();

    let output = send(&redis.url(), &[file, "--db", "telegraf"], None).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        format!("stored 200000 metrics from {file}; 0 lines rejected\n")
    );
    let mut conn = redis.conn().await;
    assert_eq!(xlen(&mut conn, STREAM).await, 200_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn send_with_one_bad_line_stores_the_rest_names_it_and_fails() {
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut body = lines(0, 200_000);
    let at = body.match_indices('\n').nth(123_455).unwrap().0 + 1;
    body.insert_str(at, "cpu,host=a\n"); // line 123,457: no fields
    let path = write_file(dir.path(), "one-bad.lp", &body);
    let file = path.to_str().unwrap();

    let output = send(&redis.url(), &[file], None).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 123457: "), "{stderr}");
    assert!(stderr.contains("cpu,host=a"), "{stderr}");
    assert_eq!(
        text(&output.stdout),
        format!("stored 200000 metrics from {file}; 1 line rejected\n")
    );
    let mut conn = redis.conn().await;
    assert_eq!(
        xlen(&mut conn, STREAM).await,
        200_000,
        "every valid line is stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_reads_stdin_with_precision_db_and_rp() {
    let redis = RedisServer::start(&[]);
    let mut input = String::new();
    for i in 0..1_000 {
        input.push_str(&format!("m,host=h{i} v={i}i {}\n", 1_700_000_000 + i));
    }
    input.push_str("# a comment\n\nbad line\n");
    let args = ["-", "--precision", "s", "--db", "metrics", "--rp", "week"];

    let output = send(&redis.url(), &args, Some(input.as_bytes())).await;
    assert_eq!(output.status.code(), Some(1), "one bad line");
    assert_eq!(
        text(&output.stdout),
        "stored 1000 metrics from stdin; 1 line rejected\n"
    );
    assert!(
        text(&output.stderr).contains("line 1003: "),
        "{}",
        text(&output.stderr)
    );
    let mut conn = redis.conn().await;
    let stored = entries(&mut conn, STREAM).await;
    assert_eq!(stored.len(), 1_000);
    assert_eq!(stored[7]["lp"], "m,host=h7 v=7i 1700000007000000000");
    assert!(stored
        .iter()
        .all(|e| e["db"] == "metrics" && e["rp"] == "week"));
}

#[tokio::test(flavor = "multi_thread")]
async fn send_gives_up_when_redis_stays_away_and_says_what_was_stored() {
    let dead = format!("redis://127.0.0.1:{}/", free_port());
    let output = send(&dead, &["-"], Some(lines(0, 10).as_bytes())).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stored 0 metrics from stdin"), "{stderr}");
    assert!(text(&output.stdout).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn influxdb2_sink_delivers_exactly_per_bucket_to_a_v2_server() {
    const TOKEN: &str = "t0ken-never-logged";
    let source = RedisServer::start(&[]);
    let target = RedisServer::start(&[]);
    // The second producer is the v2 server: its /api/v2/write stores into `target`.
    let server = Producer::start(&target.url(), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let named = write_file(dir.path(), "named.lp", &lines(0, 6_000));
    let unnamed = write_file(dir.path(), "unnamed.lp", &lines(6_000, 4_000));
    for (file, db) in [(&named, &["--db", "bucket-a"][..]), (&unnamed, &[][..])] {
        let output = send(
            &source.url(),
            &[&[file.to_str().unwrap()][..], db].concat(),
            None,
        )
        .await;
        assert!(output.status.success(), "{}", text(&output.stderr));
    }

    let consumer = ChildGuard::spawn(
        "v2-consumer",
        redline()
            .env("REDLINE_INFLUX_TOKEN", TOKEN)
            .args(["consumer", "--redis-url", &source.url(), "--consumer", "v2"])
            .args(["--sink", "influxdb2", "--influx-url", &server.url])
            .args(["--influx-org", "acme", "--influx-bucket", "fallback"])
            .args(["--flush-interval", "100ms", "--log-level", "debug"]),
    );
    wait_consumed(&source, support::GROUP, 10_000).await;

    let mut conn = target.conn().await;
    assert_eq!(xlen(&mut conn, STREAM).await, 10_000, "{}", consumer.logs());
    let delivered = entries(&mut conn, STREAM).await;
    let mut per_bucket: HashMap<&str, usize> = HashMap::new();
    for entry in &delivered {
        *per_bucket.entry(entry["db"].as_str()).or_default() += 1;
    }
    assert_eq!(
        per_bucket,
        HashMap::from([("bucket-a", 6_000), ("fallback", 4_000)])
    );
    let mut sent: Vec<String> = entries(&mut source.conn().await, STREAM)
        .await
        .into_iter()
        .map(|e| e["lp"].clone())
        .collect();
    let mut got: Vec<String> = delivered.into_iter().map(|e| e["lp"].clone()).collect();
    sent.sort_unstable();
    got.sort_unstable();
    assert!(sent == got, "the v2 server received exactly the lines sent");
    assert!(
        !consumer.logs().contains(TOKEN),
        "the token shows in the logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_sink_rotation_keeps_every_line_and_bounds_files() {
    const TOTAL: usize = 20_000;
    const MAX_SIZE: u64 = 64 * 1024;
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "in.lp", &lines(0, TOTAL));
    let output = send(&redis.url(), &[input.to_str().unwrap()], None).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("metrics.lp");

    let mut consumer = file_consumer(
        &redis.url(),
        "rotating",
        &out,
        &[
            "--batch-size",
            "500",
            "--file-max-size",
            "64KiB",
            "--file-max-files",
            "40",
        ],
    );
    wait_consumed(&redis, "rotating", TOTAL as u64).await;
    consumer.sigterm();
    assert!(consumer.wait_exit(PATIENCE).is_some_and(|s| s.success()));

    let files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // About 1 MB of lines in files of at most 64 KiB: more than 10, at most 1 + 40.
    assert!(files.len() > 10 && files.len() <= 41, "{files:?}");
    for file in &files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= MAX_SIZE, "{} has {size} bytes", file.display());
    }
    let total: usize = files.iter().map(|f| line_count(f)).sum();
    assert_eq!(total, TOTAL, "every line in exactly one file");
    let newest = std::fs::read_to_string(&out).unwrap();
    assert!(
        newest.ends_with(&lines(TOTAL - 1, 1)),
        "the newest lines are in metrics.lp"
    );
}
