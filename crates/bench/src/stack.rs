//! Starting redline's processes the way a user would, with the flags the report shows.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use redline_testkit::free_port;

use crate::http;
use crate::options::Options;
use crate::procs::{Proc, Stdout};

/// Where a consumer writes.
#[derive(Debug, Clone)]
pub(crate) enum Sink<'a> {
    /// `--sink stdout` with stdout to `/dev/null`: the discarding sink.
    Discard,
    /// `--sink file --file PATH` (fsynced before each ack).
    File(&'a Path),
    /// `--sink influxdb --influx-url URL --influx-db bench --influx-content-encoding identity`.
    Influx(&'a str),
}

/// The `--threads` a redline process sharing this machine with Redis runs with, as the
/// README advises: one less than the CPUs (at least 1), which leaves Redis a core. With a
/// thread per CPU on 2 cores, redline's threads take turns on Redis's core and Redis, the
/// bottleneck, waits.
pub(crate) fn spare_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| usize::from(n).max(2) - 1)
}

/// `["--threads", N]`, or nothing for `None` (the default: a thread per CPU).
pub(crate) fn threads_args(threads: Option<usize>) -> Vec<String> {
    threads
        .map(|n| vec!["--threads".to_string(), n.to_string()])
        .unwrap_or_default()
}

/// `redline producer` on a free port, ready (answers `/ping`).
pub(crate) async fn producer(
    options: &Options,
    redis_url: &str,
    stream: &str,
) -> (Proc, SocketAddr) {
    producer_with(&options.redline, redis_url, stream, &[]).await
}

/// `redline producer` of binary `redline` with `extra` flags, on a free port, ready.
pub(crate) async fn producer_with(
    redline: &Path,
    redis_url: &str,
    stream: &str,
    extra: &[&str],
) -> (Proc, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args: Vec<String> = [
        "producer",
        "--redis-url",
        redis_url,
        "--stream",
        stream,
        "--listen",
        &addr.to_string(),
        "--log-level",
        "warn",
    ]
    .iter()
    .chain(extra)
    .map(ToString::to_string)
    .collect();
    let mut proc = Proc::spawn("producer", redline, &args, Stdout::Log);
    http::wait_ready(addr, Duration::from_secs(10)).await;
    proc.assert_running();
    (proc, addr)
}

/// `redline consumer` of `group` on `stream` writing to `sink`, with `--workers workers`.
pub(crate) fn consumer(
    options: &Options,
    redis_url: &str,
    stream: &str,
    group: &str,
    sink: &Sink<'_>,
    workers: usize,
) -> Proc {
    consumer_with(options, redis_url, stream, group, sink, workers, &[])
}

/// [`consumer`] with `extra` arguments.
pub(crate) fn consumer_with(
    options: &Options,
    redis_url: &str,
    stream: &str,
    group: &str,
    sink: &Sink<'_>,
    workers: usize,
    extra: &[String],
) -> Proc {
    let mut args: Vec<String> = [
        "consumer",
        "--redis-url",
        redis_url,
        "--stream",
        stream,
        "--group",
        group,
        "--consumer",
        "bench",
        "--batch-size",
        &options.batch_size.to_string(),
        "--flush-interval",
        &format!("{}ms", options.flush_interval_ms),
        "--log-level",
        "warn",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    if workers > 1 {
        args.extend(["--workers".into(), workers.to_string()]);
    }
    args.extend_from_slice(extra);
    let stdout = match sink {
        Sink::Discard => {
            args.extend(["--sink".into(), "stdout".into()]);
            Stdout::Discard
        }
        Sink::File(path) => {
            args.extend([
                "--sink".into(),
                "file".into(),
                "--file".into(),
                path.display().to_string(),
            ]);
            Stdout::Log
        }
        Sink::Influx(url) => {
            args.extend([
                "--sink".into(),
                "influxdb".into(),
                "--influx-url".into(),
                (*url).to_string(),
                "--influx-db".into(),
                crate::workload::DB.into(),
                // The load generator sends plain bodies straight to InfluxDB; so does this.
                "--influx-content-encoding".into(),
                "identity".into(),
            ]);
            Stdout::Log
        }
    };
    Proc::spawn("consumer", &options.redline, &args, stdout)
}
