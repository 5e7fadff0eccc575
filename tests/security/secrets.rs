//! Secrets never leak: auth tokens, the Redis password and the InfluxDB password and token
//! stay out of logs (at debug level), error answers, `/metrics` and `redline config check`,
//! while the processes hit the errors that tempt a program to print them (Redis refusing
//! a wrong password, InfluxDB down).

use std::time::Duration;

use redline_testkit::{free_port, wait_until, ChildGuard, RedisServer};

use super::producer;
use crate::support::{client, redline, STREAM};

const AUTH_TOKEN: &str = "auth-SECRET-7f3a";
const REDIS_PASSWORD: &str = "redis-SECRET-91c2";
const WRONG_REDIS_PASSWORD: &str = "wrong-SECRET-5d0e";
const INFLUX_PASSWORD: &str = "influx-SECRET-2b8d";
const INFLUX_TOKEN: &str = "influxtoken-SECRET-c4e1";

const SECRETS: [&str; 5] = [
    AUTH_TOKEN,
    REDIS_PASSWORD,
    WRONG_REDIS_PASSWORD,
    INFLUX_PASSWORD,
    INFLUX_TOKEN,
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} leaked in {what}:\n{text}");
    }
}

fn url_with(password: &str, port: u16) -> String {
    format!("redis://default:{password}@127.0.0.1:{port}/")
}

/// A consumer at debug level, in a group of its own, towards an InfluxDB that is down,
/// serving /metrics.
fn consumer(redis_url: &str, sink: &[&str], metrics: &str) -> ChildGuard {
    let down = format!("http://127.0.0.1:{}", free_port());
    let group = format!("g-{}", free_port());
    let mut cmd = redline();
    cmd.env("RUST_LOG", "debug")
        .args(["consumer", "--redis-url", redis_url, "--influx-url", &down])
        .args(["--group", &group])
        .args(["--metrics-listen", metrics, "--flush-interval", "100ms"])
        .args(sink);
    ChildGuard::spawn("consumer", &mut cmd)
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_stay_out_of_logs_errors_metrics_and_config_check() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("lp")
        .arg("m v=1i 1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(REDIS_PASSWORD)
        .query_async(&mut conn)
        .await
        .unwrap();
    let right = url_with(REDIS_PASSWORD, redis.port());
    let wrong = url_with(WRONG_REDIS_PASSWORD, redis.port());

    // A producer with the wrong Redis password: writes get 503, saying why, not the password.
    let mut cmd_env = vec![("REDLINE_AUTH_TOKENS", AUTH_TOKEN), ("RUST_LOG", "debug")];
    let bad = producer(&wrong, &["--auth-metrics"], &cmd_env).await;
    let http = client();
    let answer = http
        .post(format!("{}/write?db=d", bad.url))
        .bearer_auth(AUTH_TOKEN)
        .body("m v=1i 2")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    let text = answer.text().await.unwrap();
    assert_no_secret("a 503 answer", &text);
    let refused = http
        .post(format!("{}/write?db=d&u=x&p=not-it", bad.url))
        .body("m v=1i 3")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_no_secret("a 401 answer", &refused.text().await.unwrap());
    let metrics = http
        .get(format!("{}/metrics", bad.url))
        .bearer_auth(AUTH_TOKEN)
        .send()
        .await
        .unwrap();
    assert_no_secret("the producer's /metrics", &metrics.text().await.unwrap());

    // A producer with the right one, for contrast: the write goes through.
    cmd_env.push(("REDLINE_LOG_FORMAT", "json"));
    let good = producer(&right, &[], &cmd_env).await;
    let answer = http
        .post(format!("{}/write?db=d", good.url))
        .header("Authorization", format!("Token {AUTH_TOKEN}"))
        .body("m v=1i 4")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);

    // Consumers towards an InfluxDB that is down (v1 with a password, v2 with a token), and
    // one with the wrong Redis password.
    let metrics_v1 = format!("127.0.0.1:{}", free_port());
    let metrics_v2 = format!("127.0.0.1:{}", free_port());
    let v1 = consumer(
        &right,
        &[
            "--sink",
            "influxdb",
            "--influx-username",
            "u",
            "--influx-password",
            INFLUX_PASSWORD,
        ],
        &metrics_v1,
    );
    let v2 = consumer(
        &right,
        &[
            "--sink",
            "influxdb2",
            "--influx-org",
            "o",
            "--influx-token",
            INFLUX_TOKEN,
        ],
        &metrics_v2,
    );
    let locked_out = consumer(
        &wrong,
        &["--sink", "stdout"],
        &format!("127.0.0.1:{}", free_port()),
    );
    for (addr, guard) in [(&metrics_v1, &v1), (&metrics_v2, &v2)] {
        let url = format!("http://{addr}/metrics");
        // Retries against the down InfluxDB show in /metrics.
        let text = redline_testkit::wait_for(
            "a consumer retrying its sink",
            Duration::from_secs(20),
            || {
                let url = url.clone();
                async move {
                    let text = client().get(&url).send().await.ok()?.text().await.ok()?;
                    text.contains("redline_sink_retries_total").then_some(text)
                }
            },
        )
        .await;
        assert_no_secret("a consumer's /metrics", &text);
        assert_no_secret("a consumer's log", &guard.logs());
    }
    wait_until(
        "the locked-out consumer logs its Redis error",
        Duration::from_secs(20),
        || {
            let logs = locked_out.logs();
            async move { logs.contains("Password authentication failed") }
        },
    )
    .await;
    for (what, guard) in [
        ("the producer (wrong password)", &bad.guard),
        ("the producer", &good.guard),
        ("the locked-out consumer", &locked_out),
    ] {
        assert_no_secret(what, &guard.logs());
    }

    // `config check` masks what the file and the environment hold.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redline.toml");
    std::fs::write(
        &file,
        format!(
            "redis_url = \"{right}\"\ninflux_password = \"{INFLUX_PASSWORD}\"\n\
             influx_token = \"{INFLUX_TOKEN}\"\nauth_token = [\"{AUTH_TOKEN}\"]\n"
        ),
    )
    .unwrap();
    let out = redline()
        .env("REDLINE_AUTH_TOKENS", WRONG_REDIS_PASSWORD)
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("auth_tokens = [\"***\"]"), "{stdout}");
    assert_no_secret("config check", &format!("{stdout}\n{stderr}"));
}
