//! The InfluxDB 1.x sink: `POST {url}/write?db=…&rp=…&precision=ns` with a gzip body, one
//! request per (database, retention policy) of the batch.
//!
//! How InfluxDB 1.6 answers, and what each answer means here (measured; see DESIGN.md):
//! - 204: stored → accepted;
//! - 400 `partial write: …` / `{"error":"field type conflict"}` / `unable to parse`, and 413
//!   (body too large) → [`SinkError::Rejected`], a verdict on points: the consumer splits
//!   the write to isolate the offending points (points InfluxDB stored already are stored
//!   again, harmlessly: their timestamps are fixed);
//! - 404 `database not found` → `CREATE DATABASE` and retry when `create_database` is on
//!   (Telegraf does the same); when that is off or refused (403 for a non-admin user),
//!   500 `retention policy not found`, and 403 (no permission on this database) →
//!   [`SinkError::Refused`], a verdict on the route: counted, other routes go on;
//! - 401 → [`SinkError::Unauthorized`]: the credentials are wrong (an outage) unless
//!   another route of the same attempt was answered;
//! - any other 5xx (a full disk: `engine: error writing WAL entry: … no space left on
//!   device`, until influxd is restarted), 408, 429, connection refused or broken →
//!   [`SinkError::Unavailable`]; no answer within the timeout → [`SinkError::TimedOut`].
//!   Outages are retried for as long as they last and count nothing.
//!
//! API: <https://docs.influxdata.com/influxdb/v1.6/tools/api/#write-http-endpoint>.
//!
//! The classification, grouping, gzip and transport helpers are shared with the v2 sink
//! ([`super::influxdb2`]), which reads the same answers from `/api/v2/write`.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use redline_core::entry::Entry;
use reqwest::header::CONTENT_ENCODING;
use reqwest::{Client, RequestBuilder};
use serde::Deserialize;

use super::{lines, ContentEncoding, OpenError, Sink, SinkError};

/// Longest error text kept from an answer; InfluxDB quotes whole lines in its errors.
const MAX_ERROR_LEN: usize = 2048;

/// Writes to InfluxDB 1.x over HTTP. Clones share the HTTP client and its connections.
#[derive(Clone)]
pub struct InfluxSink {
    client: Client,
    /// Base URL without a trailing `/`.
    url: String,
    default_db: Option<String>,
    create_database: bool,
    username: Option<String>,
    password: Option<String>,
    /// Databases this sink created, so a database that vanishes again is not re-created in a
    /// loop within one write.
    created: HashSet<String>,
    encoding: ContentEncoding,
}

impl std::fmt::Debug for InfluxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxSink")
            .field("url", &self.url)
            .field("default_db", &self.default_db)
            .finish_non_exhaustive()
    }
}

/// What InfluxDB answered to a write, classified.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    Stored,
    DatabaseNotFound(String),
    Failed(SinkError),
}

