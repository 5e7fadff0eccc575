//! What an InfluxDB answer means: the status and error text of a failed write or query,
//! and a failed request, classified into [`SinkError`]s (the table is in the parent
//! module's header).

use serde::Deserialize;

use super::SinkError;

/// Longest error text kept from an answer; InfluxDB quotes whole lines in its errors.
const MAX_ERROR_LEN: usize = 2048;

/// Classifies a non-2xx answer by status and InfluxDB's error text.
pub(super) fn classify(status: u16, text: String) -> SinkError {
    match status {
        413 => SinkError::Rejected {
            reason: format!("request body too large: {text}"),
            whole: false,
        },
        // A 5xx, but permanent: the route names a retention policy the database lacks.
        500 if text.contains("retention policy not found") => {
            SinkError::Refused(format!("{status}: {text}"))
        }
        401 => SinkError::Unauthorized(format!("{status}: {text}")),
        403 => SinkError::Refused(format!("{status}: {text}")),
        // 400: partial write, type conflict, unparsable line: InfluxDB's text says it all.
        400 => SinkError::Rejected {
            reason: text,
            whole: false,
        },
        // Waiting helps: a request timeout, rate limiting; a 404 that is not about a
        // database means a wrong URL (not InfluxDB), which is the whole sink's problem.
        404 | 408 | 429 => SinkError::Unavailable(format!("{status}: {text}")),
        402..=499 => SinkError::Rejected {
            reason: format!("{status}: {text}"),
            whole: false,
        },
        // Any other answer (5xx: a full disk, a full cache, a crash) says nothing about
        // the points: an outage, however long it lasts.
        _ => SinkError::Unavailable(format!("{status}: {text}")),
    }
}

/// Classifies a non-2xx answer from `/api/v2/write`: v1's rules, with a missing bucket
/// (or, from InfluxDB 1.8, database) refusing the route. A missing organisation is every
/// route's problem: an outage until the configuration is fixed.
pub(super) fn classify_v2(status: u16, text: String) -> SinkError {
    if status == 404 && text.contains("not found") && !text.contains("organization") {
        return SinkError::Refused(format!("{status}: {text}"));
    }
    classify(status, text)
}

/// A partial write that dropped every point (`… dropped=N` with N the number of points
/// sent, e.g. `max-values-per-tag limit exceeded` for a whole batch of new series) is a
/// rejection of the whole write: splitting it would only repeat the answer point by point.
pub(super) fn all_dropped(error: SinkError, points: usize) -> SinkError {
    match error {
        SinkError::Rejected {
            reason,
            whole: false,
        } if dropped(&reason) == Some(points) => SinkError::Rejected {
            reason,
            whole: true,
        },
        other => other,
    }
}

/// The `N` of InfluxDB's `partial write: … dropped=N`.
pub(super) fn dropped(text: &str) -> Option<usize> {
    let (_, tail) = text.rsplit_once("dropped=")?;
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A failed request: an outage, whichever way it failed (refused, reset, broken
/// mid-request); no answer in time is [`SinkError::TimedOut`], so that the next attempt
/// writes less at once.
pub(super) fn transport(error: reqwest::Error) -> SinkError {
    // The URL could carry credentials: leave it out. `reqwest::Error`'s Display also omits
    // the cause ("error sending request"), so add the chain.
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() && !error.is_connect() {
        SinkError::TimedOut(text)
    } else {
        SinkError::Unavailable(text)
    }
}

/// `error` with what was being done in front.
pub(super) fn context(doing: &str, error: SinkError) -> SinkError {
    match error {
        SinkError::Unavailable(text) => SinkError::Unavailable(format!("{doing}: {text}")),
        SinkError::TimedOut(text) => SinkError::TimedOut(format!("{doing}: {text}")),
        other => other,
    }
}

/// InfluxDB's error: the `X-Influxdb-Error` header, else `{"error": …}` (v1) or
/// `{"message": …}` (v2), else the body.
pub(super) async fn error_text(response: reqwest::Response) -> String {
    let header = response
        .headers()
        .get("X-Influxdb-Error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let text = header
        .filter(|h| !h.is_empty())
        .or_else(|| {
            serde_json::from_slice::<ErrorBody>(&body)
                .ok()
                .and_then(|b| b.error.or(b.message))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
    if text.is_empty() {
        truncate(status.canonical_reason().unwrap_or("no error text"))
    } else {
        truncate(&text)
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    /// v1's field.
    #[serde(default)]
    error: Option<String>,
    /// v2's field (next to `code`).
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct QueryAnswer {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    results: Vec<ErrorlessResult>,
}

#[derive(Deserialize)]
struct ErrorlessResult {
    #[serde(default)]
    error: Option<String>,
}

impl QueryAnswer {
    pub(super) fn first_error(self) -> Option<String> {
        self.error
            .or_else(|| self.results.into_iter().find_map(|r| r.error))
    }
}

pub(super) fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_LEN {
        return text.to_string();
    }
    let mut end = MAX_ERROR_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
