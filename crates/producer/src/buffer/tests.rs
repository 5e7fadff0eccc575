//! `Buffer::admit` and `drop_oldest` against a real `redis-server`: what fits, what is
//! refused and with which figures, what `drop_oldest` removes and counts, and that a
//! backlog acknowledged meanwhile is measured again.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redline_testkit::RedisServer;

use super::*;

const GROUP: &str = "g";

/// `n` entries added to `key`.
async fn add(conn: &mut MultiplexedConnection, key: &str, n: usize) -> Vec<String> {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("lp")
            .arg(format!("m v={i}i {i}"));
    }
    pipe.query_async(conn).await.unwrap()
}

/// Creates `GROUP` on `key` at the start of the stream.
async fn group(conn: &mut MultiplexedConnection, key: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", key, GROUP, "0", "MKSTREAM"])
        .query_async(conn)
        .await
        .unwrap();
}

/// Reads and acks the first `n` entries of `key` in `GROUP`.
async fn consume(conn: &mut MultiplexedConnection, key: &str, n: usize) {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg(&["GROUP", GROUP, "c", "COUNT"])
        .arg(n)
        .arg(&["STREAMS", key, ">"])
        .query_async(conn)
        .await
        .unwrap();
    let ids: Vec<String> = reply.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), n);
    let acked: u64 = redis::cmd("XACK")
        .arg(key)
        .arg(GROUP)
        .arg(&ids)
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(acked, n as u64);
}

/// The keys of stream `m` in two partitions, each with `GROUP`; and the two partition keys.
async fn two_partitions(conn: &mut MultiplexedConnection) -> (StreamKeys, String, String) {
    let keys = StreamKeys::new("m", 2);
    let (p0, p1) = (keys.partition(0).to_string(), keys.partition(1).to_string());
    group(conn, &p0).await;
    group(conn, &p1).await;
    (keys, p0, p1)
}

async fn xlen(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

fn full(result: Result<(), Full>) -> (u64, u64) {
    let full = result.expect_err("the request must be refused");
    (full.backlog, full.limit)
}

#[tokio::test]
async fn without_a_limit_everything_fits_and_redis_is_not_asked() {
    let buffer = Buffer::new(0, BufferFull::Block, StreamKeys::new("m", 1));
    assert!(!buffer.is_limited());
    assert_eq!(buffer.largest_request(), None);
    // A connection to a Redis that is gone: asking it would fail.
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    drop(redis);
    assert!(buffer.admit(&mut conn, &[1_000_000]).await.unwrap().is_ok());
}

#[tokio::test]
async fn block_admits_up_to_the_limit_exactly_and_refuses_the_entry_beyond() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    group(&mut conn, "m").await;
    add(&mut conn, "m", 8).await;
    let buffer = Buffer::new(10, BufferFull::Block, StreamKeys::new("m", 1));
    assert_eq!(buffer.largest_request(), Some(10));
    assert_eq!(full(buffer.admit(&mut conn, &[3]).await.unwrap()), (8, 10));
    // 8 + 2 = 10: fits exactly, and counts towards the next request at once.
    assert!(buffer.admit(&mut conn, &[2]).await.unwrap().is_ok());
    assert_eq!(full(buffer.admit(&mut conn, &[1]).await.unwrap()), (10, 10));
    // Refusing stores and removes nothing.
    assert_eq!(xlen(&mut conn, "m").await, 8);
}

#[tokio::test]
async fn the_backlog_counts_only_what_the_slowest_group_has_not_acknowledged() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    group(&mut conn, "m").await;
    add(&mut conn, "m", 10).await;
    consume(&mut conn, "m", 6).await;
    let buffer = Buffer::new(10, BufferFull::Block, StreamKeys::new("m", 1));
    assert!(buffer.admit(&mut conn, &[6]).await.unwrap().is_ok());
    assert_eq!(full(buffer.admit(&mut conn, &[1]).await.unwrap()), (10, 10));
}

