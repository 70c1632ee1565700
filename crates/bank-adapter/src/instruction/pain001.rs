//! Renders instructions as an ISO 20022 pain.001.001.09 credit transfer
//! initiation, for banks that take payment files instead of an API.
//! Amounts are written from integer minor units, never through a float.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use quick_xml::escape::escape;

use crate::instruction::{check_max35, decimal_from_minor, Instruction, InstructionError};

const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";
/// The party that builds the file: this system, on behalf of the supervisor.
const INITIATING_PARTY: &str = "escrow-ledger";
/// ISO 20022's placeholder when the debtor's agent is implied by the channel:
/// the file goes to the very bank that holds the supervised account.
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// One `PmtInf` block: ReqdExctnDt and the debtor live at this level, so
/// instructions are grouped by debtor account, institution and date.
struct Group<'a> {
    debtor_account: &'a str,
    institution: &'a str,
    requested_date: NaiveDate,
    transactions: Vec<&'a Instruction>,
}

/// The pain.001.001.09 document for `instructions`, with `message_id` as
/// `GrpHdr/MsgId` (Max35Text) and `created_at` as `CreDtTm`.
pub fn pain001(
    instructions: &[Instruction],
    message_id: &str,
    created_at: DateTime<Utc>,
) -> Result<String, InstructionError> {
    check_max35(message_id).map_err(|reason| InstructionError::InvalidMessageId {
        value: message_id.to_string(),
        reason,
    })?;
    if instructions.is_empty() {
        return Err(InstructionError::EmptyBatch);
    }
    // The id is the EndToEndId the bank echoes back: reconciliation matches
    // on it, so two transfers under one id could never be told apart.
    let mut ids = std::collections::HashSet::new();
    if let Some(twice) = instructions.iter().find(|i| !ids.insert(i.id())) {
        return Err(InstructionError::DuplicateInBatch {
            id: twice.id().to_string(),
        });
    }

    let mut groups: Vec<Group<'_>> = Vec::new();
    for instruction in instructions {
        let key = (
            instruction.debtor_account(),
            instruction.institution().as_str(),
            instruction.requested_date(),
        );
        match groups
            .iter_mut()
            .find(|g| (g.debtor_account, g.institution, g.requested_date) == key)
        {
            Some(group) => group.transactions.push(instruction),
            None => groups.push(Group {
                debtor_account: key.0,
                institution: key.1,
                requested_date: key.2,
                transactions: vec![instruction],
            }),
        }
    }

    let mut xml = String::with_capacity(1024 + instructions.len() * 768);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!("<Document xmlns=\"{NAMESPACE}\">\n"));
    xml.push_str("  <CstmrCdtTrfInitn>\n");
    xml.push_str("    <GrpHdr>\n");
    leaf(&mut xml, 6, "MsgId", message_id);
    leaf(
        &mut xml,
        6,
        "CreDtTm",
        &created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    leaf(&mut xml, 6, "NbOfTxs", &instructions.len().to_string());
    leaf(&mut xml, 6, "CtrlSum", &control_sum(instructions.iter())?);
    xml.push_str("      <InitgPty>\n");
    leaf(&mut xml, 8, "Nm", INITIATING_PARTY);
    xml.push_str("      </InitgPty>\n");
    xml.push_str("    </GrpHdr>\n");

    for (index, group) in groups.iter().enumerate() {
        xml.push_str("    <PmtInf>\n");
        leaf(&mut xml, 6, "PmtInfId", &payment_info_id(message_id, index));
        leaf(&mut xml, 6, "PmtMtd", "TRF");
        leaf(
            &mut xml,
            6,
            "NbOfTxs",
            &group.transactions.len().to_string(),
        );
        leaf(
            &mut xml,
            6,
            "CtrlSum",
            &control_sum(group.transactions.iter().copied())?,
        );
        xml.push_str("      <ReqdExctnDt>\n");
        leaf(
            &mut xml,
            8,
            "Dt",
            &group.requested_date.format("%Y-%m-%d").to_string(),
        );
        xml.push_str("      </ReqdExctnDt>\n");
        xml.push_str("      <Dbtr>\n        <Id>\n          <OrgId>\n            <Othr>\n");
        leaf(&mut xml, 14, "Id", group.institution);
        xml.push_str("            </Othr>\n          </OrgId>\n        </Id>\n      </Dbtr>\n");
        account(&mut xml, 6, "DbtrAcct", group.debtor_account);
        agent(&mut xml, 6, "DbtrAgt", NOT_PROVIDED);
        for instruction in &group.transactions {
            transaction(&mut xml, instruction);
        }
        xml.push_str("    </PmtInf>\n");
    }
    xml.push_str("  </CstmrCdtTrfInitn>\n</Document>\n");
    Ok(xml)
}

