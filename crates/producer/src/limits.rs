//! Request limits of the HTTP API: concurrent requests (503 + `Retry-After`), body size
//! (413) and body read time (408), each answered as JSON like every other error.
//!
//! Invariants:
//! - at most `max_concurrent_requests` write requests are served at once; one more is
//!   answered 503 at once, before its body is read, so a flood queues nowhere in redline;
//! - a body is read only up to `max_body_size` bytes: a larger `Content-Length` is refused
//!   before reading anything, a body that grows past it is refused at that byte;
//! - a body must arrive within `read_timeout`, so a client that stalls mid-body holds its
//!   permit and its connection for that long at most (headers are bounded separately, by
//!   the server's header read timeout).

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::Response,
};
use http_body_util::BodyExt as _;
use redline_core::telemetry;
use tokio::sync::Semaphore;

use crate::{budget::Charge, ingest, reply};

/// The bound on concurrent requests, shared by the routes it guards.
#[derive(Debug, Clone)]
pub(crate) struct Concurrency {
    /// One permit per request being served; never closed.
    permits: Arc<Semaphore>,
    /// The configured bound, for the error message.
    limit: usize,
    /// Sent as `Retry-After` with the 503.
    retry_after: Duration,
}

impl Concurrency {
    /// At most `limit` requests at once (at least 1).
    pub(crate) fn new(limit: usize, retry_after: Duration) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            retry_after,
        }
    }
}

/// Turns to receive, parse and store a request: at most `max_concurrent_writes` at once,
/// the others wait in arrival order, holding at most the first frame of their body (the
/// rest stays in the kernel's socket buffer). A turn is taken when body bytes arrive and
/// given up while the client sends nothing ([`STALL`]), so a client that stalls mid-body
/// never holds one; it waits for a turn again when its bytes come.
///
/// So the requests growing in memory at once are few, and they finish: many requests each
/// holding part of its body while waiting for memory the others hold would all wait out
/// `enqueue_timeout` instead.
#[derive(Debug, Clone)]
pub(crate) struct Turns {
    permits: Arc<Semaphore>,
    /// How long a request may wait for a turn.
    timeout: Duration,
}

/// A turn (see [`Turns`]).
pub(crate) type Turn = tokio::sync::OwnedSemaphorePermit;

/// How long a turn is kept while the client sends nothing.
pub(crate) const STALL: Duration = Duration::from_millis(50);

impl Turns {
    /// At most `limit` at once (at least 1), each waited for at most `timeout`.
    pub(crate) fn new(limit: usize, timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS))),
            timeout,
        }
    }

    /// Waits for a turn, counted in [`telemetry::WRITES_WAITING`] meanwhile; the turn ends
    /// when it is dropped.
    ///
    /// # Errors
    /// [`ingest::Error::Busy`] when none came within the timeout.
    pub(crate) async fn wait(&self) -> Result<Turn, ingest::Error> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _waiting = Waiting::new();
        match tokio::time::timeout(self.timeout, self.permits.clone().acquire_owned()).await {
            Ok(permit) => Ok(permit.expect("the semaphore is never closed")),
            Err(_) => Err(ingest::Error::Busy {
                waited: self.timeout,
            }),
        }
    }
}

/// One request in [`telemetry::WRITES_WAITING`] while it lives, however the wait ends (the
/// client may go away meanwhile).
struct Waiting(metrics::Gauge);

impl Waiting {
    fn new() -> Self {
        let gauge = metrics::gauge!(telemetry::WRITES_WAITING);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Middleware: serves the request while a permit is free, else answers 503.
pub(crate) async fn concurrency(
    State(limit): State<Concurrency>,
    request: Request,
    next: Next,
) -> Response {
    // The permit lives until the response is produced.
    let Ok(_permit) = limit.permits.clone().try_acquire_owned() else {
        // A route's own path: these layers run only on matched routes.
        let path = request.uri().path().to_owned();
        metrics::counter!(telemetry::UNAVAILABLE, "cause" => "busy").increment(1);
        metrics::counter!(telemetry::REFUSED, "reason" => "busy").increment(1);
        metrics::counter!(telemetry::HTTP_REQUESTS, "endpoint" => path.clone(), "status" => "503")
            .increment(1);
        tracing::debug!(
            limit = limit.limit,
            "Request refused: too many concurrent requests."
        );
        let message = format!(
            "too many concurrent requests (more than {}); retry later",
            limit.limit
        );
        let mut response = reply::error(
            reply::Api::of_path(&path),
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &message,
        );
        let secs = limit.retry_after.as_secs().max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return response;
    };
    next.run(request).await
}

/// Reads a request body: at most `limit` bytes, within `timeout`, each frame charged to
/// `charge` before it is kept, in turns (see [`Turns`]). Returns the body with the turn
/// held for parsing and storing it. When the request is refused before its body is all
/// read, the rest is read and dropped (within the time left), so that the client, still
/// sending, reads the answer rather than a reset connection.
///
/// # Errors
/// [`ingest::Error::TooLarge`], [`ingest::Error::ReadTimeout`], [`ingest::Error::BodyRead`]
/// when the client broke off, [`ingest::Error::Memory`] when the budget cannot hold it,
/// [`ingest::Error::Busy`] when no turn came.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    limit: u64,
    timeout: Duration,
    charge: &mut Charge,
    turns: &Turns,
) -> Result<(Bytes, Turn), ingest::Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ingest::Error::TooLarge { limit });
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let read = collect(&mut body, limit, declared, charge, turns);
    let result = match tokio::time::timeout_at(deadline, read).await {
        Ok(result) => result,
        Err(_) => Err(ingest::Error::ReadTimeout { timeout }),
    };
    if let Err(ingest::Error::Memory(_) | ingest::Error::Busy { .. }) = &result {
        let drain = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout_at(deadline, drain).await;
    }
    result
}

async fn collect(
    body: &mut Body,
    limit: u64,
    declared: Option<u64>,
    charge: &mut Charge,
    turns: &Turns,
) -> Result<(Bytes, Turn), ingest::Error> {
    // Allocated with the first turn, not while waiting for it (a freed block reused is
    // resident memory). Room for a small body at once; a large one grows (large blocks are
    // remapped, not copied). Never the declared length up front: a client may declare much
    // and send little, and only what it sent is charged.
    let mut out: Vec<u8> = Vec::new();
    let capacity = declared.map_or(0, |len| len.min(1 << 20) as usize);
    let mut turn: Option<Turn> = None;
    loop {
        let frame = match &turn {
            // A client that sends nothing for a while gives its turn to the next.
            Some(_) => match tokio::time::timeout(STALL, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    turn = None;
                    continue;
                }
            },
            None => body.frame().await,
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| ingest::Error::BodyRead(e.to_string()))?;
        if turn.is_none() {
            turn = Some(turns.wait().await?);
            if out.capacity() == 0 {
                out.reserve_exact(capacity);
            }
        }
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > limit {
                return Err(ingest::Error::TooLarge { limit });
            }
            charge.add(data.len() as u64).await?;
            out.extend_from_slice(&data);
        }
    }
    let turn = match turn {
        Some(turn) => turn,
        None => turns.wait().await?,
    };
    Ok((Bytes::from(out), turn))
}
