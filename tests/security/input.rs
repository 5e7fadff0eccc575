//! Bad input: a corpus of over 200 malformed bodies, generated from seed lines, gets only
//! 4xx answers with a message a person can act on; the producer stays up; the stream holds
//! exactly the valid lines sent alongside, normalised.

use std::io::Write;

use redline_testkit::RedisServer;

use super::{producer, stored_lines, stream_len};
use crate::support::client;

/// Lines every InfluxDB refuses, one cause each.
const BAD_LINES: &[&[u8]] = &[
    b"cpu",
    b"cpu ",
    b"cpu,host=a",
    b"cpu,host=a ",
    b"cpu,host= v=1",
    b"cpu,=a v=1",
    b"cpu,host v=1",
    b",host=a v=1",
    b"cpu v=",
    b"cpu v",
    b"cpu =1",
    b"cpu v=1 abc",
    b"cpu v=1 1 2",
    b"cpu v=1i2",
    b"cpu v=99999999999999999999i",
    b"cpu v=18446744073709551616u",
    b"cpu v=-1u",
    b"cpu v=1e999",
    b"cpu v=-1e999",
    b"cpu v=NaN",
    b"cpu v=nan",
    b"cpu v=Inf",
    b"cpu v=-inf",
    b"cpu v=0x10",
    b"cpu v=1.2.3",
    b"cpu v=--1",
    b"cpu v=tru",
    b"cpu v=\"unterminated",
    b"cpu v=\"a\"b",
    b"cpu,host=a,host=b v=1",
    b"cpu time=1",
    b"cpu,time=x v=1",
    b"cpu v=1 99999999999999999999",
    b"cpu v=1 -9223372036854775808",
    b"cpu v=1 1.5",
    b"cpu\\ v=1",
    b"cpu,host=a\\ v=1",
    b"cpu,t=a\\\\,u=b v=1",
    b"cpu v=1,",
    b"cpu v=1,,w=2",
    b"cpu ,v=1",
    b"cpu\tv=1",
    b"cpu v=1\0",
    b"\0cpu v=1",
    b"cpu,host=\xff v=1",
    b"\xc3\x28 v=1",
    b"cpu v=\"\xed\xa0\x80\"",
    b"cpu,host=a v=1 1\xfe",
];

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// One request of the corpus.
struct Case {
    what: String,
    path: String,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    /// Valid lines in the body (stored despite the error).
    valid: Vec<String>,
}

