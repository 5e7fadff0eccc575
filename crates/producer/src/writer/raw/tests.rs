use proptest::prelude::*;

use super::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("cpu,host=a usage=0.5 1700000000000000000".to_string()),
        "\\PC{0,40}",
        prop::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_xadd_is_packed_byte_for_byte_as_redis_rs_packs_it(
        key in text(),
        line in text(),
        db in prop::option::of(text()),
        rp in prop::option::of(text()),
    ) {
        let target = Target { db, rp };
        let mut ours = b"leading bytes stay".to_vec();
        pack_xadd(&mut ours, &key, &line, &target);
        let mut theirs = b"leading bytes stay".to_vec();
        theirs.extend_from_slice(&super::super::xadd(&key, &line, &target).get_packed_command());
        prop_assert_eq!(&ours, &theirs);
        // One packer, many lines: each XADD as redis-rs packs it.
        let packer = Packer::new(&key, &target);
        let mut many = Vec::new();
        let mut expected = Vec::new();
        for line in [line.as_str(), "", "m v=1i 1", &line] {
            packer.pack(&mut many, line);
            expected.extend_from_slice(&super::super::xadd(&key, line, &target).get_packed_command());
        }
        prop_assert_eq!(many, expected);
    }
}

#[test]
fn decimals_are_written_as_redis_reads_them() {
    for n in [0, 1, 9, 10, 42, 99, 100, 512, 999, 1000, 65_535, usize::MAX] {
        let mut out = Vec::new();
        push_decimal(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
}

/// Whole replies, cut where a frame ends.
fn split(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = redline_core::redis::raw::Frame::default()
            .complete(bytes)
            .unwrap()
            .unwrap();
        out.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    out
}

#[test]
fn replies_are_stored_refused_or_counted_as_redis_sent_them() {
    let stored = b"$3\r\n1-0\r\n$3\r\n1-1\r\n:2\r\n";
    assert!(matches!(
        check(split(stored).into_iter(), true),
        Outcome::Stored(Some(2))
    ));
    assert!(matches!(
        check(split(&stored[..18]).into_iter(), false),
        Outcome::Stored(None)
    ));
    let refused =
        b"$3\r\n1-0\r\n-OOM command not allowed when used memory > 'maxmemory'.\r\n$3\r\n1-2\r\n";
    let Outcome::Refused(error) = check(split(refused).into_iter(), false) else {
        panic!("an error reply refuses the round");
    };
    assert!(redline_core::redis::is_oom(&error), "{error}");
    let unpersisted =
        b"$3\r\n1-0\r\n-MISCONF Errors writing to the AOF file: No space left on device\r\n";
    let Outcome::Refused(error) = check(split(unpersisted).into_iter(), false) else {
        panic!("an error reply refuses the round");
    };
    assert!(redline_core::redis::is_unpersisted(&error), "{error}");
    assert!(!redline_core::redis::is_oom(&error), "{error}");
    assert!(matches!(
        super::classify(error),
        Error::Unpersisted(text) if text.contains("No space left on device")
    ));
    let short = b"-NOREPLICAS Not enough good replicas to write.\r\n";
    let Outcome::Refused(error) = check(split(short).into_iter(), false) else {
        panic!("an error reply refuses the round");
    };
    assert!(redline_core::redis::is_short_of_replicas(&error), "{error}");
    assert!(!redline_core::redis::is_unpersisted(&error), "{error}");
    assert!(matches!(super::classify(error), Error::TooFewReplicas(_)));
}
