//! Polling with a deadline: the only way tests wait for something to become true.
//!
//! Tests never sleep to synchronise; they poll a condition every [`POLL_INTERVAL`] and
//! panic, naming what they waited for, when the deadline passes. A future that should end
//! by itself (a delivery, a blocked read) is awaited [`within`] a bound, so a bug that
//! makes it loop for ever fails the test in seconds, not at CI's limit.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`wait_until`], [`wait_for`] and [`wait_until_sync`] re-check their condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls the async predicate `f` every [`POLL_INTERVAL`] until it returns `true`.
///
/// # Panics
/// When `timeout` passes first, with a message naming `what` (e.g. `"10 points in InfluxDB"`).
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let check = f();
        async move { check.await.then_some(()) }
    })
    .await;
}

/// Polls the async `f` every [`POLL_INTERVAL`] until it returns `Some(value)`; returns `value`.
///
/// # Panics
/// When `timeout` passes first, with a message naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Awaits `future`, at most `limit`: a future that should settle by itself (a delivery that
/// must end, a read that must return) fails the test in seconds when a bug makes it loop or
/// wait for ever.
///
/// # Panics
/// When `limit` passes first, with a message naming `what`.
pub async fn within<F: Future>(what: &str, limit: Duration, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Blocking variant of [`wait_until`] for synchronous code: polls `f` every [`POLL_INTERVAL`].
///
/// # Panics
/// When `timeout` passes first, with a message naming `what`.
pub fn wait_until_sync<F>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> bool,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_until_returns_once_the_predicate_holds() {
        let mut calls = 0;
        wait_until("the third call", Duration::from_secs(5), || {
            calls += 1;
            let done = calls >= 3;
            async move { done }
        })
        .await;
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn wait_for_returns_the_value() {
        let value = wait_for("a value", Duration::from_secs(1), || async { Some(7) }).await;
        assert_eq!(value, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for: something that never happens")]
    async fn wait_until_panics_naming_what_it_waited_for() {
        wait_until(
            "something that never happens",
            Duration::from_millis(120),
            || async { false },
        )
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "a future that never ends did not finish within 120ms")]
    async fn within_panics_naming_what_did_not_finish() {
        within(
            "a future that never ends",
            Duration::from_millis(120),
            std::future::pending::<()>(),
        )
        .await;
    }

    #[tokio::test]
    async fn within_returns_the_output() {
        assert_eq!(
            within("a ready value", Duration::from_secs(1), async { 7 }).await,
            7
        );
    }

    #[test]
    #[should_panic(expected = "waiting for: a sync condition")]
    fn wait_until_sync_panics_naming_what_it_waited_for() {
        wait_until_sync("a sync condition", Duration::from_millis(120), || false);
    }
}
