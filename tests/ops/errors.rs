//! What a user sees when something is wrong: one line on stderr and exit 1, never a panic
//! or a debug dump; and `--help` with an example.

use std::time::Duration;

use redis::streams::StreamInfoGroupsReply;
use redline_testkit::{free_port, RedisServer};

use super::{held_entries, ops, xinfo_consumers, DLQ};
use crate::support::{redline, GROUP, STREAM};

/// Every ops command, once, with what it needs to get as far as Redis.
const EVERY_COMMAND: &[&[&str]] = &[
    &["status"],
    &["status", "--json"],
    &["pending"],
    &["pending", "--json", "--group", GROUP],
    &["claim", "--group", GROUP, "--to", "c2"],
    &["claim", "--group", GROUP, "--to", "c2", "--id", "1-0"],
    &["consumers"],
    &["consumers", "--prune-idle", "1h", "--json"],
    &["dlq", "list"],
    &["dlq", "list", "--json"],
    &["dlq", "show", "1-0"],
    &["dlq", "replay", "--all"],
    &["dlq", "replay", "--id", "1-0"],
    &["dlq", "purge", "--all", "--yes"],
    &["trim"],
    &["trim", "--dry-run", "--json"],
];

#[test]
fn unreachable_redis_fails_every_command_with_one_line() {
    // Nothing listens on this port.
    let url = format!("redis://127.0.0.1:{}/", free_port());
    for args in EVERY_COMMAND {
        let line = ops(&url, args).failed(&args.join(" "));
        assert!(
            line.starts_with(&format!("redline: error: cannot reach Redis at {url}: ")),
            "{args:?}: {line}"
        );
    }
    // A host that accepts connections and never answers: the --redis-timeout bounds it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    for args in [&["status"][..], &["dlq", "list"], &["trim"]] {
        let started = std::time::Instant::now();
        let mut args = args.to_vec();
        args.extend(["--redis-timeout", "300ms"]);
        let line = ops(&url, &args).failed(&args.join(" "));
        assert_eq!(
            line,
            format!("redline: error: cannot reach Redis at {url}: timed out"),
            "{args:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_group_fails_with_one_line_naming_it_and_changes_nothing() {
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let expected = format!("redline: error: no consumer group 'nope' on stream '{STREAM}'");
    let commands: &[&[&str]] = &[
        &["pending", "--group", "nope"],
        &["pending", "--group", "nope", "--json"],
        &["claim", "--group", "nope", "--to", "c2"],
        &["claim", "--group", "nope", "--to", "c2", "--id", "1-0"],
        &["consumers", "--group", "nope"],
        &[
            "consumers",
            "--group",
            "nope",
            "--prune-idle",
            "0s",
            "--json",
        ],
    ];
    // Before the stream exists, then beside an existing group.
    for args in commands {
        assert_eq!(ops(&url, args).failed(&args.join(" ")), expected);
    }
    let mut conn = redis.conn().await;
    held_entries(&mut conn, 3, 2, 0).await;
    for args in commands {
        assert_eq!(ops(&url, args).failed(&args.join(" ")), expected);
    }
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(STREAM)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(groups.groups.len(), 1, "no group was created");
    assert_eq!(
        xinfo_consumers(&mut conn).await,
        [("c1".into(), 2), ("c2".into(), 0)].into()
    );

    // Other runtime errors read the same way.
    let line = ops(&url, &["dlq", "show", "1-0"]).failed("dlq show");
    assert_eq!(
        line,
        format!("redline: error: no dead letter '1-0' in '{DLQ}'")
    );
    // A bad id is a usage error: exit 2, one line.
    let line = ops(
        &url,
        &["claim", "--group", GROUP, "--to", "c2", "--id", "x"],
    )
    .usage("bad id");
    assert_eq!(
        line,
        "redline: error: invalid stream entry id 'x': expected <ms> or <ms>-<seq>, \
         e.g. 1700000000000-0"
    );
    let () = redis::cmd("SET")
        .arg(DLQ)
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .unwrap();
    for args in [
        &["status"][..],
        &["dlq", "list"],
        &["dlq", "purge", "--all", "--yes"],
    ] {
        assert_eq!(
            ops(&url, args).failed("a dead-letter key of another type"),
            format!("redline: error: '{DLQ}' is a Redis string, not a stream")
        );
    }
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        ops(&url, &["status"]).failed("no password"),
        "redline: error: Redis refused TIME: NOAUTH Authentication required. \
         (give the credentials in --redis-url: redis://USER:PASSWORD@HOST:PORT/)"
    );
}

#[test]
fn every_ops_command_help_shows_an_example() {
    for command in [
        &["status"][..],
        &["pending"],
        &["claim"],
        &["consumers"],
        &["dlq"],
        &["dlq", "list"],
        &["dlq", "show"],
        &["dlq", "replay"],
        &["dlq", "purge"],
        &["trim"],
    ] {
        let out = redline().args(command).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{command:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        let example = format!("\n  redline {}", command.join(" "));
        assert!(
            help.contains("Example") && help.contains(&example),
            "{command:?} --help has no example:\n{help}"
        );
    }
}
