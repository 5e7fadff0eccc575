//! redline-core: the vocabulary every redline component shares.
//!
//! - [`backoff`]: exponential backoff with full jitter, the one retry schedule;
//! - [`line`](mod@line): InfluxDB line protocol → validated, normalised [`line::Metric`]s, with the
//!   precision converted to nanoseconds and missing timestamps stamped at receive time;
//! - [`secret`]: passwords and tokens that print as `***`;
//! - [`series`]: the series key of a metric and the stable partition hash built on it;
//! - [`entry`]: a metric ⇄ the fields of one Redis stream entry, and v2 buckets (`db/rp`);
//! - [`keys`]: every Redis key name redline uses;
//! - [`redis`]: connection pools from a [`redis::RedisConfig`] (standalone, Redis Cluster, or
//!   the master under Sentinel) and Redis error classification;
//! - [`eviction`]: refusing a Redis that may evict streams;
//! - [`health`]: the bodies of `/health` and `/ready`;
//! - [`shutdown`]: a cloneable shutdown handle fed by SIGTERM/SIGINT;
//! - [`telemetry`]: metric names and the Prometheus `/metrics` rendering;
//! - [`units`]: durations (`500ms`, `10s`) and sizes (`512KiB`, `25MB`) as the CLI takes them.
//!
//! Its invariants, and the module that enforces each:
//! - what reaches Redis is one valid line per metric, normalised, with a nanosecond
//!   timestamp fixed at ingest, so a redelivered point overwrites itself (`line.rs`);
//! - the same series always lands in the same partition (`series.rs`);
//! - an entry decodes to the metric that was encoded, or is named undecodable, never
//!   guessed at (`entry.rs`);
//! - a password or token never reaches a log, an error, `Debug` or serialised config
//!   (`secret.rs`, and `redis.rs` and `redis/sentinel/url.rs` for URLs);
//! - under Sentinel, a connection is used only once `ROLE` on it said master, and no pooled
//!   connection is reused after one of its generation met `READONLY` or lost its
//!   connection (`redis/sentinel.rs`, `redis/sentinel/pool.rs`);
//! - a Redis whose `maxmemory-policy` may evict streams is refused (`eviction.rs`).
//!
//! Nothing here listens on a socket or runs a long-lived task.

pub mod backoff;
pub mod entry;
pub mod eviction;
pub mod health;
pub mod keys;
pub mod line;
pub mod redis;
pub mod secret;
pub mod series;
pub mod shutdown;
pub mod telemetry;
pub mod units;

pub use shutdown::Shutdown;
