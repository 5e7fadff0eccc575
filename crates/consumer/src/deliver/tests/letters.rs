//! Dead letters: exactly the rejected points, each acked only once Redis took its letter,
//! each with its own reason.

use super::*;

#[tokio::test]
async fn rejected_entries_are_isolated_and_the_rest_acked() {
    let mut entries = lines(64, None);
    for i in [3, 40, 41] {
        entries[i].0 = format!("poison,i={i} v=1 {i}");
    }
    let (redis, batch) = read_entries(&entries).await;
    let (mut deliverer, seen) = deliverer(&redis, rejects_poison, 5);
    within(deliverer.deliver(batch)).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.written.len(), 61);
    assert!(
        seen.calls <= 1 + 2 * 3 * 6,
        "{} writes to isolate 3 of 64",
        seen.calls
    );
    let mut written = seen.written.clone();
    written.sort();
    written.dedup();
    assert_eq!(written.len(), 61, "each accepted entry written once");
    assert_eq!(pending_count(&redis).await, 0);
    let letters = dead_letters(&redis).await;
    let poisoned: Vec<&str> = letters.iter().map(|l| l["lp"].as_str()).collect();
    assert_eq!(
        poisoned,
        [
            "poison,i=3 v=1 3",
            "poison,i=40 v=1 40",
            "poison,i=41 v=1 41"
        ]
    );
    assert!(letters.iter().all(|l| l["reason"] == "field type conflict"));
}

#[tokio::test]
async fn a_dead_letter_redis_refuses_stays_pending_and_the_rest_is_acked() {
    let mut entries = lines(8, None);
    entries[2].0 = "poison v=1 2".into();
    let (redis, batch) = read_entries(&entries).await;
    let poison = batch[2].id;
    // The dead-letter stream's key holds a string: every XADD to it fails (WRONGTYPE).
    let mut conn = redis.conn().await;
    let dlq = format!("{KEY}:dlq");
    let _: () = redis::cmd("SET")
        .arg(&dlq)
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (mut deliverer, seen) = deliverer(&redis, rejects_poison, 5);
    within(deliverer.deliver(batch)).await;
    // The dead letter is acked only on its XADD's answer: refused, its entry stays pending
    // (an ack before the XADD would lose it here), while the seven accepted are acked.
    assert_eq!(seen.lock().unwrap().written.len(), 7);
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(KEY)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(100)
        .query_async(&mut conn)
        .await
        .unwrap();
    let held: Vec<&str> = rows.iter().map(|(id, ..)| id.as_str()).collect();
    assert_eq!(held, [poison.as_str()], "only the poison waits");
    let kind: String = redis::cmd("TYPE")
        .arg(&dlq)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "string", "nothing was dead-lettered");

    // Repaired: the next re-read dead-letters it, and only then is it acked.
    let _: () = redis::cmd("DEL")
        .arg(&dlq)
        .query_async(&mut conn)
        .await
        .unwrap();
    let again = reread(&redis).await;
    assert_eq!(again.len(), 1);
    within(deliverer.deliver(again)).await;
    assert_eq!(pending_count(&redis).await, 0);
    let letters = dead_letters(&redis).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["lp"], "poison v=1 2");
    assert_eq!(letters[0]["source_id"], poison.as_str());
    assert_eq!(letters[0]["reason"], "field type conflict");
    assert_eq!(
        seen.lock().unwrap().written.len(),
        7,
        "the rest written once"
    );
}

#[tokio::test]
async fn a_dead_letter_past_max_deliveries_carries_its_own_routes_refusal() {
    let mut entries = lines(2, Some("a"));
    entries.extend(lines(2, Some("b")));
    let (redis, batch) = read_entries(&entries).await;
    let ids: Vec<String> = batch.iter().map(|m| m.id.to_string()).collect();
    let refuse = |_: usize, batch: &[&Entry]| {
        let db = batch[0].db.clone().unwrap_or_default();
        Err(SinkError::Refused(format!("403: no access to {db}")))
    };
    let (mut deliverer, _) = deliverer(&redis, refuse, 3);
    within(deliverer.deliver(batch)).await;
    assert_eq!(pending_count(&redis).await, 4, "both routes parked");

    // The entries come back delivered more often than max_deliveries (consumers crashed
    // with them): dead-lettered before any write, each with its own route's last refusal.
    let _: Vec<String> = redis::cmd("XCLAIM")
        .arg(KEY)
        .arg(GROUP)
        .arg("c1")
        .arg(0)
        .arg(&ids)
        .arg("RETRYCOUNT")
        .arg(3)
        .arg("JUSTID")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    within(deliverer.deliver(reread(&redis).await)).await;
    assert_eq!(pending_count(&redis).await, 0);
    let letters = dead_letters(&redis).await;
    assert_eq!(letters.len(), 4);
    for letter in letters {
        assert_eq!(letter["deliveries"], "4");
        assert_eq!(
            letter["reason"],
            format!(
                "max deliveries exceeded: sink refuses the route: 403: no access to {}",
                letter["db"]
            )
        );
    }
}
