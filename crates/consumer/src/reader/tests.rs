use redline_testkit::RedisServer;

use super::*;

/// Four partitions: `busy` entries in partition 0, 5 in each other one.
async fn partitions(redis: &RedisServer, busy: usize) -> Vec<String> {
    let mut conn = redis.conn().await;
    let keys: Vec<String> = (0..4).map(|i| format!("s:{{{i}}}")).collect();
    let mut pipe = redis::pipe();
    for (i, key) in keys.iter().enumerate() {
        pipe.cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .ignore();
        for n in 0..if i == 0 { busy } else { 5 } {
            pipe.xadd(key, "*", &[("lp", format!("m v={n}i {n}"))])
                .ignore();
        }
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
    keys
}

fn reader(redis: &RedisServer, keys: Vec<String>) -> Reader {
    let config = RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    };
    Reader::new(config, keys, "g".into(), "c".into())
}

fn per_partition(read: &Read) -> Vec<usize> {
    let mut counts = vec![0; 4];
    for message in &read.messages {
        counts[message.stream] += 1;
    }
    counts
}

#[tokio::test]
async fn a_busy_partition_does_not_starve_the_quiet_ones() {
    let redis = RedisServer::start(&[]);
    let keys = partitions(&redis, 1000).await;
    let mut reader = reader(&redis, keys);
    let block = Duration::from_millis(10);

    let first = reader.read(100, block).await.unwrap();
    assert!(!first.history);
    // An equal share of 25 each; what the quiet ones leave goes to the busy one.
    assert_eq!(per_partition(&first), [85, 5, 5, 5]);
    let second = reader.read(100, block).await.unwrap();
    assert_eq!(per_partition(&second), [100, 0, 0, 0]);
    assert!(second.messages.iter().all(|m| m.deliveries == Some(1)));
}

