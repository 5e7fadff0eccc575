//! Arbitrary key, line, db and rp → the producer's XADD packing against redis-rs's.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: (String, String, Option<String>, Option<String>)| {
    let (key, line, db, rp) = input;
    redline_fuzz::xadd(&key, &line, db, rp);
});
