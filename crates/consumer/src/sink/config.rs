//! Each sink's settings, as data: [`SinkConfig`] says which sink, [`InfluxConfig`] holds
//! what every InfluxDB sink needs, and [`InfluxApi`] what differs between the two write
//! APIs. Passwords and tokens are [`Secret`]s: nothing here can print them.

use std::path::PathBuf;
use std::time::Duration;

use redline_core::secret::Secret;
use serde::{Deserialize, Serialize};

/// The InfluxDB URL when none is configured.
pub const DEFAULT_INFLUX_URL: &str = "http://127.0.0.1:8086";
/// The path `/ready` probes on InfluxDB when none is configured.
pub const DEFAULT_PING_PATH: &str = "/ping";
/// The InfluxDB request timeout when none is configured.
pub const DEFAULT_INFLUX_TIMEOUT: Duration = Duration::from_secs(10);
/// Rotated files the file sink keeps when none is configured.
pub const DEFAULT_FILE_MAX_FILES: u32 = 5;

/// How the InfluxDB sink encodes a request body (Telegraf's `content_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ContentEncoding {
    /// `Content-Encoding: gzip` (fast level): about a fifth of the bytes on the wire, for
    /// some CPU on both ends.
    #[default]
    Gzip,
    /// The plain body: for an InfluxDB on the same host or a fast LAN, where the CPU gzip
    /// costs on both ends is worth more than the bandwidth it saves.
    Identity,
}

impl ContentEncoding {
    /// The `Content-Encoding` header's value.
    pub fn header(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Identity => "identity",
        }
    }
}

impl std::str::FromStr for ContentEncoding {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(value, true)
    }
}

/// Which sink the consumer writes to, with its settings. In TOML, a `[sink]` table whose
/// `kind` is `influxdb`, `file` or `stdout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// InfluxDB, through its v1 or v2 write API.
    Influxdb(InfluxConfig),
    /// Appends line protocol to a file, fsynced before each ack.
    File {
        /// The file; created when missing, always appended to.
        path: PathBuf,
        /// Size after which the file is rotated (between batches, never inside one);
        /// 0 = never.
        #[serde(default, with = "redline_core::units::size")]
        max_size: u64,
        /// Rotated files kept (`<path>.1` newest … `<path>.N` oldest) when rotating.
        #[serde(default = "default_max_files")]
        max_files: u32,
    },
    /// Prints line protocol on standard output.
    #[default]
    Stdout,
}

/// An InfluxDB sink's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086` or `https://…` (system CAs, or SSL_CERT_FILE);
    /// several comma-separated for failover: writes go to one, the next is tried when it is
    /// unavailable (Telegraf's `urls`). Serialised with a password in it masked.
    #[serde(
        default = "default_influx_url",
        serialize_with = "redline_core::redis::serialize_redacted"
    )]
    pub url: String,
    /// Bound on one HTTP request (connect, send, answer).
    #[serde(
        default = "default_influx_timeout",
        with = "redline_core::units::duration"
    )]
    pub timeout: Duration,
    /// Request body encoding.
    #[serde(default)]
    pub content_encoding: ContentEncoding,
    /// The path `/ready` probes with `GET` on each URL (`/ping` for InfluxDB); empty = no
    /// probe, `/ready` then goes by the last writes alone.
    #[serde(default = "default_ping_path")]
    pub ping_path: String,
    /// The write API and what it needs.
    pub api: InfluxApi,
}

/// InfluxDB's write API, with what each one needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version", rename_all = "lowercase", deny_unknown_fields)]
pub enum InfluxApi {
    /// InfluxDB 1.x: `POST {url}/write?db=…&rp=…&precision=ns`.
    V1 {
        /// The database for entries that name none.
        #[serde(default)]
        db: Option<String>,
        /// User for HTTP basic authentication.
        #[serde(default)]
        username: Option<String>,
        /// Password for HTTP basic authentication.
        #[serde(default)]
        password: Option<Secret>,
        /// On `404 database not found`, run `CREATE DATABASE` and retry, as Telegraf does.
        #[serde(default = "default_true")]
        create_database: bool,
    },
    /// InfluxDB 2.x (and 1.8's compatibility API): `POST {url}/api/v2/write?org=…&bucket=…`
    /// with `Authorization: Token …`.
    V2 {
        /// Organization name.
        org: String,
        /// API token.
        token: Secret,
        /// The bucket for entries that name none.
        #[serde(default)]
        bucket: Option<String>,
    },
}

impl InfluxConfig {
    /// InfluxDB 1.x at the default URL, with `db` for entries that name none.
    pub fn v1(db: Option<&str>) -> Self {
        Self {
            url: DEFAULT_INFLUX_URL.to_string(),
            timeout: DEFAULT_INFLUX_TIMEOUT,
            content_encoding: ContentEncoding::default(),
            ping_path: DEFAULT_PING_PATH.to_string(),
            api: InfluxApi::V1 {
                db: db.map(str::to_string),
                username: None,
                password: None,
                create_database: true,
            },
        }
    }
}

impl InfluxConfig {
    /// Each URL of [`Self::url`], in order, without a trailing `/`.
    pub fn urls(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .collect()
    }
}

fn default_ping_path() -> String {
    DEFAULT_PING_PATH.to_string()
}

fn default_influx_url() -> String {
    DEFAULT_INFLUX_URL.to_string()
}

fn default_influx_timeout() -> Duration {
    DEFAULT_INFLUX_TIMEOUT
}

fn default_true() -> bool {
    true
}

fn default_max_files() -> u32 {
    DEFAULT_FILE_MAX_FILES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn influxdb_settings_take_defaults_and_hide_the_password() {
        let config: SinkConfig = serde_json::from_str(
            r#"{"kind":"influxdb","api":{"version":"v1","db":"telegraf","password":"s3cret"}}"#,
        )
        .unwrap();
        let SinkConfig::Influxdb(influx) = &config else {
            panic!("not influxdb: {config:?}");
        };
        assert_eq!(influx.url, DEFAULT_INFLUX_URL);
        assert_eq!(influx.timeout, DEFAULT_INFLUX_TIMEOUT);
        let InfluxApi::V1 {
            db,
            create_database,
            ..
        } = &influx.api
        else {
            panic!("not v1: {config:?}");
        };
        assert_eq!(db.as_deref(), Some("telegraf"));
        assert!(create_database);
        let shown = format!("{config:?} {}", serde_json::to_string(&config).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn the_v2_api_needs_an_org_and_a_token_and_hides_the_token() {
        let config: SinkConfig = serde_json::from_str(
            r#"{"kind":"influxdb","api":{"version":"v2","token":"s3cret","org":"acme"}}"#,
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        let error = serde_json::from_str::<SinkConfig>(
            r#"{"kind":"influxdb","api":{"version":"v2","org":"acme"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("token"), "{error}");
    }

    #[test]
    fn unknown_sink_keys_are_refused() {
        let error = serde_json::from_str::<SinkConfig>(r#"{"kind":"file","path":"x","pth":"y"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("pth"), "{error}");
        let rotated: SinkConfig = serde_json::from_str(
            r#"{"kind":"file","path":"m.lp","max_size":"1MiB","max_files":3}"#,
        )
        .unwrap();
        assert_eq!(
            rotated,
            SinkConfig::File {
                path: "m.lp".into(),
                max_size: 1_048_576,
                max_files: 3,
            }
        );
        assert_eq!("IDENTITY".parse(), Ok(ContentEncoding::Identity));
    }
}
