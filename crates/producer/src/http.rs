//! The InfluxDB-compatible HTTP API: `POST /write` (v1), `POST /api/v2/write` (v2),
//! `GET|POST /query`, `GET /ping`, and the probes `GET /health`, `GET /ready`, `GET /metrics`.
//!
//! Answers follow InfluxDB: 204 once every metric is stored; 400 with `{"error": …}`
//! naming the first bad line when some lines were refused (the valid ones are stored);
//! 413 for a body over `max_body_size`; 415 for an unknown `Content-Encoding`; 503 with
//! `Retry-After` while Redis is unreachable. v2 answers also carry `code` and `message`,
//! which v2 clients read.
//!
//! Guards, outermost first (`auth`, `limits`): a token when any is configured (401,
//! before the body is read), at most `max_concurrent_requests` writes at once (503), the
//! body within `max_body_size` (413) and `read_timeout` (408), each line within
//! `max_line_length` and `max_fields` (refused by number). `/ping`, `/health` and `/ready`
//! stay open; `/metrics` is guarded with `auth_metrics`.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{rejection::BytesRejection, DefaultBodyLimit, RawQuery, State as AxumState},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use redline_core::{
    line::{Limits, Parsed, Parser, Precision},
    telemetry,
};

use crate::{
    auth,
    budget::{Budget, Charge},
    ingest, limits,
    params::Params,
    query,
    refusal::{self, Refusal, WriteError},
    reply::{self, Api},
    writer::{self, Target, Writer},
};

/// `X-Influxdb-Version` on every answer: the InfluxDB version whose API this is, in the form
/// clients parse, then redline's own.
const VERSION: &str = concat!("1.8.10-redline.", env!("CARGO_PKG_VERSION"));

/// What one request costs besides what it reads and parses: its task, the connection's
/// buffers, its headers.
const REQUEST_MEMORY: u64 = 16 * 1024;
/// Bytes inflated per step of a gzip body, each charged before it is taken.
const INFLATE_STEP: usize = 256 * 1024;
/// Bytes of a body parsed per step.
const PARSE_PIECE: usize = 256 * 1024;
/// What parsing a piece may take, per byte of it, charged before the piece is parsed: a
/// rewritten line can grow (`t` becomes `true`, a timestamp is added), and each metric adds
/// its place (24 bytes). Settled to the real figure after each piece.
const PARSE_ESTIMATE: u64 = 4;

/// Shared by every request.
#[derive(Debug, Clone)]
pub struct State {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: Writer,
    gauges: redline_streams::GroupGauges,
    max_body_size: u64,
    retry_after: Duration,
    /// Tokens that may write; empty = no authentication.
    tokens: Arc<auth::Tokens>,
    /// Whether `/metrics` needs a token too.
    auth_metrics: bool,
    /// The bound on concurrent write requests.
    concurrency: limits::Concurrency,
    /// Turns to parse and store a read body.
    writes: limits::Turns,
    /// The memory budget of every request.
    budget: Budget,
    /// Bound on receiving one body.
    read_timeout: Duration,
    /// Bounds on one line.
    line_limits: Limits,
    /// The database of a v1 write that names none; without it, such a write gets 400.
    default_db: Option<String>,
    /// The databases `/query` has heard of.
    databases: query::Databases,
}

impl State {
    /// State for a router over `writer` with `config`'s limits, sharing `budget`.
    pub(crate) fn new(writer: Writer, budget: Budget, config: &crate::Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                writer,
                gauges: redline_streams::GroupGauges::new(config.redis.clone(), config.keys()),
                max_body_size: config.max_body_size,
                retry_after: config.retry_after,
                tokens: Arc::new(config.auth_tokens.clone()),
                auth_metrics: config.auth_metrics,
                concurrency: limits::Concurrency::new(
                    config.max_concurrent_requests,
                    config.retry_after,
                ),
                writes: limits::Turns::new(config.max_concurrent_writes, config.enqueue_timeout),
                budget,
                read_timeout: config.read_timeout,
                line_limits: Limits {
                    max_line_length: config.max_line_length,
                    max_fields: config.max_fields,
                    allow_unsigned: false,
                },
                default_db: config.default_db.clone(),
                databases: query::Databases::new(config.default_db.as_deref()),
            }),
        }
    }
}

