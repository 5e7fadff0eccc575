//! The InfluxDB sink: one write path for both write APIs, the API as data
//! ([`InfluxApi`]): v1 `POST {url}/write?db=…&rp=…&precision=ns` with basic auth, v2
//! `POST {url}/api/v2/write?org=…&bucket=…&precision=ns` with `Authorization: Token …`. A
//! write is one route (database, retention policy), as the deliverer hands them; on v2 the
//! route is the bucket `db` or `db/rp`, the name InfluxDB's v1 compatibility (DBRP
//! mapping, 1.8's `/api/v2/write`) gives a database and retention policy.
//!
//! How InfluxDB answers, and what each answer means here (measured on 1.6; see DESIGN.md):
//! - 204: stored → accepted;
//! - 400 `partial write: …` / `{"error":"field type conflict"}` / `unable to parse`, 413 and
//!   other 4xx about the points → [`SinkError::Rejected`], a verdict on points: the consumer
//!   splits the write to isolate them (points stored already are stored again, harmlessly:
//!   their timestamps are fixed);
//! - v1 404 `database not found` → `CREATE DATABASE` and retry when `create_database` is on
//!   (Telegraf does the same); when that is off or refused (403 for a non-admin user), v2
//!   404 `bucket … not found`, 500 `retention policy not found`, and 403 (no permission on
//!   this database or bucket) → [`SinkError::Refused`], a verdict on the route: counted,
//!   other routes go on;
//! - 401 → [`SinkError::Unauthorized`]: the credentials are wrong (an outage) unless another
//!   route of the same attempt was answered;
//! - any other 5xx (a full disk: `engine: error writing WAL entry: … no space left on
//!   device`, until influxd is restarted), 408, 429, a 404 that is not about a database or
//!   bucket (a wrong URL, v2 `organization … not found`), connection refused or broken →
//!   [`SinkError::Unavailable`]; no answer within the timeout → [`SinkError::TimedOut`].
//!   Outages are retried for as long as they last and count nothing.
//!
//! Secrets stay in [`Secret`]s and in a header value marked sensitive: no `Debug` and no log
//! shows them.
//!
//! APIs: <https://docs.influxdata.com/influxdb/v1.6/tools/api/#write-http-endpoint>,
//! <https://docs.influxdata.com/influxdb/v2/api/#operation/PostWrite>.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use redline_core::entry::Entry;
use redline_core::redis::redact_url;
use redline_core::secret::Secret;
use redline_core::telemetry;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING};
use reqwest::{Client, RequestBuilder};

mod answer;

use answer::{
    all_dropped, classify, classify_v2, context, error_text, transport, truncate, QueryAnswer,
};

use super::{
    lines_by_series, ContentEncoding, InfluxApi, InfluxConfig, OpenError, Route, Sink, SinkError,
};

/// Writes to InfluxDB over HTTP. Clones share the HTTP client and its connections, and
/// the URL in use.
#[derive(Clone)]
pub struct InfluxSink {
    client: Client,
    /// Base URLs without a trailing `/`: one, or several for failover.
    urls: Arc<[String]>,
    /// The index in `urls` that writes go to, until it is unavailable.
    current: Arc<AtomicUsize>,
    encoding: ContentEncoding,
    api: Endpoint,
}

/// What one write API needs at write time.
#[derive(Clone)]
enum Endpoint {
    V1 {
        default_db: Option<String>,
        create_database: bool,
        credentials: Option<(String, Option<Secret>)>,
        /// Databases this sink created, by URL index, so a database that vanishes again is
        /// not re-created in a loop within one write.
        created: HashSet<(usize, String)>,
    },
    V2 {
        org: String,
        default_bucket: Option<String>,
        /// `Token <token>`, marked sensitive so that reqwest never prints it.
        authorization: HeaderValue,
    },
}

impl std::fmt::Debug for InfluxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api = match &self.api {
            Endpoint::V1 { .. } => "v1",
            Endpoint::V2 { .. } => "v2",
        };
        f.debug_struct("InfluxSink")
            .field("urls", &self.urls)
            .field("api", &api)
            .finish_non_exhaustive()
    }
}

/// What InfluxDB answered to a v1 write.
enum Answer {
    Stored,
    DatabaseNotFound(String),
    Failed(SinkError),
}

