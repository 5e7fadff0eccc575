//! Request body bytes → each line through the fast path and the general path; they must
//! agree wherever the fast path takes a line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redline_fuzz::scan(data));
