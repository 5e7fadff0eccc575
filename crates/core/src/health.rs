//! The body of `/health` and `/ready`, shared by the producer's and the consumer's listeners.
//!
//! `/health` says the process is up; `/ready` says it can do its work right now: Redis
//! answers, and for a consumer the sink answers. Each check is bounded in time so a probe
//! never hangs on a dead dependency. Under Sentinel the `redis` check also names the master
//! in use (`"master": "host:port"`), a key added only then.

use std::{future::Future, time::Duration};

use serde_json::{json, Value};

/// How long one readiness check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The outcome of one dependency check.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked (`redis`, `sink`).
    pub name: &'static str,
    /// `None` when it passed, else what is wrong.
    pub error: Option<String>,
    /// Under Sentinel, the master the check reached (`host:port`).
    pub master: Option<String>,
}

impl Check {
    /// Runs `probe` with [`CHECK_TIMEOUT`]; a timeout is a failure.
    pub async fn run<F>(name: &'static str, probe: F) -> Self
    where
        F: Future<Output = Result<(), String>>,
    {
        let error = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        Self {
            name,
            error,
            master: None,
        }
    }

    /// The `redis` check: runs `probe` as [`Check::run`] does; a probe that passes may name
    /// the master it reached (under Sentinel).
    pub async fn run_redis<F>(probe: F) -> Self
    where
        F: Future<Output = Result<Option<String>, String>>,
    {
        let mut master = None;
        let mut check = Self::run("redis", async {
            master = probe.await?;
            Ok(())
        })
        .await;
        check.master = master;
        check
    }
}

/// `(ready, body)`: ready when every check passed; the body names what failed and why.
pub fn ready_body(component: &str, checks: &[Check]) -> (bool, Value) {
    let ready = checks.iter().all(|c| c.error.is_none());
    let body = json!({
        "name": component,
        "status": if ready { "ready" } else { "not ready" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": checks.iter().map(|c| {
            let mut check = match &c.error {
                None => json!({"name": c.name, "status": "pass"}),
                Some(e) => json!({"name": c.name, "status": "fail", "error": e}),
            };
            if let Some(master) = &c.master {
                check["master"] = json!(master);
            }
            check
        }).collect::<Vec<_>>(),
    });
    (ready, body)
}

/// The `/health` body: the process is up.
pub fn health_body(component: &str) -> Value {
    json!({
        "name": component,
        "status": "pass",
        "message": "ready for writes",
        "version": env!("CARGO_PKG_VERSION"),
    })
}