/// The producer's routes.
pub fn router(state: State) -> Router {
    // Compressed bodies are bounded here, decoded ones again in `ingest::decode`.
    let limit = usize::try_from(state.inner.max_body_size).unwrap_or(usize::MAX);
    let tokens = state.inner.tokens.clone();
    // Layers run outside in: the token first, then the concurrency bound.
    let writes = Router::new()
        .route("/write", post(write_v1))
        .route("/api/v2/write", post(write_v2))
        .route("/query", get(query).post(query))
        .route_layer(middleware::from_fn_with_state(
            state.inner.concurrency.clone(),
            limits::concurrency,
        ))
        .route_layer(middleware::from_fn_with_state(
            tokens.clone(),
            auth::require,
        ));
    let mut metrics_route = Router::new().route("/metrics", get(metrics));
    if state.inner.auth_metrics {
        metrics_route =
            metrics_route.route_layer(middleware::from_fn_with_state(tokens, auth::require));
    }
    Router::new()
        .merge(writes)
        .merge(metrics_route)
        .route("/ping", get(ping).head(ping))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::map_response(identify))
        .with_state(state)
}

/// Adds what InfluxDB puts on every answer: `X-Influxdb-Version` and `X-Influxdb-Build`.
async fn identify(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("X-Influxdb-Version", HeaderValue::from_static(VERSION));
    headers.insert("X-Influxdb-Build", HeaderValue::from_static("OSS"));
    response
}

async fn write_v1(
    AxumState(state): AxumState<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = Params::parse(query.as_deref());
    let Some(db) = params
        .non_empty("db")
        .or_else(|| state.inner.default_db.clone())
    else {
        return refuse(&state, Api::V1, ingest::Error::DatabaseRequired.into());
    };
    let target = Target {
        db: Some(db),
        rp: params.non_empty("rp"),
    };
    // InfluxDB 1.x: an unknown precision means nanoseconds; unsigned fields are refused.
    let precision = Precision::v1(params.get("precision").unwrap_or_default());
    let limits = state.inner.line_limits;
    write(&state, Api::V1, precision, limits, target, &headers, body).await
}

async fn write_v2(
    AxumState(state): AxumState<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = Params::parse(query.as_deref());
    let Some(bucket) = params.non_empty("bucket") else {
        return refuse(
            &state,
            Api::V2,
            ingest::Error::MissingParameter("bucket").into(),
        );
    };
    // InfluxDB 1.8's compatibility API: `db/rp` names a database and retention policy.
    let target = match redline_core::entry::split_bucket(&bucket) {
        Ok((db, rp)) => Target {
            db: Some(db.to_string()),
            rp: rp.map(str::to_string),
        },
        Err(error) => return refuse(&state, Api::V2, ingest::Error::from(error).into()),
    };
    // InfluxDB 2.x: ns, us, ms, s or 400; unsigned fields are taken.
    let precision = match Precision::v2(params.get("precision").unwrap_or_default()) {
        Ok(precision) => precision,
        Err(error) => return refuse(&state, Api::V2, ingest::Error::from(error).into()),
    };
    let limits = Limits {
        allow_unsigned: true,
        ..state.inner.line_limits
    };
    write(&state, Api::V2, precision, limits, target, &headers, body).await
}