impl InfluxSink {
    /// A sink for `config`.
    ///
    /// # Errors
    /// [`OpenError::Url`] for a URL that is not `http(s)://…`, [`OpenError::Token`] for a
    /// token that cannot be sent in a header, [`OpenError::Http`] when the HTTP client cannot
    /// be built. Nothing is sent yet.
    pub fn new(config: &InfluxConfig) -> Result<Self, OpenError> {
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let api = match &config.api {
            InfluxApi::V1 {
                db,
                username,
                password,
                create_database,
            } => Endpoint::V1 {
                default_db: non_empty(db),
                create_database: *create_database,
                credentials: username.clone().map(|user| (user, password.clone())),
                created: HashSet::new(),
            },
            InfluxApi::V2 { org, token, bucket } => {
                let mut authorization = HeaderValue::from_str(&format!("Token {}", token.expose()))
                    .map_err(|_| OpenError::Token)?;
                authorization.set_sensitive(true);
                Endpoint::V2 {
                    org: org.clone(),
                    default_bucket: non_empty(bucket),
                    authorization,
                }
            }
        };
        let urls: Arc<[String]> = config.urls().into_iter().map(str::to_string).collect();
        if urls.is_empty() {
            return Err(OpenError::Url {
                url: config.url.clone(),
            });
        }
        for url in urls.iter() {
            check_url(url)?;
            metrics::gauge!(telemetry::SINK_URL_UP, "url" => redact_url(url)).set(1.0);
        }
        Ok(Self {
            client: client(config.timeout)?,
            urls,
            current: Arc::new(AtomicUsize::new(0)),
            encoding: config.content_encoding,
            api,
        })
    }

    /// Writes `batch` to the URL in use; when it is unavailable, to the next, and so on
    /// around the list once. The URL that answers is used from then on. Only outages move
    /// to another URL: a verdict (rejected points, a refused route, wrong credentials) is
    /// the same on every server of one deployment.
    async fn failover(&mut self, route: Route<'_>, batch: &[&Entry]) -> Result<(), SinkError> {
        let count = self.urls.len();
        let first = self.current.load(Ordering::Relaxed) % count;
        let mut failures = Vec::new();
        for step in 0..count {
            let at = (first + step) % count;
            let written = self.write_at(at, route, batch).await;
            let up = !matches!(&written, Err(error) if error.is_outage());
            let url = redact_url(&self.urls[at]);
            metrics::gauge!(telemetry::SINK_URL_UP, "url" => url.clone())
                .set(f64::from(u8::from(up)));
            if up || count == 1 {
                if step > 0 && up {
                    self.current.store(at, Ordering::Relaxed);
                    tracing::warn!(url = %url, "Writing to the next InfluxDB URL: the one in use is unavailable.");
                }
                return written;
            }
            if let Err(error) = written {
                failures.push((url, error));
            }
        }
        let timed_out = failures
            .iter()
            .all(|(_, e)| matches!(e, SinkError::TimedOut(_)));
        let text = failures
            .iter()
            .map(|(url, error)| format!("{url}: {error}"))
            .collect::<Vec<_>>()
            .join("; ");
        Err(if timed_out {
            SinkError::TimedOut(format!("every InfluxDB URL timed out: {text}"))
        } else {
            SinkError::Unavailable(format!("no InfluxDB URL is available: {text}"))
        })
    }

    /// Writes `batch` to the database `db`, retention policy `rp`, at URL `at`.
    async fn write_v1(
        &mut self,
        at: usize,
        db: &str,
        rp: Option<&str>,
        batch: &[&Entry],
    ) -> Result<(), SinkError> {
        let body = encode(lines_by_series(batch), self.encoding)?;
        let answer = self.post_v1(at, db, rp, body.clone()).await?;
        let Endpoint::V1 {
            create_database,
            created,
            ..
        } = &self.api
        else {
            unreachable!("write_v1 is called for the v1 API");
        };
        match answer {
            Answer::Stored => return Ok(()),
            Answer::Failed(error) => return Err(all_dropped(error, batch.len())),
            Answer::DatabaseNotFound(text)
                if !create_database || created.contains(&(at, db.to_string())) =>
            {
                return Err(SinkError::Refused(text));
            }
            Answer::DatabaseNotFound(_) => {}
        }
        self.create(at, db).await?;
        if let Endpoint::V1 { created, .. } = &mut self.api {
            created.insert((at, db.to_string()));
        }
        match self.post_v1(at, db, rp, body).await? {
            Answer::Stored => Ok(()),
            Answer::Failed(error) => Err(all_dropped(error, batch.len())),
            // Created a moment ago and gone again: someone is dropping it.
            Answer::DatabaseNotFound(text) => Err(SinkError::Refused(text)),
        }
    }

