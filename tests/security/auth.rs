//! Authentication: each way a client can present a token is accepted with a right token
//! and refused 401 with a wrong or missing one, and nothing of a refused request is stored.

use redline_testkit::RedisServer;

use super::{producer, stored_lines, stream_len};
use crate::support::client;

/// How a request presents its credential.
#[derive(Debug, Clone, Copy)]
enum Via {
    None,
    Token(&'static str),
    Bearer(&'static str),
    Basic(&'static str, &'static str),
    Query(&'static str),
}

/// Sends line `case=<n>` to `/write` (v1) or `/api/v2/write` (v2) with `via`.
async fn send(base: &str, v2: bool, via: Via, n: usize) -> reqwest::Response {
    let path = if v2 {
        "api/v2/write?bucket=b&org=o"
    } else {
        "write?db=d"
    };
    let mut url = format!("{base}/{path}");
    if let Via::Query(p) = via {
        url.push_str(&format!("&u=telegraf&p={p}"));
    }
    let request = client()
        .post(url)
        .body(format!("auth,case={n} v=1i 1700000000000000000"));
    let request = match via {
        Via::None | Via::Query(_) => request,
        Via::Token(t) => request.header("Authorization", format!("Token {t}")),
        Via::Bearer(t) => request.bearer_auth(t),
        Via::Basic(user, password) => request.basic_auth(user, Some(password)),
    };
    request.send().await.expect("write request")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_auth_path_accepts_a_right_token_and_refuses_others_with_401() {
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, "# agents\nfile-token-a\n\nfile-token-b\n").unwrap();
    let producer = producer(
        &redis.url(),
        &["--auth-token-file", file.to_str().unwrap()],
        &[("REDLINE_AUTH_TOKENS", "env-token-1,env-token-2")],
    )
    .await;

    let accepted = [
        (false, Via::Token("env-token-1")),
        (true, Via::Token("file-token-a")),
        (false, Via::Bearer("env-token-2")),
        (true, Via::Bearer("file-token-b")),
        (false, Via::Basic("telegraf", "env-token-1")),
        (true, Via::Basic("", "file-token-a")),
        (false, Via::Query("file-token-b")),
    ];
    let refused = [
        (false, Via::None),
        (true, Via::None),
        (false, Via::Token("wrong")),
        (true, Via::Token("env-token-")),
        (false, Via::Token("env-token-1x")),
        (false, Via::Bearer("")),
        (true, Via::Bearer("FILE-TOKEN-A")),
        (false, Via::Basic("env-token-1", "wrong")),
        (true, Via::Basic("telegraf", "")),
        (false, Via::Query("wrong")),
        (false, Via::Query("")),
    ];
    let mut n = 0;
    for (v2, via) in accepted {
        n += 1;
        let response = send(&producer.url, v2, via, n).await;
        assert_eq!(
            response.status(),
            204,
            "{via:?} (v2: {v2}) must be accepted"
        );
    }
    let accepted_count = n;
    for (v2, via) in refused {
        n += 1;
        let response = send(&producer.url, v2, via, n).await;
        assert_eq!(response.status(), 401, "{via:?} (v2: {v2}) must be refused");
        assert!(
            response.headers().get("WWW-Authenticate").is_some(),
            "{via:?}: a 401 names the schemes"
        );
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        let error = body["error"].as_str().expect("an error text");
        assert!(error.starts_with("authorization"), "{via:?}: {error}");
        if v2 {
            assert_eq!(body["code"], "unauthorized", "{body}");
            assert_eq!(body["message"], error, "{body}");
        }
    }

    // Only the accepted requests' lines are in the stream, in order.
    let mut conn = redis.conn().await;
    assert_eq!(stream_len(&mut conn).await, accepted_count as u64);
    let expected: Vec<String> = (1..=accepted_count)
        .map(|n| format!("auth,case={n} v=1i 1700000000000000000"))
        .collect();
    assert_eq!(stored_lines(&mut conn).await, expected);

    // Probes stay open; /metrics too unless --auth-metrics.
    let http = client();
    for (path, status) in [
        ("ping", 204),
        ("health", 200),
        ("ready", 200),
        ("metrics", 200),
    ] {
        let response = http
            .get(format!("{}/{path}", producer.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "/{path}");
    }
    // Telegraf's CREATE DATABASE needs a token too.
    let query = || {
        http.post(format!("{}/query", producer.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("q=CREATE+DATABASE+%22telegraf%22")
    };
    assert_eq!(query().send().await.unwrap().status(), 401);
    let response = query().bearer_auth("env-token-2").send().await;
    assert_eq!(response.unwrap().status(), 200);
    // No token reaches the log, even refused ones.
    let logs = producer.guard.logs();
    for secret in ["env-token-1", "env-token-2", "file-token-a", "file-token-b"] {
        assert!(
            !logs.contains(secret),
            "{secret} in the producer's log:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_a_token_with_auth_metrics() {
    let redis = RedisServer::start(&[]);
    let producer = producer(
        &redis.url(),
        &["--auth-metrics"],
        &[("REDLINE_AUTH_TOKENS", "metrics-token")],
    )
    .await;
    let http = client();
    let url = format!("{}/metrics", producer.url);
    let refused = http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let allowed = http.get(&url).bearer_auth("metrics-token").send().await;
    let allowed = allowed.unwrap();
    assert_eq!(allowed.status(), 200);
    let text = allowed.text().await.unwrap();
    assert!(
        !text.contains("metrics-token"),
        "the token in /metrics:\n{text}"
    );
    assert_eq!(
        http.get(format!("{}/ping", producer.url))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_listener_beyond_loopback_is_warned_about() {
    let redis = RedisServer::start(&[]);
    let port = redline_testkit::free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut open = redline_testkit::ChildGuard::spawn(
        "producer",
        crate::support::redline().args([
            "producer",
            "--redis-url",
            &redis.url(),
            "--listen",
            &listen,
        ]),
    );
    let url = format!("http://127.0.0.1:{port}/ping");
    redline_testkit::wait_until(
        "the producer answers /ping",
        std::time::Duration::from_secs(15),
        || {
            let url = url.clone();
            async move { matches!(client().get(&url).send().await, Ok(r) if r.status() == 204) }
        },
    )
    .await;
    let stderr = open.stderr();
    assert!(
        stderr.contains("No auth token is configured"),
        "no warning:\n{stderr}"
    );
    open.sigterm();

    // With a token, or on loopback, no warning.
    let quiet = producer(&redis.url(), &[], &[]).await;
    assert!(!quiet.guard.stderr().contains("No auth token"));
}
