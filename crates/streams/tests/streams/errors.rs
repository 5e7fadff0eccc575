use redline_core::keys::StreamKeys;
use redline_core::redis::RedisConfig;
use redline_streams::{connect, status, trim, Error};
use redline_testkit::{free_port, RedisServer};

#[tokio::test]
async fn a_redis_that_went_away_gives_one_line() {
    let mut redis = RedisServer::start(&[]);
    let mut conn = redis.conn().await;
    redis.kill();
    let keys = StreamKeys::new("rl", 1);
    for error in [
        status(&mut conn, &keys).await.unwrap_err(),
        trim(&mut conn, &keys, false).await.unwrap_err(),
    ] {
        assert!(matches!(error, Error::Redis(_)), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with("cannot reach Redis: "), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}

#[tokio::test]
async fn a_redis_that_is_not_there_gives_one_line_naming_the_url() {
    let config = RedisConfig {
        url: format!("redis://user:secret@127.0.0.1:{}/", free_port()),
        ..RedisConfig::default()
    };
    let error = connect(&config).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(
        message.starts_with(&format!(
            "cannot reach Redis at redis://user:***@127.0.0.1:{}/: ",
            config.url.rsplit(':').next().unwrap().trim_end_matches('/')
        )),
        "{message}"
    );
    assert!(
        !message.contains("secret") && !message.contains('\n'),
        "{message}"
    );
}

#[tokio::test]
async fn connect_reaches_a_running_redis() {
    let redis = RedisServer::start(&[]);
    let config = RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    };
    let mut conn = connect(&config).await.unwrap();
    let report = status(&mut conn, &StreamKeys::new("rl", 1)).await.unwrap();
    assert_eq!(report.dlq_length, 0);
}
