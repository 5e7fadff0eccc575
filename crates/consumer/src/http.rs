//! The consumer's own HTTP listener: `GET /metrics` (Prometheus text) and `GET /health`.

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use redline_core::{telemetry, Shutdown};
use tokio::net::TcpListener;

/// Serves until shutdown.
pub(crate) async fn serve(listener: TcpListener, shutdown: Shutdown) {
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                    telemetry::render(),
                )
            }),
        )
        .route("/health", get(|| async { "ok\n" }));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await;
    if let Err(error) = served {
        tracing::warn!(%error, "The metrics listener stopped.");
    }
}
