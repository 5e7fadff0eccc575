//! How the InfluxDB sink reads InfluxDB's answers, and what it needs of its settings.

use super::answer::dropped;
use super::*;

fn rejected(reason: &str) -> SinkError {
    SinkError::Rejected {
        reason: reason.to_string(),
        whole: false,
    }
}

#[test]
fn influxdb_answers_are_classified() {
    let partial = "partial write: field type conflict: input field \"v\" on measurement \"m\" \
                   is type string, already exists as type float dropped=1";
    assert_eq!(classify(400, partial.into()), rejected(partial));
    assert_eq!(
        classify(400, "field type conflict".into()),
        rejected("field type conflict")
    );
    // Verdicts on a route: counted, other routes go on.
    assert_eq!(
        classify(500, "retention policy not found: week".into()),
        SinkError::Refused("500: retention policy not found: week".into())
    );
    assert_eq!(
        classify(
            403,
            "\"w\" user is not authorized to write to database \"nope\"".into()
        ),
        SinkError::Refused(
            "403: \"w\" user is not authorized to write to database \"nope\"".into()
        )
    );
    assert_eq!(
        classify(401, "authorization failed".into()),
        SinkError::Unauthorized("401: authorization failed".into())
    );
    // Outages: nothing counted, however long they last.
    let full = "engine: error writing WAL entry: write /var/lib/influxdb/wal/_00002.wal: \
                no space left on device";
    for (status, text) in [
        (500, full),
        (500, "timeout"),
        (500, "engine: something broke"),
        (503, ""),
        (429, "too many requests"),
        (404, "404 page not found"),
    ] {
        assert!(classify(status, text.into()).is_outage(), "{status} {text}");
    }
    assert!(matches!(
        classify(413, "Request Entity Too Large".into()),
        SinkError::Rejected { whole: false, .. }
    ));
}

#[test]
fn v2_answers_are_classified() {
    let refused = |text: &str| SinkError::Refused(format!("404: {text}"));
    assert_eq!(
        classify_v2(404, "bucket \"nope\" not found".into()),
        refused("bucket \"nope\" not found")
    );
    assert_eq!(
        classify_v2(404, "database not found: \"x\"".into()),
        refused("database not found: \"x\"")
    );
    // A wrong organisation is a configuration mistake: wait, dead-letter nothing.
    assert!(classify_v2(404, "organization name \"acme\" not found".into()).is_outage());
    assert!(matches!(
        classify_v2(422, "points beyond retention policy dropped=2".into()),
        SinkError::Rejected { whole: false, .. }
    ));
    assert!(matches!(
        classify_v2(401, "unauthorized access".into()),
        SinkError::Unauthorized(_)
    ));
    assert!(matches!(
        classify_v2(403, "insufficient permissions for write".into()),
        SinkError::Refused(_)
    ));
    assert!(classify_v2(500, "internal error".into()).is_outage());
}

#[test]
fn a_partial_write_that_dropped_everything_rejects_the_whole_write() {
    let text = "partial write: max-values-per-tag limit exceeded (100000/100000): \
                measurement=\"cpu\" tag=\"host\" value=\"h1\" dropped=3";
    assert_eq!(dropped(text), Some(3));
    assert_eq!(
        dropped("partial write: unable to parse 'x': bad dropped=0"),
        Some(0)
    );
    assert_eq!(dropped("field type conflict"), None);
    let some = rejected(text);
    assert!(matches!(
        all_dropped(some.clone(), 3),
        SinkError::Rejected { whole: true, .. }
    ));
    assert_eq!(all_dropped(some.clone(), 4), some);
}

#[test]
fn identifiers_are_quoted() {
    assert_eq!(quote_ident(r#"we"ird"#), r#""we\"ird""#);
}

#[test]
fn bodies_are_the_lines_plain_or_gzipped() {
    use std::io::Read as _;

    let lines = b"cpu v=1 1\ncpu v=2 2\n".repeat(100);
    let plain = encode(lines.clone(), ContentEncoding::Identity).unwrap();
    assert_eq!(&plain[..], &lines[..]);
    let gzipped = encode(lines.clone(), ContentEncoding::Gzip).unwrap();
    assert!(gzipped.len() < lines.len() / 4, "{} bytes", gzipped.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, lines);
}

fn v2(bucket: Option<&str>) -> InfluxSink {
    InfluxSink::new(&InfluxConfig {
        api: InfluxApi::V2 {
            org: "acme".into(),
            token: Secret::new("s3cret-token"),
            bucket: bucket.map(str::to_string),
        },
        ..InfluxConfig::v1(None)
    })
    .unwrap()
}

#[test]
fn the_token_never_shows_and_urls_must_be_http() {
    let sink = v2(None);
    let debug = format!("{sink:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    let Endpoint::V2 { authorization, .. } = &sink.api else {
        panic!("v2");
    };
    assert!(authorization.is_sensitive());
    assert_eq!(sink.name(), "influxdb2");
    let tcp = InfluxSink::new(&InfluxConfig {
        url: "tcp://x:8086".into(),
        ..InfluxConfig::v1(None)
    })
    .unwrap_err();
    assert!(matches!(tcp, OpenError::Url { .. }));
}
