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
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use redline_core::entry::Entry;
use redline_core::secret::Secret;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING};
use reqwest::{Client, RequestBuilder};

mod answer;

use answer::{
    all_dropped, classify, classify_v2, context, error_text, transport, truncate, QueryAnswer,
};

use super::{lines, ContentEncoding, InfluxApi, InfluxConfig, OpenError, Route, Sink, SinkError};

/// Writes to InfluxDB over HTTP. Clones share the HTTP client and its connections.
#[derive(Clone)]
pub struct InfluxSink {
    client: Client,
    /// Base URL without a trailing `/`.
    url: String,
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
        /// Databases this sink created, so a database that vanishes again is not re-created
        /// in a loop within one write.
        created: HashSet<String>,
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
            .field("url", &self.url)
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
        Ok(Self {
            client: client(&config.url, config.timeout)?,
            url: config.url.trim_end_matches('/').to_string(),
            encoding: config.content_encoding,
            api,
        })
    }

    /// Writes `batch` to the database (or bucket) `db`, retention policy `rp`.
    async fn write_v1(
        &mut self,
        db: &str,
        rp: Option<&str>,
        batch: &[&Entry],
    ) -> Result<(), SinkError> {
        let body = encode(lines(batch.iter().copied()), self.encoding)?;
        let answer = self.post_v1(db, rp, body.clone()).await?;
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
            Answer::DatabaseNotFound(text) if !create_database || created.contains(db) => {
                return Err(SinkError::Refused(text));
            }
            Answer::DatabaseNotFound(_) => {}
        }
        self.create(db).await?;
        if let Endpoint::V1 { created, .. } = &mut self.api {
            created.insert(db.to_string());
        }
        match self.post_v1(db, rp, body).await? {
            Answer::Stored => Ok(()),
            Answer::Failed(error) => Err(all_dropped(error, batch.len())),
            // Created a moment ago and gone again: someone is dropping it.
            Answer::DatabaseNotFound(text) => Err(SinkError::Refused(text)),
        }
    }

    async fn post_v1(&self, db: &str, rp: Option<&str>, body: Bytes) -> Result<Answer, SinkError> {
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

    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.api {
            Endpoint::V1 {
                credentials: Some((user, password)),
                ..
            } => request.basic_auth(user, password.as_ref().map(Secret::expose)),
            _ => request,
        }
    }

    /// Writes `batch` to `bucket` through `/api/v2/write`.
    async fn write_v2(&self, bucket: &str, batch: &[&Entry]) -> Result<(), SinkError> {
        let Endpoint::V2 {
            org, authorization, ..
        } = &self.api
        else {
            unreachable!("write_v2 is called for the v2 API");
        };
        let body = encode(lines(batch.iter().copied()), self.encoding)?;
        let query = [
            ("org", org.as_str()),
            ("bucket", bucket),
            ("precision", "ns"),
        ];
        let response = self
            .client
            .post(format!("{}/api/v2/write", self.url))
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
        match &self.api {
            Endpoint::V1 { default_db, .. } => {
                let Some(db) = route.db.or(default_db.as_deref()).map(str::to_string) else {
                    return Err(SinkError::Refused(
                        "the entry names no database and the InfluxDB sink has no default \
                         database (--influx-db)"
                            .to_string(),
                    ));
                };
                self.write_v1(&db, route.rp, batch).await
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
                self.write_v2(&bucket, batch).await
            }
        }
    }
}

/// An HTTP client for the InfluxDB at `url`: `http://` or `https://` (rustls; the system's
/// CA bundle, or the PEM file named by SSL_CERT_FILE for a private CA).
///
/// # Errors
/// [`OpenError::Url`] for another scheme, [`OpenError::Http`] when it cannot be built.
fn client(url: &str, timeout: Duration) -> Result<Client, OpenError> {
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
