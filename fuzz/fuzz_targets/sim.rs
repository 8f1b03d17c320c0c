#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reauth_fuzz::sim::run(data));