async fn write(
    state: &State,
    api: Api,
    precision: Precision,
    line_limits: Limits,
    target: Target,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let now_ns = now_ns();
    let inner = &state.inner;
    // Everything this request holds is charged here first, and given back when it ends.
    let mut charge = inner.budget.charge();
    let result = async {
        charge
            .add(REQUEST_MEMORY)
            .await
            .map_err(ingest::Error::from)?;
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        // In turns: the body is received, parsed and stored by a few requests at a time.
        let (body, _turn) = limits::read_body(
            headers,
            body,
            inner.max_body_size,
            inner.read_timeout,
            &mut charge,
            &inner.writes,
        )
        .await?;
        let text = decode(&body, encoding, inner.max_body_size, &mut charge).await?;
        drop(body);
        charge
            .set(REQUEST_MEMORY + text.len() as u64)
            .await
            .map_err(ingest::Error::from)?;
        let parsed = parse(&text, precision, now_ns, &line_limits, &mut charge).await?;
        charge
            .add(writer::STORE_MEMORY as u64)
            .await
            .map_err(ingest::Error::from)?;
        let stored = inner.writer.store(parsed.metrics(), &target).await?;
        metrics::counter!(telemetry::LINES_ACCEPTED).increment(stored as u64);
        if parsed.rejected > 0 {
            metrics::counter!(telemetry::LINES_REJECTED, "reason" => "parse")
                .increment(parsed.rejected as u64);
        }
        match ingest::partial_write(parsed.first_error, parsed.rejected, stored) {
            Some(err) => Err(WriteError::from(err)),
            None => Ok(()),
        }
    }
    .await;
    drop(charge);
    match result {
        Ok(()) => {
            refusal::count(api, StatusCode::NO_CONTENT);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => refuse(state, api, error),
    }
}

/// Decodes `body` by its `Content-Encoding`, charging each inflated step before it is
/// taken; an identity body is shared, not copied.
async fn decode(
    body: &Bytes,
    encoding: Option<&str>,
    limit: u64,
    charge: &mut Charge,
) -> Result<Bytes, ingest::Error> {
    let mut decoder = ingest::Decoder::new(body, encoding, limit)?;
    if let ingest::Decoder::Identity(_) = decoder {
        return Ok(body.clone());
    }
    loop {
        charge.add(INFLATE_STEP as u64).await?;
        if !decoder.step(INFLATE_STEP)? {
            break;
        }
    }
    Ok(Bytes::from(decoder.finish().into_owned()))
}

/// Parses `text` in pieces, charging an estimate of each piece's memory before parsing it
/// and settling to what the metrics really hold after. A body that is not all UTF-8 (a
/// client's bug; its bad lines are refused by number) is copied once and charged so.
async fn parse<'a>(
    text: &'a [u8],
    precision: Precision,
    now_ns: i64,
    limits: &Limits,
    charge: &mut Charge,
) -> Result<Parsed<'a>, ingest::Error> {
    let base = charge.bytes();
    let Ok(text) = std::str::from_utf8(text) else {
        charge.add(PARSE_ESTIMATE * text.len() as u64).await?;
        let parsed = ingest::parse_lossy(text, precision, now_ns, limits);
        charge
            .set(base + text.len() as u64 + parsed.heap_bytes() as u64)
            .await?;
        return Ok(parsed);
    };
    let mut parser = Parser::new(text, precision, now_ns, limits);
    while parser.remaining() > 0 {
        let piece = PARSE_PIECE.min(parser.remaining());
        charge.add(PARSE_ESTIMATE * piece as u64).await?;
        parser.parse_next(piece);
        charge
            .set(base + parser.parsed().heap_bytes() as u64)
            .await?;
    }
    Ok(parser.finish())
}

/// The answer to a refused write.
fn refuse(state: &State, api: Api, error: WriteError) -> Response {
    Refusal {
        api,
        error,
        retry_after: state.inner.retry_after,
    }
    .into_response()
}

/// `/query`: `CREATE DATABASE` and `SHOW DATABASES` answered as InfluxDB does (see
/// [`query`]).
async fn query(
    AxumState(state): AxumState<State>,
    RawQuery(url): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => query::answer(&state.inner.databases, url.as_deref(), &headers, &body),
        // Too large, or cut off: an InfluxDB-shaped error, not the framework's text.
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "request too large"
            } else {
                "invalid"
            };
            reply::error(Api::V1, status, code, &rejection.body_text())
        }
    }
}

async fn ping() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn health() -> Response {
    Json(redline_core::health::health_body("redline-producer")).into_response()
}

async fn ready(AxumState(state): AxumState<State>) -> Response {
    let redis = redline_core::health::Check::run_redis(state.inner.writer.ping()).await;
    let (ready, body) = redline_core::health::ready_body("redline-producer", &[redis]);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `/metrics`: the gauges read from Redis are refreshed first, the buffer fill among them,
/// so a scrape is right even when no write came for a while.
async fn metrics(AxumState(state): AxumState<State>) -> Response {
    match state
        .inner
        .gauges
        .refresh(redline_core::health::CHECK_TIMEOUT)
        .await
    {
        Ok(report) => {
            let backlog: u64 = report.streams.iter().map(|s| s.backlog()).sum();
            metrics::gauge!(telemetry::BUFFER_ENTRIES).set(backlog as f64);
        }
        Err(error) => {
            tracing::debug!(%error, "Cannot read stream gauges from Redis for /metrics.");
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render(),
    )
        .into_response()
}

/// Now, in nanoseconds since the Unix epoch: the stamp of lines without a timestamp.
pub(crate) fn now_ns() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}
