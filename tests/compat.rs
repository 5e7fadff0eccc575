//! InfluxDB compatibility: what a real client sends, redline answers as InfluxDB 1.x would,
//! and what a 204 stores is what InfluxDB would have stored. Each test sends the request (or
//! runs the real client: the `influx` CLI of Debian's influxdb-client, the Python `influxdb`
//! package) and checks the points in a real InfluxDB through the whole pipeline.

mod cli;
mod sources;

use std::process::Command;
use std::time::Duration;

use redline_testkit::{ChildGuard, InfluxServer, RedisServer};
use serde_json::Value;

use crate::support::{self, client, consumer, Producer, STREAM};

/// A producer, a consumer and InfluxDB, wired together.
struct Stack {
    redis: RedisServer,
    influx: InfluxServer,
    producer: Producer,
    _consumer: ChildGuard,
}

impl Stack {
    async fn start(producer_args: &[&str]) -> Self {
        let redis = RedisServer::start(&[]);
        let influx = InfluxServer::start();
        let producer = Producer::start(&redis.url(), producer_args).await;
        let consumer = consumer(&redis.url(), &influx.url(), "c1", &[]);
        Self {
            redis,
            influx,
            producer,
            _consumer: consumer,
        }
    }

    fn port(&self) -> String {
        self.producer.url.rsplit(':').next().unwrap().to_string()
    }