    async fn post_v1(
        &self,
        at: usize,
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
            .post(format!("{}/write", self.urls[at]))
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
    async fn create(&self, at: usize, db: &str) -> Result<(), SinkError> {
        let statement = format!("CREATE DATABASE {}", quote_ident(db));
        let request = self
            .client
            .post(format!("{}/query", self.urls[at]))
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

    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.api {
            Endpoint::V1 {
                credentials: Some((user, password)),
                ..
            } => request.basic_auth(user, password.as_ref().map(Secret::expose)),
            _ => request,
        }
    }

    /// Writes `batch` to `bucket` through `/api/v2/write` at URL `at`.
    async fn write_v2(&self, at: usize, bucket: &str, batch: &[&Entry]) -> Result<(), SinkError> {
        let Endpoint::V2 {
            org, authorization, ..
        } = &self.api
        else {
            unreachable!("write_v2 is called for the v2 API");
        };
        let body = encode(lines_by_series(batch), self.encoding)?;
        let query = [
            ("org", org.as_str()),
            ("bucket", bucket),
            ("precision", "ns"),
        ];
        let response = self
            .client
            .post(format!("{}/api/v2/write", self.urls[at]))
            .query(&query)
            .header(AUTHORIZATION, authorization.clone())
            .header(CONTENT_ENCODING, self.encoding.header())
            .body(body)
            .send()
            .await
            .map_err(|e| context(&format!("POST /api/v2/write?bucket={bucket}"), transport(e)))?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status().as_u16();
        let text = error_text(response).await;
        Err(all_dropped(classify_v2(status, text), batch.len()))
    }
}

impl Sink for InfluxSink {
    fn name(&self) -> &'static str {
        match self.api {
            Endpoint::V1 { .. } => "influxdb",
            Endpoint::V2 { .. } => "influxdb2",
        }
    }

    async fn write(&mut self, route: Route<'_>, batch: &[&Entry]) -> Result<(), SinkError> {
        self.failover(route, batch).await
    }
}

impl InfluxSink {
    /// Writes `batch` to `route` at URL `at`.
    async fn write_at(
        &mut self,
        at: usize,
        route: Route<'_>,
        batch: &[&Entry],
    ) -> Result<(), SinkError> {
        match &self.api {
            Endpoint::V1 { default_db, .. } => {
                let Some(db) = route.db.or(default_db.as_deref()).map(str::to_string) else {
                    return Err(SinkError::Refused(
                        "the entry names no database and the InfluxDB sink has no default \
                         database (--influx-db)"
                            .to_string(),
                    ));
                };
                self.write_v1(at, &db, route.rp, batch).await
            }
            Endpoint::V2 { default_bucket, .. } => {
                let Some(db) = route.db.or(default_bucket.as_deref()) else {
                    return Err(SinkError::Refused(
                        "the entry names no bucket and the InfluxDB v2 sink has no default \
                         bucket (--influx-bucket)"
                            .to_string(),
                    ));
                };
                let bucket = match route.rp {
                    Some(rp) => format!("{db}/{rp}"),
                    None => db.to_string(),
                };
                self.write_v2(at, &bucket, batch).await
            }
        }
    }
}

/// Checks that `url` is `http://` or `https://`.
///
/// # Errors
/// [`OpenError::Url`] for another scheme.
fn check_url(url: &str) -> Result<(), OpenError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(());
    }
    Err(OpenError::Url {
        url: url.to_string(),
    })
}

/// An HTTP client for InfluxDB (rustls; the system's CA bundle, or the PEM file named by
/// SSL_CERT_FILE for a private CA).
///
/// # Errors
/// [`OpenError::Http`] when it cannot be built.
fn client(timeout: Duration) -> Result<Client, OpenError> {
    Ok(Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()?)
}

/// A request body: `lines` as they are, or gzipped (fast level).
fn encode(lines: Vec<u8>, encoding: ContentEncoding) -> Result<Bytes, SinkError> {
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
