//! Why a write is not answered 204, as one type: [`WriteError`] says what went wrong and
//! which answer it gets (status and code, as InfluxDB answers them), and [`Refusal`] turns
//! it into that answer in the shape of the API that was called, counted and logged.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use redline_core::telemetry;

use crate::budget::Exceeded;
use crate::reply::{self, Api};
use crate::{ingest, writer};

/// Everything that turns a write into a non-204 answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The request: its encoding, size, parameters or lines.
    #[error(transparent)]
    Ingest(#[from] ingest::Error),
    /// Storing it: Redis down, full, refusing; the buffer full; too few replicas.
    #[error(transparent)]
    Store(#[from] writer::Error),
}

impl WriteError {
    /// The status and the v2 `code` of the answer.
    fn status(&self) -> (StatusCode, &'static str) {
        use ingest::Error as In;
        use writer::Error as St;
        match self {
            Self::Ingest(In::TooLarge { .. } | In::Memory(Exceeded::TooLarge { .. }))
            | Self::Store(St::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "request too large")
            }
            Self::Ingest(In::Memory(Exceeded::Busy { .. }) | In::Busy { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::Ingest(In::UnsupportedEncoding(_)) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid")
            }
            Self::Ingest(In::ReadTimeout { .. }) => {
                (StatusCode::REQUEST_TIMEOUT, "request timeout")
            }
            Self::Ingest(_) => (StatusCode::BAD_REQUEST, "invalid"),
            Self::Store(
                St::Unavailable(_)
                | St::Full(_)
                | St::Unpersisted(_)
                | St::TooFewReplicas(_)
                | St::BufferFull(_)
                | St::Replicas { .. },
            ) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Store(St::Refused(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        }
    }

    /// The `reason` label of [`telemetry::REFUSED`].
    fn reason(&self) -> &'static str {
        use ingest::Error as In;
        use writer::Error as St;
        match self {
            Self::Ingest(In::Memory(Exceeded::Busy { .. })) => "memory",
            Self::Ingest(In::Busy { .. }) => "busy",
            Self::Ingest(In::TooLarge { .. } | In::Memory(Exceeded::TooLarge { .. }))
            | Self::Store(St::TooLarge { .. }) => "too_large",
            Self::Ingest(In::ReadTimeout { .. }) => "read_timeout",
            Self::Ingest(In::BodyRead(_)) => "body_read",
            Self::Ingest(_) => "invalid",
            Self::Store(St::BufferFull(_)) => "buffer_full",
            Self::Store(St::Replicas { .. }) => "replicas",
            Self::Store(
                St::Unavailable(_) | St::Full(_) | St::Unpersisted(_) | St::TooFewReplicas(_),
            ) => "redis",
            Self::Store(St::Refused(_)) => "internal",
        }
    }
}

/// A refused write, answered in `api`'s shape.
pub(crate) struct Refusal {
    /// The API that was called.
    pub(crate) api: Api,
    /// Why.
    pub(crate) error: WriteError,
    /// `Retry-After` of a 503.
    pub(crate) retry_after: Duration,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code) = self.error.status();
        let message = self.error.to_string();
        let reason = self.error.reason();
        count(self.api, status);
        metrics::counter!(telemetry::REFUSED, "reason" => reason).increment(1);
        match &self.error {
            WriteError::Store(writer::Error::BufferFull(_)) => {
                tracing::debug!(error = %message, "Write refused: buffer full.");
            }
            WriteError::Ingest(ingest::Error::Memory(_) | ingest::Error::Busy { .. }) => {
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    metrics::counter!(telemetry::UNAVAILABLE, "cause" => reason).increment(1);
                }
                tracing::warn!(error = %message, "Write refused: the producer is at its memory or write-turn limit.");
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                metrics::counter!(telemetry::UNAVAILABLE, "cause" => reason).increment(1);
                tracing::warn!(error = %message, "Write refused: Redis unavailable.");
            }
            _ if status.is_server_error() => tracing::error!(error = %message, "Write failed."),
            _ => tracing::debug!(error = %message, status = status.as_u16(), "Write refused."),
        }
        let mut response = reply::error(self.api, status, code, &message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let secs = self.retry_after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Counts a write request by endpoint and answer.
pub(crate) fn count(api: Api, status: StatusCode) {
    metrics::counter!(
        telemetry::HTTP_REQUESTS,
        "endpoint" => api.label(),
        "status" => status.as_str().to_owned()
    )
    .increment(1);
}
