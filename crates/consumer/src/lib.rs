//! redline-consumer: reads the metric streams as one consumer of a Redis consumer group,
//! writes batches to a sink, and acknowledges only what the sink accepted.
//!
//! The loop of [`run`]:
//! 1. create the group on every partition unless it exists (`group.rs`);
//! 2. re-read this consumer's own pending entries, then read new ones from every partition,
//!    each getting a fair share, a batch being `batch_size` entries or what arrived within
//!    `flush_interval` (`reader.rs`, `batch.rs`);
//! 3. deliver the batch: write, XACK what the sink accepted, dead-letter what it rejected,
//!    retry the rest with backoff (`deliver.rs`, `dlq.rs`, [`sink`]);
//! 4. every `min(min_idle / 2, 5 s)`, claim entries other consumers left idle longer than
//!    `min_idle` and deliver them the same way (`claim.rs`).
//!
//! A process runs this loop `workers` times side by side ([`Config::workers`]), each a
//! consumer of the group under its own name with its own batch in flight, sharing the Redis
//! pool and the sink (InfluxDB sinks write concurrently; file and stdout take turns).
//!
//! Where each invariant is enforced:
//! - an entry is acked only after the sink accepted it, or after its dead letter is in
//!   Redis: `deliver.rs` (and `deliver/record.rs`, which settles, acks and touches);
//! - an outage counts nothing, not even across restarts (an attempt that met one sets the
//!   entry's delivery count back); only verdicts on points or routes are counted:
//!   `deliver.rs`, with [`sink::SinkError`] saying which is which;
//! - a refused route holds back no other route: `deliver.rs` parks it, `reader.rs` re-reads;
//! - an entry another consumer took is left alone: `pending.rs` checks who holds it;
//! - trimming and pruning lose nothing (`maintain.rs`, through `redline_streams`).
//!
//! Redis or the sink being down never ends the loop: it logs, backs off and carries on.
//! On shutdown it stops reading, gives the in-flight batch up to `shutdown_timeout`, and
//! returns; whatever is not acknowledged by then stays pending for a restart or another
//! consumer.

mod batch;
mod claim;
mod config;
mod conn;
mod deliver;
mod dlq;
mod entry_id;
mod group;
mod http;
mod maintain;
mod pending;
mod rate;
mod reader;
mod resp;
pub mod routes;
pub mod sink;

/// The `resp` fuzz target (`fuzz/`): the XREADGROUP reply decoder against redis-rs's parser
/// on arbitrary bytes; panics when they differ or a frame is misread.
#[doc(hidden)]
pub fn fuzz_xreadgroup_reply(data: &[u8]) {
    resp::fuzz(data);
}

use std::net::SocketAddr;
use std::time::Duration;

use redline_core::keys::StreamKeys;
use redline_core::redis::{redact_url, Pool};
use redline_core::Shutdown;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::batch::Message;
use crate::claim::Claimer;
use crate::deliver::{Deliverer, Settings};
use crate::reader::Reader;
use crate::sink::{FileSink, InfluxSink, Shared, Sink, StdoutSink};
use redline_core::backoff::Backoff;

pub use crate::config::{Config, InvalidConfig, StartFrom, MAX_WORKERS};
pub use crate::sink::{SinkConfig, SinkError};

