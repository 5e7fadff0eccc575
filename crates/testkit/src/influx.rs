//! [`InfluxServer`]: an InfluxDB 1.x `influxd` of its own per test.
//!
//! Invariants:
//! - config, meta, data and WAL live in the server's temp dir; HTTP and RPC bind 127.0.0.1
//!   on free ports; usage reporting, `_internal` monitoring, continuous queries and
//!   subscriptions are off, so the server does nothing a test didn't ask for;
//! - `wal-fsync-delay = "0s"`: a write answered 204 is fsynced, so it survives a SIGKILL;
//! - [`InfluxServer::start`] returns only once `GET /ping` answers 204;
//! - drop SIGKILLs and reaps `influxd` before its directory is deleted.
//!
//! Config reference: <https://docs.influxdata.com/influxdb/v1.6/administration/config/>.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::free_port;

mod config;
mod launch;

use crate::process::LaunchError;
use crate::process::{is_alive, kill_and_reap, send_signal, terminate};
use config::write_config;
use launch::{launch, logs};

/// How long a starting `influxd` has to answer `/ping` (it usually takes ~0.1 s).
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// How many fresh port pairs [`InfluxServer::start`] tries when one was taken.
const PORT_ATTEMPTS: usize = 5;

/// `influxd`'s stdout and stderr (it logs to stderr), in its directory.
const LOG: &str = "influxd.log";

/// The config file written into the directory.
const CONFIG: &str = "influxd.conf";

/// Settings of an [`InfluxServer`] that tests may change.
#[derive(Debug, Clone)]
pub struct InfluxOptions {
    /// `[http] max-body-size` in bytes (InfluxDB's default: 25,000,000); bodies over it get 413.
    pub max_body_size: u64,
    /// `[http] log-enabled`: an access-log line per request in `influxd.log`.
    pub http_log_enabled: bool,
    /// `[http] auth-enabled` with this admin (user, password), created at the first start;
    /// the helpers ([`InfluxServer::query`] and friends) authenticate as it.
    pub admin: Option<(String, String)>,
    /// Where `data/` and `wal/` live instead of the server's temp dir (e.g. a small tmpfs,
    /// to fill the disk under InfluxDB); the caller owns and removes it.
    pub data_root: Option<std::path::PathBuf>,
}

impl Default for InfluxOptions {
    fn default() -> Self {
        Self {
            max_body_size: 25_000_000,
            http_log_enabled: false,
            admin: None,
            data_root: None,
        }
    }
}

/// An `influxd` (InfluxDB 1.x) child process with its HTTP API on `127.0.0.1:<port>` and all
/// of its state in a temporary directory.
///
/// [`InfluxServer::stop`] and [`InfluxServer::kill`] keep the directory, so
/// [`InfluxServer::start_again`] brings the same databases back. Drop kills the server and
/// deletes the directory. The async helpers ([`InfluxServer::query`] and friends) need a
/// Tokio runtime and panic on transport errors: they are for tests.
#[derive(Debug)]
pub struct InfluxServer {
    /// The server process; replaced by `start_again`, killed and reaped by `Drop`.
    child: Child,
    /// Config, meta, data, WAL and `influxd.log`; deleted after `child` is reaped.
    dir: TempDir,
    /// HTTP API port, kept across restarts.
    port: u16,
    /// HTTP client of the helpers. It keeps no idle connections: a pooled connection would
    /// be tied to the Tokio runtime that opened it, and one server may outlive several.
    http: reqwest::Client,
    /// The admin the helpers authenticate as, with `auth-enabled`.
    admin: Option<(String, String)>,
}

impl InfluxServer {
    /// Starts `influxd` with [`InfluxOptions::default`]; see [`InfluxServer::start_with`].
    pub fn start() -> Self {
        Self::start_with(InfluxOptions::default())
    }

