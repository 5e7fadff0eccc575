//! Dead letters made by real InfluxDB field type conflicts: list, show, replay once the
//! cause is fixed, purge.

use std::collections::BTreeSet;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redline_testkit::{wait_until, ChildGuard, InfluxServer, RedisServer};

use super::{ids_of, ops, row, xlen, xpending_summary, DLQ, T};
use crate::support::{self, client, consumer, Producer, GROUP, STREAM};

/// Posts `body` to the producer's `/write?db=db0` and expects a 204.
async fn write(producer: &Producer, body: String) {
    let response = client()
        .post(format!("{}/write?db=db0", producer.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

/// Waits until the dead-letter stream holds `n` letters and the group nothing pending.
async fn wait_for_letters(conn: &MultiplexedConnection, n: u64) {
    wait_until(
        &format!("{n} dead letters and nothing pending"),
        Duration::from_secs(30),
        || {
            let mut conn = conn.clone();
            async move {
                xlen(&mut conn, DLQ).await == n && xpending_summary(&mut conn).await.0 == 0
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_from_type_conflicts_are_listed_replayed_once_fixed_and_purged() {
    let redis = RedisServer::start(&[]);
    let influx = InfluxServer::start();
    let url = redis.url();
    let producer = Producer::start(&url, &[]).await;
    let _consumer: ChildGuard = consumer(&url, &influx.url(), "c1", &["--batch-size", "100"]);
    let mut conn = redis.conn().await;

    // `v` is an integer field of `m` in this shard...
    let ints = |from: i64, n: i64| -> String {
        (from..from + n)
            .map(|i| format!("m,host=h{} v={i}i {}\n", i % 3, T + i))
            .collect()
    };
    write(&producer, ints(0, 20)).await;
    support::wait_for_count(&influx, "db0", 20, Duration::from_secs(30)).await;
    // ...so these five strings conflict, while the integers around them are written.
    let bad: Vec<String> = (0..5)
        .map(|i| format!("m,host=bad v=\"str{i}\" {}", T + 100 + i))
        .collect();
    let mut body = ints(20, 10);
    for line in &bad {
        body.push_str(line);
        body.push('\n');
    }
    write(&producer, body).await;
    wait_for_letters(&conn, 5).await;
    support::wait_for_count(&influx, "db0", 30, Duration::from_secs(10)).await;

    let letters = ops(&url, &["dlq", "list", "--json"]).json();
    let letters = letters.as_array().unwrap();
    let listed: BTreeSet<&str> = letters.iter().map(|l| l["lp"].as_str().unwrap()).collect();
    assert_eq!(listed, bad.iter().map(String::as_str).collect());
    for letter in letters {
        assert_eq!(letter["db"], "db0");
        assert!(letter["deliveries"].as_u64().unwrap() >= 1, "{letter}");
        let reason = letter["reason"].as_str().unwrap();
        assert!(
            reason.contains(
                "field type conflict: input field \"v\" on measurement \"m\" is type string, \
                 already exists as type integer"
            ),
            "{reason}"
        );
    }
    let table = ops(&url, &["dlq", "list"]).ok();
    assert!(
        table.starts_with(&format!("5 dead letters in {DLQ}\n")),
        "{table}"
    );
    for letter in letters {
        let cells = row(&table, &[letter["id"].as_str().unwrap()]);
        assert_eq!(cells[2], "db0", "{table}");
        assert!(
            cells[3..].join(" ").contains("field type conflict"),
            "{table}"
        );
    }
    let first = letters[0]["id"].as_str().unwrap();
    let shown = ops(&url, &["dlq", "show", first, "--json"]).json();
    assert_eq!(&shown, &letters[0]);
    assert_eq!(shown["source_stream"], STREAM);
    assert_eq!(shown["group"], GROUP);
    assert_eq!(shown["consumer"], "c1");

    // The cause is fixed: the measurement is dropped, so `v` may be a string again.
    let answer = influx.query("db0", "DROP MEASUREMENT m").await;
    assert!(answer["results"][0]["error"].is_null(), "{answer}");
    assert_eq!(support::count(&influx, "db0").await, 0);

    let out = ops(&url, &["dlq", "replay", "--all"]).ok();
    assert_eq!(out, "replayed 5 dead letters, 0 failed\n");
    assert_eq!(
        xlen(&mut conn, DLQ).await,
        0,
        "replay empties the dead-letter stream"
    );
    support::wait_for_count(&influx, "db0", 5, Duration::from_secs(30)).await;
    let answer = influx
        .query("db0", "SELECT v FROM m WHERE host = 'bad'")
        .await;
    let values: BTreeSet<&str> = answer["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|row| row[1].as_str().unwrap())
        .collect();
    assert_eq!(values, ["str0", "str1", "str2", "str3", "str4"].into());
    wait_for_letters(&conn, 0).await;

    // `v` is now a string: three integers become dead letters, to purge.
    write(&producer, ints(200, 3)).await;
    wait_for_letters(&conn, 3).await;
    let refused = ops(&url, &["dlq", "purge", "--all"]).failed("purge without --yes");
    assert_eq!(
        refused,
        format!(
            "redline: error: refusing to purge every dead letter in {DLQ} without --yes \
             (standard input is not a terminal)"
        )
    );
    assert_eq!(
        xlen(&mut conn, DLQ).await,
        3,
        "a refused purge removes nothing"
    );
    let letters = ops(&url, &["dlq", "list", "--json"]).json();
    let one = letters[0]["id"].as_str().unwrap();
    let out = ops(&url, &["dlq", "purge", "--id", one, "--yes"]).ok();
    assert_eq!(out, "removed 1 dead letter\n");
    assert_eq!(
        ids_of(&ops(&url, &["dlq", "list", "--json"]).json()),
        ids_of(&letters)[1..]
    );
    let out = ops(&url, &["dlq", "purge", "--all", "--yes"]).ok();
    assert_eq!(out, "removed 2 dead letters\n");
    assert_eq!(xlen(&mut conn, DLQ).await, 0);
    assert_eq!(
        ops(&url, &["dlq", "list", "--json"]).json(),
        serde_json::json!([])
    );
}