fn transaction(xml: &mut String, instruction: &Instruction) {
    let currency = instruction.currency();
    let amount = decimal_from_minor(
        i128::from(instruction.amount().minor()),
        currency.exponent(),
    );
    xml.push_str("      <CdtTrfTxInf>\n");
    xml.push_str("        <PmtId>\n");
    leaf(xml, 10, "InstrId", instruction.id().as_str());
    leaf(xml, 10, "EndToEndId", instruction.id().as_str());
    xml.push_str("        </PmtId>\n");
    xml.push_str("        <Amt>\n");
    xml.push_str(&format!(
        "          <InstdAmt Ccy=\"{}\">{}</InstdAmt>\n",
        currency.code(),
        amount
    ));
    xml.push_str("        </Amt>\n");
    let creditor = instruction.creditor();
    agent(xml, 8, "CdtrAgt", &creditor.bank);
    xml.push_str("        <Cdtr>\n");
    leaf(xml, 10, "Nm", &creditor.name);
    xml.push_str("        </Cdtr>\n");
    account(xml, 8, "CdtrAcct", &creditor.account);
    if let Some(remittance) = instruction.remittance() {
        xml.push_str("        <RmtInf>\n");
        leaf(xml, 10, "Ustrd", remittance);
        xml.push_str("        </RmtInf>\n");
    }
    xml.push_str("      </CdtTrfTxInf>\n");
}

/// Sum of amounts as a decimal string; currencies with different exponents
/// are brought to the largest one, in integers (ISO sums across currencies).
fn control_sum<'a>(
    instructions: impl Iterator<Item = &'a Instruction> + Clone,
) -> Result<String, InstructionError> {
    let exponent = instructions
        .clone()
        .map(|i| i.currency().exponent())
        .max()
        .unwrap_or(0);
    let mut total: i128 = 0;
    for instruction in instructions {
        let shift = exponent.saturating_sub(instruction.currency().exponent());
        let scaled = i128::from(instruction.amount().minor())
            .checked_mul(10_i128.pow(shift))
            .ok_or(InstructionError::SumOverflow)?;
        total = total
            .checked_add(scaled)
            .ok_or(InstructionError::SumOverflow)?;
    }
    Ok(decimal_from_minor(total, exponent))
}

/// `PmtInfId` is Max35Text: the message id (≤ 35) leaves room only when it
/// is short, so long message ids fall back to a suffix-preserving form.
fn payment_info_id(message_id: &str, index: usize) -> String {
    let suffix = format!("-{}", index + 1);
    let keep = 35_usize.saturating_sub(suffix.len()).min(message_id.len());
    format!("{}{suffix}", &message_id[..keep])
}

fn leaf(xml: &mut String, indent: usize, name: &str, text: &str) {
    xml.push_str(&format!(
        "{:indent$}<{name}>{}</{name}>\n",
        "",
        escape(text)
    ));
}

fn account(xml: &mut String, indent: usize, name: &str, id: &str) {
    // Chinese account numbers are not IBANs: `Othr/Id` is the generic form.
    let pad = " ".repeat(indent);
    xml.push_str(&format!("{pad}<{name}>\n{pad}  <Id>\n{pad}    <Othr>\n"));
    leaf(xml, indent + 6, "Id", id);
    xml.push_str(&format!("{pad}    </Othr>\n{pad}  </Id>\n{pad}</{name}>\n"));
}

fn agent(xml: &mut String, indent: usize, name: &str, bank: &str) {
    let pad = " ".repeat(indent);
    xml.push_str(&format!("{pad}<{name}>\n{pad}  <FinInstnId>\n"));
    if looks_like_bic(bank) {
        leaf(xml, indent + 4, "BICFI", bank);
    } else {
        xml.push_str(&format!("{pad}    <Othr>\n"));
        leaf(xml, indent + 6, "Id", bank);
        xml.push_str(&format!("{pad}    </Othr>\n"));
    }
    xml.push_str(&format!("{pad}  </FinInstnId>\n{pad}</{name}>\n"));
}

