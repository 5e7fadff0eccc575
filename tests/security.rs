//! Security and bad input: authentication, request limits, malformed bodies, secrets.
//!
//! Every test runs its own `redis-server` and `redline producer` (or consumer), then
//! checks what a client sees and what the stream holds, exactly.

mod auth;
mod input;
mod limits;
mod secrets;
mod tls;

use std::time::Duration;

use redline_testkit::{free_port, wait_until, ChildGuard};

use crate::support::{client, redline, Producer, STREAM};

/// Starts `redline producer` with `extra` flags and `env`, waiting for `/ping`.
pub(crate) async fn producer(redis_url: &str, extra: &[&str], env: &[(&str, &str)]) -> Producer {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = redline();
    cmd.args(["producer", "--redis-url", redis_url, "--listen", &listen])
        .args(extra);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let guard = ChildGuard::spawn("producer", &mut cmd);
    let url = format!("http://{listen}");
    let ping = format!("{url}/ping");
    wait_until(
        "the producer answers /ping",
        Duration::from_secs(15),
        || {
            let ping = ping.clone();
            async move { matches!(client().get(&ping).send().await, Ok(r) if r.status() == 204) }
        },
    )
    .await;
    Producer { guard, url }
}

/// The `lp` field of every entry of the stream, oldest first.
pub(crate) async fn stored_lines(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    reply
        .ids
        .iter()
        .map(|entry| entry.get::<String>("lp").expect("an lp field"))
        .collect()
}

/// XLEN of the stream (0 when it does not exist).
pub(crate) async fn stream_len(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(conn)
        .await
        .expect("XLEN")
}
