//! Redis under Sentinel, with real processes: a master, a replica and three sentinels
//! (`redline_testkit::RedisSentinel`), redline given only the sentinels
//! (`redis+sentinel://…/mymaster`). The master is SIGKILLed under load and the sentinels
//! promote the replica; producer and consumer follow without a restart, and the sink ends
//! with exactly what got a 204. The ops commands name the master and say when the
//! sentinels disagree; passwords on the sentinels and an ACL user on the master work.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redline_testkit::{wait_until, ChildGuard, RedisSentinel, SentinelOptions};
use serde_json::Value;

use crate::ops::ops;
use crate::support::{self, client, file_consumer, Producer, GROUP};

/// Lines per request, as a busy Telegraf sends them.
const BODY: usize = 5_000;

/// What a retrying writer saw.
#[derive(Debug, Default)]
struct Seen {
    /// Bodies answered 204, by number.
    stored: BTreeSet<usize>,
    /// Non-2xx answers, by status (0: no answer, the connection failed).
    refused: std::collections::BTreeMap<u16, usize>,
    /// The longest time from a first refusal to the 204 of the same body.
    longest_outage: Duration,
    /// When each request that got an HTTP answer (any status) was sent.
    answered: Vec<Instant>,
}

/// The lines of body `n`: distinct, each with its own timestamp, so a retried body is the
/// same points and a set of lines is exact.
fn body(n: usize) -> String {
    support::timestamped_lines(n * BODY, BODY)
}

/// Posts bodies `range` one after the other, each retried after every non-2xx (or failed
/// request) until it gets a 204; `done` counts the bodies stored.
fn write(
    url: String,
    range: std::ops::Range<usize>,
    seen: Arc<Mutex<Seen>>,
    done: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = client();
        for n in range {
            let text = body(n);
            let mut first_refusal = None;
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let sent = Instant::now();
                let status = match http.post(&url).body(text.clone()).send().await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                if status != 0 {
                    seen.lock().unwrap().answered.push(sent);
                }
                if status == 204 {
                    let mut seen = seen.lock().unwrap();
                    seen.stored.insert(n);
                    if let Some(since) = first_refusal {
                        let outage = Instant::now().duration_since(since);
                        seen.longest_outage = seen.longest_outage.max(outage);
                    }
                    break;
                }
                assert!(
                    !(400..500).contains(&status),
                    "body {n} refused for good: {status}"
                );
                *seen.lock().unwrap().refused.entry(status).or_default() += 1;
                first_refusal.get_or_insert_with(Instant::now);
                assert!(Instant::now() < deadline, "no 204 for body {n} within 90 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            done.fetch_add(1, Ordering::SeqCst);
        }
    })
}

/// The distinct lines of the file at `path`, and how many lines it holds in all.
fn file_lines(path: &std::path::Path) -> (BTreeSet<String>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    (all.iter().map(|l| (*l).to_string()).collect(), all.len())
}

/// `redline status --json` through the sentinels.
fn status(url: &str) -> Value {
    ops(url, &["status", "--json"]).json()
}

/// The group's pending count per `redline status --json`; `None` while it fails (the
/// sentinels of a loaded machine may be failing over once more on their own).
fn pending(url: &str) -> Option<Value> {
    let run = ops(url, &["status", "--json"]);
    (run.code == Some(0)).then(|| run.json()["streams"][0]["groups"][0]["pending"].clone())
}

/// Waits until the file holds exactly the lines of `stored` bodies, nothing is pending,
/// and the dead-letter stream is empty, as `redline status` reads them through the
/// sentinels; returns the number of lines written twice.
async fn wait_settled(url: &str, path: &std::path::Path, stored: &BTreeSet<usize>) -> usize {
    let expected: BTreeSet<String> = stored
        .iter()
        .flat_map(|n| body(*n).lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (lines, _) = file_lines(path);
        assert!(
            lines.is_subset(&expected),
            "the file holds lines no 204 answered: {:?}",
            lines.difference(&expected).take(3).collect::<Vec<_>>()
        );
        if lines.len() == expected.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s, {} of the {} lines answered 204 are not in the file, e.g. {:?}",
            expected.len() - lines.len(),
            expected.len(),
            expected.difference(&lines).take(2).collect::<Vec<_>>()
        );
        tokio::time::sleep(redline_testkit::POLL_INTERVAL).await;
    }
    wait_until("nothing pending", Duration::from_secs(30), || async {
        pending(url).is_some_and(|p| p == 0)
    })
    .await;
    let report = status(url);
    assert_eq!(report["dlq_length"], 0, "{report}");
    let (lines, total) = file_lines(path);
    assert_eq!(lines, expected);
    total - lines.len()
}

