//! Memory under load (`--max-inflight-bytes`): a burst of many writers against a few, and
//! abuse (a gzip bomb and a thousand slow clients) next to a well-behaved writer. Each with
//! a fresh producer, so its peak RSS (`VmHWM`) is that load's alone.
//!
//! - `burst`: `--burst-connections` (256) and 16 connections posting `--body-lines` bodies,
//!   closed loop, `--burst-seconds` each: the producer's peak RSS with many, the throughput
//!   of many against few, every refusal a 503 or 413 with `Retry-After`, and exactly the
//!   204-answered lines in Redis. With `--baseline-redline PATH` (an older build) the same
//!   burst runs against it too, for its peak RSS.
//! - `abuse`: 1,000 connections that send headers and a little of a large body, then stall;
//!   gzip bombs (1 GiB inflated each) sent meanwhile; a writer on 4 connections throughout.
//!   The producer's peak RSS against its budget, and the writer's 204s.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redline_testkit::RedisServer;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::http::{self, Outcome, Plan};
use crate::ingest::write_path;
use crate::options::Options;
use crate::redisx;
use crate::report::{Figure, Report};
use crate::stack;
use crate::workload;

const MIB: f64 = 1024.0 * 1024.0;
/// The producer's default budget (`--max-inflight-bytes`).
const BUDGET_MIB: f64 = 64.0;
/// What the producer holds besides requests: its runtime, the Redis pool, the allocator's
/// slack. The abuse target is the budget plus this, plus [`PER_CONNECTION_KIB`] for each
/// open connection.
const CONSTANT_MIB: f64 = 32.0;
/// What an open connection costs besides its request's charge (buffers, its task): about
/// 60 KiB measured with 1,000 stalled clients.
const PER_CONNECTION_KIB: f64 = 64.0;
const STREAM: &str = "bench:burst";

/// One burst: a fresh producer of `redline`, `conns` writers for the section's time.
struct Burst {
    conns: usize,
    outcome: Outcome,
    peak_rss: u64,
    stored: u64,
    command: String,
}

async fn burst(options: &Options, redline: &Path, redis: &RedisServer, conns: usize) -> Burst {
    let mut conn = redis.sync_conn();
    let (producer, addr) = stack::producer_with(redline, &redis.url(), STREAM, &[]).await;
    let bodies = Arc::new(workload::bodies(0, 64, options.body_lines));
    let time = Duration::from_secs_f64(options.burst_seconds);
    let outcome = http::closed_loop(addr, &write_path(), bodies, conns, Plan::For(time)).await;
    let stored = redisx::xlen(&mut conn, STREAM);
    redisx::unlink(&mut conn, STREAM);
    let peak_rss = producer.peak_rss();
    let command = format!(
        "{}  ← {conns} connections, closed loop, POST {} with {}-line bodies for {} s",
        producer.command(),
        write_path(),
        options.body_lines,
        options.burst_seconds
    );
    producer.stop();
    Burst {
        conns,
        outcome,
        peak_rss,
        stored,
        command,
    }
}

