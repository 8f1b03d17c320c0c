#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reauth_fuzz::challenge::run(data));
