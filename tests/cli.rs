//! The command line: configuration layering and the errors a user sees.

use std::process::Output;

use crate::support::redline;

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
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown key 'batch_sise'") && stderr.contains("(line 2)"),
        "{stderr}"
    );
}

#[test]
fn bad_values_name_the_flag_env_and_key() {
    let out = run(&["consumer", "--flush-interval", "soon"], &[]);
    assert_eq!(out.status.code(), Some(1));
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
