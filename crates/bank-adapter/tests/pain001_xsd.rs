//! The pain.001 we write, validated against ISO 20022's own
//! pain.001.001.09 schema by xmllint: a refund and a release, Chinese
//! names, amounts with fen. `scripts/iso20022-xsd` brings the schema
//! (pinned by SHA-256) into target/ and installs xmllint when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use bank_adapter::instruction::{
    pain001, Creditor, Instruction, InstructionId, InstructionKind, InstructionSpec,
};
use chrono::{NaiveDate, TimeZone, Utc};
use ledger_core::{Amount, Currency, InstitutionId};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The schema's path, fetched once into target/iso20022/ (once per test
/// process: the tests run in parallel).
fn schema() -> PathBuf {
    static SCHEMA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(fetch_schema).clone()
}

fn fetch_schema() -> PathBuf {
    let out = Command::new(workspace().join("scripts/iso20022-xsd"))
        .output()
        .expect("scripts/iso20022-xsd runs");
    assert!(
        out.status.success(),
        "scripts/iso20022-xsd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// xmllint's verdict on `xml` against the schema: Ok, or its complaints.
fn validate(schema: &Path, xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pain001.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(&file)
        .output()
        .expect("xmllint runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn instruction(
    id: &str,
    kind: InstructionKind,
    creditor: (&str, &str, &str),
    minor: i64,
    remittance: &str,
) -> Instruction {
    Instruction::new(InstructionSpec {
        id: InstructionId::parse(id).unwrap(),
        kind,
        institution: InstitutionId::parse("INS-410922-0001").unwrap(),
        debtor_account: "6222020200001234".into(),
        creditor: Creditor {
            name: creditor.0.into(),
            account: creditor.1.into(),
            bank: creditor.2.into(),
        },
        amount: Amount::from_minor(minor).unwrap(),
        currency: Currency::Cny,
        requested_date: NaiveDate::from_ymd_opt(2026, 11, 9).unwrap(),
        remittance: Some(remittance.into()),
    })
    .unwrap()
}

#[test]
fn a_refund_and_a_release_in_chinese_with_fen_are_valid_pain_001_001_09() {
    let schema = schema();
    let refund = instruction(
        "RFA1B2C3D4E5F6A7B8C9D0",
        InstructionKind::Refund,
        ("张三", "6217000010001234567", "ICBKCNBJ"),
        300_001,
        "退费 学员张小明 报名 E-1 未消课时",
    );
    let release = instruction(
        "REL-2026-11.07",
        InstructionKind::Release,
        (
            "清丰县启明培训学校有限公司",
            "6222000011112222",
            "102100099996",
        ),
        120_050,
        "拨付 2026年11月第1周 已确认课消",
    );
    let created = Utc.with_ymd_and_hms(2026, 11, 9, 8, 30, 0).unwrap();
    for (what, batch) in [
        ("a refund", vec![refund.clone()]),
        ("a release", vec![release.clone()]),
        ("both in one file", vec![refund, release]),
    ] {
        let xml = pain001(&batch, "MSG-20261109-0001", created).unwrap();
        assert!(xml.contains("urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"));
        validate(&schema, &xml).unwrap_or_else(|e| panic!("{what}: {e}\n{xml}"));
    }
}

#[test]
fn the_schema_check_is_real_a_broken_document_fails_it() {
    let schema = schema();
    let xml = pain001(
        &[instruction(
            "RF-1",
            InstructionKind::Refund,
            ("李四", "6217000010001234567", "ICBKCNBJ"),
            1,
            "退费",
        )],
        "MSG-1",
        Utc.with_ymd_and_hms(2026, 11, 9, 8, 30, 0).unwrap(),
    )
    .unwrap();
    assert!(validate(&schema, &xml).is_ok());
    // A negative amount, and a missing message id.
    let bad_amount = xml.replace(">0.01<", ">-0.01<");
    assert_ne!(bad_amount, xml, "the amount is written as 0.01");
    assert!(validate(&schema, &bad_amount).is_err());
    let no_msg_id = xml.replace("<MsgId>MSG-1</MsgId>", "");
    assert!(validate(&schema, &no_msg_id).is_err());
}