    /// Writes a config into a fresh temp dir, runs `influxd -config <file>` on free HTTP and
    /// RPC ports and waits until `GET /ping` answers 204. If a port was taken meanwhile,
    /// retries on new ones.
    ///
    /// The binary is `$REDLINE_INFLUXD`, else `influxd` on `PATH`, else `/usr/bin/influxd`.
    ///
    /// # Panics
    /// If the server isn't ready within 20 s, with the tail of its log.
    pub fn start_with(options: InfluxOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redline-influxd-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temp dir for influxd: {error}"));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|error| panic!("cannot build an HTTP client: {error}"));
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            write_config(dir.path(), port, free_port(), &options);
            match launch(dir.path(), port) {
                Ok(child) => {
                    let server = Self {
                        child,
                        dir,
                        port,
                        http,
                        admin: options.admin.clone(),
                    };
                    if let Some((user, password)) = &options.admin {
                        server.create_admin(user, password);
                    }
                    return server;
                }
                Err(LaunchError::PortTaken) => continue,
                Err(LaunchError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("influxd: {PORT_ATTEMPTS} free port pairs in a row were taken before it bound them")
    }

    /// The server's process id (the current one after a restart).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The HTTP API port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP API base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory holding `influxd.conf`, `meta/`, `data/`, `wal/` and `influxd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last 4 KiB of `influxd.log`, for failure messages.
    pub fn log_tail(&self) -> String {
        logs(self.dir.path(), 0)
    }

    /// Whether the server process is alive (it may still be starting or stopping).
    pub fn is_running(&mut self) -> bool {
        is_alive(&mut self.child)
    }

    /// Graceful shutdown: SIGTERM, then waits for the exit (SIGKILL after 10 s).
    /// The directory is kept for [`InfluxServer::start_again`].
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Crash: SIGKILL and reap. Writes already answered 204 survive (the WAL is fsynced).
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// Starts `influxd` again with the same config (ports, directories) after
    /// [`InfluxServer::stop`] or [`InfluxServer::kill`], and waits until it answers `/ping`.
    ///
    /// # Panics
    /// If it is still running, if a port has been taken meanwhile, or if it isn't ready
    /// within 20 s.
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "influxd on port {} is still running; stop() or kill() it first",
            self.port
        );
        match launch(self.dir.path(), self.port) {
            Ok(child) => self.child = child,
            Err(LaunchError::PortTaken) => panic!(
                "influxd cannot restart: port {} or its RPC port was taken while it was down\n{}",
                self.port,
                self.log_tail()
            ),
            Err(LaunchError::Failed(message)) => panic!("{message}"),
        }
    }

    /// A hang: SIGSTOP. The port still accepts connections (the kernel completes them), but
    /// nothing answers until [`InfluxServer::resume`].
    pub fn pause(&mut self) {
        send_signal(self.child.id(), "STOP");
    }

    /// The end of a hang: SIGCONT.
    pub fn resume(&mut self) {
        send_signal(self.child.id(), "CONT");
    }

