//! Any bytes through the CSV parser with a GBK mapping: an error is fine, a
//! panic or a hang is a bug.
#![no_main]
use bank_adapter::parse::csv::CsvMapping;
use bank_adapter::parse::{parse, ParseOptions};
use bank_adapter::Format;
use libfuzzer_sys::fuzz_target;

const MAPPING: &str = r#"{"bank":"fuzz","encoding":"gbk","skip_lines":1,"date_format":"%Y%m%d",
  "thousands_separator":",","account":"A","currency":"CNY","booking_date":"交易日期",
  "amount":{"style":"debit_credit","debit":"借方发生额","credit":"贷方发生额"},"balance_after":"余额"}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(mapping) = serde_json::from_str::<CsvMapping>(MAPPING) else { return };
    let options = ParseOptions {
        format: Some(Format::Csv),
        csv: Some(mapping),
        ..ParseOptions::default()
    };
    let _ = parse(data, &options);
});
