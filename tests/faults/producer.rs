//! The producer's side of a full buffer: a request that could never fit is refused for
//! good (413), and TCP lines are stored in requests that fit.

use std::time::Duration;

use redline_testkit::{free_port, wait_until, RedisServer};
use tokio::io::AsyncWriteExt;

use crate::support::{
    client, file_consumer, line_count, timestamped_lines, xlen, Producer, GROUP, STREAM,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_request_larger_than_the_buffer_limit_gets_413_naming_the_limit() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &["--buffer-limit", "1000"]).await;
    let write = format!("{}/write?db=db0", producer.url);
    let response = client()
        .post(&write)
        .body(timestamped_lines(0, 2_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "a retry could never succeed");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "request of 2000 metrics is larger than the buffer limit of 1000 (--buffer-limit); \
         split it into smaller requests"
    );
    let mut conn = redis.conn().await;
    assert_eq!(xlen(&mut conn, STREAM).await, 0, "nothing of it is stored");

    let response = client()
        .post(&write)
        .body(timestamped_lines(0, 1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_reads_larger_than_the_buffer_limit_are_stored_in_requests_that_fit() {
    let redis = RedisServer::start(&[]);
    let tcp = format!("127.0.0.1:{}", free_port());
    let _producer = Producer::start(
        &redis.url(),
        &["--tcp-listen", &tcp, "--buffer-limit", "500"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.lp");
    let _consumer = file_consumer(&redis.url(), GROUP, &out, &["--trim-interval", "200ms"]);

    // One write of 5,000 lines: each read of the socket holds far more than 500.
    let mut stream = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    stream
        .write_all(timestamped_lines(0, 5_000).as_bytes())
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    wait_until("5000 lines", Duration::from_secs(60), || async {
        line_count(&out) == 5_000
    })
    .await;
}