/// Why the consumer could not run. Only set-up problems end it: Redis or the sink being
/// unreachable are waited out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    /// The Redis settings are unusable (bad URL).
    #[error(transparent)]
    Redis(#[from] redline_core::redis::Error),
    /// The sink cannot be set up.
    #[error("cannot set up the sink: {0}")]
    Sink(#[from] sink::OpenError),
    /// The consumer group cannot be created for a reason other than Redis being down.
    #[error("cannot create consumer group '{group}' on '{stream}': {reply}")]
    Group {
        /// The group.
        group: String,
        /// The stream key.
        stream: String,
        /// What Redis answered.
        reply: redis::RedisError,
    },
    /// The metrics address cannot be bound.
    #[error("cannot listen on {addr} for /metrics: {reason}")]
    MetricsListen {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        reason: std::io::Error,
    },
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the consumer until `shutdown` is triggered.
///
/// # Errors
/// Only for set-up problems: an invalid setting, an unusable Redis URL, a sink that cannot
/// be opened, a metrics address that cannot be bound, or a consumer group that Redis refuses
/// to create (e.g. the key holds something else than a stream).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<()> {
    config.validate()?;
    let workers = config.workers;
    match &config.sink {
        SinkConfig::Influxdb(influx) => {
            // Clones share one HTTP client: each worker writes on its own connection.
            let sink = InfluxSink::new(influx)?;
            consume(config, vec![sink; workers], shutdown).await
        }
        SinkConfig::File {
            path,
            max_size,
            max_files,
        } => {
            let sink = Shared::new(FileSink::open_rotating(path, *max_size, *max_files).await?);
            consume(config, vec![sink; workers], shutdown).await
        }
        SinkConfig::Stdout => {
            consume(
                config,
                vec![Shared::new(StdoutSink::new()); workers],
                shutdown,
            )
            .await
        }
    }
}

/// Sets up what the process shares (Redis pool, group, `/metrics`, maintenance), then runs
/// one worker per sink until shutdown. A worker that fails to set up ends them all.
async fn consume<S: Sink + Sync + 'static>(
    config: Config,
    sinks: Vec<S>,
    shutdown: Shutdown,
) -> Result<()> {
    // One rate for the process: its workers share the limit.
    let rate = rate::Rate::new(config.max_write_rate, config.batch_size);
    let keys = StreamKeys::new(&config.stream, config.partitions);
    let partitions = keys.partitions().to_vec();
    let pool = config.redis.pool()?;
    // What the workers learn about the sink, for `/ready`.
    let health = sink::Health::default();
    // The metrics listener; stopped by `shutdown`, awaited below.
    let mut tasks = JoinSet::new();
    redline_core::telemetry::register_consumer();
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|reason| Error::MetricsListen { addr, reason })?;
        info!(%addr, "Serving /metrics, /health and /ready.");
        let probes = http::Probes::new(
            config.redis.clone(),
            keys.clone(),
            config.sink.clone(),
            health.clone(),
        );
        tasks.spawn(http::serve(listener, probes, shutdown.clone()));
    }
    let names = config.worker_names();
    info!(redis = %redact_url(&config.redis.url), stream = %keys.base(), partitions = keys.count(),
        group = %config.group, consumers = %names.join(","), sink = sinks.first().map_or("", Sink::name),
        "Consumer starting.");

    tasks.spawn(maintain::run(
        config.redis.clone(),
        keys.clone(),
        config.group.clone(),
        config.trim_interval,
        config.prune_idle,
        shutdown.clone(),
    ));

    tasks.spawn(rate::report(
        config.redis.clone(),
        keys.clone(),
        (
            config.group.clone(),
            config.consumer.clone(),
            config.routing.describe(),
        ),
        rate.clone(),
        shutdown.clone(),
    ));

    let mut backoff = Backoff::new(config.retry_initial, config.retry_max);
    let mut outcome = Ok(());
    if create_group(&config, &pool, &partitions, &shutdown, &mut backoff).await? {
        let mut workers = JoinSet::new();
        for (name, sink) in names.into_iter().zip(sinks) {
            let span = tracing::info_span!("worker", consumer = %name);
            let common = Common {
                pool: pool.clone(),
                partitions: partitions.clone(),
                dlq: keys.dlq(),
                health: health.clone(),
                rate: rate.clone(),
            };
            let sink = rate::Limited::new(sink, rate.clone());
            let worker = work(config.clone(), name, sink, common, shutdown.clone());
            workers.spawn(tracing::Instrument::instrument(worker, span));
        }
        while let Some(joined) = workers.join_next().await {
            let result =
                joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
            if let Err(error) = result {
                // The others stop as on a signal; the first error is the process's.
                shutdown.trigger();
                if outcome.is_ok() {
                    outcome = Err(error);
                }
            }
        }
    }
    info!(consumer = %config.consumer, "Consumer stopped reading; shutting down.");
    // The listener stops on `shutdown`; a scraper holding a connection open gets a second.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    outcome
}

/// What the workers of one process share.
struct Common {
    pool: Pool,
    /// The partition keys.
    partitions: Vec<String>,
    /// The dead-letter stream key.
    dlq: String,
    /// The outage the workers are waiting out, for `/ready`.
    health: sink::Health,
    /// `--max-write-rate`: each worker waits for its turn before it reads or claims.
    rate: rate::Rate,
}

