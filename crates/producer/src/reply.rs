//! Error answers in InfluxDB's shape, for the answers made outside a write handler
//! (authentication, limits): `{"error": …}`, v2 answers also with `code` and `message`, and
//! the text in the `X-Influxdb-Error` header.

use axum::{
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

/// Which API a request addressed, for the shape of its error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// InfluxDB 1.x (`/write`, `/query`) and everything else.
    V1,
    /// InfluxDB 2.x (`/api/v2/…`).
    V2,
}

impl Api {
    /// The write endpoint's path, as the `endpoint` label of the request counter.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Api::V1 => "/write",
            Api::V2 => "/api/v2/write",
        }
    }

    /// The API of a request path.
    pub(crate) fn of_path(path: &str) -> Self {
        if path.starts_with("/api/v2/") {
            Api::V2
        } else {
            Api::V1
        }
    }
}

/// A JSON error answer: `status`, the body in `api`'s shape, `X-Influxdb-Error`.
pub(crate) fn error(api: Api, status: StatusCode, code: &str, message: &str) -> Response {
    let body = match api {
        Api::V1 => serde_json::json!({ "error": message }),
        Api::V2 => serde_json::json!({ "code": code, "message": message, "error": message }),
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&header_text(message)) {
        response.headers_mut().insert("X-Influxdb-Error", v);
    }
    response
}

/// Header values must be visible ASCII; error texts quote user input.
pub(crate) fn header_text(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(512)
        .collect()
}
