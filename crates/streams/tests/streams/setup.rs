//! Plain Redis commands that put a stream in a known state.

use redis::aio::MultiplexedConnection;
use redis::Value;

/// `XADD key * lp <lp>`; returns the id.
pub(crate) async fn add(conn: &mut MultiplexedConnection, key: &str, lp: &str) -> String {
    redis::cmd("XADD")
        .arg(key)
        .arg("*")
        .arg("lp")
        .arg(lp)
        .query_async(conn)
        .await
        .unwrap()
}

/// Adds `n` metrics `m,i=<i> v=<i>i <i>` and returns their ids.
pub(crate) async fn add_n(conn: &mut MultiplexedConnection, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(add(conn, key, &format!("m,i={i} v={i}i {i}")).await);
    }
    ids
}

/// `XGROUP CREATE key group <start> MKSTREAM`.
pub(crate) async fn group(conn: &mut MultiplexedConnection, key: &str, group: &str, start: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .unwrap();
}

/// `XREADGROUP GROUP group consumer COUNT n STREAMS key >` without acking; returns the ids.
pub(crate) async fn read(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
    consumer: &str,
    n: usize,
) -> Vec<String> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|id| id.id)
        .collect()
}

/// `XACK key group ids…`.
pub(crate) async fn ack(conn: &mut MultiplexedConnection, key: &str, group: &str, ids: &[String]) {
    let _: u64 = redis::cmd("XACK")
        .arg(key)
        .arg(group)
        .arg(ids)
        .query_async(conn)
        .await
        .unwrap();
}

/// Makes pending entry `id` look idle for `idle_ms` without changing its owner or its
/// delivery count (`XCLAIM … IDLE … JUSTID`), so tests need not wait.
pub(crate) async fn age(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
    owner: &str,
    id: &str,
    idle_ms: u64,
) {
    let _: Value = redis::cmd("XCLAIM")
        .arg(key)
        .arg(group)
        .arg(owner)
        .arg(0)
        .arg(id)
        .arg("IDLE")
        .arg(idle_ms)
        .arg("JUSTID")
        .query_async(conn)
        .await
        .unwrap();
}

/// One row of the extended `XPENDING`: (id, consumer, idle ms, deliveries).
pub(crate) type PendingRow = (String, String, u64, u64);

/// Every pending entry of `group` per `XPENDING key group - + 10000`.
pub(crate) async fn xpending(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
) -> Vec<PendingRow> {
    redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(conn)
        .await
        .unwrap()
}

/// Every id in the stream.
pub(crate) async fn ids(conn: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply.ids.into_iter().map(|id| id.id).collect()
}

/// `XLEN key`.
pub(crate) async fn len(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

/// `XINFO GROUPS key` as field maps.
pub(crate) async fn xinfo_groups(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Vec<std::collections::HashMap<String, Value>> {
    redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// A field of an `XINFO` map as an integer, `None` for nil.
pub(crate) fn int(map: &std::collections::HashMap<String, Value>, field: &str) -> Option<u64> {
    match map.get(field) {
        Some(Value::Int(i)) => Some(*i as u64),
        _ => None,
    }
}
