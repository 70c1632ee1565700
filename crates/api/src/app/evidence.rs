//! The evidence the workflow's alerts carry: what an officer follows to the
//! refund or the instruction at fault. Kept as JSON text on the alert.

use chrono::NaiveDate;
use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence<'a> {
    Refund {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        enrollment: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pay_by: Option<NaiveDate>,
    },
    Instruction {
        id: &'a str,
        bank_ref: Option<&'a str>,
    },
}

/// A list of evidence as the alert keeps it.
pub fn text(items: &[Evidence<'_>]) -> String {
    // Serializing these plain structs cannot fail; an empty list is the
    // honest fallback if it ever did.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_keeps_the_shape_officers_and_the_console_read() {
        assert_eq!(
            text(&[Evidence::Refund {
                id: "RF1",
                enrollment: Some("ENR-1"),
                pay_by: None
            }]),
            r#"[{"type":"refund","id":"RF1","enrollment":"ENR-1"}]"#
        );
        assert_eq!(
            text(&[Evidence::Instruction {
                id: "I-1",
                bank_ref: None
            }]),
            r#"[{"type":"instruction","id":"I-1","bank_ref":null}]"#
        );
    }
}