/// One request of `lines` lines to a fresh producer of `redline`: the body's size and how
/// much the producer's peak RSS grew for it.
async fn one_request(redline: &Path, redis: &RedisServer, lines: u64) -> (usize, u64, String) {
    let mut conn = redis.sync_conn();
    let (producer, addr) = stack::producer_with(redline, &redis.url(), STREAM, &[]).await;
    let body = workload::body(0, lines).bytes;
    let idle = producer.peak_rss();
    let mut c = http::Conn::connect(addr).await.expect("connect");
    let answer = c
        .request("POST", &write_path(), &body)
        .await
        .expect("an answer");
    assert_eq!(
        answer.status,
        204,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let growth = producer.peak_rss().saturating_sub(idle);
    redisx::unlink(&mut conn, STREAM);
    let command = format!("{}  ← one POST of {lines} lines", producer.command());
    producer.stop();
    (body.len(), growth, command)
}

/// The `burst` section.
pub(crate) async fn run(options: &Options, redis: &RedisServer, report: &mut Report) {
    // The memory one large request takes, against its size.
    let lines = options.amplification_lines;
    let (size, growth, command) = one_request(&options.redline, redis, lines).await;
    let ratio = growth as f64 / size as f64;
    let mut figure = Figure::new(
        "burst.request_amplification",
        &format!(
            "burst: producer peak RSS growth ÷ body, one {:.0} MB request",
            size as f64 / 1e6
        ),
        ratio,
        "×",
    )
    .target("≤ 2 × the body", ratio <= 2.0)
    .command(command)
    .detail("body_bytes", size)
    .detail("peak_rss_growth_mib", growth as f64 / MIB);
    if let Some(baseline) = &options.baseline_redline {
        let (_, before, command) = one_request(baseline, redis, lines).await;
        figure = figure
            .detail("baseline_ratio", before as f64 / size as f64)
            .detail("baseline_command", command);
    }
    report.add(figure);

    let few = burst(options, &options.redline, redis, 16).await;
    let many = burst(options, &options.redline, redis, options.burst_connections).await;
    let few_figure = report.add(
        Figure::new(
            "burst.few_metrics_per_s",
            &format!("burst: {} connections, metrics/s", few.conns),
            few.outcome.rate(),
            "metrics/s",
        )
        .command(few.command.clone())
        .detail("peak_rss_mib", few.peak_rss as f64 / MIB),
    );
    let rate = Figure::new(
        "burst.many_metrics_per_s",
        &format!("burst: {} connections, metrics/s", many.conns),
        many.outcome.rate(),
        "metrics/s",
    )
    .ratio_to(&few_figure)
    .command(many.command.clone());
    let ratio = rate.ratio.as_ref().map_or(0.0, |(r, _)| *r);
    report.add(rate.target("≥ 0.9 × 16 connections", ratio >= 0.9));

    let peak = many.peak_rss as f64 / MIB;
    let mut figure = Figure::new(
        "burst.producer_peak_rss_mib",
        &format!("burst: producer peak RSS, {} connections", many.conns),
        peak,
        "MiB",
    )
    .target("≤ 128 MiB (aim: 64)", peak <= 128.0)
    .command(many.command.clone())
    .detail("few_connections_peak_rss_mib", few.peak_rss as f64 / MIB);
    if let Some(baseline) = &options.baseline_redline {
        let before = burst(options, baseline, redis, options.burst_connections).await;
        figure = figure
            .detail("baseline_peak_rss_mib", before.peak_rss as f64 / MIB)
            .detail("baseline_metrics_per_s", before.outcome.rate())
            .detail("baseline_command", before.command);
    }
    report.add(figure);

    for b in [&few, &many] {
        let refusals_ok = b.outcome.refusals.keys().all(|s| *s == 503 || *s == 413)
            && b.outcome.without_retry_after == 0
            && !b.outcome.refusals.contains_key(&413);
        let exact = b.stored == b.outcome.lines;
        let refusals = json!(b
            .outcome
            .refusals
            .iter()
            .map(|(s, n)| (s.to_string(), serde_json::Value::from(*n)))
            .collect::<serde_json::Map<_, _>>());
        report.add(
            Figure::new(
                &format!("burst.refused_{}", b.conns),
                &format!("burst: {} connections, requests refused", b.conns),
                b.outcome.errors as f64,
                "requests",
            )
            .target(
                "only 503 + Retry-After; Redis holds exactly the 204-answered lines",
                refusals_ok && exact,
            )
            .command(b.command.clone())
            .detail("answered_2xx", b.outcome.requests)
            .detail("refusals_by_status", refusals)
            .detail(
                "refusals_without_retry_after",
                b.outcome.without_retry_after,
            )
            .detail("lines_answered_204", b.outcome.lines)
            .detail("lines_in_redis", b.stored)
            .detail("first_refusal", b.outcome.first_error.clone()),
        );
    }
}

/// The `abuse` section.
pub(crate) async fn abuse(options: &Options, redis: &RedisServer, report: &mut Report) {
    let mut conn = redis.sync_conn();
    // A body limit far above the budget, so the bombs meet the budget, not the limit.
    let (producer, addr) = stack::producer_with(
        &options.redline,
        &redis.url(),
        STREAM,
        &["--max-body-size", "4GB"],
    )
    .await;
    let time = Duration::from_secs_f64(options.burst_seconds);

    // 1,000 slow clients: headers declaring 10 MB, 16 KiB of it, then nothing.
    let mut slow = Vec::new();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n\r\n",
        write_path()
    );
    let start = workload::body(0, 400).bytes;
    for _ in 0..options.abuse_slow_clients {
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
            continue;
        };
        if stream.write_all(head.as_bytes()).await.is_ok()
            && stream.write_all(&start[..16 * 1024]).await.is_ok()
        {
            slow.push(stream);
        }
    }
    let slow_clients = slow.len();

    // Bombs, one after the other on 2 connections, while the writer writes.
    let bomb = Arc::new(gzip_bomb(1024));
    let bombs = {
        let bomb = bomb.clone();
        tokio::spawn(async move {
            let mut answers: Vec<u16> = Vec::new();
            let deadline = std::time::Instant::now() + time;
            while std::time::Instant::now() < deadline {
                let Ok(mut c) = http::Conn::connect(addr).await else {
                    continue;
                };
                let answer = c.request_gzip(&write_path(), &bomb).await;
                answers.push(answer.map_or(0, |a| a.status));
            }
            answers
        })
    };
    let bodies = Arc::new(workload::bodies(0, 64, options.body_lines));
    let writer = http::closed_loop(addr, &write_path(), bodies, 4, Plan::For(time)).await;
    let bombs = bombs.await.unwrap_or_default();
    drop(slow);
    let stored = redisx::xlen(&mut conn, STREAM);
    redisx::unlink(&mut conn, STREAM);
    let peak = producer.peak_rss() as f64 / MIB;
    let command = format!(
        "{}  ← {slow_clients} stalled bodies, {} gzip bombs of 1 GiB ({} KiB on the wire), a writer on 4 connections for {} s",
        producer.command(),
        bombs.len(),
        bomb.len() / 1024,
        options.burst_seconds
    );
    producer.stop();
    let bound = BUDGET_MIB + CONSTANT_MIB + PER_CONNECTION_KIB * slow_clients as f64 / 1024.0;
    report.add(
        Figure::new(
            "abuse.producer_peak_rss_mib",
            "abuse: producer peak RSS (bombs + slow clients + a writer)",
            peak,
            "MiB",
        )
        .target(
            format!(
                "≤ budget {BUDGET_MIB} + {CONSTANT_MIB} + {PER_CONNECTION_KIB} KiB × connections = {bound:.0} MiB"
            ),
            peak <= bound,
        )
        .command(command.clone())
        .detail("bomb_answers", json!(bombs))
        .detail("slow_clients", slow_clients),
    );
    report.add(
        Figure::new(
            "abuse.writer_metrics_per_s",
            "abuse: the well-behaved writer, metrics/s",
            writer.rate(),
            "metrics/s",
        )
        .target(
            "its requests get 204s; Redis holds exactly their lines",
            writer.requests > 0 && stored == writer.lines,
        )
        .command(command)
        .detail("answered_2xx", writer.requests)
        .detail("refused", writer.errors)
        .detail("first_refusal", writer.first_error.clone()),
    );
}

/// `members` gzip members of 1 MiB of lines each (readers inflate concatenated members as
/// one stream): `members` MiB inflated from about a kilobyte per member.
fn gzip_bomb(members: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mib: Vec<u8> = b"m v=1i 1\n".repeat(1024 * 1024 / 9);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&mib).expect("gzip into memory");
    encoder.finish().expect("gzip into memory").repeat(members)
}
