//! How the InfluxDB sink reads InfluxDB 1.6's answers.

use super::*;

fn rejected(reason: &str, whole: bool) -> Answer {
    Answer::Failed(SinkError::Rejected {
        reason: reason.to_string(),
        whole,
    })
}

#[test]
fn influxdb_answers_are_classified() {
    let partial = "partial write: field type conflict: input field \"v\" on measurement \"m\" \
                   is type string, already exists as type float dropped=1";
    assert_eq!(classify(400, partial.into()), rejected(partial, false));
    assert_eq!(
        classify(400, "field type conflict".into()),
        rejected("field type conflict", false)
    );
    assert_eq!(
        classify(404, "database not found: \"x\"".into()),
        Answer::DatabaseNotFound("database not found: \"x\"".into())
    );
    assert_eq!(
        classify(500, "retention policy not found: week".into()),
        rejected("retention policy not found: week", true)
    );
    assert!(matches!(
        classify(500, "timeout".into()),
        Answer::Failed(SinkError::Unavailable(_))
    ));
    assert!(matches!(
        classify(503, String::new()),
        Answer::Failed(SinkError::Unavailable(_))
    ));
    assert!(matches!(
        classify(401, "authorization failed".into()),
        Answer::Failed(SinkError::Unavailable(_))
    ));
    assert!(matches!(
        classify(500, "engine: something broke".into()),
        Answer::Failed(SinkError::Transient(_))
    ));
    assert!(matches!(
        classify(413, "Request Entity Too Large".into()),
        Answer::Failed(SinkError::Rejected { whole: false, .. })
    ));
}

#[test]
fn batches_are_grouped_by_database_and_retention_policy_in_order() {
    let entry = |lp: &str, db: Option<&str>, rp: Option<&str>| Entry {
        lp: lp.into(),
        db: db.map(Into::into),
        rp: rp.map(Into::into),
    };
    let batch = [
        entry("a", Some("x"), None),
        entry("b", None, None),
        entry("c", Some("x"), None),
        entry("d", Some("x"), Some("week")),
    ];
    let batch: Vec<&Entry> = batch.iter().collect();
    let groups = group(&batch);
    let shape: Vec<(Option<&str>, Option<&str>, Vec<&str>)> = groups
        .iter()
        .map(|((db, rp), entries)| (*db, *rp, entries.iter().map(|e| e.lp.as_str()).collect()))
        .collect();
    assert_eq!(
        shape,
        [
            (Some("x"), None, vec!["a", "c"]),
            (None, None, vec!["b"]),
            (Some("x"), Some("week"), vec!["d"]),
        ]
    );
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
    let some = SinkError::Rejected {
        reason: text.into(),
        whole: false,
    };
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
