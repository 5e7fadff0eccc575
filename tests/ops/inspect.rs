//! Where are my metrics and who holds them: `status` and `pending`, checked against
//! `XINFO` / `XPENDING`, and their tables against snapshots.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoGroupsReply, StreamPendingReply};
use redline_testkit::{free_port, wait_until, ChildGuard, RedisServer};
use serde_json::Value;

use super::{ids_of, ops, row, xinfo_consumers, xlen, xpending, xpending_summary, DLQ};
use crate::snapshot::{assert_snapshot, normalise};
use crate::support::{client, consumer, lines, redline, Producer, GROUP, STREAM};

/// How many entries `consumer` holds, per `XPENDING`; 0 before the group exists.
async fn held_by(conn: &mut MultiplexedConnection, consumer: &str) -> u64 {
    let reply: redis::RedisResult<StreamPendingReply> = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg(GROUP)
        .query_async(conn)
        .await;
    match reply {
        Ok(StreamPendingReply::Data(data)) => data
            .consumers
            .iter()
            .find(|c| c.name == consumer)
            .map_or(0, |c| c.pending as u64),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_pending_report_what_redis_reports_after_consumers_are_killed() {
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let producer = Producer::start(&url, &[]).await;
    // InfluxDB is down (nothing listens on this port): each consumer keeps its first batch
    // pending, retrying, and reads nothing more.
    let influx_down = format!("http://127.0.0.1:{}", free_port());
    let response = client()
        .post(format!("{}/write?db=db0", producer.url))
        .body(lines(0, 200))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let mut conn = redis.conn().await;
    let args = ["--batch-size", "50"];
    let mut consumers = Vec::new();
    for name in ["c1", "c2"] {
        consumers.push(consumer(&url, &influx_down, name, &args));
        wait_until(
            &format!("{name} holds a batch of 50"),
            Duration::from_secs(10),
            || {
                let mut conn = conn.clone();
                async move { held_by(&mut conn, name).await == 50 }
            },
        )
        .await;
    }
    for mut c in consumers {
        c.sigkill();
    }

    // What Redis says, once nothing can change it any more.
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(STREAM)
        .query_async(&mut conn)
        .await
        .unwrap();
    let [group] = groups.groups.as_slice() else {
        panic!("one group expected: {groups:?}");
    };
    let (count, oldest, per_consumer) = xpending_summary(&mut conn).await;
    let entries = xpending(&mut conn).await;
    let xinfo = xinfo_consumers(&mut conn).await;
    let expected: BTreeMap<String, u64> = [("c1".into(), 50), ("c2".into(), 50)].into();
    assert_eq!(per_consumer, expected);
    assert_eq!(xinfo, expected);
    assert_eq!(
        (count, group.pending as u64, entries.len()),
        (100, 100, 100)
    );
    assert_eq!(group.lag, Some(100));

    let status = ops(&url, &["status", "--json"]).json();
    let stream = &status["streams"][0];
    assert_eq!(status["streams"].as_array().unwrap().len(), 1);
    assert_eq!(stream["key"], STREAM);
    assert_eq!(stream["length"], xlen(&mut conn, STREAM).await);
    assert_eq!(stream["length"], 200);
    let g = &stream["groups"][0];
    assert_eq!(stream["groups"].as_array().unwrap().len(), 1);
    assert_eq!(g["name"], GROUP);
    assert_eq!(g["consumers"], group.consumers as u64);
    assert_eq!(g["consumers"], 2);
    assert_eq!(g["pending"], count);
    assert_eq!(g["lag"], group.lag.unwrap() as u64);
    assert_eq!(g["last_delivered_id"], group.last_delivered_id.as_str());
    assert_eq!(g["entries_read"], group.entries_read.unwrap() as u64);
    assert_eq!(g["oldest_pending_id"], oldest.as_str());
    assert_eq!(status["dlq_length"], 0);

    // Every pending entry, its owner and delivery count, exactly as XPENDING lists them.
    let pending = ops(&url, &["pending", "--json", "--count", "1000"]).json();
    let listed: Vec<(String, String, u64)> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!((&e["stream"], &e["group"]), (&STREAM.into(), &GROUP.into()));
            (
                e["id"].as_str().unwrap().to_owned(),
                e["consumer"].as_str().unwrap().to_owned(),
                e["deliveries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, entries);
    let mut counted = BTreeMap::new();
    for (_, consumer, _) in &listed {
        *counted.entry(consumer.clone()).or_insert(0) += 1;
    }
    assert_eq!(counted, expected);

    // The filters select exactly what XPENDING selects.
    let c1 = ops(&url, &["pending", "--json", "--consumer", "c1"]).json();
    let c1_ids: Vec<String> = entries
        .iter()
        .filter(|(_, c, _)| c == "c1")
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(ids_of(&c1), c1_ids);
    let first7 = ops(&url, &["pending", "--json", "--count", "7"]).json();
    let first7_ids: Vec<String> = entries.iter().take(7).map(|(id, ..)| id.clone()).collect();
    assert_eq!(ids_of(&first7), first7_ids);
    let idle = ops(&url, &["pending", "--json", "--min-idle", "1h"]).json();
    assert_eq!(idle, serde_json::json!([]));

    // The tables name the stream, the group and each consumer, with the same counts.
    let table = ops(&url, &["status"]).ok();
    let stream_row = row(&table, &[STREAM]);
    assert_eq!(stream_row[1], "200", "{table}");
    let group_row = row(&table, &[STREAM, GROUP]);
    assert_eq!(&group_row[2..5], ["2", "100", "100"], "{table}");
    assert_eq!(group_row.last(), Some(&group.last_delivered_id.as_str()));
    assert!(
        table.contains(&format!("dead letters ({DLQ}): 0")),
        "{table}"
    );
    let table = ops(&url, &["pending"]).ok();
    for name in ["c1", "c2"] {
        let oldest = &entries.iter().find(|(_, c, _)| c == name).unwrap().0;
        let cells = row(&table, &[STREAM, GROUP, name]);
        assert_eq!(&cells[3..5], ["50", oldest.as_str()], "{table}");
    }
    let listed_rows = table
        .lines()
        .filter(|line| entries.iter().any(|(id, ..)| line.starts_with(id.as_str())))
        .count();
    assert_eq!(listed_rows, 100, "{table}");
    assert!(!table.contains("more entries match"), "{table}");
    let table = ops(&url, &["pending", "--count", "99"]).ok();
    assert!(
        table.ends_with("(more entries match; raise --count to list them)\n"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_pending_tables_match_their_snapshots() {
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let mut conn = redis.conn().await;
    // A fixed history: explicit ids and lines, so only ages, idle times and memory vary.
    for i in 0..8 {
        let _: String = redis::cmd("XADD")
            .arg(STREAM)
            .arg(format!("1700000000000-{i}"))
            .arg("lp")
            .arg(format!(
                "cpu,host=web-{i} usage_idle=9{i}.5 170000000000000000{i}"
            ))
            .arg("db")
            .arg("telegraf")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for group in [GROUP, "archive"] {
        let () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(STREAM)
            .arg(group)
            .arg("0")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // `redline`: web-1 holds three entries, web-2 two, three were never read.
    // `archive`: read and acknowledged everything.
    for (group, consumer, count) in [
        (GROUP, "web-1", 3),
        (GROUP, "web-2", 2),
        ("archive", "a-1", 8),
    ] {
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(">")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let ids: Vec<String> = (0..8).map(|i| format!("1700000000000-{i}")).collect();
    let _: u64 = redis::cmd("XACK")
        .arg(STREAM)
        .arg("archive")
        .arg(&ids)
        .query_async(&mut conn)
        .await
        .unwrap();
    for i in 0..2 {
        let _: String = redis::cmd("XADD")
            .arg(DLQ)
            .arg(format!("1700000100000-{i}"))
            .arg("lp")
            .arg(format!(
                "cpu,host=web-9 usage_idle=\"n/a\" 170000000000000000{i}"
            ))
            .arg("reason")
            .arg("field type conflict")
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    assert_snapshot("status", &normalise(&ops(&url, &["status"]).ok()));
    assert_snapshot("pending", &normalise(&ops(&url, &["pending"]).ok()));
    assert_snapshot(
        "pending_show",
        &normalise(&ops(&url, &["pending", "--consumer", "web-2", "--show"]).ok()),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_watch_json_prints_one_object_per_refresh() {
    let redis = RedisServer::start(&[]);
    let mut watch = ChildGuard::spawn(
        "status --watch",
        redline().args([
            "status",
            "--json",
            "--watch",
            "100ms",
            "--redis-url",
            &redis.url(),
        ]),
    );
    wait_until("three refreshes", Duration::from_secs(10), || {
        let lines = watch.stdout().lines().count();
        async move { lines >= 3 }
    })
    .await;
    let stdout = watch.stdout();
    for line in stdout.lines().filter(|l| !l.is_empty()) {
        let report: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\n{stdout}"));
        assert_eq!(report["streams"][0]["key"], STREAM);
        assert_eq!(report["dlq_length"], 0);
    }
    assert!(watch.is_running(), "{}", watch.logs());
}