/// One failover under load: bodies `range` are written while the current master is killed
/// at the worst moment, when its replica and the consumer lag behind it; returns the new
/// master once the old one is back as its replica and the load is stored.
async fn fail_over_under_load(
    mut set: RedisSentinel,
    consumer: &mut ChildGuard,
    write_url: &str,
    range: std::ops::Range<usize>,
    seen: &Arc<Mutex<Seen>>,
) -> (RedisSentinel, u16) {
    let done = Arc::new(AtomicUsize::new(0));
    let writer = write(
        write_url.to_string(),
        range.clone(),
        seen.clone(),
        done.clone(),
    );
    wait_until(
        "a few bodies are stored",
        Duration::from_secs(60),
        || async { done.load(Ordering::SeqCst) >= 3 },
    )
    .await;
    let old = set.master();
    let replica = set.other(old);
    // The replica lags: paused, and its link cut, so it never gets what the master takes
    // from now on; so does the consumer (paused), which has not read it either. Only WAIT
    // keeps such a write from being answered 204: without it, this test loses them.
    consumer.pause();
    set.node(replica).pause();
    let mut master = set.node(old).conn().await;
    let _: redis::Value = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "replica"])
        .query_async(&mut master)
        .await
        .unwrap();
    let cut = Instant::now();
    wait_until(
        "an answer to a write sent after the replica fell behind",
        Duration::from_secs(10),
        || {
            let answered = seen.lock().unwrap().answered.iter().any(|sent| *sent > cut);
            async move { answered }
        },
    )
    .await;
    let killed = Instant::now();
    set.kill(old); // mid-load: the writer has a request in flight or about to be
    set.node(replica).resume();
    consumer.resume();
    let (set, new, promoted) = tokio::task::spawn_blocking(move || {
        let new = set.wait_failover(old);
        let promoted = killed.elapsed();
        // The old master comes back as a replica of the new one: WAIT 1 is met again.
        set.restart_as_replica(old);
        (set, new, promoted)
    })
    .await
    .unwrap();
    eprintln!(
        "failover {old} -> {new}: promoted after {promoted:?}, old master back as replica after {:?}",
        killed.elapsed()
    );
    writer.await.unwrap();
    assert_eq!(done.load(Ordering::SeqCst), range.len());
    (set, new)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_master_fails_over_and_back_and_the_sink_has_exactly_what_got_204() {
    let started = Instant::now();
    let set = RedisSentinel::start();
    let url = set.url(None);
    let first = set.master();
    // 204 only once the replica has the write too: what a failover keeps.
    let producer = Producer::start(
        &url,
        &[
            "--wait-replicas",
            "1",
            // Short: while the replica lags, each write waits this long for its 503.
            "--wait-timeout",
            "500ms",
            "--redis-timeout",
            "2s",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let (listen, metrics) = support::metrics_address();
    let mut consumer = file_consumer(&url, GROUP, &path, &["--metrics-listen", &listen]);
    let write_url = format!("{}/write?db=db0", producer.url);
    let seen = Arc::new(Mutex::new(Seen::default()));

    let (set, second) = fail_over_under_load(set, &mut consumer, &write_url, 0..12, &seen).await;
    assert_ne!(second, first);
    let stored = seen.lock().unwrap().stored.clone();
    let twice = wait_settled(&url, &path, &stored).await;
    eprintln!(
        "after the first failover: {} lines, {twice} written twice",
        stored.len() * BODY
    );
    // The master now: on a loaded machine the sentinels may have failed over once more.
    let master = format!("127.0.0.1:{}", set.master());
    let (_, ready) = support::ready(&producer.url).await;
    assert_eq!(ready["checks"][0]["master"], master, "{ready}");

    // And back: the first node, now a replica, is promoted in turn.
    let (set, third) = fail_over_under_load(set, &mut consumer, &write_url, 12..24, &seen).await;
    if third != first {
        eprintln!("note: the sentinels failed over once more on their own between the rounds");
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let twice = wait_settled(&url, &path, &seen.stored).await;
    assert_eq!(seen.stored.len(), 24);
    eprintln!(
        "after the second failover: {} lines, {twice} written twice; refusals {:?}, longest outage {:?}; test took {:?}",
        seen.stored.len() * BODY,
        seen.refused,
        seen.longest_outage,
        started.elapsed()
    );
    let master = format!("127.0.0.1:{}", set.master());
    for url in [&producer.url, &metrics] {
        let (_, ready) = support::ready(url).await;
        assert_eq!(ready["checks"][0]["master"], master, "{ready}");
    }
}

/// Makes `count` entries pending for consumer `c1` of the default group, on the master.
async fn hold_entries(set: &mut RedisSentinel, count: usize) {
    let master = set.master();
    let mut conn = set.node(master).conn().await;
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", support::STREAM, GROUP, "0", "MKSTREAM"])
        .query_async(&mut conn)
        .await
        .unwrap();
    for i in 0..count {
        let _: String = redis::cmd("XADD")
            .arg(support::STREAM)
            .arg("*")
            .arg("lp")
            .arg(format!("m v={i}i {i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", GROUP, "c1", "STREAMS", support::STREAM, ">"])
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Runs `SENTINEL args…` on the sentinel on `port`.
fn sentinel_command(port: u16, args: &[&str]) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut conn = client.get_connection().unwrap();
    let _: redis::Value = redis::cmd("SENTINEL").arg(args).query(&mut conn).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_pending_name_the_master_and_say_when_the_sentinels_disagree() {
    let mut set = RedisSentinel::start();
    let url = set.url(None);
    let master = format!("127.0.0.1:{}", set.master());
    hold_entries(&mut set, 3).await;
    // `send` stores through the sentinels too.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.lp");
    std::fs::write(&file, support::timestamped_lines(0, 5)).unwrap();
    let sent = support::redline()
        .args(["send", "--db", "db0", "--redis-url", &url])
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && said.contains("stored 5 metrics"),
        "{said}"
    );

    let table = ops(&url, &["status"]).ok();
    assert!(
        table.starts_with(&format!(
            "Redis master {master} ('mymaster', found through the sentinels)\nsentinels: all 3 name it\n\n"
        )),
        "{table}"
    );
    let report = status(&url);
    assert_eq!(report["sentinel"]["master"], master, "{report}");
    assert_eq!(report["sentinel"]["agree"], true, "{report}");
    assert_eq!(report["streams"][0]["length"], 8, "{report}");
    assert_eq!(report["streams"][0]["groups"][0]["pending"], 3, "{report}");
    assert_eq!(report["streams"][0]["groups"][0]["lag"], 5, "{report}");
    let pending = ops(&url, &["pending"]).ok();
    assert!(
        pending.starts_with(&format!("Redis master {master} (")),
        "{pending}"
    );
    assert!(pending.contains("c1"), "{pending}");
    let entries = ops(&url, &["pending", "--json"]).json();
    assert_eq!(entries.as_array().map(Vec::len), Some(3), "{entries}");

    // One sentinel forgets the master, then watches the replica under the same name.
    let ports = set.sentinel_ports();
    let replica = set.other(set.master());
    sentinel_command(ports[2], &["REMOVE", "mymaster"]);
    let table = ops(&url, &["status"]).ok();
    assert!(
        table.contains(&format!(
            "warning: only 2 of 3 sentinels name it\n  sentinel 127.0.0.1:{}: names {master}\n",
            ports[0]
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "  sentinel 127.0.0.1:{}: knows no master named 'mymaster'\n",
            ports[2]
        )),
        "{table}"
    );
    sentinel_command(
        ports[2],
        &[
            "MONITOR",
            "mymaster",
            "127.0.0.1",
            &replica.to_string(),
            "2",
        ],
    );
    let report = status(&url);
    assert_eq!(report["sentinel"]["agree"], false, "{report}");
    assert_eq!(
        report["sentinel"]["sentinels"][2]["master"],
        format!("127.0.0.1:{replica}"),
        "{report}"
    );
    let table = ops(&url, &["status"]).ok();
    assert!(
        table.contains("warning: the sentinels disagree on the master: 2 of 3 name it\n"),
        "{table}"
    );

    // No sentinel answers: one line naming each, exit 1.
    let nobody = format!(
        "redis+sentinel://127.0.0.1:{},127.0.0.1:{}/mymaster",
        redline_testkit::free_port(),
        redline_testkit::free_port()
    );
    let error = ops(&nobody, &["status"]).failed("status without sentinels");
    assert!(
        error.contains("cannot find the Redis master 'mymaster' through the sentinels")
            && error.contains("no sentinel answers (127.0.0.1:"),
        "{error}"
    );
}

mod auth;
