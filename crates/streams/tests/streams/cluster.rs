//! Every ops command against a 3-master Redis Cluster, through [`redline_streams::connect`]:
//! none may send a command that crosses slots, and replay falls back from its two-key script
//! to XADD then XDEL.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redline_core::keys::StreamKeys;
use redline_core::redis::RedisConfig;
use redline_core::series;
use redline_streams::{
    claim, connect, consumers, dlq_list, dlq_replay, pending, status, trim, PendingFilter,
};
use redline_testkit::RedisCluster;

const LINES: [&str; 3] = [
    "cpu,host=a usage=1 1",
    "mem,host=b used=2i 2",
    "disk,host=c,path=/ free=3i 3",
];

async fn xlen<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_on_a_cluster_and_replay_moves_each_letter_once() {
    let mut cluster = RedisCluster::start(3, 0, &[]);
    let keys = StreamKeys::new("rl", 4);
    let mut conn = connect(&RedisConfig {
        url: cluster.seed(),
        cluster: true,
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    assert!(conn.is_cluster());
    let masters: std::collections::BTreeSet<u16> = keys
        .partitions()
        .iter()
        .map(|key| cluster.master_of(key))
        .collect();
    assert!(masters.len() >= 2, "{masters:?}");

    // A group on every partition; two entries read by c1 on each, one acknowledged.
    for key in keys.partitions() {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        for i in 0..2 {
            redis::cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("lp")
                .arg(format!("m v={i}i {i}"))
                .query_async::<String>(&mut conn)
                .await
                .unwrap();
        }
        let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c1")
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(&mut conn)
            .await
            .unwrap();
        let first = &read.keys[0].ids[0].id;
        redis::cmd("XACK")
            .arg(key)
            .arg("g")
            .arg(first)
            .query_async::<u64>(&mut conn)
            .await
            .unwrap();
    }
    for lp in LINES {
        redis::cmd("XADD")
            .arg(keys.dlq())
            .arg("*")
            .arg(&[("lp", lp), ("db", "telegraf"), ("reason", "rejected")])
            .query_async::<String>(&mut conn)
            .await
            .unwrap();
    }

    let report = status(&mut conn, &keys).await.unwrap();
    assert_eq!(report.streams.len(), 4);
    assert!(report
        .streams
        .iter()
        .all(|s| s.length == 2 && s.groups[0].pending == 1 && s.groups[0].lag == Some(0)));
    assert_eq!(report.dlq_length, 3);

    let held = pending(&mut conn, &keys, &PendingFilter::default())
        .await
        .unwrap();
    assert_eq!(held.entries.len(), 4);
    let moved = claim(&mut conn, &keys, "g", "c2", Duration::ZERO, &[], None)
        .await
        .unwrap();
    assert_eq!(moved.moved, 4);
    let listed = consumers(&mut conn, &keys, Some("g"), None).await.unwrap();
    assert_eq!(listed.consumers.len(), 8, "c1 and c2 on each partition");
    let trimmed = trim(&mut conn, &keys, false).await.unwrap();
    assert_eq!(
        trimmed.removed, 4,
        "the acknowledged entry of each partition"
    );

    assert_eq!(dlq_list(&mut conn, &keys, 10).await.unwrap().length, 3);
    let replay = dlq_replay(&mut conn, &keys, None, |_, _| {}).await.unwrap();
    assert_eq!(replay.replayed, 3);
    assert!(replay.failed.is_empty(), "{:?}", replay.failed);
    assert_eq!(xlen(&mut conn, &keys.dlq()).await, 0);
    for lp in LINES {
        let key = keys.partition(series::partition(series::key_of_line(lp), 4));
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let found = entries
            .ids
            .iter()
            .filter(|e| e.get::<String>("lp").as_deref() == Some(lp))
            .count();
        assert_eq!(found, 1, "{lp} replayed once into {key}");
    }
}
