use super::*;

fn parse(url: &str) -> SentinelUrl {
    SentinelUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn error(url: &str) -> String {
    match SentinelUrl::parse(url) {
        Ok(parsed) => panic!("{url} parsed as {parsed:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_shortest_form_names_one_sentinel_and_the_master() {
    let url = parse("redis+sentinel://127.0.0.1:26379/mymaster");
    assert!(!url.tls);
    assert_eq!(url.sentinels, [("127.0.0.1".to_string(), 26379)]);
    assert_eq!(url.master_name, "mymaster");
    assert_eq!((url.username, url.password, url.db), (None, None, 0));
    assert_eq!(url.sentinel_username, None);
    assert_eq!(url.sentinel_password, None);
}

#[test]
fn every_part_goes_where_it_belongs() {
    let url = parse(
        "rediss+sentinel://app:s%40cret@s0.svc:26379, s1.svc:26380,[::1]:26381,s3/mymaster/2?sentinel_username=sent&sentinel_password=p%26w",
    );
    assert!(url.tls);
    assert_eq!(
        url.sentinels,
        [
            ("s0.svc".to_string(), 26379),
            ("s1.svc".to_string(), 26380),
            ("::1".to_string(), 26381),
            ("s3".to_string(), DEFAULT_PORT),
        ]
    );
    assert_eq!(url.master_name, "mymaster");
    assert_eq!(url.db, 2);
    assert_eq!(url.username.as_deref(), Some("app"));
    assert_eq!(url.password.as_ref().map(Secret::expose), Some("s@cret"));
    assert_eq!(url.sentinel_username.as_deref(), Some("sent"));
    assert_eq!(
        url.sentinel_password.as_ref().map(Secret::expose),
        Some("p&w")
    );
    assert_eq!(
        url.sentinel_list(),
        "s0.svc:26379,s1.svc:26380,[::1]:26381,s3:26379"
    );
}

#[test]
fn a_password_alone_and_a_slash_in_it_are_understood() {
    let url = parse("redis+sentinel://:pa/ss@h:1/m");
    assert_eq!(url.username, None);
    assert_eq!(url.password.as_ref().map(Secret::expose), Some("pa/ss"));
    assert_eq!(url.sentinels, [("h".to_string(), 1)]);
    assert_eq!(url.master_name, "m");
}

#[test]
fn errors_name_the_part_that_is_wrong() {
    assert_eq!(
        error("redis+sentinel:///mymaster"),
        "it names no sentinel: expected HOST:PORT[,HOST:PORT…] after '://'"
    );
    assert!(error("redis+sentinel://h:26379").starts_with("it names no master"));
    assert!(error("redis+sentinel://h:26379/").starts_with("it names no master"));
    assert_eq!(
        error("redis+sentinel://a:1,b:x/m"),
        "sentinel address 2 is not HOST:PORT: the port is not a number from 1 to 65535"
    );
    assert_eq!(
        error("redis+sentinel://a:0/m"),
        "sentinel address 1 is not HOST:PORT: the port is not a number from 1 to 65535"
    );
    assert_eq!(
        error("redis+sentinel://:1/m"),
        "sentinel address 1 is not HOST:PORT: no host"
    );
    assert_eq!(
        error("redis+sentinel://[::1/m"),
        "sentinel address 1 is not HOST:PORT: no closing ']'"
    );
    assert_eq!(
        error("redis+sentinel://a:1/m/x"),
        "'x' after the master name is not a database number"
    );
    assert_eq!(
        error("redis+sentinel://a:1/m/0/extra"),
        "'extra' after the master name is not a database number"
    );
    assert_eq!(
        error("redis+sentinel://a:1/m?sentinel_pass=x"),
        "unknown parameter 'sentinel_pass' (known: sentinel_username, sentinel_password)"
    );
    assert_eq!(
        error("redis+sentinel://a:1/m?sentinel_password=x&sentinel_password=y"),
        "parameter 'sentinel_password' is given twice"
    );
    assert!(error("redis+sentinel://a:1/m?sentinel_password").starts_with("a parameter has no '='"));
    assert_eq!(
        error("redis+sentinel://u:%FF@a:1/m"),
        "the password is not valid percent-encoded UTF-8"
    );
}

#[test]
fn no_error_or_debug_quotes_a_password() {
    // A password with an unencoded '?' or '&' breaks the URL; what is quoted must not be it.
    for url in [
        "redis+sentinel://u:hunter2@a:x/m",
        "redis+sentinel://u:hun?ter2@a:1/m",
        "redis+sentinel://a:1/m?sentinel_password=hun&ter2",
        "redis+sentinel://a:1/m?sentinel_password=hunter2&x",
    ] {
        let message = error(url);
        assert!(
            !message.contains("hunter2") && !message.contains("ter2"),
            "{url}: {message}"
        );
        let masked = redact(url);
        assert!(
            !masked.contains("hunter2") && !masked.contains("ter2"),
            "{url}: {masked}"
        );
    }
    let parsed = parse("redis+sentinel://u:hunter2@a:1/m?sentinel_password=hunter3");
    let debug = format!("{parsed:?}");
    assert!(!debug.contains("hunter"), "{debug}");
    assert!(debug.contains("password: Some(***)"), "{debug}");
}

#[test]
fn redaction_masks_the_password_and_every_query_value() {
    assert_eq!(
        redact(
            "redis+sentinel://u:pw@h1:1,h2:2/mymaster?sentinel_password=pw2&sentinel_username=s"
        ),
        "redis+sentinel://u:***@h1:1,h2:2/mymaster?sentinel_password=***&sentinel_username=***"
    );
    assert_eq!(
        redact("rediss+sentinel://:pw@h1:1/m"),
        "rediss+sentinel://:***@h1:1/m"
    );
    assert_eq!(
        redact("redis+sentinel://h1:1,h2:2/m"),
        "redis+sentinel://h1:1,h2:2/m"
    );
    // An '@' in a query value: more is masked, never less.
    assert_eq!(
        redact("redis+sentinel://h1:1/m?sentinel_password=a@b"),
        "redis+sentinel://h1:***@b"
    );
}

#[test]
fn only_the_sentinel_schemes_are_sentinel_urls() {
    assert!(is_sentinel("redis+sentinel://h/m"));
    assert!(is_sentinel(" REDISS+SENTINEL://h/m"));
    assert!(!is_sentinel("redis://h:6379/"));
    assert!(!is_sentinel("redis://a:1,redis://b:2"));
    assert!(!is_sentinel("sentinel"));
}
