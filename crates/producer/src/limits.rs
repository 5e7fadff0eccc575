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

/// Turns to parse and store a request whose body is read: at most `max_concurrent_writes`
/// at once, the others wait in arrival order. Taken after the body is read, so a client
/// that stalls mid-body never holds one.
#[derive(Debug, Clone)]
pub(crate) struct Turns {
    permits: Arc<Semaphore>,
}

impl Turns {
    /// At most `limit` at once (at least 1).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }

    /// Waits for a turn, counted in [`telemetry::WRITES_WAITING`] meanwhile; the turn ends
    /// when the permit is dropped.
    pub(crate) async fn wait(&self) -> tokio::sync::OwnedSemaphorePermit {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return permit;
        }
        let _waiting = Waiting::new();
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
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
/// `charge` before it is kept.
///
/// # Errors
/// [`ingest::Error::TooLarge`], [`ingest::Error::ReadTimeout`], [`ingest::Error::BodyRead`]
/// when the client broke off, [`ingest::Error::Memory`] when the budget cannot hold it.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    timeout: Duration,
    charge: &mut Charge,
) -> Result<Bytes, ingest::Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ingest::Error::TooLarge { limit });
    }
    match tokio::time::timeout(timeout, collect(body, limit, declared, charge)).await {
        Ok(result) => result,
        Err(_) => Err(ingest::Error::ReadTimeout { timeout }),
    }
}

async fn collect(
    mut body: Body,
    limit: u64,
    declared: Option<u64>,
    charge: &mut Charge,
) -> Result<Bytes, ingest::Error> {
    // Room for a small body at once; a large one grows (large blocks are remapped, not
    // copied). Never the declared length up front: a client may declare much and send
    // little, and only what it sent is charged.
    let mut out: Vec<u8> = Vec::with_capacity(declared.map_or(0, |len| len.min(1 << 20) as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ingest::Error::BodyRead(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > limit {
                return Err(ingest::Error::TooLarge { limit });
            }
            charge.add(data.len() as u64).await?;
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}