/// One consumer of the group, named `name`: reads, delivers to `sink`, claims what others
/// left idle, until shutdown. A process runs [`Config::workers`] of them side by side.
async fn work<S: Sink + Sync>(
    config: Config,
    name: String,
    sink: S,
    common: Common,
    shutdown: Shutdown,
) -> Result<()> {
    let Common {
        pool,
        partitions,
        dlq,
        health,
        rate,
    } = common;
    let mut backoff = Backoff::new(config.retry_initial, config.retry_max);
    let mut reader = Reader::new(
        config.redis.clone(),
        partitions.clone(),
        config.group.clone(),
        name.clone(),
    );
    let mut claimer = Claimer::new(
        partitions.clone(),
        config.group.clone(),
        name.clone(),
        config.min_idle,
        config.batch_size,
    );
    let settings = Settings {
        group: config.group.clone(),
        consumer: name,
        max_deliveries: config.max_deliveries,
        retry_initial: config.retry_initial,
        retry_max: config.retry_max,
        min_idle: config.min_idle,
        routing: config.routing.clone(),
    };
    let mut deliverer = Deliverer::new(
        sink,
        pool.clone(),
        partitions.clone(),
        dlq,
        settings,
        health,
    );
    // Own pending entries are re-read at start and after read errors, and also this often:
    // entries parked after a refusal, dead letters Redis refused, and entries an operator
    // handed to this consumer (`redline claim --to`) come back without waiting for min_idle.
    let reread = reread_interval(config.trim_interval, config.min_idle);
    let mut next_reread = tokio::time::Instant::now() + reread;

    while !shutdown.is_triggered() {
        if claimer.is_due() {
            let Some(turn) = rate.turn(config.batch_size, &shutdown).await else {
                break;
            };
            let claimed = claimer.next(&pool).await;
            turn.used(claimed.as_ref().map_or(0, Vec::len));
            match claimed {
                Ok(claimed) if !claimed.is_empty() => {
                    deliver(&mut deliverer, claimed, &shutdown, config.shutdown_timeout).await;
                    continue;
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "Cannot claim idle entries; trying again later."),
            }
        }
        if tokio::time::Instant::now() >= next_reread {
            reader.rewind();
            next_reread = tokio::time::Instant::now() + reread;
        }
        let Some(turn) = rate.turn(config.batch_size, &shutdown).await else {
            break;
        };
        let collected = batch::collect(
            &mut reader,
            config.batch_size,
            config.flush_interval,
            &shutdown,
        )
        .await;
        turn.used(collected.messages.len());
        if !collected.messages.is_empty() {
            // At most `batch_size`: no read returns more than it asked for.
            deliver(
                &mut deliverer,
                collected.messages,
                &shutdown,
                config.shutdown_timeout,
            )
            .await;
        }
        match collected.error {
            None => backoff.reset(),
            Some(error) => {
                warn!(%error, redis = %redact_url(&config.redis.url),
                    "Cannot read from Redis; reconnecting after a pause.");
                if error.is_no_group()
                    && !create_group(&config, &pool, &partitions, &shutdown, &mut backoff).await?
                {
                    break;
                }
                tokio::select! {
                    () = shutdown.wait() => {}
                    () = backoff.wait() => {}
                }
            }
        }
    }
    Ok(())
}

/// How often a worker re-reads its own pending entries: every `trim_interval`, and at
/// least twice per `min_idle` (so it finds what it parked before another consumer may claim
/// it), never more often than every 100 ms.
fn reread_interval(trim_interval: Duration, min_idle: Duration) -> Duration {
    [trim_interval, min_idle / 2]
        .into_iter()
        .filter(|d| !d.is_zero())
        .min()
        .unwrap_or(Duration::from_secs(10))
        .max(Duration::from_millis(100))
}

/// Delivers `batch`; once shutdown is triggered, gives it at most `shutdown_timeout` more.
async fn deliver<S: Sink>(
    deliverer: &mut Deliverer<S>,
    batch: Vec<Message>,
    shutdown: &Shutdown,
    shutdown_timeout: Duration,
) {
    let entries = batch.len();
    let deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(shutdown_timeout).await;
    };
    // Every log line of a batch's delivery carries its size and first entry id.
    let span = tracing::info_span!(
        "batch",
        entries,
        first = batch.first().map(|m| m.id.as_str()).unwrap_or("")
    );
    let delivery = tracing::Instrument::instrument(deliverer.deliver(batch), span);
    tokio::select! {
        () = delivery => {}
        () = deadline => warn!(entries, ?shutdown_timeout,
            "Shutdown deadline reached; what is not acknowledged stays pending for a restart or another consumer."),
    }
}

/// Creates the group on every partition, waiting out Redis being down. `Ok(false)` when
/// shutdown came first.
async fn create_group(
    config: &Config,
    pool: &Pool,
    partitions: &[String],
    shutdown: &Shutdown,
    backoff: &mut Backoff,
) -> Result<bool> {
    loop {
        match group::ensure(pool, partitions, &config.group, config.start_from).await {
            Ok(()) => {
                backoff.reset();
                return Ok(true);
            }
            Err(conn::Error::Redis(source)) if !redline_core::redis::is_transient(&source) => {
                return Err(Error::Group {
                    group: config.group.clone(),
                    stream: partitions.join(","),
                    reply: source,
                });
            }
            Err(error) => warn!(%error, redis = %redact_url(&config.redis.url),
                "Cannot create the consumer group yet; retrying."),
        }
        tokio::select! {
            () = shutdown.wait() => return Ok(false),
            () = backoff.wait() => {}
        }
    }
}
