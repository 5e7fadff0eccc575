//! Tests of [`InfluxServer`] against a real `influxd`.

use serde_json::json;

use super::launch::ping_blocking;
use super::*;

#[tokio::test]
async fn writes_are_counted_and_queried() {
    let influx = InfluxServer::start();
    assert!(influx.ping().await);
    // Before the database exists, counts are 0 rather than errors, so tests can poll.
    assert_eq!(influx.count_points("db", "cpu").await, 0);

    influx.create_db("db").await;
    influx.create_db("db").await; // idempotent
    assert_eq!(influx.count_points("db", "cpu").await, 0);
    influx
        .write(
            "db",
            "cpu,host=a usage=0.5,cores=2i 1000\ncpu,host=b usage=0.7 2000\ncpu,host=a cores=4i 3000",
        )
        .await;

    assert_eq!(influx.count_points("db", "cpu").await, 2);
    assert_eq!(influx.count("db", "cpu").await, 2);
    assert_eq!(influx.count_field("db", "cpu", "usage").await, 2);
    assert_eq!(influx.count_field("db", "cpu", "cores").await, 2);
    assert_eq!(influx.count_field("db", "cpu", "nope").await, 0);
    assert_eq!(influx.count_field("db", "mem", "usage").await, 0);

    let answer = influx
        .query("db", "SELECT usage FROM cpu WHERE host = 'b'")
        .await;
    assert_eq!(
        answer["results"][0]["series"][0]["values"],
        json!([[2000, 0.7]])
    );
    let answer = influx.query("db", "SELEC oops").await;
    assert!(first_error(&answer)
        .unwrap()
        .contains("error parsing query"));
}

#[tokio::test]
async fn data_survives_kill_and_stop() {
    let mut influx = InfluxServer::start();
    let port = influx.port();
    influx.create_db("db").await;
    influx.write("db", "m v=1 1\nm v=2 2\nm v=3 3").await;

    influx.restart();
    assert!(influx.is_running());
    assert_eq!(influx.port(), port);
    assert_eq!(influx.count_points("db", "m").await, 3);

    influx.stop();
    assert!(!influx.is_running());
    assert!(!influx.ping().await);
    influx.start_again();
    assert_eq!(influx.count_points("db", "m").await, 3);
}

#[tokio::test]
async fn max_body_size_is_applied() {
    let influx = InfluxServer::start_with(InfluxOptions {
        max_body_size: 100,
        ..InfluxOptions::default()
    });
    influx.create_db("db").await;
    let body = "m v=1 1\n".repeat(50);
    let response = reqwest::Client::new()
        .post(format!("{}/write?db=db", influx.url()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
}

#[test]
fn drop_kills_the_server_and_deletes_its_dir() {
    let influx = InfluxServer::start();
    let dir = influx.dir().to_path_buf();
    let port = influx.port();
    assert!(dir.join(CONFIG).is_file());
    assert!(dir.join("meta").is_dir());
    drop(influx);
    assert!(!dir.exists(), "{} survived the drop", dir.display());
    assert!(!ping_blocking(port));
}

#[test]
fn a_port_taken_by_another_influxd_is_reported_as_such() {
    // The other server answers /ping on that port; launch must not mistake it for ours.
    let other = InfluxServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        other.port(),
        free_port(),
        &InfluxOptions::default(),
    );
    assert!(matches!(
        launch(dir.path(), other.port()),
        Err(LaunchError::PortTaken)
    ));
}

#[test]
fn identifiers_are_quoted() {
    assert_eq!(quote_ident("cpu"), r#""cpu""#);
    assert_eq!(quote_ident(r#"a"b\c"#), r#""a\"b\\c""#);
}

#[test]
fn errors_are_found_at_the_top_and_per_statement() {
    assert_eq!(first_error(&json!({"error": "x"})), Some("x"));
    assert_eq!(
        first_error(&json!({"results": [{"statement_id": 0}, {"error": "y"}]})),
        Some("y")
    );
    assert_eq!(
        first_error(&json!({"results": [{"statement_id": 0}]})),
        None
    );
}
