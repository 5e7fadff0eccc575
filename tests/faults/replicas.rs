//! `--wait-replicas`: a 204 only once a replica of every master the request wrote to
//! confirmed its writes, on a standalone Redis with a replica and on a Redis Cluster.

use std::time::Duration;

use redline_testkit::{wait_until, RedisServer};

use crate::support::{client, lines, post, Producer, STREAM};

#[tokio::test(flavor = "multi_thread")]
async fn wait_replicas_answers_204_only_when_a_replica_confirmed() {
    let primary = RedisServer::start(&[]);
    let port = primary.port().to_string();
    let mut replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let conn = primary.conn().await;
    until_replication(&conn, "the replica is connected", |info| {
        info.contains("connected_slaves:1") && info.contains("state=online")
    })
    .await;
    let producer = Producer::start(
        &primary.url(),
        &["--wait-replicas", "1", "--wait-timeout", "3s"],
    )
    .await;
    let write = format!("{}/write?db=db0", producer.url);
    assert_eq!(
        client()
            .post(&write)
            .body(lines(0, 1_000))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let mut rconn = replica.conn().await;
    let on_replica: u64 = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(&mut rconn)
        .await
        .unwrap();
    assert_eq!(on_replica, 1_000, "a 204 means the replica has every entry");

    replica.kill();
    until_replication(&conn, "the primary notices the replica is gone", |info| {
        info.contains("connected_slaves:0")
    })
    .await;
    let response = client()
        .post(&write)
        .body(lines(1_000, 1_000))
        .send()
        .await
        .unwrap();
    assert_no_replica_confirmed(response).await;
}

/// On a Redis Cluster (the pooled path, like TLS and Sentinel) `--wait-replicas` holds the
/// same: masters without a replica confirm nothing, so the answer is 503, never a 204.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_without_replicas_wait_replicas_answers_503() {
    let cluster = redline_testkit::RedisCluster::start(3, 0, &[]);
    let producer = waiting_producer(&cluster, "100ms", &[]).await;
    // Over 256 KiB of lines: several rounds, each with its WAIT.
    let response = post(&format!("{}/write?db=db0", producer.url), lines(0, 10_000)).await;
    assert_no_replica_confirmed(response).await;
}

/// `response` is the 503 + `Retry-After` of a write no replica confirmed.
async fn assert_no_replica_confirmed(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only 0 of 1 replicas confirmed"),
        "{body}"
    );
}

/// A request's `WAIT`s cover the masters written only in its earlier rounds: their
/// replicas must confirm too, not only those of the masters the last round wrote to; and
/// they cover no master the request did not write to.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_wait_replicas_covers_a_master_written_only_in_an_earlier_round() {
    let mut cluster = redline_testkit::RedisCluster::start(3, 1, &[]);
    let (_, masters, early, late) = two_masters(&mut cluster);
    let producer = waiting_producer(&cluster, "200ms", &[]).await;
    // About 300 KB of lines of `early`'s partition, then 600 KB of `late`'s: rounds are at most
    // 256 KiB, so the last round holds only `late`'s lines.
    let mut body = lines_of_partition(early, 3, 300_000);
    body.push_str(&lines_of_partition(late, 3, 600_000));
    let write = format!("{}/write?db=db0", producer.url);

    // Every replica up: both masters confirm.
    let response = post(&write, body.clone()).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    // The replica of `early`'s master hangs: that master is written in the first rounds only.
    let replicas = cluster.replicas_of(masters[early]);
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    cluster.node(replicas[0]).pause();
    let response = post(&write, body).await;
    // A request that writes nothing to that master is not held back by its replica.
    let elsewhere = post(&write, lines_of_partition(late, 3, 10_000)).await;
    cluster.node(replicas[0]).resume();
    assert_no_replica_confirmed(response).await;
    assert_eq!(
        elsewhere.status(),
        204,
        "{}",
        elsewhere.text().await.unwrap()
    );
    // Each of the three requests is observed once, the refused one too.
    let metrics = crate::support::scrape(&producer.url).await;
    assert_eq!(
        crate::support::sample(&metrics, "redline_xadd_duration_seconds_count", ""),
        Some(3.0)
    );
}

/// Waits up to 15 s until the primary's `INFO replication` satisfies `done`.
async fn until_replication(
    conn: &redis::aio::MultiplexedConnection,
    what: &str,
    done: fn(&str) -> bool,
) {
    wait_until(what, Duration::from_secs(15), || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .unwrap();
            done(&info)
        }
    })
    .await;
}

/// The stream's 3 partition keys on `cluster`, each partition's master, partition 0
/// (`early`) and a partition on another master (`late`).
fn two_masters(
    cluster: &mut redline_testkit::RedisCluster,
) -> (redline_core::keys::StreamKeys, Vec<u16>, usize, usize) {
    let keys = redline_core::keys::StreamKeys::new(STREAM, 3);
    let masters: Vec<u16> = (0..3)
        .map(|p| cluster.master_of(keys.partition(p)))
        .collect();
    let early = 0;
    let late = (1..3)
        .find(|&p| masters[p] != masters[early])
        .expect("3 partitions on 3 masters: one is not on partition 0's");
    (keys, masters, early, late)
}

