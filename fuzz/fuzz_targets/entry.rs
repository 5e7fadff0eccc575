//! Arbitrary stream entry field maps (as other tools may write them) → `Entry::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|fields: Vec<(String, redline_fuzz::FieldValue)>| {
    redline_fuzz::entry(fields)
});
