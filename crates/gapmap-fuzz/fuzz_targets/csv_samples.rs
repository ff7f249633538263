#![no_main]
//! Any bytes as a samples CSV: an error or rows, never a panic.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::read_samples(data, "csv"));
