//! Request limits: body size (413), line length and field count (400 naming the line),
//! slow clients (408, and they never hold the listener), concurrent requests (503).

use std::{io::Write, time::Duration};

use redline_testkit::{wait_until, RedisServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{producer, stored_lines, stream_len};
use crate::support::client;

/// `host:port` of a producer URL.
fn authority(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// A connection that sent the headers of a write declaring `declared` body bytes, and a
/// few of them, then stalls.
async fn stalled(addr: &str, declared: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /write?db=slow HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {declared}\r\n\r\nslow v=1"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send headers");
    stream
}

/// What the server sent on `stream` before closing it or within `timeout`.
async fn read_answer(stream: &mut TcpStream, timeout: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(timeout, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn error_of(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    body["error"].as_str().expect("an error text").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_a_json_413_and_nothing_is_stored() {
    let redis = RedisServer::start(&[]);
    let producer = producer(&redis.url(), &["--max-body-size", "64KiB"], &[]).await;
    let http = client();
    let write = format!("{}/write?db=d", producer.url);

    // Declared too large: refused before reading.
    let body = "big v=1i 1\n".repeat(7_000);
    let response = http.post(&write).body(body).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        error_of(response).await,
        "request body too large: more than 65536 bytes"
    );

    // A gzip bomb: small on the wire, too large once decoded.
    let bomb = gzip(&vec![b'a'; 20_000_000]);
    assert!(bomb.len() < 64 * 1024);
    let response = http
        .post(format!("{}/api/v2/write?bucket=b", producer.url))
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "request too large", "{body}");

    // Chunked, no Content-Length: refused when it grows past the limit.
    let addr = authority(&producer.url).to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let chunk = "c v=1i 1\n".repeat(8_000);
    let request = format!(
        "POST /write?db=d HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"request body too large"#),
        "{answer}"
    );

    // A big /query form is refused as JSON too.
    let response = http
        .post(format!("{}/query", producer.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("q={}", "x".repeat(70_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(!error_of(response).await.is_empty());

    let mut conn = redis.conn().await;
    assert_eq!(stream_len(&mut conn).await, 0);
    // The producer still serves.
    let ok = http.post(&write).body("ok v=1i 1").send().await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(stream_len(&mut conn).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_lines_and_lines_with_too_many_fields_are_refused_by_number() {
    let redis = RedisServer::start(&[]);
    let producer = producer(
        &redis.url(),
        &["--max-line-length", "200", "--max-fields", "3"],
        &[],
    )
    .await;
    let long = format!("long,t={} v=1i 1", "x".repeat(200));
    let body = format!("a v=1i 1\n{long}\nb f1=1,f2=2,f3=3 1\nc f1=1,f2=2,f3=3,f4=4 1\nd v=1i 1\n");
    let response = client()
        .post(format!("{}/write?db=d", producer.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(response).await;
    assert!(
        error.starts_with("partial write: unable to parse line 2 'long,t=xxx")
            && error.contains("line is 214 bytes long, more than the limit of 200 bytes")
            && error.ends_with("(2 of 5 lines rejected; the other 3 were stored)"),
        "{error}"
    );
    let mut conn = redis.conn().await;
    assert_eq!(
        stored_lines(&mut conn).await,
        ["a v=1i 1", "b f1=1,f2=2,f3=3 1", "d v=1i 1"]
    );

    let response = client()
        .post(format!("{}/write?db=d", producer.url))
        .body("c f1=1,f2=2,f3=3,f4=4 1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(response).await;
    assert!(
        error.contains("line 1") && error.contains("4 fields, more than the limit of 3"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_stalled_clients_do_not_stop_a_normal_one() {
    let redis = RedisServer::start(&[]);
    let producer = producer(&redis.url(), &["--read-timeout", "1s"], &[]).await;
    let addr = authority(&producer.url).to_owned();
    let mut slow = Vec::new();
    for _ in 0..50 {
        slow.push(stalled(&addr, 1_000).await);
    }
    let write = client()
        .post(format!("{}/write?db=d", producer.url))
        .body("normal v=1i 1")
        .send();
    let response = tokio::time::timeout(Duration::from_secs(2), write)
        .await
        .expect("a normal client answered within 2 s")
        .unwrap();
    assert_eq!(response.status(), 204);

    // Each stalled client gets 408 once --read-timeout passed, and nothing of it is stored.
    for stream in &mut slow[..3] {
        let answer = read_answer(stream, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("request body not received within 1s"),
            "{answer}"
        );
    }
    let mut conn = redis.conn().await;
    assert_eq!(stored_lines(&mut conn).await, ["normal v=1i 1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_past_the_concurrency_limit_get_503_with_retry_after() {
    let redis = RedisServer::start(&[]);
    let producer = producer(
        &redis.url(),
        &["--max-concurrent-requests", "5", "--retry-after", "3s"],
        &[],
    )
    .await;
    let addr = authority(&producer.url).to_owned();
    let mut slow = Vec::new();
    for _ in 0..5 {
        slow.push(stalled(&addr, 1_000).await);
    }
    let url = format!("{}/api/v2/write?bucket=b", producer.url);
    // The stalled requests hold every permit once the server has read their headers; a
    // write that slipped in before is stored, and counted.
    let mut slipped_in = 0;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let sent = std::time::Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(3),
            client().post(&url).body("x v=1i 1").send(),
        )
        .await;
        let outcome = match &response {
            Ok(Ok(r)) => r.status().to_string(),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within 3 s".to_owned(),
        };
        seen.push(format!("{outcome} after {:?}", sent.elapsed()));
        match response {
            Ok(Ok(r)) if r.status() == 503 => break r,
            Ok(Ok(r)) if r.status() == 204 => slipped_in += 1,
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 503: {seen:?}\n{}",
            producer.guard.logs()
        );
        tokio::time::sleep(redline_testkit::POLL_INTERVAL).await;
    };
    assert_eq!(refused.headers()["Retry-After"], "3");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    assert_eq!(
        body["error"],
        "too many concurrent requests (more than 5); retry later"
    );

    // Once they are gone, writes go through again.
    drop(slow);
    wait_until("a write accepted again", Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            matches!(client().post(&url).body("y v=1i 1").send().await, Ok(r) if r.status() == 204)
        }
    })
    .await;
    let mut conn = redis.conn().await;
    let mut expected = vec!["x v=1i 1"; slipped_in];
    expected.push("y v=1i 1");
    assert_eq!(stored_lines(&mut conn).await, expected);
}

/// The value of gauge `name` on the producer's `/metrics` (0 before it is first set).
async fn gauge(url: &str, name: &str) -> f64 {
    let Ok(response) = client().get(format!("{url}/metrics")).send().await else {
        return f64::NAN;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_concurrent_writes_requests_wait_their_turn_and_all_are_stored() {
    let redis = RedisServer::start(&[]);
    let producer = producer(
        &redis.url(),
        &["--max-concurrent-writes", "1", "--enqueue-timeout", "10s"],
        &[],
    )
    .await;
    let mut conn = redis.conn().await;
    // Redis holds writes for 3 s: the first request keeps its turn meanwhile.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3_000)
        .arg("WRITE")
        .query_async(&mut conn)
        .await
        .unwrap();
    let url = format!("{}/write?db=turns", producer.url);
    let requests: Vec<_> = (0..3)
        .map(|r| {
            let (url, body) = (
                url.clone(),
                crate::support::timestamped_lines(r * 1_000, 1_000),
            );
            tokio::spawn(async move { client().post(&url).body(body).send().await })
        })
        .collect();
    wait_until(
        "two requests waiting for a turn",
        Duration::from_millis(2_500),
        || async { gauge(&producer.url, "redline_producer_writes_waiting").await == 2.0 },
    )
    .await;
    for request in requests {
        let response = request.await.unwrap().expect("an answer");
        assert_eq!(response.status(), 204);
    }
    assert_eq!(stream_len(&mut conn).await, 3_000);
    assert_eq!(
        gauge(&producer.url, "redline_producer_writes_waiting").await,
        0.0
    );
}
