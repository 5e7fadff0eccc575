//! What an operator does by hand: hand entries to a live consumer, move a group back,
//! replay dead letters, meet what another program left in the stream.

use std::time::Duration;

use redline_testkit::{wait_until, ChildGuard, RedisServer};

use crate::ops::{held_entries, ops};
use crate::support::{self, dead_letters, line_count, redline, GROUP, STREAM};

#[tokio::test(flavor = "multi_thread")]
async fn entries_claimed_for_a_live_consumer_are_delivered_without_waiting_for_min_idle() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    // c1 and c2 are gone, holding 6 and 4 entries.
    held_entries(&mut conn, 10, 6, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.lp");
    // A live consumer that would claim them by itself only after an hour.
    let live = ChildGuard::spawn(
        "live",
        redline()
            .args([
                "consumer",
                "--redis-url",
                &redis.url(),
                "--consumer",
                "live",
            ])
            .args(["--sink", "file", "--file"])
            .arg(&out)
            .args(["--min-idle", "1h", "--trim-interval", "500ms"]),
    );
    wait_until(
        "the live consumer joined",
        Duration::from_secs(15),
        || async {
            ops(&redis.url(), &["consumers", "--json"])
                .json()
                .to_string()
                .contains("live")
        },
    )
    .await;

    let moved = ops(
        &redis.url(),
        &["claim", "--group", GROUP, "--to", "live", "--json"],
    )
    .json();
    assert_eq!(moved["moved"], 10, "{moved}");
    wait_until(
        "the 10 entries written",
        Duration::from_secs(10),
        || async { line_count(&out) == 10 },
    )
    .await;
    support::wait_nothing_pending(&conn).await;
    assert!(dead_letters(&mut conn).await.is_empty(), "{}", live.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn trim_keeps_what_a_group_moved_back_will_read_again() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    // c1 holds entries 0..6 and c2 entries 6..10; the rest of the group's reads were acked
    // (here: none beyond), then the operator moves the group back to the start to re-read.
    let ids = held_entries(&mut conn, 20, 6, 4).await;
    let _: u64 = redis::cmd("XACK")
        .arg(STREAM)
        .arg(GROUP)
        .arg(&ids[..3])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();

    let report = ops(&redis.url(), &["trim", "--json"]).json();
    assert_eq!(report["removed"], 0, "{report}");
    assert_eq!(report["streams"][0]["limiting_group"], GROUP, "{report}");
    assert_eq!(report["streams"][0]["minid"], ids[0].as_str(), "{report}");
    assert_eq!(support::xlen(&mut conn, STREAM).await, 20);
}
