//! Request body bytes → decode (gzip when the bytes start with gzip's magic) → parse →
//! accepted lines; every accepted line must parse back to itself and survive an entry.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redline_fuzz::ingest(data));
