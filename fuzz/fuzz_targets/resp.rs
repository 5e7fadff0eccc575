//! Arbitrary bytes as an XREADGROUP reply → the consumer's RESP decoder against redis-rs's.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redline_fuzz::xreadgroup_reply(data));
