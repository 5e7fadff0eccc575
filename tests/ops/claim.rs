//! Getting metrics moving again: `claim` hands entries over, `consumers --prune-idle`
//! removes consumers that are gone and hold nothing.

use std::time::Duration;

use redis::streams::StreamInfoConsumersReply;
use redline_testkit::{wait_until, RedisServer};
use serde_json::Value;

use super::{held_entries, ops, row, xinfo_consumers, xpending};
use crate::support::{GROUP, STREAM};

#[tokio::test(flavor = "multi_thread")]
async fn claim_moves_exactly_the_pending_entries_matching_the_filters() {
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let mut conn = redis.conn().await;
    let ids = held_entries(&mut conn, 10, 6, 4).await;
    let acked: u64 = redis::cmd("XACK")
        .arg(STREAM)
        .arg(GROUP)
        .arg(&ids[9])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(acked, 1);
    // c1's first three entries have been idle for ten minutes: XCLAIM to their own owner
    // with IDLE sets that without moving them or counting a delivery.
    let _: Vec<String> = redis::cmd("XCLAIM")
        .arg(STREAM)
        .arg(GROUP)
        .arg("c1")
        .arg(0)
        .arg(&ids[0..3])
        .arg("IDLE")
        .arg(600_000)
        .arg("JUSTID")
        .query_async(&mut conn)
        .await
        .unwrap();
    let owners = |pending: Vec<(String, String, u64)>| -> Vec<(String, String)> {
        pending
            .into_iter()
            .map(|(id, consumer, deliveries)| {
                assert_eq!(deliveries, 1, "a claim is not a delivery: {id}");
                (id, consumer)
            })
            .collect()
    };
    // Owners of ids[0..9], in id order; ids[9] was acked and is pending nowhere.
    let expect = |owners: &[&str]| -> Vec<(String, String)> {
        ids.iter()
            .cloned()
            .zip(owners.iter().map(|o| o.to_string()))
            .collect()
    };

    // --min-idle: only the three idle entries move.
    let report = ops(
        &url,
        &[
            "claim",
            "--group",
            GROUP,
            "--to",
            "c3",
            "--min-idle",
            "5m",
            "--json",
        ],
    )
    .json();
    assert_eq!(report["moved"], 3);
    let claimed: Vec<&str> = report["claimed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        claimed,
        ids[0..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(report["not_claimed"], serde_json::json!([]));
    assert_eq!(
        owners(xpending(&mut conn).await),
        expect(&["c3", "c3", "c3", "c1", "c1", "c1", "c2", "c2", "c2"])
    );

    // --id: exactly the ids named that are pending; an acked one is reported, not moved,
    // and the command fails (exit 1) saying so.
    let run = ops(
        &url,
        &[
            "claim", "--group", GROUP, "--to", "c4", "--id", &ids[6], "--id", &ids[7], "--id",
            &ids[9],
        ],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(
        run.stderr,
        format!(
            "redline: error: 1 of the ids asked for were not moved: {}\n",
            ids[9]
        )
    );
    assert_eq!(
        run.stdout,
        format!(
            "moved 2 entries to consumer 'c4' of group 'redline'\n\
             not moved (not pending in the group, or not idle long enough): {}\n",
            ids[9]
        )
    );
    assert_eq!(
        owners(xpending(&mut conn).await),
        expect(&["c3", "c3", "c3", "c1", "c1", "c1", "c4", "c4", "c2"])
    );

    // --id with --min-idle: a named entry that is not idle long enough stays.
    let report = ops(
        &url,
        &[
            "claim",
            "--group",
            GROUP,
            "--to",
            "c4",
            "--id",
            &ids[3],
            "--min-idle",
            "5m",
            "--json",
        ],
    );
    assert_eq!(report.code, Some(1), "{}", report.stderr);
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(report["moved"], 0);
    assert_eq!(report["not_claimed"], serde_json::json!([ids[3]]));
    assert_eq!(
        owners(xpending(&mut conn).await),
        expect(&["c3", "c3", "c3", "c1", "c1", "c1", "c4", "c4", "c2"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_prune_idle_removes_only_idle_consumers_holding_nothing() {
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let mut conn = redis.conn().await;
    held_entries(&mut conn, 2, 0, 2).await; // c2 holds two entries; c1 holds nothing
                                            // Consumer idle time cannot be set, only waited for.
    wait_until("c1 and c2 idle for 3 s", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move {
            let reply: StreamInfoConsumersReply = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(STREAM)
                .arg(GROUP)
                .query_async(&mut conn)
                .await
                .unwrap();
            reply.consumers.iter().all(|c| c.idle >= 3_000)
        }
    })
    .await;
    let created: u64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(STREAM)
        .arg(GROUP)
        .arg("c3")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(created, 1);

    let report = ops(
        &url,
        &[
            "consumers",
            "--group",
            GROUP,
            "--prune-idle",
            "3s",
            "--json",
        ],
    )
    .json();
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&report["removed"]), ["c1"], "idle and empty");
    assert_eq!(
        names(&report["consumers"]),
        ["c2", "c3"],
        "holding / active"
    );
    assert_eq!(report["consumers"][0]["pending"], 2);
    let left = xinfo_consumers(&mut conn).await;
    assert_eq!(left, [("c2".into(), 2), ("c3".into(), 0)].into());

    let table = ops(&url, &["consumers"]).ok();
    assert_eq!(&row(&table, &[STREAM, GROUP, "c2"])[3], &"2", "{table}");
    assert_eq!(&row(&table, &[STREAM, GROUP, "c3"])[3], &"0", "{table}");
    assert!(!table.contains("c1"), "{table}");
}
