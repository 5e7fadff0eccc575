//! One rule for where a line ends, on every source: a newline inside a quoted string value
//! never splits a metric, over HTTP, TCP or `redline send`; and `send` honours the
//! producer's configured limits.

use std::time::Duration;

use redline_testkit::{free_port, wait_until, RedisServer};
use tokio::io::AsyncWriteExt;

use super::Stack;
use crate::sources::send;
use crate::support::{xlen, STREAM};

/// A metric whose string value holds a newline, and a plain one after it.
const BODY: &str = "log,host=a msg=\"first\nsecond\" 1600000000000000000\nlog,host=b msg=\"ok\" 1600000000000000001\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_quoted_newline_stays_in_its_metric_over_http_tcp_and_send() {
    let tcp = format!("127.0.0.1:{}", free_port());
    let stack = Stack::start(&["--tcp-listen", &tcp, "--tcp-db", "tcp"]).await;

    let (status, text) = stack.post("/write?db=http", BODY).await;
    assert_eq!(status, 204, "{text}");
    // Over TCP, cut so that the read ends right after the quoted newline.
    let mut stream = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    let cut = BODY.find('\n').unwrap() + 1;
    stream.write_all(&BODY.as_bytes()[..cut]).await.unwrap();
    // A pause so that the pieces very likely arrive in separate reads (the first one ending
    // inside the quote); the outcome must be the same either way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(&BODY.as_bytes()[cut..]).await.unwrap();
    stream.shutdown().await.unwrap();
    // And with `redline send`, whose batches are two physical lines here.
    let output = send(
        &stack.redis.url(),
        &["-", "--db", "send", "--batch-size", "1"],
        Some(BODY.as_bytes()),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "stored 2 metrics from stdin; 0 lines rejected\n"
    );

    for db in ["http", "tcp", "send"] {
        let rows = stack.rows(db, "SELECT host, msg FROM log", 2).await;
        assert_eq!(rows[0][2], "first\nsecond", "{db}: {rows:?}");
        assert_eq!(rows[1][2], "ok", "{db}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn send_names_a_bad_line_by_its_physical_number_and_honours_the_limits() {
    let redis = RedisServer::start(&[]);
    let input = format!("{BODY}bad line\n");
    let output = send(&redis.url(), &["-"], Some(input.as_bytes())).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 4: "),
        "the 4th physical line: {stderr}"
    );

    // The producer's limits come from the environment (or the config file) for send too.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.lp");
    std::fs::write(&file, format!("m v=1i 1\nm s=\"{}\" 2\n", "x".repeat(200))).unwrap();
    let mut cmd = tokio::process::Command::from(crate::support::redline());
    let output = cmd
        .env("REDLINE_MAX_LINE_LENGTH", "100")
        .args(["send", "--redis-url", &redis.url(), file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("line 2: line is 208 bytes long, more than the limit of 100 bytes"),
        "{output:?}"
    );
    let mut conn = redis.conn().await;
    // 2 from the first run, 1 from this one.
    assert_eq!(xlen(&mut conn, STREAM).await, 3);

    // A buffer limit: send stores in requests that fit, waiting for consumers to drain.
    let limited = RedisServer::start(&[]);
    let lines: String = (0..50).map(|i| format!("m v={i}i {i}\n")).collect();
    let mut cmd = tokio::process::Command::from(crate::support::redline());
    let mut child = cmd
        .env("REDLINE_BUFFER_LIMIT", "20")
        .args(["send", "--redis-url", &limited.url(), "-", "--db", "x"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines.as_bytes()).await.unwrap();
    drop(stdin);
    let mut conn = limited.conn().await;
    // No group reads the stream, so the backlog is the stream: 20 fit, the rest wait.
    wait_until("20 stored", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move { xlen(&mut conn, STREAM).await == 20 }
    })
    .await;
    let _ = child.kill().await;
    assert_eq!(xlen(&mut conn, STREAM).await, 20, "never past the limit");
}
