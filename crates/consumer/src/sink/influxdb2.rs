//! The InfluxDB v2 sink: `POST {url}/api/v2/write?org=…&bucket=…&precision=ns` with
//! `Authorization: Token …` and a gzip body, one request per bucket of the batch.
//!
//! An entry's bucket is its `db` (the v1 database or the v2 bucket it was written to), or
//! the configured default bucket when it names none. An entry that also carries a retention
//! policy goes to bucket `db/rp`, the name InfluxDB's v1 compatibility (DBRP mapping, and
//! InfluxDB 1.8's `/api/v2/write`) gives a database and retention policy.
//!
//! Answers are read as the v1 sink reads them ([`super::influxdb`]'s classification), plus
//! what only v2 says: 404 `bucket "x" not found` rejects the whole write (a bucket is not
//! created here: that needs an org id and a retention period only an operator knows), and
//! the error text comes from the JSON `message`. 401/403 (a bad or revoked token) leave the
//! batch pending, as an outage does: nothing is dead-lettered for a configuration mistake.
//!
//! The token is a secret: it is kept only in a header value marked sensitive, and neither
//! `Debug` nor any log shows it.
//!
//! API: <https://docs.influxdata.com/influxdb/v2/api/#operation/PostWrite>.

use std::time::Duration;

use redline_core::entry::Entry;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING};
use reqwest::Client;

use super::influxdb::{
    all_dropped, classify, client, context, encode, error_text, group, narrow, transport,
};
use super::{lines, ContentEncoding, OpenError, Sink, SinkError};

/// Writes to InfluxDB 2.x (or anything speaking `/api/v2/write`) over HTTP. Clones share the
/// HTTP client and its connections.
#[derive(Clone)]
pub struct Influx2Sink {
    client: Client,
    /// `{url}/api/v2/write`.
    endpoint: String,
    org: String,
    default_bucket: Option<String>,
    /// `Token <token>`, marked sensitive so that reqwest never prints it.
    authorization: HeaderValue,
    encoding: ContentEncoding,
}

impl std::fmt::Debug for Influx2Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Influx2Sink")
            .field("endpoint", &self.endpoint)
            .field("org", &self.org)
            .field("default_bucket", &self.default_bucket)
            .finish_non_exhaustive()
    }
}

