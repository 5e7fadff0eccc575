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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_blocked_reader_sees_entries_of_every_partition() {
    let cluster = redline_testkit::RedisCluster::start(3, 0, &[]);
    let mut conn = cluster.conn().await;
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
    let read = tokio::spawn(async move { reader.read(100, Duration::from_secs(10)).await });
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
