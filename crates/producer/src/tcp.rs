//! Line protocol over TCP (`--tcp-listen`): newline-delimited lines, as Telegraf's
//! `outputs.socket_writer` and `nc` send them, one task per connection. A line ends where
//! InfluxDB ends it (`line::whole_lines`): a newline inside a quoted string value does not.
//!
//! Invariants:
//! - backpressure by not reading: the bytes after a read are read only once the complete
//!   lines of that read are stored in Redis. While Redis is slow or down the socket is left
//!   unread, its receive buffer fills, and TCP's flow control stops the client;
//! - a line that was read is never dropped for a Redis failure: storing it is retried with
//!   backoff for as long as it takes (TCP has no acknowledgement to withhold, so holding the
//!   socket unread is the only signal we can give). Only a shutdown whose deadline passes
//!   gives up, and logs at error how many lines that lost;
//! - a bad line is counted (`redline_lines_rejected_total`) and logged at debug with its
//!   number on the connection; it never closes the connection. A line longer than
//!   `max_line_length` is not held: the rest of it is skipped up to its newline, counted
//!   (`reason="line_too_long"`) and logged at warn. Closing the connection instead would
//!   make a client that retries its batch (Telegraf) send the same line again for ever;
//! - memory comes from the producer's one budget (`Budget`), charged before each read
//!   for the read, the line held from the last one, parsing and storing: an idle
//!   connection holds nothing, and while the budget is taken, connections wait unread
//!   (TCP backpressure again);
//! - connections are bounded by a semaphore (`tcp_max_connections`): when all are taken,
//!   new clients wait in the listen backlog, as in mini-redis;
//! - on shutdown: stop accepting, stop reading, store what was read (an incomplete last
//!   line is dropped: its client was cut off mid-line), close; bounded by
//!   `shutdown_timeout`.
//!
//! Timestamps are nanoseconds; lines without one get the time they were read.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use redline_core::{
    backoff::Backoff,
    line::{self, Limits, Metric, Precision},
    telemetry, Shutdown,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinSet,
};

use crate::{
    budget::{Budget, Charge},
    ingest,
    writer::{self, Target, Writer},
};

/// Most bytes taken from a socket by one read; one read's complete lines are one pipeline.
const READ_SIZE: usize = 256 * 1024;
/// First and longest pause between attempts to store held lines.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The TCP source's settings, from the producer's [`Config`](crate::Config).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Database stored with every metric (`--tcp-db`); none when unset.
    pub db: Option<String>,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Bounds on one line, as over HTTP. A line past `max_line_length` is also skipped up to
    /// its end without being held, so a client sending no newline cannot make the producer
    /// buffer without bound.
    pub limits: Limits,
    /// Bound on storing what was read after a shutdown signal.
    pub shutdown_timeout: Duration,
}

/// What one read may hold, per byte read, while it is parsed (see `http::PARSE_ESTIMATE`).
const PARSE_ESTIMATE: usize = 4;

/// Accepts connections on `listener` until `shutdown`, then lets every connection store
/// what it read (bounded by `shutdown_timeout`) and returns.
pub(crate) async fn run(
    listener: TcpListener,
    writer: Writer,
    budget: Budget,
    settings: Settings,
    shutdown: Shutdown,
) {
    // Each connection task holds a permit; the loop waits for one before accepting.
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    // The connection tasks; reaped as they end, awaited (then aborted) on shutdown.
    let mut connections = JoinSet::new();
    let target = Target {
        db: settings.db.clone(),
        rp: None,
    };
    let mut accept_pause = Backoff::new(RETRY_INITIAL, RETRY_MAX);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = shutdown.wait() => break,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.wait() => break,
        };
        match accepted {
            Ok((socket, peer)) => {
                accept_pause.reset();
                let connection = Connection {
                    socket,
                    peer,
                    writer: writer.clone(),
                    budget: budget.clone(),
                    target: target.clone(),
                    limits: settings.limits,
                    shutdown: shutdown.clone(),
                    shutdown_timeout: settings.shutdown_timeout,
                    buffer: Vec::new(),
                    lines: 0,
                    skipping: false,
                };
                connections.spawn(async move {
                    connection.serve().await;
                    drop(permit);
                });
            }
            Err(error) => {
                // E.g. out of file descriptors: pause rather than spin (mini-redis).
                let pause = accept_pause.next_delay();
                tracing::warn!(%error, ?pause, "Cannot accept a TCP connection.");
                tokio::time::sleep(pause).await;
            }
        }
    }
    drop(listener);
    // Connections give up storing at `shutdown_timeout` themselves; the extra second only
    // covers a task stuck elsewhere.
    let deadline = settings.shutdown_timeout + Duration::from_secs(1);
    let finished = tokio::time::timeout(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            open = connections.len(),
            "TCP connections did not finish in time; closing them."
        );
        connections.abort_all();
    }
}

