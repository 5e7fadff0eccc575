//! Passwords on the sentinels and an ACL user on the master.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn sentinels_with_a_password_and_an_acl_user_on_the_master_carry_every_metric() {
    // The default user of the data nodes has a password redline does not know: it must
    // write as `relay`. The sentinels have a password of their own.
    let set = RedisSentinel::start_with(SentinelOptions {
        node_password: Some("node-admin-pw".into()),
        sentinel_password: Some("sentinel-pw".into()),
        node_args: ["--user", "relay", "on", ">relay-pw", "~redline:*", "+@all"]
            .map(String::from)
            .to_vec(),
    });
    let url = set.url(Some("relay:relay-pw"));
    let master = format!("127.0.0.1:{}", set.master());
    let producer = Producer::start(&url, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    let consumer = file_consumer(&url, GROUP, &path, &[]);
    let response = support::post(&format!("{}/write?db=db0", producer.url), body(0)).await;
    assert_eq!(response.status(), 204);
    let twice = wait_settled(&url, &path, &BTreeSet::from([0])).await;
    assert_eq!(twice, 0);
    let (code, ready) = support::ready(&producer.url).await;
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["checks"][0]["master"], master, "{ready}");

    // Wrong or missing sentinel password, wrong master password: one line saying which.
    let sentinels = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(hosts, _)| hosts.to_string())
        .unwrap();
    for (bad, says) in [
        (
            format!("redis+sentinel://relay:relay-pw@{sentinels}/mymaster?sentinel_password=Wr0ngSentinelPw"),
            "the sentinels refuse the credentials",
        ),
        (
            format!("redis+sentinel://relay:relay-pw@{sentinels}/mymaster"),
            "the sentinels refuse the credentials",
        ),
        (
            format!("redis+sentinel://relay:Wr0ngMasterPw@{sentinels}/mymaster?sentinel_password=sentinel-pw"),
            "refuses the credentials",
        ),
    ] {
        let error = ops(&bad, &["status"]).failed("a wrong password");
        assert!(error.contains(says), "{bad}: {error}");
        for secret in ["Wr0ng", "sentinel-pw", "relay-pw"] {
            assert!(!error.contains(secret), "{bad}: {error}");
        }
    }
    // A producer given the wrong sentinel password answers 503, and /ready says why.
    let refused = Producer::start(
        &format!("redis+sentinel://relay:relay-pw@{sentinels}/mymaster?sentinel_password=Wr0ngSentinelPw"),
        &[],
    )
    .await;
    let response = support::post(&format!("{}/write?db=db0", refused.url), body(1)).await;
    assert_eq!(response.status(), 503);
    let (code, ready) = support::ready(&refused.url).await;
    assert_eq!(code, 503, "{ready}");
    let why = ready["checks"][0]["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("the sentinels refuse the credentials"),
        "{ready}"
    );
    assert!(!why.contains("Wr0ng"), "{ready}");

    let error = ops(
        &format!("redis+sentinel://relay:Wr0ngMasterPw@{sentinels}/mymaster?sentinel_password=sentinel-pw"),
        &["status"],
    )
    .failed("a wrong master password");
    assert!(
        error.contains(&format!(
            "the master the sentinels name, {master}, refuses the credentials"
        )),
        "{error}"
    );

    // No password in the logs, nor in `config check`, which masks both.
    for (what, logs) in [
        ("producer", producer.guard.logs()),
        ("consumer", consumer.logs()),
    ] {
        for secret in ["relay-pw", "sentinel-pw", "node-admin-pw"] {
            assert!(!logs.contains(secret), "{what} logged {secret}:\n{logs}");
        }
    }
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = support::redline()
        .env("REDLINE_REDIS_URL", &url)
        .args(["config", "check"])
        .arg(empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "redis+sentinel://relay:***@{sentinels}/mymaster?sentinel_password=***"
        )),
        "{stdout}"
    );
}