/// BIC shape (ISO 9362): 4 letters bank, 2 letters country, 2 alphanumerics
/// location, optional 3 alphanumerics branch. Anything else (a CNAPS code)
/// goes in `Othr/Id`.
fn looks_like_bic(bank: &str) -> bool {
    let bytes = bank.as_bytes();
    matches!(bytes.len(), 8 | 11)
        && bytes[..6].iter().all(u8::is_ascii_uppercase)
        && bytes[6..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use ledger_core::{Amount, Currency};
    use quick_xml::events::Event;
    use quick_xml::Reader;

    use super::*;
    use crate::instruction::tests::spec;
    use crate::instruction::{InstructionId, InstructionSpec};

    fn created_at() -> DateTime<Utc> {
        match Utc.with_ymd_and_hms(2026, 1, 5, 9, 30, 0) {
            chrono::LocalResult::Single(t) => t,
            _ => panic!("bad test time"),
        }
    }

    /// Every element's text by its path (`CdtTrfTxInf/PmtId/EndToEndId`),
    /// in document order, plus `@Ccy` of each `InstdAmt`.
    fn read_back(xml: &str) -> Vec<(String, String)> {
        let mut reader = Reader::from_str(xml);
        let mut path: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut out = Vec::new();
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    for attr in e.attributes().flatten() {
                        if attr.key.as_ref() == b"Ccy" {
                            out.push((
                                format!("{}/{name}/@Ccy", path.join("/")),
                                String::from_utf8_lossy(&attr.value).into_owned(),
                            ));
                        }
                    }
                    path.push(name);
                    text.clear();
                }
                Ok(Event::Text(t)) => text.push_str(&t.decode().expect("utf-8")),
                Ok(Event::GeneralRef(r)) => {
                    let entity = r.decode().expect("utf-8");
                    text.push_str(match entity.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("unexpected entity {other}"),
                    });
                }
                Ok(Event::End(_)) => {
                    if !text.trim().is_empty() {
                        out.push((path.join("/"), text.trim().to_string()));
                    }
                    text.clear();
                    path.pop();
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(error) => panic!("pain.001 is not well-formed xml: {error}"),
            }
        }
        assert!(path.is_empty(), "unclosed elements: {path:?}");
        out
    }

    fn values<'a>(fields: &'a [(String, String)], suffix: &str) -> Vec<&'a str> {
        fields
            .iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn instruction(id: &str, minor: i64, debtor: &str) -> Instruction {
        let mut s: InstructionSpec = spec(id, minor);
        s.debtor_account = debtor.into();
        Instruction::new(s).expect("valid")
    }

    #[test]
    fn the_document_parses_back_with_matching_counts_sums_and_ids() {
        let batch = vec![
            instruction("RF-1", 123_450, "6222000000000001"),
            instruction("RF-2", 1, "6222000000000002"),
            instruction("RF-3", 99_999_999, "6222000000000001"),
        ];
        let xml = pain001(&batch, "MSG-2026-0001", created_at()).expect("render");
        assert!(xml.contains("xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\""));
        let fields = read_back(&xml);

        assert_eq!(values(&fields, "GrpHdr/MsgId"), ["MSG-2026-0001"]);
        assert_eq!(values(&fields, "GrpHdr/CreDtTm"), ["2026-01-05T09:30:00Z"]);
        assert_eq!(values(&fields, "GrpHdr/NbOfTxs"), ["3"]);
        assert_eq!(values(&fields, "GrpHdr/CtrlSum"), ["1001234.50"]);
        // Two debtor accounts: two PmtInf blocks, each with its own sums.
        assert_eq!(values(&fields, "PmtInf/NbOfTxs"), ["2", "1"]);
        assert_eq!(values(&fields, "PmtInf/CtrlSum"), ["1001234.49", "0.01"]);
        assert_eq!(
            values(&fields, "DbtrAcct/Id/Othr/Id"),
            ["6222000000000001", "6222000000000002"]
        );
        assert_eq!(
            values(&fields, "PmtId/EndToEndId"),
            ["RF-1", "RF-3", "RF-2"]
        );
        assert_eq!(
            values(&fields, "Amt/InstdAmt"),
            ["1234.50", "999999.99", "0.01"]
        );
        assert_eq!(values(&fields, "InstdAmt/@Ccy"), ["CNY", "CNY", "CNY"]);
        assert_eq!(
            values(&fields, "ReqdExctnDt/Dt"),
            ["2026-01-05", "2026-01-05"]
        );
        assert_eq!(values(&fields, "CdtrAgt/FinInstnId/BICFI"), ["ICBKCNBJ"; 3]);

        // The amounts add up to the control sum, in integers.
        let total: i64 = values(&fields, "Amt/InstdAmt")
            .iter()
            .map(|a| Amount::parse(a, Currency::Cny).expect("amount").minor())
            .sum();
        assert_eq!(total, 123_450 + 1 + 99_999_999);
    }

    #[test]
    fn text_is_xml_escaped_and_survives_the_round_trip() {
        let mut s = spec("RF-9", 500);
        s.creditor.name = "Li & Sons <\"学\">".into();
        s.remittance = Some("a'b & c".into());
        s.creditor.bank = "102100099996".into(); // a CNAPS code, not a BIC
        let xml =
            pain001(&[Instruction::new(s).expect("valid")], "M1", created_at()).expect("render");
        let fields = read_back(&xml);
        assert_eq!(values(&fields, "Cdtr/Nm"), ["Li & Sons <\"学\">"]);
        assert_eq!(values(&fields, "RmtInf/Ustrd"), ["a'b & c"]);
        assert_eq!(
            values(&fields, "CdtrAgt/FinInstnId/Othr/Id"),
            ["102100099996"]
        );
    }

    #[test]
    fn different_requested_dates_get_their_own_payment_information() {
        let first = instruction("R-1", 100, "6222000000000001");
        let mut later = spec("R-2", 200);
        later.debtor_account = "6222000000000001".into();
        later.requested_date = NaiveDate::from_ymd_opt(2026, 1, 6).expect("date");
        let xml = pain001(
            &[first, Instruction::new(later).expect("valid")],
            "M2",
            created_at(),
        )
        .expect("render");
        let fields = read_back(&xml);
        assert_eq!(
            values(&fields, "ReqdExctnDt/Dt"),
            ["2026-01-05", "2026-01-06"]
        );
        assert_eq!(values(&fields, "PmtInf/PmtInfId"), ["M2-1", "M2-2"]);
    }

    #[test]
    fn an_empty_batch_or_a_bad_message_id_is_refused() {
        assert_eq!(
            pain001(&[], "M1", created_at()).map_err(|e| e.code()),
            Err("empty_batch")
        );
        let one = [instruction("R-1", 100, "6222000000000001")];
        for bad in ["", "has space", &"m".repeat(36)] {
            assert_eq!(
                pain001(&one, bad, created_at()).map_err(|e| e.code()),
                Err("invalid_message_id")
            );
        }
    }

    #[test]
    fn long_message_ids_still_give_payment_information_ids_of_at_most_35_characters() {
        let id = "M".repeat(35);
        let info = payment_info_id(&id, 11);
        assert!(info.len() <= 35 && info.ends_with("-12"), "{info}");
    }

    #[test]
    fn an_instruction_id_used_twice_in_one_batch_is_refused() {
        let twice = [
            instruction("R-1", 100, "6222000000000001"),
            instruction("R-1", 200, "6222000000000002"),
        ];
        assert_eq!(
            pain001(&twice, "M4", created_at()).map_err(|e| e.code()),
            Err("duplicate_instruction_in_batch")
        );
    }

    #[test]
    fn every_instruction_of_a_large_batch_appears_once_with_its_end_to_end_id() {
        let batch: Vec<Instruction> = (1..=20)
            .map(|n| instruction(&format!("R-{n}"), n, "6222000000000001"))
            .collect();
        let xml = pain001(&batch, "M3", created_at()).expect("render");
        let fields = read_back(&xml);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in values(&fields, "EndToEndId") {
            *counts.entry(id).or_default() += 1;
        }
        assert_eq!(counts.len(), 20);
        assert!(InstructionId::parse("R-20").is_ok());
        assert_eq!(values(&fields, "GrpHdr/CtrlSum"), ["2.10"]);
    }
}
