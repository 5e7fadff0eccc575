//! The command line: configuration layering and the errors a user sees.

use std::process::Output;

use crate::support::redline;

mod usage;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = redline();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run redline")
}

#[test]
fn unknown_config_key_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redline.toml");
    std::fs::write(&path, "stream = \"s\"\nbatch_sise = 10\n").unwrap();
    let out = run(&["consumer", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown key 'batch_sise'") && stderr.contains("(line 2)"),
        "{stderr}"
    );
}

#[test]
fn bad_values_name_the_flag_env_and_key() {
    let out = run(&["consumer", "--flush-interval", "soon"], &[]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--flush-interval (env REDLINE_FLUSH_INTERVAL, config key flush_interval)")
            && stderr.contains("invalid duration 'soon'"),
        "{stderr}"
    );
    let out = run(&["consumer", "--sink", "file"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sink file needs --file PATH"));
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["producer", "--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn flags_win_over_env_which_wins_over_the_file() {
    // The listen address is the observable: a bad value fails with its own text.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redline.toml");
    std::fs::write(&path, "listen = \"from-file\"\n").unwrap();
    let config = path.to_str().unwrap();

    let out = run(&["producer", "--config", config], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("'from-file'"));
    let out = run(
        &["producer", "--config", config],
        &[("REDLINE_LISTEN", "from-env")],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("'from-env'"));
    let out = run(
        &["producer", "--config", config, "--listen", "from-flag"],
        &[("REDLINE_LISTEN", "from-env")],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("'from-flag'"));
}

#[test]
fn config_example_passes_config_check_and_names_every_option() {
    let out = run(&["config", "example"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let example = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redline.toml");
    std::fs::write(&path, &example).unwrap();

    let out = run(&["config", "check", path.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("is valid") && stdout.contains("batch_size = 5000"),
        "{stdout}"
    );

    // Every flag of producer and consumer is in the example, commented out or set, and
    // every flag of every command is in the README.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for command in [
        "producer", "consumer", "send", "status", "pending", "claim", "trim",
    ] {
        let help = String::from_utf8(run(&[command, "--help"], &[]).stdout).unwrap();
        for flag in help.split_whitespace().filter_map(|w| w.strip_prefix("--")) {
            let flag = flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            let key = flag.replace('-', "_");
            if ["help", "version", "config"].contains(&key.as_str()) || key.is_empty() {
                continue;
            }
            if ["producer", "consumer"].contains(&command) {
                assert!(
                    example.contains(&format!("{key} =")),
                    "`redline config example` lacks {key} (from `redline {command} --help`)"
                );
            }
            assert!(
                readme.contains(&format!("--{flag}`"))
                    || readme.contains(&format!("--{flag} "))
                    || readme.contains(&format!("--{flag}]")),
                "README lacks --{flag} (from `redline {command} --help`)"
            );
        }
    }
}

#[test]
fn config_check_names_a_typo_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redline.toml");
    std::fs::write(&path, "sink = \"influxdb\"\nflush_intervall = \"1s\"\n").unwrap();
    let out = run(&["config", "check", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown key 'flush_intervall'") && stderr.contains("(line 2)"),
        "{stderr}"
    );

    std::fs::write(
        &path,
        "redis_url = \"redis://app:hunter2@127.0.0.1:6379/\"\nsink = \"influxdb\"\ninflux_password = \"s3cr3t-pw\"\nmetric_batch_size = 777\n",
    )
    .unwrap();
    let out = run(&["config", "check", path.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("s3cr3t-pw"),
        "{stdout}"
    );
    assert!(
        stdout.contains("redis://app:***@127.0.0.1:6379/"),
        "{stdout}"
    );
    assert!(
        stdout.contains("batch_size = 777"),
        "Telegraf's metric_batch_size is read: {stdout}"
    );
}

#[test]
fn a_redis_that_may_evict_streams_is_refused_unless_allowed() {
    let redis = redline_testkit::RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let out = run(&["consumer", "--redis-url", &redis.url()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("maxmemory-policy is 'allkeys-lru'") && stderr.contains("--allow-eviction"),
        "{stderr}"
    );
    let out = run(
        &[
            "producer",
            "--redis-url",
            &redis.url(),
            "--listen",
            "192.0.2.1:8186",
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("allkeys-lru"));

    // Allowed: it gets past the check (and fails later on the port it cannot bind).
    let out = run(
        &[
            "producer",
            "--redis-url",
            &redis.url(),
            "--listen",
            "192.0.2.1:8186",
            "--allow-eviction",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot listen on 192.0.2.1:8186"),
        "{stderr}"
    );
}
