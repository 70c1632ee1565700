//! Identifier newtypes: parsed once at the edge, so the rest of the code can
//! trust them (no '/', bounded length, printable ASCII).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::error::LedgerError;

fn check_id(what: &'static str, value: &str, max_len: usize) -> Result<(), LedgerError> {
    let invalid = |reason| LedgerError::InvalidId {
        what,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("it is empty"));
    }
    if value.len() > max_len {
        return Err(invalid("it is too long"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(invalid(
            "only ASCII letters, digits and '-', '_', '.', ':' are allowed",
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, LedgerError> {
                let value = value.into();
                check_id($what, &value, $max)?;
                Ok(Self(value))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = LedgerError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An institution, e.g. its platform id `INS-410922-0001`.
    InstitutionId, "institution id", 64
);
id_type!(
    /// One contract of one student with one institution.
    EnrollmentId, "enrollment id", 64
);
id_type!(
    /// The caller's id for an entry: its idempotency key within the institution.
    ClientId, "client id", 128
);

/// A refund's id, ours: "RF" and letters or digits, at most 32 in all (its
/// entries' client ids add two characters and stay within the bank's 35).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RefundId(String);

impl RefundId {
    pub fn parse(value: impl Into<String>) -> Result<Self, LedgerError> {
        let value = value.into();
        if value.len() <= 32
            && value.len() > 2
            && value.starts_with("RF")
            && value.chars().all(|c| c.is_ascii_alphanumeric())
        {
            Ok(RefundId(value))
        } else {
            Err(LedgerError::InvalidId {
                what: "refund id",
                value: value.chars().take(64).collect(),
                reason: "a refund id is \"RF\" and letters or digits, at most 32 in all",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RefundId {
    type Error = LedgerError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<RefundId> for String {
    fn from(id: RefundId) -> String {
        id.0
    }
}

impl fmt::Display for RefundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for RefundId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// An administrative division code (six digits, e.g. `410922`; `000000` is national).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JurisdictionCode(String);

impl JurisdictionCode {
    pub const NATIONAL: &'static str = "000000";

    pub fn parse(value: impl Into<String>) -> Result<Self, LedgerError> {
        let value = value.into();
        if value.len() != 6 || !value.chars().all(|c| c.is_ascii_digit()) {
            return Err(LedgerError::InvalidId {
                what: "jurisdiction code",
                value,
                reason: "it must be six digits (an administrative division code)",
            });
        }
        Ok(Self(value))
    }

    pub fn national() -> Self {
        Self(Self::NATIONAL.to_string())
    }

    /// Whether `other` is this division or lies below it. Administrative
    /// division codes nest by pairs of digits (GB/T 2260): province `41`0000
    /// ⊃ city `4109`00 ⊃ county `410922`, and `000000` is the nation.
    pub fn covers(&self, other: &JurisdictionCode) -> bool {
        let b = self.0.as_bytes();
        let significant = (0..3)
            .rev()
            .find(|&pair| &b[2 * pair..2 * pair + 2] != b"00")
            .map_or(0, |pair| 2 * pair + 2);
        other.0.as_bytes()[..significant] == b[..significant]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The division directly above this one by the code's own structure
    /// (GB/T 2260): a county `410922` lies in city `410900`, a city in
    /// province `410000`, a province in the nation `000000`; the nation has
    /// none.
    pub fn structural_parent(&self) -> Option<JurisdictionCode> {
        let b = &self.0;
        if b == Self::NATIONAL {
            None
        } else if &b[2..] == "0000" {
            Some(Self::national())
        } else if &b[4..] == "00" {
            Some(Self(format!("{}0000", &b[..2])))
        } else {
            Some(Self(format!("{}00", &b[..4])))
        }
    }

    /// Checks that the code is one GB/T 2260 can give: the nation, or a
    /// province prefix in use (11–15, 21–23, 31–37, 41–46, 50–54, 61–65, 71,
    /// 81, 82) with a city and county part that skip no level (`410022`,
    /// a county with no city, is not a division).
    pub fn check_division(&self) -> Result<(), LedgerError> {
        let b = &self.0;
        if b == Self::NATIONAL {
            return Ok(());
        }
        let invalid = |reason: &'static str| LedgerError::InvalidId {
            what: "jurisdiction code",
            value: b.clone(),
            reason,
        };
        let province: u32 = b[..2]
            .parse()
            .map_err(|_| invalid("it must be six digits"))?;
        let in_use = matches!(province, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82);
        if !in_use {
            return Err(invalid("its first two digits are no province of GB/T 2260 (11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81, 82)"));
        }
        if &b[2..4] == "00" && &b[4..] != "00" {
            return Err(invalid(
                "a county code needs its city digits (the middle pair is 00)",
            ));
        }
        Ok(())
    }
}

impl TryFrom<String> for JurisdictionCode {
    type Error = LedgerError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}
impl From<JurisdictionCode> for String {
    fn from(id: JurisdictionCode) -> String {
        id.0
    }
}
impl fmt::Display for JurisdictionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_division_knows_the_one_above_it_and_codes_skip_no_level() {
        let code = |c: &str| JurisdictionCode::parse(c).unwrap();
        let parent = |c: &str| code(c).structural_parent().map(|p| p.to_string());
        assert_eq!(parent("000000"), None);
        assert_eq!(parent("410000").as_deref(), Some("000000"));
        assert_eq!(parent("410900").as_deref(), Some("410000"));
        assert_eq!(parent("410922").as_deref(), Some("410900"));
        for ok in ["000000", "110000", "110101", "410922", "419001", "820000"] {
            assert!(code(ok).check_division().is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("990000", "no province"),
            ("100000", "no province"),
            ("410022", "city digits"),
        ] {
            let e = code(bad).check_division().unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_division_covers_itself_and_what_lies_below_it() {
        let code = |c: &str| JurisdictionCode::parse(c).unwrap();
        assert!(code("000000").covers(&code("410922")));
        assert!(code("410000").covers(&code("410922")));
        assert!(code("410900").covers(&code("410922")));
        assert!(code("410922").covers(&code("410922")));
        assert!(!code("410922").covers(&code("410900")));
        assert!(!code("410900").covers(&code("410100")));
        assert!(!code("410000").covers(&code("420922")));
        assert!(!code("410922").covers(&code("410923")));
    }

    use super::*;

    #[test]
    fn ids_reject_empty_long_and_slashed_values() {
        assert!(InstitutionId::parse("INS-1").is_ok());
        for bad in ["", "a/b", "with space", &"x".repeat(65)] {
            assert_eq!(
                InstitutionId::parse(bad).map_err(|e| e.code()),
                Err("invalid_id"),
                "{bad:?}"
            );
        }
        assert!(JurisdictionCode::parse("410922").is_ok());
        assert!(JurisdictionCode::parse("41092").is_err());
        assert!(JurisdictionCode::parse("41092a").is_err());
    }
}
