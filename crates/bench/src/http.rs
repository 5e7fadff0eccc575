//! The load generator: a bare HTTP/1.1 keep-alive client over Tokio and closed-loop load
//! on several connections.
//!
//! It costs next to nothing per request: bodies are built before the clock starts, a request
//! is a short head plus the body written as is, and an answer is read up to its head (204
//! has no body). Each run reports the CPU the bench process used, so the report can show
//! that the load generator was not the bottleneck.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procs;
use crate::workload::Body;

/// One keep-alive connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// An answer: status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    /// HTTP status code.
    pub(crate) status: u16,
    /// The body (empty for 204).
    pub(crate) body: Vec<u8>,
    /// Whether it carried `Retry-After`.
    pub(crate) retry_after: bool,
}

impl Conn {
    /// Connects to `addr` with `TCP_NODELAY`.
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Sends `method path` with `body` and reads the answer.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> io::Result<Answer> {
        self.send(method, path, "", body).await
    }

    /// POSTs the gzipped `body` to `path` and reads the answer.
    pub(crate) async fn request_gzip(&mut self, path: &str, body: &[u8]) -> io::Result<Answer> {
        self.send("POST", path, "Content-Encoding: gzip\r\n", body)
            .await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> io::Result<Answer> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain; charset=utf-8\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        if !body.is_empty() {
            self.stream.write_all(body).await?;
        }
        self.read_answer(method == "HEAD").await
    }

    async fn read_answer(&mut self, head_only: bool) -> io::Result<Answer> {
        let end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad(format!("not an HTTP answer: {head:?}")))?;
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        self.buf.drain(..end);
        let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
        let body = if no_body {
            Vec::new()
        } else if let Some(len) = header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| bad(format!("bad content-length {len}")))?;
            while self.buf.len() < len {
                self.fill().await?;
            }
            self.buf.drain(..len).collect()
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked().await?
        } else {
            return Err(bad(format!(
                "answer {status} has neither a length nor chunks"
            )));
        };
        let retry_after = header("retry-after").is_some();
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.buf, b"\r\n") {
                    break at;
                }
                self.fill().await?;
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size {size_text:?}")))?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(8192);
        let read = self.stream.read_buf(&mut self.buf).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Polls `GET /ping` on `addr` until it answers 204.
///
/// # Panics
/// If it does not within `timeout`.
pub(crate) async fn wait_ready(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut conn) = Conn::connect(addr).await {
            if let Ok(answer) = conn.request("GET", "/ping", b"").await {
                if answer.status == 204 {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{addr} did not answer GET /ping with 204 within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a closed-loop run lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plan {
    /// Cycle through the bodies until this much time has passed (requests in flight finish).
    For(Duration),
    /// Send every body exactly once.
    EachOnce,
}

/// What a closed-loop run achieved.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Requests answered 2xx.
    pub(crate) requests: u64,
    /// Lines in those requests.
    pub(crate) lines: u64,
    /// From the first send to the last answer.
    pub(crate) elapsed: Duration,
    /// Requests answered otherwise or failed.
    pub(crate) errors: u64,
    /// The first failure, for the report.
    pub(crate) first_error: Option<String>,
    /// Non-2xx answers by status.
    pub(crate) refusals: BTreeMap<u16, u64>,
    /// Non-2xx answers without `Retry-After`.
    pub(crate) without_retry_after: u64,
    /// CPU seconds the bench process used meanwhile (the load generator's cost).
    pub(crate) cpu_seconds: f64,
}

impl Outcome {
    /// Lines per second.
    pub(crate) fn rate(&self) -> f64 {
        self.lines as f64 / self.elapsed.as_secs_f64()
    }

    /// Panics naming the first failure when any request failed.
    pub(crate) fn assert_clean(&self, what: &str) {
        assert!(
            self.errors == 0,
            "{what}: {} of {} requests failed; first: {}",
            self.errors,
            self.errors + self.requests,
            self.first_error.as_deref().unwrap_or("?")
        );
    }
}

/// Sends `bodies` to `addr` + `path` from `conns` connections, each sending its next request
/// as soon as the previous one was answered.
pub(crate) async fn closed_loop(
    addr: SocketAddr,
    path: &str,
    bodies: Arc<Vec<Body>>,
    conns: usize,
    plan: Plan,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let lines = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let refusals: Arc<Mutex<(BTreeMap<u16, u64>, u64)>> = Arc::default();
    let cpu_before = procs::self_cpu_seconds();
    let started = Instant::now();
    let deadline = match plan {
        Plan::For(duration) => Some(started + duration),
        Plan::EachOnce => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns.max(1) {
        let (next, stop, lines, requests, errors, first_error, bodies, path) = (
            next.clone(),
            stop.clone(),
            lines.clone(),
            requests.clone(),
            errors.clone(),
            first_error.clone(),
            bodies.clone(),
            path.to_string(),
        );
        let refusals = refusals.clone();
        tasks.spawn(async move {
            let mut conn: Option<Conn> = None;
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                let body = match plan {
                    Plan::For(_) => &bodies[index % bodies.len()],
                    Plan::EachOnce if index < bodies.len() => &bodies[index],
                    Plan::EachOnce => return,
                };
                let result = async {
                    if conn.is_none() {
                        conn = Some(Conn::connect(addr).await?);
                    }
                    let Some(c) = conn.as_mut() else {
                        unreachable!("connected just above");
                    };
                    c.request("POST", &path, &body.bytes).await
                }
                .await;
                let failure = match result {
                    Ok(answer) if (200..300).contains(&answer.status) => {
                        lines.fetch_add(body.lines, Ordering::Relaxed);
                        requests.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Ok(answer) => {
                        let mut seen = refusals.lock().unwrap_or_else(|p| p.into_inner());
                        *seen.0.entry(answer.status).or_default() += 1;
                        seen.1 += u64::from(!answer.retry_after);
                        format!(
                            "{} {}",
                            answer.status,
                            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
                        )
                    }
                    Err(error) => {
                        conn = None;
                        error.to_string()
                    }
                };
                errors.fetch_add(1, Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(failure);
                if matches!(plan, Plan::EachOnce) {
                    // Every body must arrive once: a failed one ends the run as failed.
                    stop.store(true, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let first_error = first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (refusals, without_retry_after) =
        refusals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Outcome {
        refusals,
        without_retry_after,
        requests: requests.load(Ordering::Relaxed),
        lines: lines.load(Ordering::Relaxed),
        elapsed,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        cpu_seconds: procs::self_cpu_seconds() - cpu_before,
    }
}