    /// `CREATE USER <user> WITH PASSWORD '<password>' WITH ALL PRIVILEGES`, which
    /// InfluxDB allows without credentials while no user exists.
    fn create_admin(&self, user: &str, password: &str) {
        let statement = format!(
            "CREATE USER {} WITH PASSWORD '{}' WITH ALL PRIVILEGES",
            quote_ident(user),
            password.replace('\\', "\\\\").replace('\'', "\\'")
        );
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let body = format!("q={}", form_encode(&statement));
        let request = format!(
            "POST /query HTTP/1.0\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(request.as_bytes())?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })()
        .unwrap_or_else(|error| panic!("creating the InfluxDB admin failed: {error}"));
        assert!(
            answer.starts_with("HTTP/1.0 200") && !answer.contains("\"error\""),
            "creating the InfluxDB admin failed: {answer}"
        );
    }

    /// A crash and recovery: [`InfluxServer::kill`] then [`InfluxServer::start_again`].
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Whether `GET /ping` answers 204 right now.
    pub async fn ping(&self) -> bool {
        let response = self.http.get(format!("{}/ping", self.url())).send().await;
        matches!(response, Ok(response) if response.status().as_u16() == 204)
    }

    /// `CREATE DATABASE "<name>"` (a no-op if it exists).
    ///
    /// # Panics
    /// If the request fails or InfluxDB answers an error.
    pub async fn create_db(&self, name: &str) {
        let statement = format!("CREATE DATABASE {}", quote_ident(name));
        let answer = self.post_query(&[("q", statement.as_str())]).await;
        if let Some(error) = first_error(&answer) {
            panic!("{statement} failed: {error}");
        }
    }

    /// Runs an administrative `influxql` statement as the admin (`CREATE USER`, `GRANT`, …).
    ///
    /// # Panics
    /// If the request fails or InfluxDB answers an error.
    pub async fn admin(&self, influxql: &str) {
        let answer = self.post_query(&[("q", influxql)]).await;
        if let Some(error) = first_error(&answer) {
            panic!("{influxql} failed: {error}");
        }
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Runs `influxql` against database `db` (`POST /query?db=…&epoch=ns`) and returns the
    /// JSON answer as is, errors included: `{"results":[{"statement_id":0,"series":[…]}]}`.
    /// Timestamps are integer nanoseconds (`epoch=ns`), as redline stores them.
    ///
    /// # Panics
    /// If the request fails or the answer isn't JSON.
    pub async fn query(&self, db: &str, influxql: &str) -> Value {
        self.post_query(&[("db", db), ("q", influxql), ("epoch", "ns")])
            .await
    }

    /// `SELECT count("<field>") FROM "<measurement>"`: how many points have that field;
    /// 0 when there is no such series or no such database (yet).
    ///
    /// # Panics
    /// If the request fails or InfluxDB answers another error.
    pub async fn count_field(&self, db: &str, measurement: &str, field: &str) -> u64 {
        let statement = format!(
            "SELECT count({}) FROM {}",
            quote_ident(field),
            quote_ident(measurement)
        );
        let counts = self.counts(db, &statement).await;
        counts.into_iter().max().unwrap_or(0)
    }

    /// The number of points in `measurement`: the largest per-field count of
    /// `SELECT count(*) FROM "<measurement>"` (InfluxDB counts per field, `count_<field>`;
    /// exact whenever one field is present in every point). 0 when there is no such series
    /// or no such database (yet).
    ///
    /// # Panics
    /// If the request fails or InfluxDB answers another error.
    pub async fn count_points(&self, db: &str, measurement: &str) -> u64 {
        let statement = format!("SELECT count(*) FROM {}", quote_ident(measurement));
        let counts = self.counts(db, &statement).await;
        counts.into_iter().max().unwrap_or(0)
    }

    /// The number of points in `measurement`; the same as [`InfluxServer::count_points`].
    ///
    /// # Panics
    /// If the request fails or InfluxDB answers an error other than "database not found".
    pub async fn count(&self, db: &str, measurement: &str) -> u64 {
        self.count_points(db, measurement).await
    }

    /// `POST /write?db=<db>` with line-protocol `body` (nanosecond precision).
    ///
    /// # Panics
    /// If the request fails or the answer isn't 204, with InfluxDB's error.
    pub async fn write(&self, db: &str, body: &str) {
        let url = format!("{}/write", self.url());
        let response = self
            .authorize(self.http.post(&url))
            .query(&[("db", db)])
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {url}?db={db} failed: {error}"));
        let status = response.status();
        if status.as_u16() != 204 {
            let text = response.text().await.unwrap_or_default();
            panic!("POST {url}?db={db} answered {status}: {text}");
        }
    }

    /// Sends `POST /query` with `form` as the admin and parses the JSON answer, whatever its
    /// status.
    async fn post_query(&self, form: &[(&str, &str)]) -> Value {
        let url = format!("{}/query", self.url());
        let response = self
            .authorize(self.http.post(&url))
            .form(form)
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {url} {form:?} failed: {error}"));
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|error| panic!("POST {url} {form:?}: reading the answer: {error}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            panic!(
                "POST {url} {form:?} answered {status} with non-JSON ({error}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    }

    /// Runs a `SELECT count(…)` and returns the counts of its first row; empty when there is
    /// no series or no database.
    async fn counts(&self, db: &str, statement: &str) -> Vec<u64> {
        let answer = self.query(db, statement).await;
        if let Some(error) = first_error(&answer) {
            if error.starts_with("database not found") {
                return Vec::new();
            }
            panic!("{statement} on {db} failed: {error}");
        }
        let row = &answer["results"][0]["series"][0]["values"][0];
        let Some(row) = row.as_array() else {
            return Vec::new(); // no series: nothing was written
        };
        // Column 0 is `time`; the rest are the counts.
        row.iter().skip(1).filter_map(Value::as_u64).collect()
    }
}

impl Drop for InfluxServer {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
        // `dir` drops after this and deletes the data.
    }
}

/// `text` as an `application/x-www-form-urlencoded` value.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An InfluxQL identifier in double quotes, inner quotes and backslashes escaped.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The first `error` in a `/query` answer: top-level (a parse error) or per statement.
fn first_error(answer: &Value) -> Option<&str> {
    answer["error"].as_str().or_else(|| {
        answer["results"]
            .as_array()?
            .iter()
            .find_map(|result| result["error"].as_str())
    })
}

#[cfg(test)]
mod tests;
