#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| multiproc::fuzzing::frame(bytes));