/// One client connection.
struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    writer: Writer,
    budget: Budget,
    target: Target,
    limits: Limits,
    shutdown: Shutdown,
    shutdown_timeout: Duration,
    /// Bytes read but not yet stored: at most one incomplete line between reads.
    buffer: Vec<u8>,
    /// Lines of this connection handled so far, for numbering bad ones.
    lines: usize,
    /// Skipping the rest of a line longer than `limits.max_line_length`.
    skipping: bool,
}

impl Connection {
    async fn serve(mut self) {
        tracing::debug!(peer = %self.peer, "TCP connection opened.");
        loop {
            let readable = tokio::select! {
                biased; // once shut down, read nothing more even if bytes are waiting
                () = self.shutdown.wait() => break,
                readable = self.socket.readable() => readable,
            };
            if let Err(error) = readable {
                tracing::debug!(%error, peer = %self.peer, "TCP connection failed.");
                break;
            }
            // Memory for this read, what is held from the last one, and parsing and storing
            // them; until it is there the socket stays unread.
            let cost = READ_SIZE + self.buffer.len();
            let cost = cost + PARSE_ESTIMATE * cost + writer::STORE_MEMORY;
            let Some(_charge) = self.charge(cost as u64).await else {
                break;
            };
            let mut chunk = Vec::with_capacity(READ_SIZE);
            let read = match self.socket.try_read_buf(&mut chunk) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                read => read,
            };
            match read {
                Ok(0) => {
                    // The client closed: its last line may lack the newline.
                    if !self.buffer.is_empty() && !self.skipping {
                        self.buffer.push(b'\n');
                        let held = std::mem::take(&mut self.buffer);
                        self.store_lines(&held).await;
                    }
                    self.buffer.clear();
                    break;
                }
                Ok(_) => self.take(&chunk).await,
                Err(error) => {
                    tracing::debug!(%error, peer = %self.peer, "TCP connection failed.");
                    break;
                }
            }
        }
        if !self.buffer.is_empty() {
            tracing::debug!(peer = %self.peer, bytes = self.buffer.len(),
                "Dropped an incomplete last line of a TCP connection.");
        }
        tracing::debug!(peer = %self.peer, lines = self.lines, "TCP connection closed.");
    }

    /// Appends `bytes` to the held ones and stores every complete line.
    async fn take(&mut self, mut bytes: &[u8]) {
        if self.skipping {
            let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
                return;
            };
            bytes = &bytes[end + 1..];
            self.skipping = false;
        }
        self.buffer.extend_from_slice(bytes);
        // Lines end where InfluxDB ends them: a newline inside a quoted string does not.
        match line::whole_lines(&self.buffer) {
            0 if self.buffer.len() > self.limits.max_line_length => {
                self.lines += 1;
                metrics::counter!(telemetry::LINES_REJECTED, "reason" => "line_too_long")
                    .increment(1);
                tracing::warn!(peer = %self.peer, line = self.lines, limit = self.limits.max_line_length,
                    "Refused a TCP line longer than --max-line-length; skipping to its end.");
                self.buffer.clear();
                self.skipping = true;
            }
            0 => {}
            whole => {
                let rest = self.buffer.split_off(whole);
                let complete = std::mem::replace(&mut self.buffer, rest);
                self.store_lines(&complete).await;
            }
        }
    }

    /// Parses `complete` (whole lines, each ending in `\n`) and stores its metrics,
    /// retrying until Redis took them.
    async fn store_lines(&mut self, complete: &[u8]) {
        let first_line = self.lines + 1;
        self.lines += complete.iter().filter(|b| **b == b'\n').count();
        let now_ns = crate::http::now_ns();
        let precision = Precision::Nanoseconds;
        let parsed = ingest::parse_with(complete, precision, now_ns, &self.limits);
        if parsed.rejected > 0 {
            metrics::counter!(telemetry::LINES_REJECTED, "reason" => "parse")
                .increment(parsed.rejected as u64);
            let bad_lines =
                ingest::rejected_lines(complete, precision, now_ns, &self.limits, first_line);
            for bad in bad_lines {
                tracing::debug!(peer = %self.peer, line = bad.line, reason = %bad.reason,
                    text = %bad.text, "Refused a TCP line.");
            }
        }
        // A read can hold more lines than the buffer limit lets one request store: store
        // them in requests that can fit, or they would wait for ever.
        let most = self.writer.largest_request().unwrap_or(usize::MAX).max(1);
        let mut done = 0;
        while done < parsed.len() {
            let metrics = parsed.metrics().skip(done).take(most);
            let count = metrics.len();
            match self.store(metrics).await {
                Some(stored) => {
                    metrics::counter!(telemetry::LINES_ACCEPTED).increment(stored as u64);
                }
                None => return,
            }
            done += count;
        }
    }

    /// Charges `bytes` to the budget, waiting (the socket unread) for as long as it takes;
    /// at most the whole budget. `None` when shutdown came first.
    async fn charge(&self, bytes: u64) -> Option<Charge> {
        let mut pause = Backoff::new(RETRY_INITIAL, RETRY_MAX);
        loop {
            let mut charge = self.budget.charge();
            let result = tokio::select! {
                biased;
                () = self.shutdown.wait() => return None,
                result = charge.add(bytes.min(self.budget.bytes())) => result,
            };
            match result {
                Ok(()) => return Some(charge),
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "Memory budget taken; TCP reads wait.");
                    tokio::select! {
                        () = self.shutdown.wait() => return None,
                        () = tokio::time::sleep(pause.next_delay()) => {}
                    }
                }
            }
        }
    }

    /// Stores `metrics`, retrying with backoff until Redis took them all. `None` only when
    /// the shutdown deadline passed first.
    async fn store<'m, I>(&self, metrics: I) -> Option<usize>
    where
        I: ExactSizeIterator<Item = Metric<'m>> + Clone,
    {
        if metrics.len() == 0 {
            return Some(0);
        }
        let deadline = async {
            self.shutdown.wait().await;
            tokio::time::sleep(self.shutdown_timeout).await;
        };
        tokio::pin!(deadline);
        let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX);
        loop {
            let error = match self.writer.store(metrics.clone(), &self.target).await {
                Ok(stored) => return Some(stored),
                Err(error) => error,
            };
            let pause = backoff.next_delay();
            if let writer::Error::BufferFull(_) = error {
                tracing::debug!(%error, peer = %self.peer, "Buffer full; holding TCP lines unread.");
            } else {
                tracing::warn!(%error, peer = %self.peer, lines = metrics.len(), retry_in = ?pause,
                    "Cannot store TCP lines; holding them (reading nothing more) and retrying.");
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = &mut deadline => {
                    tracing::error!(peer = %self.peer, lines = metrics.len(),
                        "Shutdown deadline passed before Redis took these TCP lines; they are lost.");
                    return None;
                }
            }
        }
    }
}
