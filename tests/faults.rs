//! Faults, each as a user meets it: Redis down, full or hung; InfluxDB down, full, hung or
//! refusing; a consumer or producer killed or hung; a torn file; an operator's hand. Every
//! row of docs/faults.md names its test here, in `guarantees`, or in a crate's tests.

mod file;
mod influxdb;
mod operator;
mod processes;
mod producer;
mod redis;
mod replicas;
mod routes;

/// Asserts the answer a write gets while Redis cannot take it: 503, `Retry-After: 1`, and
/// an error that says so.
pub(crate) async fn assert_redis_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert_eq!(response.headers()["retry-after"], "1", "{what}");
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("Redis is unavailable"), "{what}: {body}");
}
