//! Starting `influxd` and knowing that it is ours that answers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use super::{CONFIG, LOG, READY_DEADLINE};
use crate::process::{await_ready, file_len, find_binary, log_file, tail_since, LaunchError};

/// Spawns `influxd -config <dir>/influxd.conf` and waits until `/ping` answers 204 on `port`.
pub(super) fn launch(dir: &Path, port: u16) -> Result<Child, LaunchError> {
    let bin = find_binary("REDLINE_INFLUXD", "influxd", "/usr/bin/influxd", "influxdb");
    let log_path = dir.join(LOG);
    // influxd.log is appended to across launches; judge this launch by what it adds.
    let since = file_len(&log_path);
    let out = log_file(&log_path);
    let err = out
        .try_clone()
        .unwrap_or_else(|error| panic!("cannot clone a file handle: {error}"));
    let mut cmd = Command::new(&bin);
    cmd.arg("-config").arg(dir.join(CONFIG));
    let child = crate::tied::spawn(&cmd, out, err)
        .unwrap_or_else(|error| panic!("cannot spawn {}: {error}", bin.display()));

    // The log line proves that *our* influxd bound the port, not another process that took
    // it first (ours would exit, but a ping could reach the other one before that).
    await_ready(
        child,
        "influxd",
        port,
        READY_DEADLINE,
        || logs(dir, since),
        |_| (ping_blocking(port) && bound_http(dir, since, port)).into(),
    )
}

/// Whether `influxd.log` says, after byte `since`, that influxd listens on HTTP on `port`:
/// `lvl=info msg="Listening on HTTP" log_id=… service=httpd addr=127.0.0.1:<port> https=false`.
fn bound_http(dir: &Path, since: u64, port: u16) -> bool {
    let addr = format!(" addr=127.0.0.1:{port} ");
    tail_since(&dir.join(LOG), since, u64::MAX)
        .lines()
        .any(|line| line.contains(r#"msg="Listening on HTTP""#) && line.contains(&addr))
}

/// Whether `GET /ping` on `port` answers 204, over a plain blocking socket: `start` must not
/// need a Tokio runtime.
pub(super) fn ping_blocking(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        stream.write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        // "HTTP/1.0 204" or "HTTP/1.1 204"
        Ok(head.ends_with(b" 204"))
    };
    attempt().unwrap_or(false)
}

/// The last 4 KiB of `influxd.log` in `dir` written after byte `since`.
pub(super) fn logs(dir: &Path, since: u64) -> String {
    let path = dir.join(LOG);
    format!(
        "----- {} (tail) -----\n{}",
        path.display(),
        tail_since(&path, since, 4096)
    )
}
