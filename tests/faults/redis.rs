//! Redis faults: killed, full (`maxmemory` with `noeviction`), hung (SIGSTOP), a replica
//! lost under `--wait-replicas`.

use std::time::{Duration, Instant};

use redline_testkit::{wait_until, InfluxServer, RedisServer};

use crate::support::{
    self, client, consumer, dead_letters, lines, post, post_until_stored, timestamped_lines, xlen,
    Producer, GROUP, STREAM,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_full_redis_is_drained_and_trimmed_by_a_restarted_consumer_and_its_poison_dead_lettered()
{
    let redis = RedisServer::start(&["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"]);
    let influx = InfluxServer::start();
    // Field v is an integer in db0; the poison line makes it a string.
    influx.create_db("db0").await;
    influx
        .write("db0", "m,host=seed v=1i 1600000000000000000")
        .await;
    let poison = "m,host=h1 v=\"not a number\" 1600000000000000002";
    let mut conn = redis.conn().await;
    // A consumer ran before: the group exists.
    support::create_group(&mut conn, GROUP).await;
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    let http = client();

    // Fill Redis: the poison is the third entry, then 5,000-line bodies until Redis is full.
    let mut first = timestamped_lines(0, 2);
    first.push_str(poison);
    first.push('\n');
    first.push_str(&timestamped_lines(3, 4_997));
    let mut bodies = vec![first];
    let full = loop {
        let body = bodies.last().cloned().unwrap_or_default();
        let response = http.post(&write).body(body).send().await.unwrap();
        match response.status().as_u16() {
            204 => {
                assert!(bodies.len() < 100, "Redis never filled up");
                bodies.push(timestamped_lines(bodies.len() * 5_000, 5_000));
            }
            503 => break response,
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    };
    assert_eq!(full.headers()["retry-after"], "1");
    let error = full.json::<serde_json::Value>().await.unwrap()["error"].to_string();
    assert!(error.contains("Redis is full"), "{error}");

    // The consumer starts while Redis is full: it must not exit, and drains it.
    let mut c1 = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--trim-interval", "300ms", "--batch-size", "2000"],
    );
    // The client retries the refused body (the last one), then writes two more.
    post_until_stored(&write, bodies.last().unwrap()).await;
    assert!(c1.is_running(), "the consumer exited:\n{}", c1.logs());
    let sent = bodies.len() * 5_000;
    for start in (sent..sent + 10_000).step_by(5_000) {
        post_until_stored(&write, &timestamped_lines(start, 5_000)).await;
    }
    let total = sent + 10_000;

    // Every line that got a 204 is in InfluxDB (plus the seed point), the poison alone is
    // dead-lettered, nothing is pending, and the stream is trimmed.
    support::wait_for_count(&influx, "db0", total as u64, Duration::from_secs(120)).await;
    wait_until(
        "the poison is dead-lettered",
        Duration::from_secs(60),
        || {
            let mut conn = conn.clone();
            async move { dead_letters(&mut conn).await.len() == 1 }
        },
    )
    .await;
    support::wait_nothing_pending(&conn).await;
    let letters = dead_letters(&mut conn).await;
    assert_eq!(letters[0]["lp"], poison);
    assert!(
        letters[0]["reason"].contains("field type conflict"),
        "{letters:?}"
    );
    wait_until("the stream trimmed", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move { xlen(&mut conn, STREAM).await <= 5_000 }
    })
    .await;
    assert!(c1.is_running(), "{}", c1.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_redis_answers_503_never_204_and_stores_nothing_of_the_refused_request() {
    let redis = RedisServer::start(&["--maxmemory-policy", "noeviction"]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    let mut conn = redis.conn().await;
    // Redis past maxmemory: an 8 MB value, and maxmemory set below what Redis uses.
    let _: u64 = redis::cmd("SETRANGE")
        .arg("filler")
        .arg(8_000_000)
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used / 2)
        .query_async(&mut conn)
        .await
        .unwrap();

    // 12,000 lines: three rounds of XADDs. Each attempt is refused whole.
    let body = timestamped_lines(0, 12_000);
    for attempt in 0..3 {
        let response = post(&write, body.clone()).await;
        assert_eq!(
            response.status(),
            503,
            "attempt {attempt}: no 204 while Redis is full"
        );
        assert_eq!(response.headers()["retry-after"], "1");
        let answer: serde_json::Value = response.json().await.unwrap();
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains("Redis is full"), "{answer}");
        assert_eq!(
            xlen(&mut conn, STREAM).await,
            0,
            "nothing of a 503 is stored"
        );
    }

    // Room again: the client's retry is stored whole, once.
    let _: () = redis::cmd("DEL")
        .arg("filler")
        .query_async(&mut conn)
        .await
        .unwrap();
    let response = post(&write, body).await;
    assert_eq!(response.status(), 204);
    assert_eq!(xlen(&mut conn, STREAM).await, 12_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_redis_gets_clear_503s_within_redis_timeout_and_loses_nothing() {
    let mut redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let producer = Producer::start(&redis.url(), &["--redis-timeout", "1s"]).await;
    let _c1 = consumer(
        &redis.url(),
        &influx.url(),
        "c1",
        &["--redis-timeout", "1s"],
    );
    let write = format!("{}/write?db=db0", producer.url);
    post_until_stored(&write, &timestamped_lines(0, 5_000)).await;
    support::wait_for_count(&influx, "db0", 5_000, Duration::from_secs(60)).await;

    redis.pause();
    let http = client();
    for attempt in 0..3 {
        let started = Instant::now();
        let response = http
            .post(&write)
            .body(timestamped_lines(5_000, 5_000))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(4),
            "attempt {attempt} took {took:?}"
        );
        super::assert_redis_unavailable(response, &format!("attempt {attempt}")).await;
    }
    let (status, _) = support::ready(&producer.url).await;
    assert_eq!(status, 503, "/ready while Redis hangs");

    redis.resume();
    for start in (5_000..20_000).step_by(5_000) {
        post_until_stored(&write, &timestamped_lines(start, 5_000)).await;
    }
    support::wait_for_count(&influx, "db0", 20_000, Duration::from_secs(90)).await;
    let mut conn = redis.conn().await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_gives_503_never_204_and_recovers_without_restart() {
    let mut redis = RedisServer::start(&["--appendonly", "yes"]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    assert_eq!(post(&write, lines(0, 10)).await.status(), 204);

    redis.kill();
    for i in 0..5 {
        let started = Instant::now();
        let response = post(&write, lines(10, 10)).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "503 took {:?}",
            started.elapsed()
        );
        super::assert_redis_unavailable(response, &format!("attempt {i} while Redis is down"))
            .await;
    }

    redis.start_again();
    let url = write.clone();
    wait_until("a 204 once Redis is back", Duration::from_secs(10), || {
        let url = url.clone();
        async move { post(&url, lines(20, 10)).await.status() == 204 }
    })
    .await;
    // The first ten and the recovered ten are there, each once; a 503 stored nothing.
    let mut conn = redis.conn().await;
    let stored: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(support::STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let values: Vec<String> = stored
        .ids
        .iter()
        .map(|e| {
            let lp: String = e.get("lp").unwrap();
            let v = lp.split(" v=").nth(1).unwrap();
            v.split(['i', ' ']).next().unwrap().to_string()
        })
        .collect();
    let expected: Vec<String> = (0..10).chain(20..30).map(|i| i.to_string()).collect();
    assert_eq!(values, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_replicas_answers_204_only_when_a_replica_confirmed() {
    let primary = RedisServer::start(&[]);
    let port = primary.port().to_string();
    let mut replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let conn = primary.conn().await;
    wait_until("the replica is connected", Duration::from_secs(15), || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .unwrap();
            info.contains("connected_slaves:1") && info.contains("state=online")
        }
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
    wait_until(
        "the primary notices the replica is gone",
        Duration::from_secs(15),
        || {
            let mut conn = conn.clone();
            async move {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                info.contains("connected_slaves:0")
            }
        },
    )
    .await;
    let response = client()
        .post(&write)
        .body(lines(1_000, 1_000))
        .send()
        .await
        .unwrap();
    assert_no_replica_confirmed(response).await;
}

/// A Redis restarted between two requests takes the next one at once: the producer's idle
/// connections died with the old process, and the first write on one goes again on a new
/// connection instead of answering 503.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_redis_restart_the_next_write_is_stored_without_a_503() {
    let mut redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let write = format!("{}/write?db=db0", producer.url);
    for start in [0, 1_000] {
        assert_eq!(post(&write, lines(start, 1_000)).await.status(), 204);
    }
    redis.stop();
    redis.start_again();
    for start in [2_000, 3_000] {
        let answer = post(&write, lines(start, 1_000)).await;
        let status = answer.status();
        assert_eq!(status, 204, "{}", answer.text().await.unwrap_or_default());
    }
    // Redis without persistence restarted empty: it holds exactly the writes after it.
    assert_eq!(xlen(&mut redis.conn().await, STREAM).await, 2_000);
}

/// On a Redis Cluster (the pooled path, like TLS and Sentinel) `--wait-replicas` holds the
/// same: masters without a replica confirm nothing, so the answer is 503, never a 204.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_without_replicas_wait_replicas_answers_503() {
    let cluster = redline_testkit::RedisCluster::start(3, 0, &[]);
    let producer = waiting_producer(&cluster, "100ms").await;
    // Over 256 KiB of lines: several rounds, the WAIT only after the last.
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

/// The WAIT after a request's last round covers the masters written only in earlier rounds:
/// their replicas must confirm too, not only those of the masters the last round wrote to;
/// and it covers no master the request did not write to.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_wait_replicas_covers_a_master_written_only_in_an_earlier_round() {
    let mut cluster = redline_testkit::RedisCluster::start(3, 1, &[]);
    let keys = redline_core::keys::StreamKeys::new(STREAM, 3);
    let masters: Vec<u16> = (0..3)
        .map(|p| cluster.master_of(keys.partition(p)))
        .collect();
    let early = 0;
    let late = (1..3)
        .find(|&p| masters[p] != masters[early])
        .expect("3 partitions on 3 masters: one is not on partition 0's");
    let producer = waiting_producer(&cluster, "200ms").await;
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
/// master written confirmed, within `wait_timeout`.
async fn waiting_producer(cluster: &redline_testkit::RedisCluster, wait_timeout: &str) -> Producer {
    let args = [
        "--partitions",
        "3",
        "--wait-replicas",
        "1",
        "--wait-timeout",
        wait_timeout,
    ];
    Producer::start(&cluster.url(), &args).await
}