/// Two valid lines named after case `n` (one goes before the bad line, one after) and
/// how they are stored.
fn good(n: usize) -> ([String; 2], [String; 2]) {
    let sent = [
        format!("good,pos=a,case={n} v={n}i 1700000000000000000"),
        format!("good,case={n},pos=b v=\"x, y\" 1700000000000000001"),
    ];
    let stored = [
        format!("good,case={n},pos=a v={n}i 1700000000000000000"),
        sent[1].clone(),
    ];
    (sent, stored)
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for (i, bad) in BAD_LINES.iter().enumerate() {
        let what = format!("seed {i} {:?}", String::from_utf8_lossy(bad));
        cases.push(Case {
            what: format!("{what} alone, v1"),
            path: "write?db=d".into(),
            encoding: None,
            body: bad.to_vec(),
            valid: vec![],
        });
        cases.push(Case {
            what: format!("{what} alone, v2"),
            path: "api/v2/write?bucket=b&org=o&precision=s".into(),
            encoding: None,
            body: bad.to_vec(),
            valid: vec![],
        });
        for gzipped in [false, true] {
            let (sent, stored) = good(next());
            let body = [sent[0].as_bytes(), b"\n", bad, b"\n", sent[1].as_bytes()].concat();
            // An unterminated string runs on into the next line, which goes down with it.
            let swallows_next = bad.iter().filter(|b| **b == b'"').count() % 2 == 1;
            cases.push(Case {
                what: format!("{what} between valid lines, gzip {gzipped}"),
                path: "write?db=d&precision=ns".into(),
                encoding: gzipped.then_some("gzip"),
                body: if gzipped { gzip(&body) } else { body },
                valid: stored[..if swallows_next { 1 } else { 2 }].to_vec(),
            });
        }
    }
    // Every truncation of a line before its first field value is complete.
    let whole = "cpu,host=web\\ 1,region=eu-west usage_idle=";
    for cut in 1..=whole.len() {
        cases.push(Case {
            what: format!("cut line {:?}", &whole[..cut]),
            path: "write?db=d".into(),
            encoding: None,
            body: whole.as_bytes()[..cut].to_vec(),
            valid: vec![],
        });
    }
    // Requests bad as a whole: nothing of them is stored, valid lines included.
    let valid_body = b"whole v=1i 1\n".to_vec();
    // InfluxDB 2.x refuses a precision it does not know (1.x reads it as ns: see compat).
    for precision in ["x", "nanoseconds", "S", "1", "ns%20", "%00", "h", "n"] {
        cases.push(Case {
            what: format!("precision {precision:?}"),
            path: format!("api/v2/write?bucket=d&precision={precision}"),
            encoding: None,
            body: valid_body.clone(),
            valid: vec![],
        });
    }
    for path in ["api/v2/write?org=o", "api/v2/write?bucket=", "api/v2/write"] {
        cases.push(Case {
            what: format!("no bucket: {path}"),
            path: path.into(),
            encoding: None,
            body: valid_body.clone(),
            valid: vec![],
        });
    }
    let zipped = gzip(&b"whole v=1i 1\n".repeat(100));
    let bad_gzip: Vec<(&str, Vec<u8>)> = vec![
        ("not gzip", valid_body.clone()),
        ("truncated gzip", zipped[..zipped.len() / 2].to_vec()),
        ("gzip header only", zipped[..10].to_vec()),
        (
            "gzip and garbage",
            [zipped.clone(), b"garbage".to_vec()].concat(),
        ),
        ("corrupt gzip", {
            let mut z = zipped.clone();
            let mid = z.len() / 2;
            z[mid] ^= 0xff;
            z[mid + 1] ^= 0xff;
            z
        }),
        ("gzip bomb", gzip(&vec![b'\n'; 3_000_000])),
        ("nested gzip bomb", gzip(&gzip(&vec![b'a'; 3_000_000]))),
    ];
    for (what, body) in bad_gzip {
        cases.push(Case {
            what: what.into(),
            path: "write?db=d".into(),
            encoding: Some("gzip"),
            body,
            valid: vec![],
        });
    }
    for encoding in ["br", "deflate", "compress", "gzip, br", "zstd", "x-unknown"] {
        cases.push(Case {
            what: format!("encoding {encoding}"),
            path: "write?db=d".into(),
            encoding: Some(encoding),
            body: valid_body.clone(),
            valid: vec![],
        });
    }
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_get_4xx_and_only_valid_lines_are_stored() {
    let redis = RedisServer::start(&[]);
    let mut producer = producer(&redis.url(), &["--max-body-size", "1MB"], &[]).await;
    let cases = corpus();
    assert!(cases.len() >= 200, "only {} bodies", cases.len());
    let http = client();
    let mut expected: Vec<String> = Vec::new();
    for case in cases {
        let mut request = http
            .post(format!("{}/{}", producer.url, case.path))
            .body(case.body);
        if let Some(encoding) = case.encoding {
            request = request.header("Content-Encoding", encoding);
        }
        let response = request.send().await.unwrap_or_else(|e| {
            panic!("{}: no answer ({e})\n{}", case.what, producer.guard.logs())
        });
        let status = response.status().as_u16();
        assert!(
            [400, 413, 415].contains(&status),
            "{}: status {status}",
            case.what
        );
        let body: serde_json::Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{}: not JSON ({e})", case.what));
        let error = body["error"].as_str().unwrap_or_default();
        let readable = !error.is_empty()
            && error.len() < 1_000
            && !["nom", "Generic", "ErrorKind", "panicked"]
                .iter()
                .any(|jargon| error.contains(jargon));
        assert!(readable, "{}: unhelpful message {error:?}", case.what);
        if case.what.starts_with("seed") || case.what.starts_with("cut line") {
            assert!(
                error.starts_with("partial write: unable to parse line "),
                "{}: {error}",
                case.what
            );
        }
        expected.extend(case.valid);
    }

    assert!(producer.guard.is_running(), "{}", producer.guard.logs());
    let ping = http.get(format!("{}/ping", producer.url)).send().await;
    assert_eq!(ping.unwrap().status(), 204);
    assert!(!producer.guard.stderr().contains("panicked"));

    let mut conn = redis.conn().await;
    assert_eq!(stream_len(&mut conn).await, expected.len() as u64);
    assert_eq!(stored_lines(&mut conn).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_keep_their_meaning_for_influxdb() {
    // Backslashes other than before a delimiter are literal in InfluxDB 1.x/2.x: a UNC
    // path stays two backslashes; escaped delimiters stay escaped; unicode passes through.
    let redis = RedisServer::start(&[]);
    let producer = producer(&redis.url(), &[], &[]).await;
    let body = concat!(
        "win_disk,instance=\\\\fs01\\share,host=w1 free=1i 1\n",
        "proc,exe=C:\\Program\\ Files\\app.exe,host=w1 cpu=0.5 2\n",
        "m\\ é,t\\,k=v\\=1 f\\ 1=\"q\\\"\\\\\",π=3.14 3\n",
    );
    let response = client()
        .post(format!("{}/write?db=d", producer.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let mut conn = redis.conn().await;
    assert_eq!(
        stored_lines(&mut conn).await,
        [
            "win_disk,host=w1,instance=\\\\fs01\\share free=1i 1",
            "proc,exe=C:\\Program\\ Files\\app.exe,host=w1 cpu=0.5 2",
            "m\\ é,t\\,k=v\\=1 f\\ 1=\"q\\\"\\\\\",π=3.14 3",
        ]
    );
}
