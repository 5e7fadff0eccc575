use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use super::*;

/// A RESP2 reply as the tests build it.
#[derive(Debug, Clone)]
enum Resp {
    Bulk(Vec<u8>),
    NilBulk,
    Array(Vec<Resp>),
    NilArray,
    Int(i64),
    Simple(&'static str),
    Error(&'static str),
}

fn encode(value: &Resp, out: &mut Vec<u8>) {
    match value {
        Resp::Bulk(bytes) => {
            out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        }
        Resp::NilBulk => out.extend_from_slice(b"$-1\r\n"),
        Resp::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Resp::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Resp::Int(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Resp::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Resp::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
    }
}

fn bytes(value: &Resp) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

const KEYS: [&str; 2] = ["s:0", "s:1"];

fn keys() -> Vec<String> {
    KEYS.iter().map(ToString::to_string).collect()
}

fn bulk(text: &str) -> Resp {
    Resp::Bulk(text.as_bytes().to_vec())
}

/// Anything at all in place of a well-formed node, now and then.
fn odd() -> impl Strategy<Value = Resp> {
    prop_oneof![
        Just(Resp::NilBulk),
        Just(Resp::NilArray),
        Just(Resp::Int(7)),
        Just(Resp::Simple("OK")),
        Just(Resp::Array(vec![])),
        Just(Resp::Bulk(vec![0xff, 0xfe])),
    ]
}

fn maybe(common: impl Strategy<Value = Resp> + 'static) -> BoxedStrategy<Resp> {
    prop_oneof![20 => common, 1 => odd()].boxed()
}

fn value() -> impl Strategy<Value = Resp> {
    let texts = prop::sample::select(vec![
        "m v=1 1",
        "cpu,host=a usage=0.5 1700000000000000000",
        "telegraf",
        "autogen",
        "",
        "m s=\"a\nb\" 1",
        "two\nlines",
        "é",
    ]);
    maybe(prop_oneof![
        texts.prop_map(bulk),
        Just(Resp::Bulk(vec![b'm', b' ', 0xff])),
    ])
}

fn name() -> impl Strategy<Value = Resp> {
    maybe(prop::sample::select(vec!["lp", "db", "rp", "x", "LP", ""]).prop_map(bulk))
}

fn entry() -> impl Strategy<Value = Resp> {
    let id = prop::sample::select(vec!["1-0", "1700000000000-12", "0-1", "é-1"]).prop_map(bulk);
    let fields = prop_oneof![
        8 => prop::collection::vec((name(), value()), 0..5)
            .prop_map(|pairs| Resp::Array(pairs.into_iter().flat_map(|(n, v)| [n, v]).collect())),
        1 => Just(Resp::NilArray),
        1 => Just(Resp::Array(vec![bulk("lp")])),
    ];
    maybe((maybe(id), fields).prop_map(|(id, fields)| Resp::Array(vec![id, fields])))
}

fn stream() -> impl Strategy<Value = Resp> {
    let key = prop::sample::select(vec!["s:0", "s:1", "other"]).prop_map(bulk);
    maybe(
        (maybe(key), prop::collection::vec(entry(), 0..6))
            .prop_map(|(key, entries)| Resp::Array(vec![key, Resp::Array(entries)])),
    )
}

fn reply() -> impl Strategy<Value = Resp> {
    prop_oneof![
        10 => prop::collection::vec(stream(), 0..3).prop_map(Resp::Array),
        1 => Just(Resp::NilArray),
        1 => Just(Resp::Error("NOGROUP No such key 's:0' or consumer group 'g'")),
        1 => odd(),
    ]
}

/// Both paths' outcomes, with errors as their text.
fn outcome(
    read: Result<Vec<(usize, Vec<Message>)>, reader::Error>,
) -> Result<Vec<(usize, Vec<Message>)>, String> {
    read.map_err(|e| e.to_string())
}

/// Feeds `buf` to a [`Frame`] in pieces of the given sizes; the length it reports.
fn frame_in_pieces(buf: &[u8], pieces: &[usize]) -> Result<Option<usize>, Malformed> {
    let mut frame = Frame::default();
    let mut have = 0;
    let mut sizes = pieces.iter().copied().cycle();
    loop {
        if let Some(len) = frame.complete(&buf[..have])? {
            return Ok(Some(len));
        }
        if have == buf.len() {
            return Ok(None);
        }
        have = (have + sizes.next().unwrap_or(1).max(1)).min(buf.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_decoder_reads_every_reply_as_redis_rs_and_the_general_parser_do(reply in reply()) {
        let bytes = bytes(&reply);
        let ours = outcome(decode_read(&bytes, &keys(), Some(1)));
        let theirs = outcome(general(&bytes, &keys(), Some(1)));
        prop_assert_eq!(ours, theirs, "{:?}", reply);
    }

    #[test]
    fn a_frame_ends_exactly_where_the_reply_does_however_the_bytes_arrive(
        reply in reply(),
        pieces in prop::collection::vec(1usize..40, 1..6),
    ) {
        let mut buf = bytes(&reply);
        let len = buf.len();
        // The next reply's bytes may already be in the buffer: they are not part of this one.
        buf.extend_from_slice(b"*1\r\n$2\r\nOK\r\n");
        prop_assert_eq!(frame_in_pieces(&buf, &pieces), Ok(Some(len)));
        prop_assert_eq!(frame_in_pieces(&buf[..len - 1], &pieces), Ok(None));
    }
}

#[test]
fn the_common_reply_takes_the_fast_path() {
    let entry = |id: &str, lp: &str| {
        Resp::Array(vec![
            bulk(id),
            Resp::Array(vec![bulk("lp"), bulk(lp), bulk("db"), bulk("telegraf")]),
        ])
    };
    let reply = Resp::Array(vec![Resp::Array(vec![
        bulk("s:1"),
        Resp::Array(vec![
            entry("1-0", "m v=1 1"),
            entry("1-1", "m v=2 2"),
            Resp::Array(vec![bulk("1-2"), Resp::NilArray]),
        ]),
    ])]);
    let read = fast(&bytes(&reply), &keys(), Some(1)).expect("the fast path reads it");
    assert_eq!(read.len(), 1);
    let (stream, messages) = &read[0];
    assert_eq!(*stream, 1);
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["1-0", "1-1", "1-2"]);
    let Body::Metric(entry) = &messages[1].body else {
        panic!("a metric: {:?}", messages[1].body);
    };
    assert_eq!(entry.lp, "m v=2 2");
    assert_eq!(entry.db.as_deref(), Some("telegraf"));
    assert_eq!(messages[2].body, Body::Deleted);
    assert!(fast(b"*-1\r\n", &keys(), None).is_some_and(|r| r.is_empty()));
}

#[test]
fn an_error_reply_is_the_error_redis_rs_reports() {
    let reply = bytes(&Resp::Error(
        "NOGROUP No such key 's:0' or consumer group 'g'",
    ));
    let error = decode_read(&reply, &keys(), Some(1)).expect_err("an error reply");
    assert!(error.is_no_group(), "{error}");
}

#[test]
fn bytes_that_are_not_resp_are_refused() {
    for bad in [&b"?\r\n"[..], b"*x\r\n", b"$3\r\nabcd\r\n", b"+OK\n"] {
        assert_eq!(Frame::default().complete(bad), Err(Malformed), "{bad:?}");
    }
    let deep = b"*1\r\n".repeat(redline_core::redis::raw::MAX_DEPTH + 1);
    assert_eq!(Frame::default().complete(&deep), Err(Malformed));
}