impl Influx2Sink {
    /// A sink writing to the InfluxDB at `url` (`http://host:port`) with the fields of
    /// [`SinkConfig::Influxdb2`](super::SinkConfig::Influxdb2) as arguments.
    ///
    /// # Errors
    /// [`OpenError::Url`] for a URL that is not `http://…`, [`OpenError::Token`] for a token
    /// that cannot be sent in a header, [`OpenError::Http`] when the HTTP client cannot be
    /// built. Nothing is sent yet.
    pub fn new(
        url: &str,
        token: &str,
        org: &str,
        default_bucket: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, OpenError> {
        let client = client(url, timeout)?;
        let mut authorization =
            HeaderValue::from_str(&format!("Token {token}")).map_err(|_| OpenError::Token)?;
        authorization.set_sensitive(true);
        Ok(Self {
            client,
            endpoint: format!("{}/api/v2/write", url.trim_end_matches('/')),
            org: org.to_string(),
            default_bucket: default_bucket.filter(|b| !b.is_empty()).map(str::to_string),
            authorization,
            encoding: ContentEncoding::default(),
        })
    }

    /// The same sink, encoding request bodies with `encoding` (gzip unless told).
    #[must_use]
    pub fn with_content_encoding(mut self, encoding: ContentEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The bucket of entries with database `db` and retention policy `rp`.
    fn bucket(&self, db: Option<&str>, rp: Option<&str>) -> Option<String> {
        let db = db.or(self.default_bucket.as_deref())?;
        Some(match rp {
            Some(rp) => format!("{db}/{rp}"),
            None => db.to_string(),
        })
    }

    /// Writes one bucket's entries.
    async fn write_group(
        &self,
        db: Option<&str>,
        rp: Option<&str>,
        batch: &[&Entry],
    ) -> Result<(), SinkError> {
        let Some(bucket) = self.bucket(db, rp) else {
            return Err(SinkError::Refused(
                "the entry names no bucket and the InfluxDB v2 sink has no default \
                 bucket (--influx-bucket)"
                    .to_string(),
            ));
        };
        let body = encode(lines(batch.iter().copied()), self.encoding)?;
        let query = [
            ("org", self.org.as_str()),
            ("bucket", bucket.as_str()),
            ("precision", "ns"),
        ];
        let response = self
            .client
            .post(&self.endpoint)
            .query(&query)
            .header(AUTHORIZATION, self.authorization.clone())
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

impl Sink for Influx2Sink {
    fn name(&self) -> &'static str {
        "influxdb2"
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

/// Classifies a non-2xx answer from `/api/v2/write`: v1's rules, with a missing bucket
/// (or, from InfluxDB 1.8, database) refusing the route. A missing organisation is every
/// route's problem: an outage until the configuration is fixed.
fn classify_v2(status: u16, text: String) -> SinkError {
    if status == 404 && text.contains("not found") && !text.contains("organization") {
        return SinkError::Refused(format!("{status}: {text}"));
    }
    classify(status, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(bucket: Option<&str>) -> Influx2Sink {
        Influx2Sink::new(
            "http://127.0.0.1:8086/",
            "s3cret-token",
            "acme",
            bucket,
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn buckets_come_from_the_entry_then_the_default() {
        let sink = sink(Some("telegraf"));
        assert_eq!(sink.bucket(Some("x"), None).as_deref(), Some("x"));
        assert_eq!(sink.bucket(None, None).as_deref(), Some("telegraf"));
        assert_eq!(
            sink.bucket(Some("x"), Some("week")).as_deref(),
            Some("x/week")
        );
        assert_eq!(self::sink(None).bucket(None, None), None);
        assert_eq!(sink.endpoint, "http://127.0.0.1:8086/api/v2/write");
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let sink = sink(None);
        let debug = format!("{sink:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(sink.authorization.is_sensitive());
        assert!(!format!("{:?}", sink.authorization).contains("s3cret"));
    }

    #[test]
    fn v2_answers_are_classified() {
        let refused = |text: &str| SinkError::Refused(format!("404: {text}"));
        assert_eq!(
            classify_v2(404, "bucket \"nope\" not found".into()),
            refused("bucket \"nope\" not found")
        );
        assert_eq!(
            classify_v2(404, "database not found: \"x\"".into()),
            refused("database not found: \"x\"")
        );
        // A wrong organisation is a configuration mistake: wait, dead-letter nothing.
        assert!(classify_v2(404, "organization name \"acme\" not found".into()).is_outage());
        assert!(matches!(
            classify_v2(400, "partial write: unable to parse 'x': bad".into()),
            SinkError::Rejected { whole: false, .. }
        ));
        assert!(matches!(
            classify_v2(422, "points beyond retention policy dropped=2".into()),
            SinkError::Rejected { whole: false, .. }
        ));
        assert!(matches!(
            classify_v2(401, "unauthorized access".into()),
            SinkError::Unauthorized(_)
        ));
        assert!(matches!(
            classify_v2(403, "insufficient permissions for write".into()),
            SinkError::Refused(_)
        ));
        assert!(classify_v2(503, String::new()).is_outage());
        assert!(classify_v2(500, "internal error".into()).is_outage());
    }

    #[test]
    fn a_url_without_http_is_refused() {
        let error =
            Influx2Sink::new("tcp://x:8086", "t", "o", None, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(error, OpenError::Url { .. }));
        assert!(Influx2Sink::new("https://x:8086", "t", "o", None, Duration::from_secs(1)).is_ok());
    }
}
