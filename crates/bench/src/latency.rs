//! Latency from the producer's 204 to the metric being acknowledged, at a steady half of the
//! pipeline's maximum rate (producer + consumer with the file sink, measured first).
//!
//! How it is measured:
//! - requests are paced open-loop (request `k` is due at `t0 + k × interval`) over a few
//!   connections; when one is answered 204 at `d`, its connection asks Redis for the stream's
//!   `last-generated-id` `L`: every entry of that request has an id `≤ L` (its XADDs were
//!   answered before the 204; `L` may belong to a later request, which only overstates);
//! - a poller runs `MULTI; XINFO GROUPS; XPENDING (summary); EXEC` every millisecond: every
//!   id below the oldest pending one, up to `last-delivered-id`, is acknowledged (a single
//!   consumer reads in id order). When the answer arriving at `r` shows `L` acknowledged,
//!   the request's latency is `r − d`: an upper bound, too high by at most a poll interval
//!   and a round trip.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value;
use redline_testkit::RedisServer;
use tokio::sync::mpsc;

use crate::drain::CONSUMER_GROUP;
use crate::http::{self, Conn, Plan};
use crate::ingest::write_path;
use crate::memory::Peaks;
use crate::options::Options;
use crate::procs::Load;
use crate::redisx::{self, StreamId};
use crate::report::{Figure, Report};
use crate::stack::{self, Sink};
use crate::workload;

const STREAM: &str = "bench:latency";

/// A request answered 204, waiting to be seen acknowledged.
struct Waiting {
    answered: Instant,
    last_id: StreamId,
}

/// Measures the pipeline's maximum rate, then latency at half of it.
pub(crate) async fn run(
    options: &Options,
    redis: &RedisServer,
    report: &mut Report,
    peaks: &mut Peaks,
) {
    let mut conn = redis.sync_conn();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let file = dir.path().join("latency.lp");
    let (producer, addr) = stack::producer(options, &redis.url(), STREAM).await;
    let mut consumer = stack::consumer(
        options,
        &redis.url(),
        STREAM,
        CONSUMER_GROUP,
        &Sink::File(&file),
        1,
    );
    let settle = |conn: &mut redis::Connection, consumer: &mut crate::procs::Proc| {
        redisx::wait_progress(
            conn,
            STREAM,
            CONSUMER_GROUP,
            Duration::from_millis(10),
            Duration::from_secs(120),
            || consumer.assert_running(),
            redisx::Progress::done,
        )
    };
    settle(&mut conn, &mut consumer);

    // The maximum: closed-loop load with the consumer running; what was both stored and
    // acknowledged over the window.
    let bodies = Arc::new(workload::bodies(0, 64, options.latency_body_lines));
    let before = settle(&mut conn, &mut consumer).acked();
    let window = Duration::from_secs_f64(options.max_rate_seconds);
    let full = http::closed_loop(
        addr,
        &write_path(),
        bodies.clone(),
        options.connections,
        Plan::For(window),
    )
    .await;
    full.assert_clean("full load");
    let acked = redisx::progress(&mut conn, STREAM, CONSUMER_GROUP)
        .map_or(0, |p| p.acked())
        .saturating_sub(before);
    let max_rate = full.rate().min(acked as f64 / full.elapsed.as_secs_f64());
    settle(&mut conn, &mut consumer);
    report.add(
        Figure::new(
            "latency.pipeline_max_per_s",
            "pipeline max: producer + consumer → file sink, together",
            max_rate,
            "metrics/s",
        )
        .command(format!(
            "{}\n{}  ← {} connections, closed loop, {}-line bodies, {} s; min(stored, acked) per second",
            producer.command(),
            consumer.command(),
            options.connections,
            options.latency_body_lines,
            options.max_rate_seconds
        ))
        .detail("stored_per_s", full.rate())
        .detail("acked_per_s", acked as f64 / full.elapsed.as_secs_f64()),
    );

    let rate = max_rate / 2.0;
    let load = Load::sample();
    let (latencies, unresolved, sent) = paced(options, redis, addr, bodies, rate).await;
    let other_cores = load.other_cores();
    peaks.producer("latency", &producer);
    peaks.consumer("latency", &consumer);
    let command = format!(
        "{}\n{}  ← paced {:.0} metrics/s ({}-line requests) for {} s; 204 → XINFO GROUPS/XPENDING acked frontier, polled every 1 ms",
        producer.command(),
        consumer.command(),
        rate,
        options.latency_body_lines,
        options.latency_seconds
    );
    producer.stop();
    consumer.stop();
    redisx::unlink(&mut conn, STREAM);

    let flush_ms = options.flush_interval_ms as f64;
    let p = |q: f64| percentile(&latencies, q);
    for (key, label, value) in [
        (
            "latency.p50_ms",
            "latency: 204 → acked, p50, at half max",
            p(0.50),
        ),
        (
            "latency.p99_ms",
            "latency: 204 → acked, p99, at half max",
            p(0.99),
        ),
    ] {
        let mut figure = Figure::new(key, label, value, "ms")
            .command(command.clone())
            .detail("requests", latencies.len())
            .detail("unresolved", unresolved)
            .detail("paced_metrics_per_s", rate)
            .detail("achieved_metrics_per_s", sent)
            .detail("max_ms", p(1.0))
            .detail("other_cores", other_cores)
            .detail("flush_interval_ms", flush_ms);
        if key == "latency.p99_ms" {
            figure = figure.target(
                format!("≤ 2 × flush interval = {:.0}", 2.0 * flush_ms),
                unresolved == 0 && value <= 2.0 * flush_ms,
            );
        }
        report.add(figure);
    }
}

