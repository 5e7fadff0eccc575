//! Horizontal scale-out: partitioned streams read by several consumers, Redis Cluster with
//! and without a failover, and consumers joining and leaving under load. Every test ends
//! with the exact count in InfluxDB: scaling changes the throughput, never the result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redline_testkit::{wait_until, ChildGuard, InfluxServer, RedisCluster, RedisServer};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::support::{self, client, consumer, redline, Producer, GROUP, STREAM};

/// Distinct series in the generated load: enough to reach every partition.
const SERIES: usize = 50;

/// `count` lines numbered from `start`, each with its own timestamp, so a line sent twice
/// (a client retry) is the same InfluxDB point and counts are exact.
fn lines(start: usize, count: usize) -> String {
    let mut body = String::with_capacity(count * 48);
    for i in start..start + count {
        body.push_str(&format!(
            "m,host=h{} v={i}i {}\n",
            i % SERIES,
            1_600_000_000_000_000_000_u64 + i as u64
        ));
    }
    body
}

/// The partition keys of `partitions`.
fn keys(partitions: usize) -> Vec<String> {
    (0..partitions)
        .map(|i| format!("{STREAM}:{{{i}}}"))
        .collect()
}

/// Posts `body` until it gets a 204, as a client that retries every non-204 does.
async fn post_until_stored(http: &reqwest::Client, url: &str, body: String) {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        match http.post(url).body(body.clone()).send().await {
            Ok(response) if response.status() == 204 => return,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no 204 for a batch within 25 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `batches` batches of `batch` lines to `url`, retrying each until 204; counts the
/// metrics stored in `sent`. After each batch whose index is in `pauses`, reports it on
/// `reached` and waits for a go-ahead on `resume` (the test changes something meanwhile).
fn send(
    url: String,
    batches: usize,
    batch: usize,
    pauses: Vec<usize>,
    sent: Arc<AtomicU64>,
) -> (
    tokio::task::JoinHandle<()>,
    mpsc::Receiver<usize>,
    mpsc::Sender<()>,
) {
    let (reached_tx, reached) = mpsc::channel(1);
    let (resume, mut resume_rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        let http = client();
        for n in 0..batches {
            post_until_stored(&http, &url, lines(n * batch, batch)).await;
            sent.fetch_add(batch as u64, Ordering::SeqCst);
            if pauses.contains(&n) {
                reached_tx
                    .send(n)
                    .await
                    .expect("the test waits for the pause");
                resume_rx.recv().await.expect("the test resumes the load");
            }
        }
    });
    (task, reached, resume)
}

/// `XINFO GROUPS` of `key`: (pending, entries-read) of the group.
async fn group_of<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> Option<(u64, u64)> {
    let groups = redline_streams::groups(conn, key).await.ok()?;
    let group = groups.into_iter().find(|g| g.name == GROUP)?;
    Some((group.pending, group.entries_read?))
}

/// Waits until no partition has anything pending.
async fn wait_nothing_pending<C: ConnectionLike + Send + Clone>(conn: &C, keys: &[String]) {
    wait_until(
        "nothing pending on any partition",
        Duration::from_secs(20),
        || {
            let mut conn = conn.clone();
            let keys = keys.to_vec();
            async move {
                for key in &keys {
                    if group_of(&mut conn, key).await.map(|(p, _)| p) != Some(0) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
}

/// Entries the group read from each partition.
async fn read_per_partition<C: ConnectionLike + Send>(conn: &mut C, keys: &[String]) -> Vec<u64> {
    let mut read = Vec::new();
    for key in keys {
        read.push(group_of(conn, key).await.map_or(0, |(_, r)| r));
    }
    read
}

/// Runs `redline ARGS… --json` to completion and parses its output.
fn redline_json(args: &[&str]) -> Value {
    let output = redline()
        .args(args)
        .arg("--json")
        .output()
        .expect("run redline");
    assert!(
        output.status.success(),
        "redline {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "redline {args:?} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn four_partitions_and_three_consumers_deliver_every_metric_once() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let partitions = ["--partitions", "4"];
    let producer = Producer::start(&redis.url(), &partitions).await;
    let _consumers: Vec<ChildGuard> = (0..3)
        .map(|i| consumer(&redis.url(), &influx.url(), &format!("c{i}"), &partitions))
        .collect();

    let sent = Arc::new(AtomicU64::new(0));
    let (sender, _, _) = send(
        format!("{}/write?db=db0", producer.url),
        20,
        5_000,
        Vec::new(),
        sent.clone(),
    );
    sender.await.unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 100_000);

    support::wait_for_count(&influx, "db0", 100_000, Duration::from_secs(25)).await;
    let mut conn = redis.conn().await;
    let keys = keys(4);
    wait_nothing_pending(&conn, &keys).await;
    let read = read_per_partition(&mut conn, &keys).await;
    assert_eq!(read.iter().sum::<u64>(), 100_000, "{read:?}");
    assert!(
        read.iter().all(|&n| n > 0),
        "a partition got nothing: {read:?}"
    );
    let bare: u64 = redis::cmd("EXISTS")
        .arg(STREAM)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(bare, 0, "with partitions, the bare stream key is not used");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_master_cluster_with_six_partitions_delivers_every_metric() {
    let mut cluster = RedisCluster::start(3, 0, &[]);
    let influx = InfluxServer::start();
    // The producer is given every node, the consumers one seed and --redis-cluster.
    let producer = Producer::start(&cluster.url(), &["--partitions", "6"]).await;
    let seed = cluster.seed();
    let args = ["--redis-cluster", "--partitions", "6"];
    let _consumers: Vec<ChildGuard> = (0..2)
        .map(|i| consumer(&seed, &influx.url(), &format!("c{i}"), &args))
        .collect();

    let sent = Arc::new(AtomicU64::new(0));
    let (sender, _, _) = send(
        format!("{}/write?db=db0", producer.url),
        12,
        5_000,
        Vec::new(),
        sent.clone(),
    );
    sender.await.unwrap();
    support::wait_for_count(&influx, "db0", 60_000, Duration::from_secs(25)).await;

    let keys = keys(6);
    let conn = cluster.conn().await;
    wait_nothing_pending(&conn, &keys).await;
    let read = read_per_partition(&mut conn.clone(), &keys).await;
    assert_eq!(read.iter().sum::<u64>(), 60_000, "{read:?}");
    let masters: std::collections::BTreeSet<u16> =
        keys.iter().map(|key| cluster.master_of(key)).collect();
    assert!(
        masters.len() >= 2,
        "the 6 partitions all live on master {masters:?}"
    );

    // The ops commands work against the cluster too.
    let status = redline_json(&[
        "status",
        "--redis-url",
        &seed,
        "--redis-cluster",
        "--partitions",
        "6",
    ]);
    let streams = status["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 6, "{status}");
    for stream in streams {
        assert_eq!(stream["groups"][0]["pending"], 0, "{status}");
    }
    assert_eq!(status["dlq_length"], 0, "{status}");
    let trim = redline_json(&["trim", "--redis-url", &cluster.url(), "--partitions", "6"]);
    assert_eq!(trim["streams"].as_array().map(Vec::len), Some(6), "{trim}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_master_fails_over_and_nothing_acknowledged_is_lost() {
    let mut cluster = RedisCluster::start(3, 1, &[]);
    let influx = InfluxServer::start();
    let common = ["--partitions", "3", "--redis-timeout", "2s"];
    // 204 only once a replica has the write too: what the failover keeps.
    let producer = Producer::start(
        &cluster.url(),
        &[
            &common[..],
            &["--wait-replicas", "1", "--wait-timeout", "500ms"],
        ]
        .concat(),
    )
    .await;
    let _consumers: Vec<ChildGuard> = (0..2)
        .map(|i| {
            let args = [&common[..], &["--min-idle", "3s"]].concat();
            consumer(&cluster.url(), &influx.url(), &format!("c{i}"), &args)
        })
        .collect();

    let sent = Arc::new(AtomicU64::new(0));
    let (sender, mut reached, resume) = send(
        format!("{}/write?db=db0", producer.url),
        30,
        1_000,
        vec![9],
        sent.clone(),
    );
    reached.recv().await.expect("a third of the load is stored");
    let victim_key = format!("{STREAM}:{{0}}");
    let victim = cluster.master_of(&victim_key);
    cluster.kill(victim);
    resume.send(()).await.unwrap(); // the load goes on while the replica takes over
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_failover(&victim_key, victim);
        // The old master comes back as a replica of the new one, so WAIT 1 is met again.
        cluster.start_again(victim);
        cluster
    })
    .await
    .unwrap();
    sender.await.unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 30_000);

    support::wait_for_count(&influx, "db0", 30_000, Duration::from_secs(25)).await;
    wait_nothing_pending(&cluster.conn().await, &keys(3)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_joining_and_leaving_under_load_change_nothing_but_the_throughput() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let partitions = ["--partitions", "4"];
    let producer = Producer::start(&redis.url(), &partitions).await;
    let args = [
        &partitions[..],
        &["--min-idle", "2s", "--batch-size", "1000"],
    ]
    .concat();
    let mut leaving = consumer(&redis.url(), &influx.url(), "c1", &args);
    let _staying = consumer(&redis.url(), &influx.url(), "c2", &args);

    let sent = Arc::new(AtomicU64::new(0));
    let (sender, mut reached, resume) = send(
        format!("{}/write?db=db0", producer.url),
        30,
        2_000,
        vec![9, 19],
        sent.clone(),
    );
    let mut conn = redis.conn().await;
    let keys = keys(4);

    // A third in: a consumer joins. The load resumes once Redis knows it on every partition.
    reached.recv().await.expect("a third of the load is stored");
    let _joining = consumer(&redis.url(), &influx.url(), "c3", &args);
    wait_until("c3 joined the group", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move {
            for key in &keys {
                let consumers: Vec<std::collections::HashMap<String, redis::Value>> =
                    match redis::cmd("XINFO")
                        .arg("CONSUMERS")
                        .arg(key)
                        .arg(GROUP)
                        .query_async(&mut conn)
                        .await
                    {
                        Ok(consumers) => consumers,
                        Err(_) => return false,
                    };
                let c3 = redis::Value::BulkString(b"c3".to_vec());
                if !consumers.iter().any(|c| c.get("name") == Some(&c3)) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    resume.send(()).await.unwrap();

    // Two thirds in: a consumer leaves (SIGTERM: it finishes its batch and stops).
    reached
        .recv()
        .await
        .expect("two thirds of the load are stored");
    leaving.sigterm();
    assert!(
        leaving.wait_exit(Duration::from_secs(10)).is_some(),
        "c1 did not stop on SIGTERM\n{}",
        leaving.logs()
    );
    resume.send(()).await.unwrap();
    sender.await.unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 60_000);

    support::wait_for_count(&influx, "db0", 60_000, Duration::from_secs(25)).await;
    wait_nothing_pending(&conn, &keys).await;
    let read = read_per_partition(&mut conn, &keys).await;
    assert_eq!(read.iter().sum::<u64>(), 60_000, "{read:?}");
    let dead: u64 = redis::cmd("XLEN")
        .arg(format!("{STREAM}:dlq"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 0, "nothing is dead-lettered");
}

/// XPENDING's summary: entries pending per consumer of the default group.
async fn pending_per_consumer(
    conn: &mut redis::aio::MultiplexedConnection,
) -> std::collections::BTreeMap<String, u64> {
    let mut per = std::collections::BTreeMap::new();
    // NOGROUP until the consumer created the group: nobody holds anything yet.
    let Ok(redis::Value::Array(parts)) = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg(GROUP)
        .query_async::<redis::Value>(conn)
        .await
    else {
        return per;
    };
    if let Some(redis::Value::Array(consumers)) = parts.get(3) {
        for pair in consumers.iter().cloned() {
            let (name, count): (String, String) = redis::from_redis_value(pair).unwrap();
            per.insert(name, count.parse().unwrap());
        }
    }
    per
}

#[tokio::test(flavor = "multi_thread")]
async fn one_process_with_three_workers_holds_three_batches_and_survives_a_kill() {
    let redis = RedisServer::start(&[]);
    let mut influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &[]).await;
    let http = client();
    let write = format!("{}/write?db=db0", producer.url);
    for start in (0..30_000).step_by(5_000) {
        post_until_stored(&http, &write, lines(start, 5_000)).await;
    }
    influx.stop();
    let args = ["--workers", "3", "--batch-size", "1000"];
    let mut first = consumer(&redis.url(), &influx.url(), "w", &args);

    // InfluxDB is down: each worker reads one batch under its own name and holds it.
    let mut conn = redis.conn().await;
    let expected: std::collections::BTreeMap<String, u64> = ["w-1", "w-2", "w-3"]
        .iter()
        .map(|name| (name.to_string(), 1_000))
        .collect();
    let mut seen = Default::default();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        seen = pending_per_consumer(&mut conn).await;
        if seen == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, expected, "{}", first.logs());
    assert!(first.sigkill().is_some(), "the consumer was running");

    // Restarted under the same name, each worker re-reads what it held; nothing is lost.
    influx.start_again();
    let mut second = consumer(&redis.url(), &influx.url(), "w", &args);
    support::wait_for_count(&influx, "db0", 30_000, Duration::from_secs(30)).await;
    support::wait_nothing_pending(&conn).await;
    second.sigterm();
    assert!(
        second
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        second.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_sharing_a_file_write_whole_batches_and_every_line_once() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.lp");
    let http = client();
    let write = format!("{}/write?db=db0", producer.url);
    let mut expected = Vec::new();
    for start in (0..20_000).step_by(5_000) {
        let body = lines(start, 5_000);
        expected.extend(body.lines().map(str::to_string));
        post_until_stored(&http, &write, body).await;
    }
    let _consumer = ChildGuard::spawn(
        "file-workers",
        redline()
            .args(["consumer", "--redis-url", &redis.url(), "--consumer", "f"])
            .args([
                "--workers",
                "4",
                "--batch-size",
                "500",
                "--flush-interval",
                "100ms",
            ])
            .args(["--sink", "file", "--file"])
            .arg(&file),
    );
    let conn = redis.conn().await;
    wait_until("20,000 lines in the file", Duration::from_secs(30), || {
        let file = file.clone();
        async move {
            std::fs::read_to_string(&file).is_ok_and(|text| text.lines().count() >= 20_000)
        }
    })
    .await;
    support::wait_nothing_pending(&conn).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with('\n'));
    let mut written: Vec<String> = text.lines().map(str::to_string).collect();
    written.sort();
    expected.sort();
    assert_eq!(written.len(), 20_000);
    assert!(
        written == expected,
        "the file holds other lines than those sent"
    );
}
