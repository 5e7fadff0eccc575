//! Redis faults: killed, full (`maxmemory` with `noeviction`), hung (SIGSTOP), refusing
//! writes (its disk full: `MISCONF`; short of the replicas `min-replicas-to-write` asks:
//! `NOREPLICAS`; a script running too long: `BUSY`); a replica lost under `--wait-replicas`
//! is in `replicas`.

use std::time::{Duration, Instant};

use redline_testkit::{wait_until, InfluxServer, RedisServer, Tmpfs};

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

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_whose_disk_is_full_answers_503_dead_letters_nothing_and_delivers_everything_once_it_has_room(
) {
    let disk = match Tmpfs::mount("32m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: a full disk needs a tmpfs ({why}); CI runs as root");
            return;
        }
    };
    let dir = disk.path().to_str().expect("a UTF-8 mount point");
    // The AOF on the small disk: Redis refuses every write (`MISCONF`) once it cannot append
    // to it, and takes writes again by itself once it can.
    let redis = RedisServer::start(&["--dir", dir, "--appendonly", "yes"]);
    let refusal = Refusal {
        redis: &redis,
        cause: Cause::DiskFull(&disk),
    };
    refusal
        .outlived(
            &["Redis cannot persist writes", "No space left on device"],
            "MISCONF",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_short_of_the_replicas_it_requires_answers_503_dead_letters_nothing_and_delivers_everything_once_they_are_back(
) {
    let redis = RedisServer::start(&[]);
    let refusal = Refusal {
        redis: &redis,
        cause: Cause::NoReplicas,
    };
    refusal
        .outlived(
            &["min-replicas-to-write", "Not enough good replicas"],
            "NOREPLICAS",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_busy_running_a_script_answers_503_dead_letters_nothing_and_delivers_everything_once_it_is_killed(
) {
    // Past 100 ms a script makes Redis answer `BUSY` to everything but SCRIPT KILL.
    let redis = RedisServer::start(&["--busy-reply-threshold", "100"]);
    let refusal = Refusal {
        redis: &redis,
        cause: Cause::Script,
    };
    refusal
        .outlived(&["Redis is unavailable", "busy running a script"], "BUSY")
        .await;
}

/// A Redis that refuses every write for a while, reads of a group and acks included.
struct Refusal<'a> {
    redis: &'a RedisServer,
    cause: Cause<'a>,
}

/// Why it refuses.
enum Cause<'a> {
    /// Its AOF is on this disk, filled (`MISCONF`).
    DiskFull(&'a Tmpfs),
    /// `min-replicas-to-write 1` without a replica (`NOREPLICAS`).
    NoReplicas,
    /// A script that never ends (`BUSY`), until SCRIPT KILL.
    Script,
}

impl Refusal<'_> {
    async fn begin(&self) {
        match self.cause {
            Cause::DiskFull(disk) => disk.fill(),
            Cause::NoReplicas => self.min_replicas(1).await,
            Cause::Script => {
                let mut conn = self.redis.conn().await;
                // Answered only once killed.
                tokio::spawn(async move {
                    let _: redis::RedisResult<()> = redis::cmd("EVAL")
                        .arg("while true do end")
                        .arg(0)
                        .query_async(&mut conn)
                        .await;
                });
                let url = self.redis.url();
                wait_until("Redis answers BUSY", Duration::from_secs(10), || {
                    let url = url.clone();
                    async move {
                        let client = redis::Client::open(url).unwrap();
                        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                            return false;
                        };
                        let pong: redis::RedisResult<String> =
                            redis::cmd("PING").query_async(&mut conn).await;
                        matches!(pong, Err(e) if e.code() == Some("BUSY"))
                    }
                })
                .await;
            }
        }
    }

    async fn end(&self) {
        match self.cause {
            Cause::DiskFull(disk) => disk.free(),
            Cause::NoReplicas => self.min_replicas(0).await,
            Cause::Script => {
                let _: () = redis::cmd("SCRIPT")
                    .arg("KILL")
                    .query_async(&mut self.redis.conn().await)
                    .await
                    .unwrap();
            }
        }
    }

    async fn min_replicas(&self, n: u32) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("min-replicas-to-write")
            .arg(n)
            .query_async(&mut self.redis.conn().await)
            .await
            .unwrap();
    }

    /// An outage, whatever its cause: the producer answers 503 + `Retry-After` saying
    /// `says`, never a 500; a consumer restarted meanwhile meets the refusal (`code` in its
    /// log) and waits instead of exiting; once Redis takes writes again, every line that
    /// got a 204 reaches InfluxDB once, nothing is pending and nothing dead-lettered.
    async fn outlived(&self, says: &[&str], code: &str) {
        let redis = self.redis;
        let influx = InfluxServer::start();
        let producer = Producer::start(&redis.url(), &[]).await;
        let write = format!("{}/write?db=db0", producer.url);
        let mut c1 = consumer(&redis.url(), &influx.url(), "c1", &[]);
        post_until_stored(&write, &timestamped_lines(0, 5_000)).await;
        support::wait_for_count(&influx, "db0", 5_000, Duration::from_secs(60)).await;

        self.begin().await;
        // A full disk: the first 5,000-line bodies (about 300 KB of AOF each) may still go
        // to Redis's memory before its next append fails; from then on every request is
        // refused.
        let mut stored = 1;
        let refused = loop {
            let body = timestamped_lines(stored * 5_000, 5_000);
            let response = post(&write, body.clone()).await;
            match response.status().as_u16() {
                204 => {
                    stored += 1;
                    assert!(stored < 20, "Redis kept taking writes");
                }
                503 => {
                    assert_eq!(response.headers()["retry-after"], "1");
                    let answer: serde_json::Value = response.json().await.unwrap();
                    let error = answer["error"].as_str().unwrap_or_default();
                    for text in says {
                        assert!(error.contains(text), "{text:?} not in {answer}");
                    }
                    break body;
                }
                other => panic!(
                    "{other} while Redis refuses writes (503 expected): {}",
                    response.text().await.unwrap()
                ),
            }
        };

        // Redis refuses even creating a group that exists, and every read.
        c1.sigkill();
        let mut c1 = consumer(&redis.url(), &influx.url(), "c1", &[]);
        wait_until(
            "the restarted c1 meets the refusal",
            Duration::from_secs(30),
            || {
                let logs = c1.logs();
                async move { logs.contains(code) }
            },
        )
        .await;
        assert!(c1.is_running(), "the consumer exited:\n{}", c1.logs());

        // The client's retry is stored, another body follows.
        self.end().await;
        post_until_stored(&write, &refused).await;
        post_until_stored(&write, &timestamped_lines((stored + 1) * 5_000, 5_000)).await;
        let total = (stored + 2) * 5_000;
        support::wait_for_count(&influx, "db0", total as u64, Duration::from_secs(120)).await;
        let mut conn = redis.conn().await;
        support::wait_nothing_pending(&conn).await;
        assert!(
            dead_letters(&mut conn).await.is_empty(),
            "an outage became dead letters"
        );
        assert!(c1.is_running(), "{}", c1.logs());
    }
}
