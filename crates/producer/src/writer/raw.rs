//! Storing over redline's own connection ([`redline_core::redis::raw`]) on a standalone Redis
//! over plain TCP or a Unix socket: each round's XADDs are written straight into one buffer
//! ([`Packer`]: the line copied once, no command object per metric) and the replies are
//! only framed and checked, not parsed into values.
//!
//! Invariants (as for the pooled path in [`super`]):
//! - a request is answered stored only when Redis replied to every XADD of every round
//!   without an error, and to the `WAIT` of the last round with enough replicas;
//! - every round of a request goes over one connection, so the last round's `WAIT` covers
//!   them all;
//! - a connection that failed or timed out mid-reply is dropped, never reused; one that got
//!   error replies (all of them read) goes back to the idle set.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{ConnectionInfo, RedisError};
use redline_core::line::Metric;
use redline_core::redis::raw::{number, Conn};
use redline_core::redis::RedisConfig;
use redline_core::{entry, series, telemetry};

use super::{classify, Error, Target, Writer, PIPELINE_BYTES};

/// Idle connections of the producer's own, reused by the next request.
pub(super) struct Raw {
    info: ConnectionInfo,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Raw {
    /// The producer's own connections, when `redis` is a standalone Redis over plain TCP or
    /// a Unix socket.
    pub(super) fn new(redis: &RedisConfig) -> Option<Self> {
        Some(Self {
            info: Conn::for_url(redis)?,
            idle: Mutex::new(Vec::new()),
            max_idle: redis.pool_size.max(1),
            connect_timeout: redis.connect_timeout,
            response_timeout: redis.response_timeout,
        })
    }

    /// An idle connection (`true`: it may have died while idle, e.g. Redis restarted) or a
    /// new one.
    async fn checkout(&self) -> Result<(Conn, bool), RedisError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok((conn, true)),
            None => Ok((self.connect().await?, false)),
        }
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        Conn::connect(&self.info, self.connect_timeout).await
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

/// What the replies of one round say.
enum Outcome {
    /// Every XADD stored; the `WAIT`'s count when one was sent.
    Stored(Option<u64>),
    /// Redis answered an error to some command (the first one here).
    Refused(RedisError),
}

impl Writer {
    /// [`Writer::store`] over the producer's own connection; the buffer limit was checked.
    pub(super) async fn store_raw<'m, I>(
        &self,
        raw: &Raw,
        mut metrics: I,
        target: &Target,
        incoming: &[u64],
        started: Instant,
    ) -> Result<usize, Error>
    where
        I: ExactSizeIterator<Item = Metric<'m>>,
    {
        let count = metrics.len();
        let partitions = self.keys.count();
        let (mut conn, mut idle) = raw.checkout().await.map_err(classify)?;
        let packers: Vec<Packer> = self
            .keys
            .partitions()
            .iter()
            .map(|key| Packer::new(key, target))
            .collect();
        let mut packed = Vec::with_capacity(PIPELINE_BYTES + PIPELINE_BYTES / 2);
        loop {
            packed.clear();
            let (mut commands, mut bytes) = (0, 0);
            while bytes < PIPELINE_BYTES {
                let Some(metric) = metrics.next() else { break };
                let partition = if partitions == 1 {
                    0
                } else {
                    series::partition(metric.series_key(), partitions)
                };
                bytes += metric.line().len();
                packers[partition].pack(&mut packed, metric.line());
                commands += 1;
            }
            let last = metrics.len() == 0;
            let wait = self
                .wait
                .filter(|_| last && incoming.iter().any(|n| *n > 0));
            if let Some((replicas, timeout)) = wait {
                let millis = u64::try_from(timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                packed.extend_from_slice(
                    &redis::cmd("WAIT")
                        .arg(replicas)
                        .arg(millis)
                        .get_packed_command(),
                );
                commands += 1;
            }
            let mut result = round(raw, &mut conn, &packed, commands, wait.is_some()).await;
            if idle && matches!(&result, Err(e) if e.is_io_error() && !e.is_timeout()) {
                // An idle connection Redis closed meanwhile (a restart, its `timeout`): the
                // first round goes again on a new one. Commands the old one may have
                // delivered are stored twice, as a client's retry would.
                conn = raw.connect().await.map_err(classify)?;
                result = round(raw, &mut conn, &packed, commands, wait.is_some()).await;
            }
            idle = false;
            if last || !matches!(result, Ok(Outcome::Stored(_))) {
                metrics::histogram!(telemetry::XADD_SECONDS)
                    .record(started.elapsed().as_secs_f64());
            }
            let confirmed = match result {
                // The connection may hold half a reply: it is dropped.
                Err(e) => return Err(classify(e)),
                Ok(Outcome::Refused(e)) => {
                    raw.give_back(conn);
                    return Err(classify(e));
                }
                Ok(Outcome::Stored(confirmed)) => confirmed,
            };
            if !last {
                continue;
            }
            raw.give_back(conn);
            if let (Some((wanted, timeout)), Some(confirmed)) = (self.wait, confirmed) {
                if confirmed < u64::from(wanted) {
                    return Err(Error::Replicas {
                        confirmed,
                        wanted,
                        timeout,
                    });
                }
            }
            return Ok(count);
        }
    }
}

/// Sends one round and reads its replies, within the response timeout.
async fn round(
    raw: &Raw,
    conn: &mut Conn,
    packed: &[u8],
    commands: usize,
    wait: bool,
) -> Result<Outcome, RedisError> {
    match tokio::time::timeout(raw.response_timeout, conn.pipeline(packed, commands)).await {
        Ok(replies) => replies.map(|replies| check(replies.each(), wait)),
        Err(_) => Err(RedisError::from(std::io::Error::from(
            std::io::ErrorKind::TimedOut,
        ))),
    }
}

/// Reads a round's replies: the first error reply as redis-rs reports it, else the last
/// reply's integer when it answers a `WAIT`.
fn check<'a>(replies: impl Iterator<Item = &'a [u8]>, wait: bool) -> Outcome {
    let mut last = None;
    for reply in replies {
        if reply.first() == Some(&b'-') {
            let error = redis::parse_redis_value(reply)
                .and_then(redis::Value::extract_error)
                .err()
                .unwrap_or_else(|| RedisError::from((redis::ErrorKind::Parse, "error reply")));
            return Outcome::Refused(error);
        }
        last = Some(reply);
    }
    let confirmed = last
        .filter(|_| wait)
        .and_then(|reply| reply.strip_prefix(b":"))
        .and_then(|reply| number(reply.strip_suffix(b"\r\n")?).ok())
        .map(|n| u64::try_from(n).unwrap_or(0));
    Outcome::Stored(if wait {
        Some(confirmed.unwrap_or(0))
    } else {
        None
    })
}