impl InfluxSink {
    /// A sink writing to the InfluxDB at `url` (`http://host:port`), with the fields of
    /// [`SinkConfig::Influxdb`](super::SinkConfig::Influxdb) as arguments.
    ///
    /// # Errors
    /// [`OpenError::Url`] for a URL that is not `http://…`, [`OpenError::Http`] when the
    /// HTTP client cannot be built. Nothing is sent yet.
    pub fn new(
        url: &str,
        default_db: Option<&str>,
        timeout: Duration,
        create_database: bool,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Self, OpenError> {
        Ok(Self {
            client: client(url, timeout)?,
            url: url.trim_end_matches('/').to_string(),
            default_db: default_db.filter(|d| !d.is_empty()).map(str::to_string),
            create_database,
            username: username.map(str::to_string),
            password: password.map(str::to_string),
            created: HashSet::new(),
            encoding: ContentEncoding::default(),
        })
    }

    /// The same sink, encoding request bodies with `encoding` (gzip unless told).
    #[must_use]
    pub fn with_content_encoding(mut self, encoding: ContentEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.username {
            Some(user) => request.basic_auth(user, self.password.as_deref()),
            None => request,
        }
    }

    /// Writes one (database, retention policy) group.
    async fn write_group(
        &mut self,
        db: Option<&str>,
        rp: Option<&str>,
        batch: &[&Entry],
    ) -> Result<(), SinkError> {
        let Some(db) = db.or(self.default_db.as_deref()).map(str::to_string) else {
            return Err(SinkError::Refused(
                "the entry names no database and the InfluxDB sink has no default \
                 database (--influx-db)"
                    .to_string(),
            ));
        };
        let body = encode(lines(batch.iter().copied()), self.encoding)?;
        match self.post_write(&db, rp, body.clone()).await? {
            Answer::Stored => return Ok(()),
            Answer::Failed(error) => return Err(all_dropped(error, batch.len())),
            Answer::DatabaseNotFound(text)
                if !self.create_database || self.created.contains(&db) =>
            {
                return Err(SinkError::Refused(text));
            }
            Answer::DatabaseNotFound(_) => {}
        }
        self.create(&db).await?;
        self.created.insert(db.clone());
        match self.post_write(&db, rp, body).await? {
            Answer::Stored => Ok(()),
            Answer::Failed(error) => Err(all_dropped(error, batch.len())),
            // Created a moment ago and gone again: someone is dropping it.
            Answer::DatabaseNotFound(text) => Err(SinkError::Refused(text)),
        }
    }

    async fn post_write(
        &self,
        db: &str,
        rp: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, SinkError> {
        let mut query = vec![("db", db), ("precision", "ns")];
        if let Some(rp) = rp {
            query.push(("rp", rp));
        }
        let request = self
            .client
            .post(format!("{}/write", self.url))
            .query(&query)
            .header(CONTENT_ENCODING, self.encoding.header())
            .body(body);
        let response = self.authorize(request).send().await;
        let response =
            response.map_err(|e| context(&format!("POST /write?db={db}"), transport(e)))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(Answer::Stored);
        }
        let text = error_text(response).await;
        if status == 404 && text.contains("database not found") {
            return Ok(Answer::DatabaseNotFound(text));
        }
        Ok(Answer::Failed(classify(status, text)))
    }

    /// `CREATE DATABASE "<db>"` (a no-op when it exists).
    async fn create(&self, db: &str) -> Result<(), SinkError> {
        let statement = format!("CREATE DATABASE {}", quote_ident(db));
        let request = self
            .client
            .post(format!("{}/query", self.url))
            .form(&[("q", statement.as_str())]);
        let response = self.authorize(request).send().await;
        let response =
            response.map_err(|e| context("POST /query (CREATE DATABASE)", transport(e)))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        let error = serde_json::from_slice::<QueryAnswer>(&bytes)
            .ok()
            .and_then(QueryAnswer::first_error);
        match (status, error) {
            (200..=299, None) => {
                tracing::info!(db, "Created the InfluxDB database.");
                Ok(())
            }
            (401, error) => Err(SinkError::Unauthorized(format!(
                "401 to {statement}: {}",
                error.unwrap_or_else(|| "authorization failed".into())
            ))),
            (_, error) => {
                let error = error.unwrap_or_else(|| truncate(&String::from_utf8_lossy(&bytes)));
                Err(SinkError::Refused(format!(
                    "database '{db}' not found, and {statement} failed ({status}): {error}"
                )))
            }
        }
    }
}

impl Sink for InfluxSink {
    fn name(&self) -> &'static str {
        "influxdb"
    }

    async fn write(&mut self, batch: &[&Entry]) -> Result<(), SinkError> {
        let groups = group(batch);
        let single = groups.len() == 1;
        for ((db, rp), entries) in groups {
            self.write_group(db, rp, &entries)
                .await
                .map_err(|error| narrow(error, single))?;
        }
        Ok(())
    }
}

