//! The consumer's own HTTP listener: `GET /metrics` (Prometheus text), `GET /health`
//! (the process is up) and `GET /ready` (Redis and the sink answer).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header::CONTENT_TYPE, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use redline_core::health::{self, Check};
use redline_core::{keys::StreamKeys, redis::RedisConfig, telemetry, Shutdown};
use tokio::net::TcpListener;

use crate::SinkConfig;

/// What the handlers need.
pub(crate) struct Probes {
    gauges: redline_streams::GroupGauges,
    redis: RedisConfig,
    sink: SinkConfig,
    /// The outage the workers are waiting out, if any.
    health: crate::sink::Health,
    http: reqwest::Client,
}

impl Probes {
    pub(crate) fn new(
        redis: RedisConfig,
        keys: StreamKeys,
        sink: SinkConfig,
        health: crate::sink::Health,
    ) -> Self {
        Self {
            gauges: redline_streams::GroupGauges::new(redis.clone(), keys),
            redis,
            sink,
            health,
            http: reqwest::Client::builder()
                .timeout(health::CHECK_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// PING on a connection of its own; under Sentinel, the master's address.
    async fn redis(&self) -> Result<Option<String>, String> {
        let mut conn = redline_streams::connect(&self.redis)
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| format!("Redis does not answer PING: {e}"))?;
        Ok(conn.master().map(str::to_string))
    }

    async fn sink(&self) -> Result<(), String> {
        // Reachable is not enough: a sink that refuses every write (wrong credentials, a
        // full disk) is not ready either.
        if let Some(outage) = self.health.outage() {
            return Err(outage);
        }
        match &self.sink {
            SinkConfig::Influxdb(influx) => self.influx(influx).await,
            SinkConfig::File { path, .. } => {
                let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
                match dir {
                    Some(dir) if !dir.is_dir() => {
                        Err(format!("directory {} does not exist", dir.display()))
                    }
                    _ => Ok(()),
                }
            }
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        }
    }
}

impl Probes {
    /// `GET {url}{ping_path}` on each URL until one answers 2xx; no probe with an empty
    /// path.
    async fn influx(&self, influx: &crate::sink::InfluxConfig) -> Result<(), String> {
        if influx.ping_path.is_empty() {
            return Ok(());
        }
        let path = &influx.ping_path;
        let mut failures = Vec::new();
        for url in influx.urls() {
            let shown = redline_core::redis::redact_url(url);
            match self.http.get(format!("{url}{path}")).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => failures.push(format!(
                    "InfluxDB at {shown} answered {} to GET {path}",
                    r.status()
                )),
                Err(e) => failures.push(format!("InfluxDB at {shown} is unreachable: {e}")),
            }
        }
        Err(failures.join("; "))
    }
}

/// Serves until shutdown.
pub(crate) async fn serve(listener: TcpListener, probes: Probes, shutdown: Shutdown) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/health",
            get(|| async { Json(health::health_body("redline-consumer")) }),
        )
        .route("/ready", get(ready))
        .with_state(Arc::new(probes));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await;
    if let Err(error) = served {
        tracing::warn!(%error, "The metrics listener stopped.");
    }
}

async fn metrics(State(probes): State<Arc<Probes>>) -> Response {
    if let Err(error) = probes.gauges.refresh(health::CHECK_TIMEOUT).await {
        tracing::debug!(%error, "Cannot read stream gauges from Redis for /metrics.");
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render(),
    )
        .into_response()
}

async fn ready(State(probes): State<Arc<Probes>>) -> Response {
    let (redis, sink) = tokio::join!(
        Check::run_redis(probes.redis()),
        Check::run("sink", probes.sink()),
    );
    let (ready, body) = health::ready_body("redline-consumer", &[redis, sink]);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
