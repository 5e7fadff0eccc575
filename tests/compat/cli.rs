//! The command line as strict as InfluxDB's API is: one validation for flags, variables and
//! config keys, exit 2 for every usage error (`cli::usage` lists them), no secret in
//! `--help`, and ids that name exactly one entry.

use redline_testkit::RedisServer;

use crate::ops::ops;
use crate::support::{redline, GROUP};

/// Runs `redline ARGS` with `env`; (exit code, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = redline()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_file_values_get_the_checks_flags_get_and_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redline.toml");
    let dead = "redis://127.0.0.1:1/";
    for (file, named, reason) in [
        (
            "max_fields = 0\n",
            "key max_fields (line 1)",
            "0 is not in 1..",
        ),
        (
            "partitions = 0\n",
            "key partitions (line 1)",
            "0 is not in 1..=1024",
        ),
        (
            "batch_size = \"lots\"\n",
            "key batch_size (line 1)",
            "invalid digit",
        ),
        (
            "sink = \"kafka\"\n",
            "key sink (line 1)",
            "invalid value 'kafka'",
        ),
    ] {
        std::fs::write(&path, file).unwrap();
        let (code, stderr) = run(
            &[
                "consumer",
                "--config",
                path.to_str().unwrap(),
                "--redis-url",
                dead,
            ],
            &[],
        );
        assert_eq!(code, Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(named) && stderr.contains(reason),
            "{file}: {stderr}"
        );
    }
    // An empty variable is unset, whatever the option (not an error for some of them).
    let (code, stderr) = run(
        &["trim", "--dry-run", "--redis-url", dead],
        &[
            ("REDLINE_PARTITIONS", ""),
            ("REDLINE_STREAM", ""),
            ("REDLINE_REDIS_TIMEOUT", ""),
        ],
    );
    assert_eq!(code, Some(1), "only Redis being down fails it: {stderr}");
    assert!(stderr.contains("cannot reach Redis"), "{stderr}");
}

#[test]
fn help_never_shows_a_secret_from_the_environment() {
    let env = [
        ("REDLINE_REDIS_URL", "redis://user:hunter2@redis:6379/"),
        ("REDLINE_INFLUX_URL", "http://admin:hunter2@influx:8086"),
        ("REDLINE_INFLUX_PASSWORD", "hunter2"),
        ("REDLINE_INFLUX_TOKEN", "hunter2"),
        ("REDLINE_AUTH_TOKENS", "hunter2"),
    ];
    for command in ["producer", "consumer", "run", "send", "status", "claim"] {
        let out = redline()
            .args([command, "--help"])
            .envs(env)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command}");
        assert!(
            !help.contains("hunter2"),
            "{command} --help shows a secret:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_by_id_names_one_partition_or_refuses() {
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let mut conn = redis.conn().await;
    let keys: Vec<String> = (0..2).map(|p| format!("redline:metrics:{{{p}}}")).collect();
    // The same id pending in both partitions.
    for key in &keys {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(key)
            .arg("5-0")
            .arg("lp")
            .arg("m v=1i 5")
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("gone")
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let claim = |extra: &[&str]| {
        let mut args = vec!["claim", "--partitions", "2", "--group", GROUP, "--to", "c2"];
        args.extend_from_slice(extra);
        ops(&url, &args)
    };
    let ambiguous = claim(&["--id", "5-0"]);
    assert_eq!(ambiguous.code, Some(2), "{}", ambiguous.stderr);
    assert_eq!(
        ambiguous.stderr,
        "redline: error: entry id '5-0' is pending in several partitions \
         (redline:metrics:{0}, redline:metrics:{1}): name one as STREAM/ID or with --partition N\n"
    );
    let named = claim(&["--id", "redline:metrics:{1}/5-0", "--json"]).json();
    assert_eq!(named["moved"], 1, "{named}");
    assert_eq!(named["claimed"][0]["stream"], "redline:metrics:{1}");
    let by_partition = claim(&["--id", "5-0", "--partition", "0", "--json"]).json();
    assert_eq!(by_partition["claimed"][0]["stream"], "redline:metrics:{0}");
    // Nothing is pending for `gone` any more: an id not moved fails the command.
    let missed = claim(&["--id", "9-0"]);
    assert_eq!(missed.code, Some(1), "{}", missed.stderr);
    assert!(missed.stderr.contains("9-0"), "{}", missed.stderr);
}