/// An HTTP client for the InfluxDB at `url`: `http://` or `https://` (rustls).
///
/// # Errors
/// [`OpenError::Url`] for another scheme, [`OpenError::Http`] when it cannot be built.
pub(super) fn client(url: &str, timeout: Duration) -> Result<Client, OpenError> {
    // https trusts the system's CA bundle (rustls-native-certs), or the PEM file named by
    // SSL_CERT_FILE for a private CA.
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(OpenError::Url {
            url: url.to_string(),
        });
    }
    Ok(Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()?)
}

/// A whole-write cause only covers the whole batch when the batch was one group: with
/// several, the consumer must still split it to save the other groups' entries.
pub(super) fn narrow(error: SinkError, single: bool) -> SinkError {
    match error {
        SinkError::Rejected { reason, whole } => SinkError::Rejected {
            reason,
            whole: whole && single,
        },
        other => other,
    }
}

/// Where a write goes: (database, retention policy), `None` meaning the default.
pub(super) type Target<'a> = (Option<&'a str>, Option<&'a str>);

/// The batch's entries grouped by (database, retention policy), groups in order of first
/// appearance and entries in order within each.
pub(super) fn group<'a>(batch: &[&'a Entry]) -> Vec<(Target<'a>, Vec<&'a Entry>)> {
    let mut groups: Vec<(Target<'a>, Vec<&'a Entry>)> = Vec::new();
    for &entry in batch {
        let key = (entry.db.as_deref(), entry.rp.as_deref());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, entries)) => entries.push(entry),
            None => groups.push((key, vec![entry])),
        }
    }
    groups
}

/// Classifies a non-2xx answer from `/write` by status and InfluxDB's error text.
pub(super) fn classify(status: u16, text: String) -> SinkError {
    let failed = std::convert::identity;
    match status {
        413 => failed(SinkError::Rejected {
            reason: format!("request body too large: {text}"),
            whole: false,
        }),
        // A 5xx, but permanent: the route names a retention policy the database lacks.
        500 if text.contains("retention policy not found") => {
            failed(SinkError::Refused(format!("{status}: {text}")))
        }
        401 => failed(SinkError::Unauthorized(format!("{status}: {text}"))),
        403 => failed(SinkError::Refused(format!("{status}: {text}"))),
        // 400: partial write, type conflict, unparsable line: InfluxDB's text says it all.
        400 => failed(SinkError::Rejected {
            reason: text,
            whole: false,
        }),
        // Waiting helps: a request timeout, rate limiting; a 404 that is not about a
        // database means a wrong URL (not InfluxDB), which is the whole sink's problem.
        404 | 408 | 429 => failed(SinkError::Unavailable(format!("{status}: {text}"))),
        402..=499 => failed(SinkError::Rejected {
            reason: format!("{status}: {text}"),
            whole: false,
        }),
        // Any other answer (5xx: a full disk, a full cache, a crash) says nothing about
        // the points: an outage, however long it lasts.
        _ => failed(SinkError::Unavailable(format!("{status}: {text}"))),
    }
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
fn dropped(text: &str) -> Option<usize> {
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
struct QueryAnswer {
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
    fn first_error(self) -> Option<String> {
        self.error
            .or_else(|| self.results.into_iter().find_map(|r| r.error))
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_LEN {
        return text.to_string();
    }
    let mut end = MAX_ERROR_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A request body: `lines` as they are, or gzipped (fast level).
pub(super) fn encode(lines: Vec<u8>, encoding: ContentEncoding) -> Result<Bytes, SinkError> {
    match encoding {
        ContentEncoding::Identity => Ok(Bytes::from(lines)),
        ContentEncoding::Gzip => {
            let mut encoder =
                GzEncoder::new(Vec::with_capacity(lines.len() / 4), Compression::fast());
            encoder
                .write_all(&lines)
                .and_then(|()| encoder.finish())
                .map(Bytes::from)
                // Writing into a Vec cannot fail short of running out of memory.
                .map_err(|e| SinkError::Unavailable(format!("cannot gzip the batch: {e}")))
        }
    }
}

/// An InfluxQL identifier in double quotes.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests;