/// Sends requests at `rate` metrics/s for the configured time and returns the latencies
/// in ms, the requests never seen acknowledged, and the rate achieved.
async fn paced(
    options: &Options,
    redis: &RedisServer,
    addr: std::net::SocketAddr,
    bodies: Arc<Vec<workload::Body>>,
    rate: f64,
) -> (Vec<f64>, usize, f64) {
    let waiting: Arc<Mutex<Vec<Waiting>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let interval = Duration::from_secs_f64(options.latency_body_lines as f64 / rate);
    let duration = Duration::from_secs_f64(options.latency_seconds);
    let (tx, rx) = mpsc::channel::<usize>(1024);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.connections.max(1) {
        let (rx, bodies, waiting) = (rx.clone(), bodies.clone(), waiting.clone());
        let mut redis_conn = redis.conn().await;
        workers.spawn(async move {
            let mut conn = Conn::connect(addr).await.expect("connect to the producer");
            let mut sent = 0_u64;
            loop {
                let Some(index) = rx.lock().await.recv().await else {
                    return sent;
                };
                let body = &bodies[index % bodies.len()];
                let answer = conn
                    .request("POST", &write_path(), &body.bytes)
                    .await
                    .expect("POST");
                assert_eq!(
                    answer.status,
                    204,
                    "{}",
                    String::from_utf8_lossy(&answer.body)
                );
                let answered = Instant::now();
                let info: Value = redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(STREAM)
                    .query_async(&mut redis_conn)
                    .await
                    .expect("XINFO STREAM");
                let last_id = redisx::last_generated(&info).expect("last-generated-id");
                waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Waiting { answered, last_id });
                sent += body.lines;
            }
        });
    }

    let poller = {
        let (waiting, latencies) = (waiting.clone(), latencies.clone());
        let mut redis_conn = redis.conn().await;
        let pipe = redisx::frontier_pipe(STREAM, CONSUMER_GROUP);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let reply: Value = pipe.query_async(&mut redis_conn).await.expect("frontier");
                let seen = Instant::now();
                let Some(frontier) = redisx::acked_frontier(&reply, CONSUMER_GROUP) else {
                    continue;
                };
                let mut waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
                let mut latencies = latencies.lock().unwrap_or_else(|p| p.into_inner());
                waiting.retain(|w| {
                    if w.last_id <= frontier {
                        latencies.push(seen.duration_since(w.answered).as_secs_f64() * 1e3);
                        false
                    } else {
                        true
                    }
                });
            }
        })
    };

    let started = tokio::time::Instant::now();
    let mut index = 0_usize;
    while started.elapsed() < duration {
        tokio::time::sleep_until(started + interval * index as u32).await;
        if tx.send(index).await.is_err() {
            break;
        }
        index += 1;
    }
    drop(tx);
    let mut sent = 0;
    while let Some(done) = workers.join_next().await {
        sent += done.expect("a load worker panicked");
    }
    let achieved = sent as f64 / started.elapsed().as_secs_f64();
    // Wait for the last requests to be acknowledged: at most a batch interval and a write.
    let deadline = Instant::now() + Duration::from_millis(options.flush_interval_ms * 2 + 10_000);
    while Instant::now() < deadline && !waiting.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    poller.abort();
    let unresolved = waiting.lock().unwrap_or_else(|p| p.into_inner()).len();
    let latencies = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (latencies, unresolved, achieved)
}

/// The `q` quantile (nearest rank) of `values`; 0 when empty.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&values, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
