//! Usage errors, wherever redline finds them (clap, its own checks, the config file, the
//! environment): exit 2 and one line on stderr naming the flag, variable or key.

use std::time::Duration;

use redline_testkit::{free_port, ChildGuard};

use crate::support::redline;

/// A bad invocation: arguments, environment, config file contents (given as `--config`
/// when set), and the name its one line must say.
struct Bad {
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    file: Option<&'static str>,
    names: &'static str,
}

const fn args(args: &'static [&'static str], names: &'static str) -> Bad {
    Bad {
        args,
        env: &[],
        file: None,
        names,
    }
}

const fn env(
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    names: &'static str,
) -> Bad {
    Bad {
        args,
        env,
        file: None,
        names,
    }
}

const fn file(args: &'static [&'static str], file: &'static str, names: &'static str) -> Bad {
    Bad {
        args,
        env: &[],
        file: Some(file),
        names,
    }
}

const BAD: &[Bad] = &[
    // The parser's own.
    args(&["producer", "--no-such-flag"], "--no-such-flag"),
    args(&["claim", "--group", "g"], "--to"),
    args(&["status", "--partitions", "0"], "--partitions"),
    args(&["send", "--precision", "q"], "--precision"),
    args(&["send", "--batch-size", "0"], "--batch-size"),
    env(
        &["consumer"],
        &[("REDLINE_BATCH_SIZE", "0")],
        "REDLINE_BATCH_SIZE",
    ),
    env(&["consumer"], &[("REDLINE_SINK", "kafka")], "REDLINE_SINK"),
    // Values redline checks itself.
    args(&["consumer", "--min-idle", "abc"], "--min-idle"),
    args(&["producer", "--max-body-size", "lots"], "--max-body-size"),
    args(
        &["producer", "--max-inflight-bytes", "1MiB"],
        "--max-inflight-bytes",
    ),
    args(&["producer", "--listen", "nope"], "--listen"),
    args(&["producer", "--threads", "0"], "--threads"),
    env(
        &["consumer"],
        &[("REDLINE_THREADS", "9999")],
        "REDLINE_THREADS",
    ),
    file(&["producer"], "threads = 0\n", "threads"),
    args(&["producer", "--log-level", "===bad"], "--log-level"),
    args(&["producer", "--tls-cert", "cert.pem"], "--tls-key"),
    args(
        &[
            "producer",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.pem",
        ],
        "--tls-cert",
    ),
    args(
        &["producer", "--auth-token-file", "/nonexistent"],
        "--auth-token-file",
    ),
    args(
        &["consumer", "--sink", "influxdb2", "--influx-org", "o"],
        "--influx-token",
    ),
    args(
        &["consumer", "--sink", "influxdb2", "--influx-token", "t"],
        "--influx-org",
    ),
    args(&["consumer", "--sink", "file"], "--file"),
    args(
        &["consumer", "--sink", "influxdb", "--influx-url", "ftp://x"],
        "--influx-url",
    ),
    args(&["status", "--redis-url", "notaurl"], "--redis-url"),
    args(&["consumer", "--redis-url", "notaurl"], "--redis-url"),
    args(&["pending", "--min-idle", "abc"], "--min-idle"),
    args(
        &["claim", "--group", "g", "--to", "c", "--min-idle", "x"],
        "--min-idle",
    ),
    args(&["consumers", "--prune-idle", "x"], "--prune-idle"),
    args(&["status", "--watch", "x"], "--watch"),
    args(&["status", "--watch", "0s"], "--watch"),
    args(&["pending", "--count", "0"], "--count"),
    args(&["dlq", "list", "--count", "0"], "--count"),
    args(&["producer", "--redis-url", "notaurl"], "--redis-url"),
    env(
        &["consumer"],
        &[("REDLINE_MIN_IDLE", "abc")],
        "REDLINE_MIN_IDLE",
    ),
    env(
        &["producer"],
        &[("REDLINE_CONFIG", "/nonexistent.toml")],
        "REDLINE_CONFIG",
    ),
    // The config file.
    file(&["consumer"], "batch_sise = 10\n", "batch_sise"),
    file(
        &["consumer"],
        "flush_interval = \"soon\"\n",
        "flush_interval",
    ),
    file(
        &["producer"],
        "buffer_full = \"sometimes\"\n",
        "buffer_full",
    ),
    file(&["status"], "stream = \n", "--config"),
];

#[test]
fn bad_invocations_exit_2_with_one_line_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: a command that got past its checks would not exit at once.
    let redis = format!("redis://127.0.0.1:{}/", free_port());
    let mut wrong = Vec::new();
    for (i, bad) in BAD.iter().enumerate() {
        let mut cmd = redline();
        cmd.args(bad.args).env("REDLINE_REDIS_URL", &redis);
        for (k, v) in bad.env {
            cmd.env(k, v);
        }
        if let Some(text) = bad.file {
            let path = dir.path().join(format!("bad-{i}.toml"));
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        let what = format!("{:?} env {:?} file {:?}", bad.args, bad.env, bad.file);
        let mut child = ChildGuard::spawn("redline", &mut cmd);
        let Some(status) = child.wait_exit(Duration::from_secs(10)) else {
            wrong.push(format!("{what}: still running after 10 s"));
            continue;
        };
        let stderr = child.stderr();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        if status.code() != Some(2) || lines.len() != 1 || !lines[0].contains(bad.names) {
            wrong.push(format!(
                "{what}: exit {:?}, expected 2 and one line naming {}:\n{stderr}",
                status.code(),
                bad.names
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