/// When a read's count does not divide evenly among busy partitions, the one shorted goes
/// round: over as many reads as there are partitions, each gets the same.
#[tokio::test]
async fn the_partition_shorted_by_an_uneven_share_goes_round() {
    let redis = RedisServer::start(&[]);
    let keys = partitions(&redis, 100).await;
    let mut conn = redis.conn().await;
    for key in &keys[1..] {
        let mut pipe = redis::pipe();
        for n in 0..100 {
            pipe.xadd(key, "*", &[("lp", format!("m v={n}i {n}"))])
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
    let mut reader = reader(&redis, keys);
    let mut total = [0; 4];
    for _ in 0..4 {
        // Shares of 3, 3, 3 and the 1 left.
        let read = reader.read(10, Duration::from_millis(10)).await.unwrap();
        let mut counts = per_partition(&read);
        for (sum, n) in total.iter_mut().zip(&counts) {
            *sum += n;
        }
        counts.sort_unstable();
        assert_eq!(counts, [1, 3, 3, 3]);
    }
    assert_eq!(total, [10, 10, 10, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_read_never_returns_more_than_it_asked_for() {
    let redis = RedisServer::start(&[]);
    let keys = partitions(&redis, 5).await;
    let mut reader = reader(&redis, keys.clone());
    // Drain what is there, so that the next read blocks.
    while !reader
        .read(100, Duration::from_millis(10))
        .await
        .unwrap()
        .messages
        .is_empty()
    {}
    let read = tokio::spawn(async move { reader.read(3, Duration::from_secs(10)).await });
    let mut conn = redis.conn().await;
    redline_testkit::wait_until("the reader blocks", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("clients")
                .query_async(&mut conn)
                .await
                .unwrap();
            info.contains("blocked_clients:1")
        }
    })
    .await;
    // Entries arrive in every partition at once (blocked clients are served after EXEC).
    // Redis 7.0 answers a blocked reader with the first ready stream alone; from 7.2 the
    // command runs again over every stream, COUNT each, which is what this guards.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in &keys {
        for n in 0..3 {
            pipe.xadd(key, "*", &[("lp", format!("m v={n}i {n}"))])
                .ignore();
        }
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
    let read = redline_testkit::within("the blocked read", Duration::from_secs(20), read)
        .await
        .unwrap()
        .unwrap();
    assert!(
        (1..=3).contains(&read.messages.len()),
        "{} entries for a read of 3",
        read.messages.len()
    );
}

#[tokio::test]
async fn own_pending_entries_come_back_first_then_new_ones() {
    let redis = RedisServer::start(&[]);
    let keys = partitions(&redis, 5).await;
    let mut first = reader(&redis, keys.clone());
    let read = first.read(100, Duration::from_millis(10)).await.unwrap();
    assert_eq!(per_partition(&read), [5, 5, 5, 5]);

    // The same consumer again (a restart): its 20 pending entries, none new.
    let mut again = reader(&redis, keys);
    let history = again.read(8, Duration::from_millis(10)).await.unwrap();
    assert!(history.history);
    assert_eq!(history.messages.len(), 8);
    let mut seen = history.messages.len();
    loop {
        let read = again.read(8, Duration::from_millis(10)).await.unwrap();
        if !read.history {
            assert!(read.messages.is_empty());
            break;
        }
        seen += read.messages.len();
    }
    assert_eq!(seen, 20);
}

/// On a cluster the reader blocks on one partition at a time, in turn (one command cannot
/// name keys of several slots): the blocked reader shows up on every master, and an entry on
/// any partition reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_blocked_reader_sees_entries_of_every_partition() {
    let cluster = redline_testkit::RedisCluster::start(3, 0, &[]);
    let mut conn = cluster.conn().await;
    // Slots 13907, 9842, 5649 and 1584: the three masters hold them all.
    let keys: Vec<String> = (0..4).map(|i| format!("s:{{{i}}}")).collect();
    for key in &keys {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg("g")
            .arg("$")
            .arg("MKSTREAM")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    let config = RedisConfig {
        url: cluster.url(),
        ..RedisConfig::default()
    };
    let mut reader = Reader::new(config, keys.clone(), "g".into(), "c".into());
    // Nothing yet: the reader blocks, one partition at a time.
    let read = tokio::spawn(async move { reader.read(100, Duration::from_secs(60)).await });
    let mut nodes = Vec::new();
    for port in cluster.ports() {
        let url = format!("redis://127.0.0.1:{port}");
        let node = redis::Client::open(url).unwrap();
        nodes.push((port, node.get_multiplexed_async_connection().await.unwrap()));
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    redline_testkit::wait_until(
        "the blocked reader on every master in turn",
        Duration::from_secs(20),
        || {
            let (mut nodes, seen) = (nodes.clone(), seen.clone());
            async move {
                for (port, conn) in &mut nodes {
                    if blocked_clients(conn).await > 0 {
                        seen.lock().unwrap().insert(*port);
                    }
                }
                seen.lock().unwrap().len() == 3
            }
        },
    )
    .await;
    for key in [&keys[3], &keys[1]] {
        redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("lp")
            .arg("m v=1i 1")
            .query_async::<String>(&mut conn)
            .await
            .unwrap();
    }
    let read = redline_testkit::within("the blocked read", Duration::from_secs(20), read)
        .await
        .unwrap()
        .unwrap();
    assert!(!read.history);
    assert!(!read.messages.is_empty());
    assert!(read.messages.iter().all(|m| m.stream == 3 || m.stream == 1));
}

/// `blocked_clients` of `INFO clients`.
async fn blocked_clients(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    info_field(conn, "clients", "blocked_clients:").await
}

/// The number after `prefix` in `INFO section` (0 when absent).
async fn info_field(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
    prefix: &str,
) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.split([',', '\r']).next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Four empty partitions, the group at `$`.
async fn empty_partitions(redis: &RedisServer) -> Vec<String> {
    let mut conn = redis.conn().await;
    let keys: Vec<String> = (0..4).map(|i| format!("s:{{{i}}}")).collect();
    for key in &keys {
        redis::cmd("XGROUP")
            .arg(&["CREATE", key, "g", "$", "MKSTREAM"])
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    keys
}

/// On a standalone Redis an idle reader waits in one `XREADGROUP … BLOCK` over every
/// partition, not in the slices a cluster needs.
#[tokio::test]
async fn an_idle_reader_on_a_standalone_redis_waits_in_one_command() {
    let redis = RedisServer::start(&[]);
    let keys = empty_partitions(&redis).await;
    let mut reader = reader(&redis, keys);
    // The first read also re-reads the (empty) history.
    assert!(reader
        .read(100, Duration::from_millis(10))
        .await
        .unwrap()
        .messages
        .is_empty());
    let mut conn = redis.conn().await;
    let calls = "cmdstat_xreadgroup:calls=";
    let before = info_field(&mut conn, "commandstats", calls).await;
    let read = reader.read(100, Duration::from_secs(1)).await.unwrap();
    assert!(read.messages.is_empty());
    let after = info_field(&mut conn, "commandstats", calls).await;
    // A sweep (one command per partition) and one block; one more short round when Redis's
    // millisecond clock ends the block just before the reader's deadline. Slices of
    // `BLOCK_SLICE` would take 10 rounds.
    assert!(
        after - before <= 2 * (4 + 1),
        "{} XREADGROUPs",
        after - before
    );
}

/// Each message's partition and line.
fn entries(read: &Read) -> Vec<(usize, String)> {
    read.messages
        .iter()
        .map(|m| match &m.body {
            batch::Body::Metric(entry) => (m.stream, entry.lp.clone()),
            other => panic!("not a metric: {other:?}"),
        })
        .collect()
}

/// A read of fewer entries than there are partitions blocks on that many of them, each with
/// an equal share of the count (COUNT applies per stream), and the next read on the next
/// ones: every partition in turn wakes the blocked reader, which returns no more than asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_reads_of_fewer_entries_than_partitions_take_the_partitions_in_turn() {
    let redis = RedisServer::start(&[]);
    let keys = empty_partitions(&redis).await;
    let mut reader = reader(&redis, keys.clone());
    let mut conn = redis.conn().await;
    for round in 0..2 {
        // Reads of 2 block on partitions [0, 1], then [2, 3], one entry each.
        let read = tokio::spawn(async move {
            let read = reader.read(2, Duration::from_secs(60)).await;
            (reader, read)
        });
        redline_testkit::wait_until("the reader blocks", Duration::from_secs(10), || {
            let mut conn = conn.clone();
            async move { blocked_clients(&mut conn).await == 1 }
        })
        .await;
        // Two entries at once on the second watched partition.
        let partition = 2 * round + 1;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for n in 0..2 {
            pipe.xadd(&keys[partition], "*", &[("lp", format!("m v={n}i {n}"))])
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
        let (back, read) =
            redline_testkit::within("the blocked read", Duration::from_secs(10), read)
                .await
                .unwrap();
        reader = back;
        // The entry that woke it, returned at once.
        let read = read.unwrap();
        assert_eq!(
            entries(&read),
            [(partition, "m v=0i 0".into())],
            "round {round}"
        );
        // The other one, found by the next sweep without blocking.
        let rest = reader.read(2, Duration::from_millis(10)).await.unwrap();
        assert_eq!(
            entries(&rest),
            [(partition, "m v=1i 1".into())],
            "round {round}"
        );
    }
}

/// The reader's own connection authenticates as the URL's ACL user and selects its
/// database, as redis-rs's would; a wrong password is a connection error that names the URL
/// without the password.
#[tokio::test]
async fn the_readers_own_connection_logs_in_and_selects_the_database_of_the_url() {
    let redis = RedisServer::start(&["--requirepass", "admin-secret"]);
    let mut admin = redis.conn().await;
    redis::cmd("ACL")
        .arg(&["SETUSER", "reader", "on", ">reader-secret", "~*", "+@all"])
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let url = |password: &str| format!("redis://reader:{password}@127.0.0.1:{}/3", redis.port());
    let mut db3 = redis::Client::open(url("reader-secret"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut pipe = redis::pipe();
    pipe.cmd("XGROUP")
        .arg(&["CREATE", "s", "g", "0", "MKSTREAM"])
        .ignore();
    for n in 0..3 {
        pipe.xadd("s", "*", &[("lp", format!("m v={n}i {n}"))])
            .ignore();
    }
    pipe.query_async::<()>(&mut db3).await.unwrap();
    let config = |url| RedisConfig {
        url,
        ..RedisConfig::default()
    };
    assert!(raw::Conn::for_url(&config(url("reader-secret"))).is_some());

    let mut reader = Reader::new(
        config(url("reader-secret")),
        vec!["s".into()],
        "g".into(),
        "c".into(),
    );
    let read = reader.read(10, Duration::from_millis(10)).await.unwrap();
    let lines: Vec<String> = read
        .messages
        .iter()
        .map(|m| match &m.body {
            batch::Body::Metric(entry) => entry.lp.clone(),
            other => panic!("not a metric: {other:?}"),
        })
        .collect();
    assert_eq!(lines, ["m v=0i 0", "m v=1i 1", "m v=2i 2"]);

    let mut refused = Reader::new(
        config(url("wrong-secret")),
        vec!["s".into()],
        "g".into(),
        "c".into(),
    );
    let error = refused
        .read(10, Duration::from_millis(10))
        .await
        .expect_err("a wrong password is refused")
        .to_string();
    assert!(error.contains("WRONGPASS"), "{error}");
    assert!(!error.contains("wrong-secret"), "{error}");
}
