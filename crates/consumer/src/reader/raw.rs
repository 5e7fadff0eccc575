//! The reader's own connection to a standalone Redis over plain TCP or a Unix socket:
//! commands go out as redis-rs packs them, replies come back as bytes for
//! [`crate::resp::decode_read`] instead of a `redis::Value` tree.
//!
//! TLS, Sentinel and Cluster URLs keep redis-rs's connection ([`Conn::for_url`] says which):
//! they need what only the driver does (certificates, master lookup, slot routing).

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, RedisError};
use redline_core::redis::RedisConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::resp::Frame;

/// A reply buffer that grew past this (a batch of large lines) is shrunk once idle.
const KEEP_CAPACITY: usize = 4 << 20;
/// What one socket read asks for at least.
const READ_CHUNK: usize = 64 << 10;

trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// One connection, one command at a time.
pub(crate) struct Conn {
    stream: Box<dyn Io>,
    /// Bytes received: the last reply first, then whatever followed it.
    buf: Vec<u8>,
    /// Length of the last reply at the front of `buf`, dropped when the next command goes.
    taken: usize,
}

impl Conn {
    /// The connection details when `redis` is a standalone Redis over plain TCP or a Unix
    /// socket; `None` when redis-rs must connect (TLS, Sentinel, Cluster).
    pub(crate) fn for_url(redis: &RedisConfig) -> Option<ConnectionInfo> {
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
    pub(crate) async fn connect(
        info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<Self, RedisError> {
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
    pub(crate) async fn call(&mut self, cmd: &redis::Cmd) -> Result<&[u8], RedisError> {
        self.buf.drain(..self.taken);
        self.taken = 0;
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        self.stream.write_all(&cmd.get_packed_command()).await?;
        let mut frame = Frame::default();
        loop {
            let malformed = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            if let Some(len) = frame.complete(&self.buf).map_err(malformed)? {
                self.taken = len;
                return Ok(&self.buf[..len]);
            }
            self.buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }
}
