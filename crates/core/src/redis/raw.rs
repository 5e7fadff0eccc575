//! redline's own Redis connection for the hot paths, on a standalone Redis over plain TCP or
//! a Unix socket: commands go out as bytes (packed by redis-rs or by the caller), replies come
//! back as bytes, framed by [`Frame`], and are read by the caller's own narrow decoder instead
//! of redis-rs's general parser (one `redis::Value` allocation per string and array, which was
//! most of the consumer's and a sixth of the producer's CPU).
//!
//! Invariants:
//! - [`Frame`] says a reply is whole only when every byte of it has arrived, however the bytes
//!   are split into reads, and never reads past it;
//! - a connection that failed or timed out in the middle of a reply is never used again (the
//!   caller drops it: bytes of the old reply would be read as the next one's);
//! - TLS, Sentinel and Cluster URLs keep redis-rs's connections ([`Conn::for_url`] says which):
//!   they need what only the driver does (certificates, master lookup, slot routing).

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, RedisError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::RedisConfig;

/// Nesting deeper than XREADGROUP's (4) plus slack is not a reply redline asked for.
pub const MAX_DEPTH: usize = 16;

/// The bytes are not RESP2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Redis sent bytes that are not a RESP2 reply")]
pub struct Malformed;

/// Finds where one whole reply ends in a buffer that grows as bytes arrive, resuming where
/// the last call stopped (a 1 MB reply arriving in 64 KiB reads is scanned once, not 16
/// times).
#[derive(Debug, Default)]
pub struct Frame {
    /// Where scanning resumes: the start of the next element's header.
    pos: usize,
    /// Elements still expected by each open array, outermost first.
    open: Vec<i64>,
    /// True once the first element ended or, for an array, began.
    started: bool,
}

