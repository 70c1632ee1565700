//! Any bytes through the camt parser: an error is fine, a panic or a hang is a bug.
#![no_main]
use bank_adapter::parse::{parse, ParseOptions};
use bank_adapter::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ParseOptions {
        format: Some(Format::Camt053),
        ..ParseOptions::default()
    };
    let _ = parse(data, &options);
});
