//! Any bytes through format detection and whichever parser it picks: an
//! error is fine, a panic or a hang is a bug.
#![no_main]
use bank_adapter::parse::{parse, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, &ParseOptions::default());
});
