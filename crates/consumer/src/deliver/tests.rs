//! Delivery against a real `redis-server`, with scripted sinks standing in for sink
//! behaviour that a real InfluxDB cannot be made to show on demand (a 5xx that repeats).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redline_core::redis::RedisConfig;
use redline_testkit::RedisServer;

use super::*;
use crate::reader::Reader;

const KEY: &str = "m";
const GROUP: &str = "g";

/// What a scripted sink saw: calls and accepted lines.
#[derive(Debug, Clone, Default)]
struct Seen {
    calls: usize,
    /// The size of each write, in order.
    sizes: Vec<usize>,
    written: Vec<String>,
}

/// A sink whose answer `decide(call number, batch)` picks.
struct Scripted<F> {
    decide: F,
    seen: Arc<Mutex<Seen>>,
}

impl<F> Sink for Scripted<F>
where
    F: FnMut(usize, &[&Entry]) -> Result<(), SinkError> + Send,
{
    fn name(&self) -> &'static str {
        "scripted"
    }

    async fn write(
        &mut self,
        _: crate::sink::Route<'_>,
        batch: &[&Entry],
    ) -> Result<(), SinkError> {
        let mut seen = self.seen.lock().unwrap();
        seen.calls += 1;
        seen.sizes.push(batch.len());
        let answer = (self.decide)(seen.calls, batch);
        if answer.is_ok() {
            seen.written.extend(batch.iter().map(|e| e.lp.clone()));
        }
        answer
    }
}

/// A fresh Redis holding `entries` (line, db), read once by consumer `c1`.
async fn read_entries(entries: &[(String, Option<&str>)]) -> (RedisServer, Vec<Message>) {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(KEY)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let mut pipe = redis::pipe();
    for (lp, db) in entries {
        let cmd = pipe.cmd("XADD").arg(KEY).arg("*").arg("lp").arg(lp);
        if let Some(db) = db {
            cmd.arg("db").arg(*db);
        }
        cmd.ignore();
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
    let config = RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    };
    let mut reader = Reader::new(config, vec![KEY.into()], GROUP.into(), "c1".into());
    let read = reader
        .read(10_000, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(!read.history);
    assert_eq!(read.messages.len(), entries.len());
    (redis, read.messages)
}

fn deliverer<F>(
    redis: &RedisServer,
    decide: F,
    max_deliveries: u64,
) -> (Deliverer<Scripted<F>>, Arc<Mutex<Seen>>)
where
    F: FnMut(usize, &[&Entry]) -> Result<(), SinkError> + Send,
{
    let pool = RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    }
    .pool()
    .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = Scripted {
        decide,
        seen: seen.clone(),
    };
    let settings = Settings {
        group: GROUP.into(),
        consumer: "c1".into(),
        max_deliveries,
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        min_idle: Duration::from_secs(10),
        routing: crate::routes::Routing::default(),
    };
    let deliverer = Deliverer::new(
        sink,
        pool,
        vec![KEY.into()],
        format!("{KEY}:dlq"),
        settings,
        crate::sink::Health::default(),
    );
    (deliverer, seen)
}

/// The longest a delivery in these tests may take. Every delivery here ends by itself (the
/// sink's script ends its outage); one that never settles (a retry loop that cannot end, an
/// outage that never clears) fails the test in seconds, not at CI's limit.
const SETTLES_WITHIN: Duration = Duration::from_secs(20);

/// Awaits a delivery, at most [`SETTLES_WITHIN`].
async fn within(delivery: impl std::future::Future<Output = ()>) {
    redline_testkit::within("the delivery", SETTLES_WITHIN, delivery).await;
}

async fn pending_count(redis: &RedisServer) -> usize {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(KEY)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(100_000)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    rows.len()
}

async fn dead_letters(redis: &RedisServer) -> Vec<HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{KEY}:dlq"))
        .arg("-")
        .arg("+")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| {
            e.map
                .keys()
                .map(|k| (k.clone(), e.get::<String>(k).unwrap()))
                .collect()
        })
        .collect()
}

/// A sink that rejects, as InfluxDB does a field type conflict, every write holding a line
/// of measurement `poison`.
fn rejects_poison(_: usize, batch: &[&Entry]) -> Result<(), SinkError> {
    if batch.iter().any(|e| e.lp.starts_with("poison")) {
        Err(SinkError::Rejected {
            reason: "field type conflict".into(),
            whole: false,
        })
    } else {
        Ok(())
    }
}