impl Frame {
    /// `Some(len)` when `buf[..len]` is one whole reply; `None` while bytes are missing. Call
    /// again with the same buffer, grown, until it answers.
    ///
    /// # Errors
    /// [`Malformed`] when the bytes cannot be RESP2.
    pub fn complete(&mut self, buf: &[u8]) -> Result<Option<usize>, Malformed> {
        loop {
            if self.started && self.open.is_empty() {
                return Ok(Some(self.pos));
            }
            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            match kind {
                b'+' | b'-' | b':' => {
                    let Some((_, _, after)) = header(buf, self.pos)? else {
                        return Ok(None);
                    };
                    self.pos = after;
                    self.element_done();
                }
                b'$' => {
                    let Some((n, after)) = length(buf, self.pos + 1)? else {
                        return Ok(None);
                    };
                    self.pos = if n < 0 {
                        after
                    } else {
                        let Some(end) = bulk_end(buf, after, n)? else {
                            return Ok(None);
                        };
                        end
                    };
                    self.element_done();
                }
                b'*' => {
                    let Some((n, after)) = length(buf, self.pos + 1)? else {
                        return Ok(None);
                    };
                    self.pos = after;
                    if n <= 0 {
                        self.element_done();
                    } else if self.open.len() >= MAX_DEPTH {
                        return Err(Malformed);
                    } else {
                        self.started = true;
                        self.open.push(n);
                    }
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// One element ended: it counts for its array, which may end too, and so on outwards.
    fn element_done(&mut self) {
        self.started = true;
        while let Some(left) = self.open.last_mut() {
            *left -= 1;
            if *left > 0 {
                break;
            }
            self.open.pop();
        }
    }
}

/// The length in a `$` or `*` header whose number starts at `at`, and where the header ends:
/// `-1` or digits, then CRLF, read in one pass (every entry has several); `None` while bytes
/// are missing.
///
/// # Errors
/// [`Malformed`] for anything else (Redis sends nothing else there).
pub fn length(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, Malformed> {
    let mut i = at;
    let negative = buf.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let start = i;
    let mut n: i64 = 0;
    while let Some(&d) = buf.get(i) {
        if !d.is_ascii_digit() {
            break;
        }
        if i - start == 18 {
            return Err(Malformed);
        }
        n = n * 10 + i64::from(d - b'0');
        i += 1;
    }
    match (buf.get(i), buf.get(i + 1)) {
        (None, _) | (Some(b'\r'), None) => Ok(None),
        (Some(b'\r'), Some(b'\n')) if i > start => Ok(Some((if negative { -n } else { n }, i + 2))),
        _ => Err(Malformed),
    }
}

/// A header line: its type byte, the text after it, and where the line ends.
pub type Header<'a> = (u8, &'a [u8], usize);

/// The header line at `pos`; `None` while its CRLF has not arrived.
pub fn header(buf: &[u8], pos: usize) -> Result<Option<Header<'_>>, Malformed> {
    let rest = buf.get(pos..).unwrap_or_default();
    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    if newline < 2 || rest[newline - 1] != b'\r' {
        return Err(Malformed);
    }
    Ok(Some((rest[0], &rest[1..newline - 1], pos + newline + 1)))
}

/// Where a bulk string of `n` bytes starting at `start` ends (after its CRLF); `None` while
/// bytes are missing.
pub fn bulk_end(buf: &[u8], start: usize, n: i64) -> Result<Option<usize>, Malformed> {
    let end = usize::try_from(n)
        .ok()
        .and_then(|n| start.checked_add(n)?.checked_add(2))
        .ok_or(Malformed)?;
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[end - 2..end] != b"\r\n" {
        return Err(Malformed);
    }
    Ok(Some(end))
}

/// The decimal number of a header line.
///
/// # Errors
/// [`Malformed`] when it is not one.
pub fn number(text: &[u8]) -> Result<i64, Malformed> {
    // Every header and bulk has one: digits only, read without going through `str`.
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        // Longer numbers (never in a reply redline reads) take the general way.
        return std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(Malformed);
    }
    let value = digits
        .iter()
        .fold(0_i64, |n, d| n * 10 + i64::from(d - b'0'));
    Ok(if negative { -value } else { value })
}

/// A reply buffer that grew past this (a batch of large lines) is shrunk once idle.
const KEEP_CAPACITY: usize = 4 << 20;
/// What one socket read asks for at least.
const READ_CHUNK: usize = 64 << 10;

trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// One connection, one command at a time.
pub struct Conn {
    stream: Box<dyn Io>,
    /// Bytes received: the last reply first, then whatever followed it.
    buf: Vec<u8>,
    /// Length of the last replies at the front of `buf`, dropped when the next command goes.
    taken: usize,
    /// Where each of the last replies ends in `buf`, as framing found them.
    ends: Vec<usize>,
}

/// The replies of one [`Conn::pipeline`], framed, valid until the connection's next call.
#[derive(Debug, Clone, Copy)]
pub struct Replies<'a> {
    buf: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Replies<'a> {
    /// Every reply's bytes, one after the other.
    pub fn all(&self) -> &'a [u8] {
        &self.buf[..self.ends.last().copied().unwrap_or(0)]
    }

    /// Each reply's bytes, in order, without framing them again.
    pub fn each(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (buf, ends) = (self.buf, self.ends);
        let starts = std::iter::once(0).chain(ends.iter().copied());
        starts
            .zip(ends.iter().copied())
            .map(move |(a, b)| &buf[a..b])
    }
}

impl Conn {
    /// The connection details when `redis` is a standalone Redis over plain TCP or a Unix
    /// socket; `None` when redis-rs must connect (TLS, Sentinel, Cluster).
    pub fn for_url(redis: &RedisConfig) -> Option<ConnectionInfo> {
        if redis.is_sentinel() || redis.is_cluster() {
            return None;
        }
        let client = redis.client().ok()?;
        let info = client.get_connection_info();
        matches!(
            info.addr(),
            ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(_)
        )
        .then(|| info.clone())
    }