/// About `bytes` of timestamped lines, each of its own series, all of whose series go to
/// `partition` of `partitions`.
fn lines_of_partition(partition: usize, partitions: usize, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 64);
    let series = (0..)
        .map(|host| format!("m,host=h{host}"))
        .filter(|series| redline_core::series::partition(series, partitions) == partition);
    for (i, series) in series.enumerate() {
        if out.len() >= bytes {
            break;
        }
        let at = 1_600_000_000_000_000_000_i64 + i as i64;
        out.push_str(&format!("{series} v={i}i {at}\n"));
    }
    out
}

/// A producer on `cluster`'s 3 partitions that answers 204 only once a replica of every
/// master written confirmed, within `wait_timeout`; with `extra` arguments.
async fn waiting_producer(
    cluster: &redline_testkit::RedisCluster,
    wait_timeout: &str,
    extra: &[&str],
) -> Producer {
    let mut args = vec![
        "--partitions",
        "3",
        "--wait-replicas",
        "1",
        "--wait-timeout",
        wait_timeout,
    ];
    args.extend_from_slice(extra);
    Producer::start(&cluster.url(), &args).await
}

/// A master failing over between two rounds of one request, after it took a first round its
/// replica never got: the promoted replica lacks those writes, so the request must not get a
/// 204 for them. Each round's writes are confirmed by a `WAIT` on the connection that carried
/// them (a `WAIT` only after the last round once went, for that partition, to the promoted
/// master over a new connection, confirmed nothing of the first round, and answered 204).
/// A 503 is fine (the client sends again), a 204 must mean every line is stored.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_a_failover_between_rounds_of_a_request_never_turns_lost_writes_into_a_204() {
    let mut cluster = redline_testkit::RedisCluster::start(3, 1, &[]);
    let (keys, masters, early, late) = two_masters(&mut cluster);
    let (first, second) = (masters[early], masters[late]);
    let replica = cluster.replicas_of(first)[0];
    let producer = waiting_producer(&cluster, "60s", &["--redis-timeout", "60s"]).await;
    // 200 KB of `early`'s lines, then 600 KB of `late`'s: the first round (256 KiB) writes to
    // both masters, the later ones only to `late`'s.
    let early_lines = lines_of_partition(early, 3, 200_000);
    let mut body = early_lines.clone();
    body.push_str(&lines_of_partition(late, 3, 600_000));
    let write = format!("{}/write?db=db0", producer.url);

    // `first`'s replica hangs, and `second` holds every write: the first round reaches
    // `first` and waits on `second`.
    cluster.node(replica).pause();
    let node = |port: u16| redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut held = node(second).get_connection().unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "120000", "WRITE"])
        .query(&mut held)
        .unwrap();
    let request = tokio::spawn({
        let (write, body) = (write.clone(), body.clone());
        async move { post(&write, body).await }
    });
    let early_count = early_lines.lines().count() as u64;
    let early_key = keys.partition(early).to_string();
    let on_first = node(first)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    wait_until(
        "the first round is stored on the first master",
        Duration::from_secs(30),
        || {
            let (mut conn, key) = (on_first.clone(), early_key.clone());
            async move {
                redis::cmd("XLEN")
                    .arg(key)
                    .query_async::<u64>(&mut conn)
                    .await
                    .is_ok_and(|n| n == early_count)
            }
        },
    )
    .await;

    // `first` dies with writes its replica never got; the replica takes over, and `first`
    // comes back as its replica (empty: no persistence), so a WAIT there finds one replica.
    tokio::task::block_in_place(|| {
        cluster.kill(first);
        cluster.node(replica).resume();
        let _: () = redis::cmd("CLUSTER")
            .arg(&["FAILOVER", "TAKEOVER"])
            .query(&mut node(replica).get_connection().unwrap())
            .unwrap();
        cluster.wait_failover(&early_key, first);
        cluster.start_again(first);
    });
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut held)
        .unwrap();

    let response = request.await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let mut conn = cluster.conn().await;
    if status != 204 {
        assert_eq!(status, 503, "{text}");
        // The client sends the request again, and its 204 means stored.
        let again = post(&write, body).await;
        assert_eq!(again.status(), 204, "{}", again.text().await.unwrap());
    }
    // Every line of the first round is there (some twice: a round sent again after the
    // failover is the same points).
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&early_key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = reply
        .ids
        .iter()
        .filter_map(|entry| entry.get::<String>("lp"))
        .collect();
    let lost = early_lines
        .lines()
        .filter(|line| !stored.contains(*line))
        .count();
    assert_eq!(
        lost, 0,
        "{lost} of {early_count} lines lost after a {status}"
    );
}