/// Appends `XADD key * lp <line> [db <db>] [rp <rp>]` in RESP, as redis-rs packs the command
/// [`super::xadd`] builds, byte for byte.
pub(super) fn pack_xadd(out: &mut Vec<u8>, key: &str, line: &str, target: &Target) {
    Packer::new(key, target).pack(out, line);
}

/// The XADDs of one request to one stream key: everything but the line is the same for all
/// of them, so it is packed once and copied.
pub(super) struct Packer {
    /// `*<argc>`, `XADD`, the key, `*` and the field name `lp`, then the line's `$`.
    head: Vec<u8>,
    /// After the line: its `\r\n`, then `db` and `rp` with their values when present.
    tail: Vec<u8>,
}

impl Packer {
    pub(super) fn new(key: &str, target: &Target) -> Self {
        let (db, rp) = (target.db.as_deref(), target.rp.as_deref());
        let argc = 5 + 2 * usize::from(db.is_some()) + 2 * usize::from(rp.is_some());
        let mut head = vec![b'*'];
        push_decimal(&mut head, argc);
        head.extend_from_slice(b"\r\n$4\r\nXADD\r\n");
        push_bulk(&mut head, key.as_bytes());
        head.extend_from_slice(b"$1\r\n*\r\n");
        push_bulk(&mut head, entry::FIELD_LP.as_bytes());
        head.push(b'$');
        let mut tail = b"\r\n".to_vec();
        for (name, value) in [(entry::FIELD_DB, db), (entry::FIELD_RP, rp)] {
            if let Some(value) = value {
                push_bulk(&mut tail, name.as_bytes());
                push_bulk(&mut tail, value.as_bytes());
            }
        }
        Self { head, tail }
    }

    /// Appends the XADD of `line`.
    pub(super) fn pack(&self, out: &mut Vec<u8>, line: &str) {
        out.reserve(self.head.len() + 22 + line.len() + self.tail.len());
        out.extend_from_slice(&self.head);
        push_decimal(out, line.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(&self.tail);
    }
}

fn push_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    push_decimal(out, bytes.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal; lengths of one to three digits (nearly every line) without a loop.
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let digit = |d: usize| b'0' + (d % 10) as u8;
    match n {
        0..=9 => out.push(digit(n)),
        10..=99 => out.extend_from_slice(&[digit(n / 10), digit(n)]),
        100..=999 => out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]),
        _ => {
            let mut digits = [0_u8; 20];
            let mut i = digits.len();
            let mut n = n;
            loop {
                i -= 1;
                digits[i] = digit(n);
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            out.extend_from_slice(&digits[i..]);
        }
    }
}

#[cfg(test)]
mod tests;
