//! The producer's memory budget (`--max-inflight-bytes`): a request that does not fit waits,
//! then gets 503 with nothing of it stored; one larger than the budget gets 413 at once; a
//! gzip bomb stops at the budget; a TCP line past `--max-line-length` is skipped, not held;
//! a large request is stored in rounds of bounded memory on the pooled path too.
//! Memory is read from the producer's own `/proc/<pid>/status` (`VmHWM`, the peak RSS).

use std::io::Write as _;
use std::time::{Duration, Instant};

use redline_testkit::{free_port, wait_until, RedisCluster, RedisServer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{self, client, sample, scrape, timestamped_lines, Producer, STREAM};

const MIB: u64 = 1024 * 1024;

/// The peak resident memory of process `pid` so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

async fn xlen(redis: &RedisServer) -> u64 {
    support::xlen(&mut redis.conn().await, STREAM).await
}

/// A connection that sent the headers of a write declaring `declared` bytes and `sent` of
/// them (whole lines), then stalls.
async fn stalled(url: &str, declared: usize, sent: &str) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /write?db=slow HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream.write_all(sent.as_bytes()).await.expect("body");
    stream
}

async fn gauge(url: &str, name: &str) -> f64 {
    sample(&scrape(url).await, name, "").unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_the_budget_waits_then_gets_503_and_nothing_of_it_is_stored() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(
        &redis.url(),
        &["--max-inflight-bytes", "8MiB", "--enqueue-timeout", "1s"],
    )
    .await;
    assert_eq!(
        gauge(&producer.url, "redline_producer_inflight_budget_bytes").await,
        (8 * MIB) as f64
    );
    // Seven slow clients hold 7 MiB of the budget: the bytes they sent (not the 2 MiB each
    // declared).
    let lines = timestamped_lines(0, 40_000);
    let one_mib = &lines[..=lines[..MIB as usize].rfind('\n').unwrap()];
    let mut slow = Vec::new();
    for _ in 0..7 {
        slow.push(stalled(&producer.url, 2 * MIB as usize, one_mib).await);
    }
    wait_until("7 MiB held", Duration::from_secs(10), || async {
        gauge(&producer.url, "redline_producer_inflight_bytes").await >= (7 * MIB) as f64
    })
    .await;

    // A request that can be read next to them, but not parsed and stored, waits, then is
    // refused with 503; nothing of it is stored.
    let write = format!("{}/write?db=d", producer.url);
    let started = Instant::now();
    let refused = client()
        .post(&write)
        .body(timestamped_lines(100_000, 1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the producer's memory budget of 8MiB is taken by other requests"),
        "{body}"
    );
    assert_eq!(xlen(&redis).await, 0);
    let metrics = scrape(&producer.url).await;
    assert_eq!(
        sample(
            &metrics,
            "redline_requests_refused_total",
            "reason=\"memory\""
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "redline_unavailable_responses_total",
            "cause=\"memory\""
        ),
        Some(1.0)
    );

    // The slow clients go away: what they held comes back, and the write goes through.
    drop(slow);
    wait_until("the budget given back", Duration::from_secs(5), || async {
        gauge(&producer.url, "redline_producer_inflight_bytes").await == 0.0
    })
    .await;
    let again = client()
        .post(&write)
        .body(timestamped_lines(100_000, 1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204);
    assert_eq!(xlen(&redis).await, 1_000);
}

/// Storing a request holds up to 1 MiB besides its body and parsed metrics (its XADD rounds
/// of 256 KiB: the commands and the bytes they are packed into, as the README says), and the
/// budget counts it for as long as the store takes: a small request whose XADDs wait on
/// Redis holds that 1 MiB of the budget, and gives it back when Redis answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_being_stored_holds_its_store_memory_in_the_budget() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    // Writes wait (reads, and so /metrics, do not) until CLIENT UNPAUSE.
    let mut admin = redis.conn().await;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let url = format!("{}/write?db=d", producer.url);
    let write = tokio::spawn(async move { support::post(&url, timestamped_lines(0, 10)).await });
    wait_until(
        "the stored request's 1 MiB held",
        Duration::from_secs(10),
        || async { gauge(&producer.url, "redline_producer_inflight_bytes").await >= MIB as f64 },
    )
    .await;
    let held = gauge(&producer.url, "redline_producer_inflight_bytes").await;
    assert!(held < (2 * MIB) as f64, "{held} bytes held for 10 lines");
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    assert_eq!(write.await.unwrap().status(), 204);
    assert_eq!(xlen(&redis).await, 10);
    wait_until("the budget given back", Duration::from_secs(5), || async {
        gauge(&producer.url, "redline_producer_inflight_bytes").await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_larger_than_the_budget_gets_413_at_once() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(
        &redis.url(),
        &[
            "--max-inflight-bytes",
            "8MiB",
            "--enqueue-timeout",
            "30s",
            "--max-body-size",
            "100MB",
        ],
    )
    .await;
    let body = timestamped_lines(0, 160_000);
    assert!(body.len() as u64 > 5 * MIB, "{} bytes", body.len());
    let started = Instant::now();
    let response = client()
        .post(format!("{}/api/v2/write?bucket=b", producer.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no wait for what can never fit"
    );
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        answer["message"],
        "request needs more memory than one request may hold, half the producer's memory budget of 8MiB (--max-inflight-bytes); send smaller requests"
    );
    assert_eq!(answer["code"], "request too large");
    assert_eq!(xlen(&redis).await, 0);
    let metrics = scrape(&producer.url).await;
    assert_eq!(
        sample(
            &metrics,
            "redline_requests_refused_total",
            "reason=\"too_large\""
        ),
        Some(1.0)
    );
}

/// `members` gzip members of 1 MiB of `m v=1i 1\n` lines each: `members` MiB inflated from
/// about a kilobyte per member (gzip readers inflate concatenated members as one stream).
fn gzip_bomb(members: usize) -> Vec<u8> {
    let mib: Vec<u8> = b"m v=1i 1\n".repeat((MIB / 9) as usize);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&mib).unwrap();
    let member = encoder.finish().unwrap();
    member.repeat(members)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_bomb_is_refused_when_it_reaches_the_budget_not_after() {
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(
        &redis.url(),
        &["--max-inflight-bytes", "16MiB", "--max-body-size", "4GB"],
    )
    .await;
    let pid = producer.guard.pid();
    let before = peak_rss(pid);
    // 1 GiB once inflated, about 1 MiB on the wire.
    let bomb = gzip_bomb(1024);
    assert!(bomb.len() < 4 * MIB as usize, "{} bytes", bomb.len());
    let response = client()
        .post(format!("{}/write?db=d", producer.url))
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("memory budget of 16MiB"),
        "{answer}"
    );
    let growth = peak_rss(pid).saturating_sub(before);
    // One request holds at most half the budget.
    assert!(
        growth < 8 * MIB + 8 * MIB,
        "the producer's peak RSS grew by {} MiB for a 16 MiB budget",
        growth / MIB
    );
    assert_eq!(xlen(&redis).await, 0);
    // A well-behaved writer is served right after.
    let ok = client()
        .post(format!("{}/write?db=d", producer.url))
        .body(timestamped_lines(0, 1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_line_longer_than_the_limit_is_skipped_counted_and_not_held() {
    let redis = RedisServer::start(&[]);
    let tcp = format!("127.0.0.1:{}", free_port());
    let producer = Producer::start(
        &redis.url(),
        &[
            "--tcp-listen",
            &tcp,
            "--tcp-db",
            "t",
            "--max-line-length",
            "1KiB",
        ],
    )
    .await;
    let pid = producer.guard.pid();
    let before = peak_rss(pid);
    let mut stream = TcpStream::connect(&tcp).await.unwrap();
    let send = async {
        stream.write_all(b"before v=1i 1\n").await.unwrap();
        // 64 MiB without a newline: held, it would cost its size (and every read would
        // scan it again).
        let chunk = vec![b'x'; MIB as usize];
        for _ in 0..64 {
            stream.write_all(&chunk).await.unwrap();
        }
        stream.write_all(b"\nafter v=2i 2\n").await.unwrap();
        stream.shutdown().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(30), send)
        .await
        .expect("the producer took 64 MiB of one line within 30 s");
    wait_until(
        "the two good lines stored",
        Duration::from_secs(20),
        || async { xlen(&redis).await == 2 },
    )
    .await;
    let stored = crate::security::stored_lines(&mut redis.conn().await).await;
    assert_eq!(stored, ["before v=1i 1", "after v=2i 2"]);
    let metrics = scrape(&producer.url).await;
    assert_eq!(
        sample(
            &metrics,
            "redline_lines_rejected_total",
            "reason=\"line_too_long\""
        ),
        Some(1.0)
    );
    let growth = peak_rss(pid).saturating_sub(before);
    assert!(
        growth < 16 * MIB,
        "the producer's peak RSS grew by {} MiB",
        growth / MIB
    );
    assert!(producer
        .guard
        .stderr()
        .contains("longer than --max-line-length"));
}

/// `count` lines of about 150 bytes, as Telegraf's `cpu` input writes them (sorted tags,
/// nanosecond timestamps).
fn telegraf_lines(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "cpu,cpu=cpu{},host=server-{:03},region=eu-west-1 usage_user=12.{i},usage_system=3.25,usage_idle=84.{i},usage_iowait=0 {}\n",
                i % 8,
                i % 100,
                1_600_000_000_000_000_000_i64 + i as i64
            )
        })
        .collect()
}

/// On the pooled path (Redis Cluster here; Sentinel and TLS take the same path) a request is
/// stored in rounds of 256 KiB, as on the standalone path: one large request grows the
/// producer's peak RSS by less than twice its body (the body, its parsed lines, one round),
/// not by the commands of all its lines at once.
#[tokio::test(flavor = "multi_thread")]
async fn on_the_pooled_path_a_large_request_is_stored_in_rounds_of_bounded_memory() {
    const LINES: usize = 150_000;
    let cluster = RedisCluster::start(3, 0, &[]);
    let producer = Producer::start(
        &cluster.seed(),
        &[
            "--redis-cluster",
            "--max-body-size",
            "100MB",
            "--max-inflight-bytes",
            "256MiB",
        ],
    )
    .await;
    let body = telegraf_lines(LINES);
    let size = body.len() as u64;
    assert!(size > 16 * MIB, "{size} bytes");
    let pid = producer.guard.pid();
    let idle = peak_rss(pid);
    let response = support::post(&format!("{}/write?db=d", producer.url), body).await;
    assert_eq!(response.status(), 204);
    let growth = peak_rss(pid).saturating_sub(idle);
    let stored: u64 = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(&mut cluster.conn().await)
        .await
        .unwrap();
    assert_eq!(stored, LINES as u64);
    assert!(
        growth < 2 * size,
        "peak RSS grew by {} MiB for one request of {} MiB",
        growth / MIB,
        size / MIB
    );
}