    async fn post(&self, path: &str, body: &str) -> (u16, String) {
        let response = client()
            .post(format!("{}{path}", self.producer.url))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Waits until InfluxDB answers `SELECT …` in `db` with `rows` rows, and returns them.
    async fn rows(&self, db: &str, select: &str, rows: usize) -> Vec<Value> {
        let mut last = Vec::new();
        for _ in 0..150 {
            let answer = self.influx.query(db, select).await;
            last = answer["results"][0]["series"][0]["values"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if last.len() == rows {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{select} on {db}: {} rows, not {rows}: {last:?}",
            last.len()
        );
    }

    /// The `lp` fields of the stream, oldest first.
    async fn stored(&self) -> Vec<String> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(STREAM)
            .arg("-")
            .arg("+")
            .query_async(&mut self.redis.conn().await)
            .await
            .unwrap();
        reply
            .ids
            .iter()
            .map(|e| e.get::<String>("lp").unwrap())
            .collect()
    }
}

/// Runs the real `influx` CLI against the producer.
fn influx_cli(port: &str, args: &[&str]) -> std::process::Output {
    Command::new("influx")
        .args(["-host", "127.0.0.1", "-port", port])
        .args(args)
        .output()
        .expect("the influx CLI (Debian's influxdb-client; scripts/test installs it)")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_influx_cli_creates_databases_and_imports_through_redline() {
    let stack = Stack::start(&[]).await;
    let port = stack.port();
    let created = influx_cli(&port, &["-execute", "CREATE DATABASE foo"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let shown = influx_cli(&port, &["-execute", "SHOW DATABASES", "-format", "json"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(r#"["foo"]"#), "{shown}");
    let select = influx_cli(&port, &["-execute", "SELECT * FROM m"]);
    assert!(
        String::from_utf8_lossy(&select.stdout).contains("redline accepts writes only"),
        "{select:?}"
    );

    // `influx -import`: DDL through /query (q in the URL), DML through /write?precision=s.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.txt");
    std::fs::write(
        &path,
        "# DDL\nCREATE DATABASE imported\n# DML\n# CONTEXT-DATABASE: imported\n\
         cpu,host=a v=1i 1600000000\ncpu,host=b v=2i 1600000001\n",
    )
    .unwrap();
    let imported = influx_cli(
        &port,
        &[
            "-import",
            "-path",
            path.to_str().unwrap(),
            "-precision",
            "s",
        ],
    );
    assert!(imported.status.success(), "{imported:?}");
    let rows = stack.rows("imported", "SELECT host, v FROM cpu", 2).await;
    assert_eq!(
        rows,
        [
            serde_json::json!([1_600_000_000_000_000_000_i64, "a", 1]),
            serde_json::json!([1_600_000_001_000_000_000_i64, "b", 2]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_creates_a_database_and_writes_with_its_precision() {
    let stack = Stack::start(&[]).await;
    let script = format!(
        r#"
from influxdb import InfluxDBClient
client = InfluxDBClient(host="127.0.0.1", port={port})
client.create_database("py")
print(client.ping())
client.write_points(
    [{{"measurement": "m", "tags": {{"host": "p"}}, "time": 1600000000123, "fields": {{"v": 0.5}}}}],
    database="py", time_precision="ms")
"#,
        port = stack.port()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the Python influxdb client (scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ping() returns the version header, which clients parse.
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("1.8.10-redline."),
        "{out:?}"
    );
    let rows = stack.rows("py", "SELECT v FROM m", 1).await;
    assert_eq!(
        rows[0],
        serde_json::json!([1_600_000_000_123_000_000_i64, 0.5])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn precision_floats_and_unsigned_are_read_as_each_api_reads_them() {
    let stack = Stack::start(&[]).await;
    // v1: `us` and anything unknown mean ns (clients written against 1.x send ns with them);
    // `u` means µs.
    for (precision, ts, stored) in [
        ("us", "1600000000000000001", 1_600_000_000_000_000_001_i64),
        ("rfc3339", "1600000000000000002", 1_600_000_000_000_000_002),
        ("u", "1600000000000003", 1_600_000_000_000_003_000),
    ] {
        let (status, text) = stack
            .post(
                &format!("/write?db=p&precision={precision}"),
                &format!("m,p={precision} v=1i {ts}"),
            )
            .await;
        assert_eq!(status, 204, "{precision}: {text}");
        let rows = stack
            .rows("p", &format!("SELECT v FROM m WHERE p = '{precision}'"), 1)
            .await;
        assert_eq!(rows[0][0], stored, "{precision}");
    }
    // v2: ns, us, ms, s; anything else is 400.
    let (status, text) = stack
        .post("/api/v2/write?bucket=p&precision=h", "m v=1i 1")
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("valid precision units are ns, us, ms, and s"),
        "{text}"
    );

    // Floats InfluxDB takes, stored as written (1e308 is not printed in full).
    let (status, text) = stack
        .post(
            "/write?db=f",
            "m a=.5,b=-.5,c=1.,d=1e308,e=1.e5 1600000000000000000",
        )
        .await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(
        stack.stored().await.last().unwrap(),
        "m a=.5,b=-.5,c=1.,d=1e308,e=1.e5 1600000000000000000"
    );
    let rows = stack.rows("f", "SELECT a, b, c, d, e FROM m", 1).await;
    assert_eq!(
        rows[0],
        serde_json::json!([1_600_000_000_000_000_000_i64, 0.5, -0.5, 1, 1e308, 100000])
    );

    // Unsigned: InfluxDB 1.x refuses `1u` ("invalid number"), so /write does too, and
    // stores the other lines; /api/v2/write takes it (InfluxDB 2.x does).
    let (status, text) = stack
        .post("/write?db=u", "m v=1i 1\nm u=1u 2\nm v=3i 3")
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("line 2") && text.contains("invalid number"),
        "{text}"
    );
    assert_eq!(stack.rows("u", "SELECT v FROM m", 2).await.len(), 2);
    let (status, _) = stack.post("/api/v2/write?bucket=u2", "m u=1u 2").await;
    assert_eq!(status, 204);
    assert!(stack.stored().await.iter().any(|lp| lp == "m u=1u 2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_without_a_timestamp_get_the_receive_time_truncated_to_the_precision() {
    let stack = Stack::start(&[]).await;
    for (precision, unit) in [
        ("s", 1_000_000_000_i64),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ] {
        let (status, _) = stack
            .post(
                &format!("/write?db=t&precision={precision}"),
                &format!("m,p={precision} v=1i"),
            )
            .await;
        assert_eq!(status, 204);
        let rows = stack
            .rows("t", &format!("SELECT v FROM m WHERE p = '{precision}'"), 1)
            .await;
        let time = rows[0][0].as_i64().unwrap();
        assert_eq!(time % unit, 0, "{precision}: {time}");
    }
    // As InfluxDB itself stamps: the same request straight to influxd.
    stack.influx.create_db("direct").await;
    let direct = client()
        .post(format!(
            "{}/write?db=direct&precision=h",
            stack.influx.url()
        ))
        .body("m v=1i")
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 204);
    let rows = stack.rows("direct", "SELECT v FROM m", 1).await;
    assert_eq!(rows[0][0].as_i64().unwrap() % 3_600_000_000_000, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_without_db_is_refused_unless_a_default_database_is_set() {
    let stack = Stack::start(&[]).await;
    let (status, text) = stack.post("/write", "m v=1i 1").await;
    assert_eq!(
        (status, text.as_str()),
        (400, r#"{"error":"database is required"}"#)
    );
    assert!(stack.stored().await.is_empty());
    // `db=a&db=b` writes to `a`, as InfluxDB reads a repeated parameter.
    let (status, _) = stack.post("/write?db=first&db=second", "m v=2i 2").await;
    assert_eq!(status, 204);
    assert_eq!(stack.rows("first", "SELECT v FROM m", 1).await.len(), 1);

    let defaulted = Stack::start(&["--default-db", "fallback"]).await;
    let (status, _) = defaulted.post("/write", "m v=3i 3").await;
    assert_eq!(status, 204);
    assert_eq!(
        defaulted.rows("fallback", "SELECT v FROM m", 1).await.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_carry_influxdb_headers_and_v1_users_work_through_the_v2_api() {
    let redis = RedisServer::start(&[]);
    let producer =
        crate::security::producer(&redis.url(), &[], &[("REDLINE_AUTH_TOKENS", "t0k3n")]).await;
    let ping = client()
        .get(format!("{}/ping", producer.url))
        .send()
        .await
        .unwrap();
    let version = ping.headers()["x-influxdb-version"].to_str().unwrap();
    let (major_minor, _) = version.split_once('-').unwrap();
    assert_eq!(major_minor, "1.8.10", "{version}");
    assert_eq!(ping.headers()["x-influxdb-build"], "OSS");
    // InfluxDB 1.8's v2 API takes `Token user:password` for a v1 user.
    let write = client()
        .post(format!("{}/api/v2/write?bucket=b", producer.url))
        .header("Authorization", "Token telegraf:t0k3n")
        .body("m v=1i 1")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 204);
    let wrong = client()
        .post(format!("{}/api/v2/write?bucket=b", producer.url))
        .header("Authorization", "Token telegraf:nope")
        .body("m v=1i 1")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(support::xlen(&mut redis.conn().await, STREAM).await, 1);
}
