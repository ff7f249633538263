#![no_main]
//! Any bytes as a samples Parquet file: an error or rows, never a panic.
mod common;
libfuzzer_sys::fuzz_target!(init: {
    // gapmap catches the Parquet reader's panics on damaged files and reports
    // an error; libFuzzer's hook would abort first, so use Rust's own hook.
    // A panic anywhere else still unwinds out of the target and is a crash.
    let _ = std::panic::take_hook();
}, |data: &[u8]| common::read_samples(data, "parquet"));