    /// Connects within `timeout`, then authenticates and selects the database as the URL
    /// says.
    ///
    /// # Errors
    /// The connection failed or Redis refused the credentials or the database.
    pub async fn connect(info: &ConnectionInfo, timeout: Duration) -> Result<Self, RedisError> {
        let timed_out = || RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let stream: Box<dyn Io> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::time::timeout(
                    timeout,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await
                .map_err(|_| timed_out())??;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            ConnectionAddr::Unix(path) => Box::new(
                tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| timed_out())??,
            ),
            _ => unreachable!("for_url only gives plain TCP and Unix addresses"),
        };
        let mut conn = Self {
            stream,
            buf: Vec::new(),
            taken: 0,
            ends: Vec::new(),
        };
        let settings = info.redis_settings();
        let handshake = async {
            if let Some(password) = settings.password() {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = settings.username() {
                    auth.arg(user);
                }
                conn.ok(auth.arg(password)).await?;
            }
            if settings.db() != 0 {
                conn.ok(redis::cmd("SELECT").arg(settings.db())).await?;
            }
            Ok::<_, RedisError>(())
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| timed_out())??;
        Ok(conn)
    }

    /// Sends `cmd` and checks that Redis did not answer an error.
    async fn ok(&mut self, cmd: &redis::Cmd) -> Result<(), RedisError> {
        let reply = self.call(cmd).await?;
        redis::parse_redis_value(reply)?.extract_error()?;
        Ok(())
    }

    /// Sends `cmd` and returns its whole reply's bytes, valid until the next call.
    ///
    /// # Errors
    /// The connection broke or the bytes are not RESP2; the connection must then be dropped.
    pub async fn call(&mut self, cmd: &redis::Cmd) -> Result<&[u8], RedisError> {
        Ok(self.pipeline(&cmd.get_packed_command(), 1).await?.all())
    }

    /// Sends `packed`, `commands` commands already in RESP, and returns their replies,
    /// valid until the next call.
    ///
    /// # Errors
    /// The connection broke or the bytes are not RESP2; the connection must then be dropped.
    pub async fn pipeline(
        &mut self,
        packed: &[u8],
        commands: usize,
    ) -> Result<Replies<'_>, RedisError> {
        self.buf.drain(..self.taken);
        self.taken = 0;
        self.ends.clear();
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        self.stream.write_all(packed).await?;
        let mut end = 0;
        for _ in 0..commands {
            let mut frame = Frame::default();
            loop {
                let malformed = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
                if let Some(len) = frame.complete(&self.buf[end..]).map_err(malformed)? {
                    end += len;
                    self.ends.push(end);
                    break;
                }
                self.buf.reserve(READ_CHUNK);
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
                }
            }
        }
        self.taken = end;
        Ok(Replies {
            buf: &self.buf,
            ends: &self.ends,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_numbers_read_as_rust_parses_them() {
        let cases: [&[u8]; 12] = [
            b"0",
            b"-1",
            b"5000",
            b"-0",
            b"999999999999999999",
            b"9223372036854775807",
            b"9223372036854775808",
            b"",
            b"-",
            b"+1",
            b"1a",
            b" 1",
        ];
        for text in cases {
            let general = std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or(Malformed);
            assert_eq!(number(text), general, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn lengths_read_in_one_pass_as_the_header_line_says() {
        for n in [0_i64, 1, 9, 10, 5000, -1, 999_999_999_999_999_999] {
            let line = format!("{n}\r\n");
            let bytes = line.as_bytes();
            assert_eq!(length(bytes, 0), Ok(Some((n, bytes.len()))), "{n}");
            for cut in 0..bytes.len() {
                assert_eq!(length(&bytes[..cut], 0), Ok(None), "{n} cut at {cut}");
            }
        }
        for bad in [
            &b"\r\n"[..],
            b"-\r\n",
            b"1x\r\n",
            b"1\rx",
            b"+1\r\n",
            b"1000000000000000000\r\n",
        ] {
            assert_eq!(
                length(bad, 0),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