#[tokio::test]
async fn a_backlog_acknowledged_meanwhile_is_measured_again() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    group(&mut conn, "m").await;
    add(&mut conn, "m", 10).await;
    let buffer = Buffer::new(10, BufferFull::Block, StreamKeys::new("m", 1));
    assert_eq!(full(buffer.admit(&mut conn, &[1]).await.unwrap()), (10, 10));
    consume(&mut conn, "m", 10).await;
    let mut admitted = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !admitted && Instant::now() < deadline {
        admitted = buffer.admit(&mut conn, &[1]).await.unwrap().is_ok();
        tokio::time::sleep(REFRESH / 4).await;
    }
    assert!(
        admitted,
        "the acknowledged backlog was never measured again"
    );
}

#[tokio::test]
async fn drop_oldest_keeps_each_partitions_share_minus_what_arrives() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let (keys, p0, p1) = two_partitions(&mut conn).await;
    let ids = add(&mut conn, &p0, 8).await;
    add(&mut conn, &p1, 4).await;
    // Share per partition: 10 / 2 = 5. Partition 0 gets 3 new entries: it keeps its newest
    // 2; partition 1 (4 + 0 ≤ 5) keeps all.
    let buffer = Buffer::new(10, BufferFull::DropOldest, keys.clone());
    assert_eq!(buffer.largest_request(), None);
    assert!(buffer.admit(&mut conn, &[3, 0]).await.unwrap().is_ok());
    let kept: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&p0)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let kept: Vec<&str> = kept.ids.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(kept, [ids[6].as_str(), ids[7].as_str()]);
    assert_eq!(xlen(&mut conn, &p1).await, 4);
    // The writer stores them: 5 + 4 waiting. Two more for partition 1 (9 + 2 > 10): it keeps
    // 5 - 2 = 3, partition 0 (5 + 0 ≤ 5) all of its 5.
    add(&mut conn, &p0, 3).await;
    assert!(buffer.admit(&mut conn, &[0, 2]).await.unwrap().is_ok());
    assert_eq!(xlen(&mut conn, &p0).await, 5);
    assert_eq!(xlen(&mut conn, &p1).await, 3);
}

#[tokio::test]
async fn drop_oldest_leaves_a_partition_within_its_share_untouched() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let (keys, p0, p1) = two_partitions(&mut conn).await;
    add(&mut conn, &p0, 7).await;
    // Partition 1: 10 entries, 5 acknowledged, so exactly its share (10 / 2) is waiting. The
    // acknowledged entries are the trimmer's to remove, not the buffer's.
    add(&mut conn, &p1, 10).await;
    consume(&mut conn, &p1, 5).await;
    let buffer = Buffer::new(10, BufferFull::DropOldest, keys.clone());
    // 7 + 5 + 1 > 10: partition 0 keeps 5 − 1 = 4; partition 1 is left as it is.
    assert!(buffer.admit(&mut conn, &[1, 0]).await.unwrap().is_ok());
    assert_eq!(xlen(&mut conn, &p0).await, 4);
    assert_eq!(xlen(&mut conn, &p1).await, 10);
}

#[test]
fn the_policy_is_read_from_its_name() {
    assert_eq!("block".parse::<BufferFull>(), Ok(BufferFull::Block));
    assert_eq!(
        "drop_oldest".parse::<BufferFull>(),
        Ok(BufferFull::DropOldest)
    );
    assert_eq!(
        "drop-oldest".parse::<BufferFull>(),
        Ok(BufferFull::DropOldest)
    );
    assert!("drop".parse::<BufferFull>().is_err());
}

#[tokio::test]
async fn drop_oldest_counts_only_entries_no_group_had_acknowledged() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    group(&mut conn, "m").await;
    add(&mut conn, "m", 10).await;
    consume(&mut conn, "m", 4).await;
    // 10 entries, 4 acked: keeping 2 removes 8, of which 4 were still waiting.
    assert_eq!(drop_oldest(&mut conn, "m", 2).await.unwrap(), 4);
    assert_eq!(xlen(&mut conn, "m").await, 2);
    // Nothing to remove: nothing counted.
    assert_eq!(drop_oldest(&mut conn, "m", 5).await.unwrap(), 0);
}