/// A sink that is down (connection refused) for its first `calls` writes, then takes all.
fn down_for(calls: usize) -> impl FnMut(usize, &[&Entry]) -> Result<(), SinkError> + Send {
    move |call: usize, _: &[&Entry]| {
        if call <= calls {
            Err(SinkError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

fn lines(n: usize, db: Option<&'static str>) -> Vec<(String, Option<&'static str>)> {
    (0..n).map(|i| (format!("m,i={i} v={i} {i}"), db)).collect()
}

/// Consumer `c1`'s own pending entries, re-read as after a restart (which raises their
/// delivery count in Redis).
async fn reread(redis: &RedisServer) -> Vec<Message> {
    let config = RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    };
    let mut reader = Reader::new(config, vec![KEY.into()], GROUP.into(), "c1".into());
    let read = reader
        .read(10_000, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(read.history || read.messages.is_empty());
    read.messages
}

#[tokio::test]
async fn a_refused_route_is_parked_counted_and_dead_lettered_at_max_deliveries() {
    let (redis, batch) = read_entries(&lines(5, None)).await;
    let (mut deliverer, seen) = deliverer(
        &redis,
        |_, _| Err(SinkError::Refused("403: not allowed".into())),
        3,
    );
    within(deliverer.deliver(batch)).await;
    assert_eq!(
        seen.lock().unwrap().calls,
        1,
        "a refusal is not retried in place"
    );
    assert_eq!(
        pending_count(&redis).await,
        5,
        "parked: pending for a re-read"
    );
    assert!(dead_letters(&redis).await.is_empty());

    for attempt in 2..=3 {
        let again = reread(&redis).await;
        assert_eq!(again.len(), 5);
        within(deliverer.deliver(again)).await;
        assert_eq!(seen.lock().unwrap().calls, attempt);
    }
    assert_eq!(pending_count(&redis).await, 0);
    let letters = dead_letters(&redis).await;
    assert_eq!(letters.len(), 5);
    for letter in letters {
        assert_eq!(
            letter["reason"],
            "max deliveries exceeded: sink refuses the route: 403: not allowed"
        );
        assert_eq!(letter["deliveries"], "3");
    }
}

#[tokio::test]
async fn an_unavailable_sink_is_retried_without_counting_deliveries() {
    let (redis, batch) = read_entries(&lines(5, None)).await;
    let (mut deliverer, seen) = deliverer(&redis, down_for(20), 2);
    within(deliverer.deliver(batch)).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.calls, 21);
    assert_eq!(seen.written.len(), 5);
    assert_eq!(pending_count(&redis).await, 0);
    assert!(dead_letters(&redis).await.is_empty());
}

#[tokio::test]
async fn restarts_in_the_middle_of_an_outage_count_nothing() {
    let (redis, batch) = read_entries(&lines(5, None)).await;
    let down = |_: usize, _: &[&Entry]| Err(SinkError::Unavailable("connection refused".into()));
    // The consumer meets the outage and dies in the middle of it, five times over: each
    // restart re-reads its entries, which raises their count in Redis.
    let mut messages = batch;
    for _ in 0..5 {
        let (mut dying, seen) = deliverer(&redis, down, 2);
        let cut = tokio::time::timeout(Duration::from_millis(200), dying.deliver(messages));
        assert!(cut.await.is_err(), "an outage is waited out, not given up");
        assert!(seen.lock().unwrap().calls > 0);
        messages = reread(&redis).await;
        assert_eq!(messages.len(), 5);
    }
    let (mut up, seen) = deliverer(&redis, |_, _| Ok(()), 2);
    within(up.deliver(messages)).await;
    assert_eq!(seen.lock().unwrap().written.len(), 5);
    assert_eq!(pending_count(&redis).await, 0);
    assert!(
        dead_letters(&redis).await.is_empty(),
        "restarts during an outage count nothing"
    );
}

#[tokio::test]
async fn a_refused_route_holds_back_no_other_route() {
    let mut entries = lines(10, Some("good"));
    entries.extend(lines(6, Some("forbidden")));
    entries.extend(lines(4, Some("also-good")));
    let (redis, batch) = read_entries(&entries).await;
    let decide = |_: usize, batch: &[&Entry]| {
        if batch.iter().any(|e| e.db.as_deref() == Some("forbidden")) {
            Err(SinkError::Refused("403: not authorized".into()))
        } else {
            Ok(())
        }
    };
    let (mut deliverer, seen) = deliverer(&redis, decide, 5);
    within(deliverer.deliver(batch)).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.calls, 3, "one write per route, no splitting");
    assert_eq!(seen.written.len(), 14);
    assert_eq!(
        pending_count(&redis).await,
        6,
        "only the refused route waits"
    );
    assert!(dead_letters(&redis).await.is_empty());
}

#[tokio::test]
async fn a_401_on_every_route_is_an_outage_and_on_one_route_a_refusal() {
    let mut entries = lines(3, Some("a"));
    entries.extend(lines(3, Some("b")));
    let (redis, batch) = read_entries(&entries).await;
    // Wrong credentials: every route answers 401 until call 7.
    let decide = |call: usize, _: &[&Entry]| {
        if call <= 6 {
            Err(SinkError::Unauthorized("401: authorization failed".into()))
        } else {
            Ok(())
        }
    };
    let (mut outage, seen) = deliverer(&redis, decide, 1);
    within(outage.deliver(batch)).await;
    assert_eq!(
        seen.lock().unwrap().written.len(),
        6,
        "waited out, nothing counted"
    );
    assert!(dead_letters(&redis).await.is_empty());
    assert_eq!(pending_count(&redis).await, 0);

    // One route answers 401 while another is written: that route is refused.
    let mut entries = lines(3, Some("a"));
    entries.extend(lines(3, Some("b")));
    let (redis, batch) = read_entries(&entries).await;
    let decide = |_: usize, batch: &[&Entry]| {
        if batch.iter().any(|e| e.db.as_deref() == Some("b")) {
            Err(SinkError::Unauthorized("401: no access to b".into()))
        } else {
            Ok(())
        }
    };
    let (mut refusal, _) = deliverer(&redis, decide, 1);
    within(refusal.deliver(batch)).await;
    let letters = dead_letters(&redis).await;
    assert_eq!(letters.len(), 3);
    assert!(letters.iter().all(|l| l["db"] == "b"
        && l["reason"] == "max deliveries exceeded: sink refuses the route: 401: no access to b"));
}

#[tokio::test]
async fn a_write_that_times_out_is_retried_smaller_without_counting() {
    let (redis, batch) = read_entries(&lines(64, None)).await;
    // The sink takes at most 10 entries within its timeout.
    let decide = |_: usize, batch: &[&Entry]| {
        if batch.len() > 10 {
            Err(SinkError::TimedOut("operation timed out".into()))
        } else {
            Ok(())
        }
    };
    let (mut deliverer, seen) = deliverer(&redis, decide, 1);
    within(deliverer.deliver(batch)).await;
    let seen = seen.lock().unwrap().clone();
    // Halved after each timeout (64, 32, 16), then the 8 that fit, each write of them.
    assert_eq!(seen.sizes, [64, 32, 16, 8, 8, 8, 8, 8, 8, 8, 8]);
    assert_eq!(seen.written.len(), 64);
    assert_eq!(pending_count(&redis).await, 0);
    assert!(
        dead_letters(&redis).await.is_empty(),
        "a timeout counts nothing"
    );
}

/// After a timeout shrank the writes, each write that takes the whole limit doubles it for
/// the next attempt, so the writes grow back to the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_grow_back_after_a_timeout_by_doubling() {
    let (redis, mut batches) = read_entries(&lines(256, None)).await;
    // The first three writes time out (64, 32, 16); the sink takes everything after.
    let decide = |call: usize, _: &[&Entry]| {
        if call <= 3 {
            Err(SinkError::TimedOut("operation timed out".into()))
        } else {
            Ok(())
        }
    };
    let (mut deliverer, seen) = deliverer(&redis, decide, 1);
    for _ in 0..4 {
        let rest = batches.split_off(64);
        within(deliverer.deliver(batches)).await;
        batches = rest;
    }
    let seen = seen.lock().unwrap().clone();
    // Down to 8 after the timeouts, then 16 (the first 8 took the whole limit), 32, 64.
    assert_eq!(
        seen.sizes,
        [64, 32, 16, 8, 8, 8, 8, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 64]
    );
    assert_eq!(seen.written.len(), 256);
    assert_eq!(pending_count(&redis).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_claimed_by_another_consumer_are_left_to_it() {
    let (redis, batch) = read_entries(&lines(5, None)).await;
    let ids: Vec<String> = batch.iter().map(|m| m.id.to_string()).collect();
    let mut other = redis.sync_conn();
    let decide = move |call: usize, _: &[&Entry]| {
        if call == 1 {
            // While this consumer's first attempt hangs, another one takes the entries over.
            let _: Vec<String> = redis::cmd("XCLAIM")
                .arg(KEY)
                .arg(GROUP)
                .arg("c2")
                .arg(0)
                .arg(&ids)
                .arg("JUSTID")
                .query(&mut other)
                .unwrap();
        }
        Err(SinkError::Unavailable("timed out".into()))
    };
    let (mut deliverer, seen) = deliverer(&redis, decide, 5);
    within(deliverer.deliver(batch)).await;

    assert_eq!(
        seen.lock().unwrap().calls,
        1,
        "not retried once they are someone else's"
    );
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(KEY)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(100)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter().all(|(_, owner, _, _)| owner == "c2"),
        "{rows:?}"
    );
    assert!(dead_letters(&redis).await.is_empty());
}

mod letters;
mod pauses;
