//! Reads whose answer is lost: the entries Redis handed over stay pending for this consumer,
//! and only its re-read of its own pending entries can bring them back before `min_idle`.

use std::time::Duration;

use redline_testkit::{wait_for, wait_until, RedisServer};

use crate::support::{
    config, file_lines, file_sink, line, wait_nothing_pending, Consumer, GROUP, PATIENCE, STREAM,
};

/// One row of `XPENDING key group - + count consumer`: id, consumer, idle ms, deliveries.
type PendingRow = (String, String, u64, u64);

/// The id of the client blocked in `XREADGROUP`, from `CLIENT LIST`.
async fn blocked_reader(conn: &mut redis::aio::MultiplexedConnection) -> Option<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .find(|client| {
            let fields: Vec<&str> = client.split(' ').collect();
            fields.contains(&"flags=b") && fields.contains(&"cmd=xreadgroup")
        })
        .and_then(|client| client.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(|id| id.parse().expect("a client id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_a_killed_read_took_are_reread_at_once_without_a_claim() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lp");
    // No claim and no periodic re-read for an hour: only the re-read after the read error
    // can deliver within the test. A long flush interval keeps the read blocked.
    let consumer = Consumer::start(redline_consumer::Config {
        min_idle: Duration::from_secs(3600),
        trim_interval: Duration::from_secs(3600),
        flush_interval: Duration::from_secs(5),
        ..config(&redis, "c1", file_sink(&path))
    });
    let reader = wait_for("the consumer blocked in XREADGROUP", PATIENCE, || {
        let mut conn = conn.clone();
        async move { blocked_reader(&mut conn).await }
    })
    .await;

    // In one go: ten entries (MULTI: the blocked read is served once, after EXEC, with all
    // ten), the proof they were handed to c1, and the kill of its connection before Redis
    // writes the answer (replies go out after the whole pipeline is processed).
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI").ignore();
    for i in 0..10 {
        pipe.cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("lp")
            .arg(line("cpu", i))
            .ignore();
    }
    pipe.cmd("EXEC");
    pipe.cmd("XPENDING")
        .arg(STREAM)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(100)
        .arg("c1");
    pipe.cmd("CLIENT").arg("KILL").arg("ID").arg(reader);
    let (ids, handed, killed): (Vec<String>, Vec<PendingRow>, u64) =
        pipe.query_async(&mut conn).await.unwrap();
    assert_eq!(ids.len(), 10);
    assert_eq!(handed.len(), 10, "the blocked read took the ten entries");
    assert_eq!(killed, 1);

    // The read failed; the next one re-reads c1's own pending entries: delivered in seconds.
    wait_until("the ten lines", Duration::from_secs(10), || async {
        file_lines(&path).len() >= 10
    })
    .await;
    wait_nothing_pending(&conn).await;
    consumer.stop().await;
    let expected: Vec<String> = (0..10).map(|i| line("cpu", i)).collect();
    assert_eq!(file_lines(&path), expected, "each written once");
}
