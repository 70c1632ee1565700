//! The chart of accounts of one institution (DESIGN.md, "The books of one
//! institution") and the totals every account keeps.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::error::LedgerError;
use crate::domain::ids::EnrollmentId;
use crate::domain::money::{add_minor, sub_minor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Asset,
    Liability,
}

/// One account of an institution's chart. On the wire and in the database
/// it is its code (`escrow_cash`, `prepaid/ENR-1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AccountCode {
    EscrowCash,
    DepositCash,
    HeldByInstitution,
    Prepaid(EnrollmentId),
    Releasable,
    RefundPayable,
    Unidentified,
    DepositPayable,
}

impl AccountCode {
    /// The accounts every institution has from the day it is registered;
    /// `prepaid/{enrollment}` accounts open with each enrollment.
    pub const FIXED: [AccountCode; 7] = [
        AccountCode::EscrowCash,
        AccountCode::DepositCash,
        AccountCode::HeldByInstitution,
        AccountCode::Releasable,
        AccountCode::RefundPayable,
        AccountCode::Unidentified,
        AccountCode::DepositPayable,
    ];

    pub fn account_type(&self) -> AccountType {
        match self {
            AccountCode::EscrowCash | AccountCode::DepositCash | AccountCode::HeldByInstitution => {
                AccountType::Asset
            }
            _ => AccountType::Liability,
        }
    }

    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        Ok(match text {
            "escrow_cash" => AccountCode::EscrowCash,
            "deposit_cash" => AccountCode::DepositCash,
            "held_by_institution" => AccountCode::HeldByInstitution,
            "releasable" => AccountCode::Releasable,
            "refund_payable" => AccountCode::RefundPayable,
            "unidentified" => AccountCode::Unidentified,
            "deposit_payable" => AccountCode::DepositPayable,
            other => match other.strip_prefix("prepaid/") {
                Some(enrollment) => {
                    AccountCode::Prepaid(EnrollmentId::parse(enrollment).map_err(|_| {
                        LedgerError::UnknownAccountCode {
                            account: other.to_string(),
                        }
                    })?)
                }
                None => {
                    return Err(LedgerError::UnknownAccountCode {
                        account: other.to_string(),
                    })
                }
            },
        })
    }
}

impl TryFrom<String> for AccountCode {
    type Error = LedgerError;
    fn try_from(text: String) -> Result<Self, LedgerError> {
        AccountCode::parse(&text)
    }
}

impl From<AccountCode> for String {
    fn from(code: AccountCode) -> String {
        code.to_string()
    }
}

/// An account and a code as text are the same account when the text is
/// its code.
impl PartialEq<&str> for AccountCode {
    fn eq(&self, code: &&str) -> bool {
        AccountCode::parse(code).is_ok_and(|parsed| parsed == *self)
    }
}

impl fmt::Display for AccountCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountCode::EscrowCash => f.write_str("escrow_cash"),
            AccountCode::DepositCash => f.write_str("deposit_cash"),
            AccountCode::HeldByInstitution => f.write_str("held_by_institution"),
            AccountCode::Prepaid(e) => write!(f, "prepaid/{e}"),
            AccountCode::Releasable => f.write_str("releasable"),
            AccountCode::RefundPayable => f.write_str("refund_payable"),
            AccountCode::Unidentified => f.write_str("unidentified"),
            AccountCode::DepositPayable => f.write_str("deposit_payable"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn code(self) -> &'static str {
        match self {
            Side::Debit => "D",
            Side::Credit => "C",
        }
    }
    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "D" => Some(Side::Debit),
            "C" => Some(Side::Credit),
            _ => None,
        }
    }
    pub fn opposite(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

/// Debit and credit totals of one account, posted and pending, kept apart so
/// that the balance is always derived, never stored as a lossy net.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub posted_debits_minor: i64,
    pub posted_credits_minor: i64,
    pub pending_debits_minor: i64,
    pub pending_credits_minor: i64,
}

impl Totals {
    /// Posted balance on the account's normal side (debit for assets,
    /// credit for liabilities).
    pub fn posted_balance(&self, account_type: AccountType) -> i64 {
        match account_type {
            AccountType::Asset => self.posted_debits_minor - self.posted_credits_minor,
            AccountType::Liability => self.posted_credits_minor - self.posted_debits_minor,
        }
    }

    /// What may still leave the account: the posted balance less the pending
    /// amounts already promised away (the floor is checked against this).
    pub fn available(&self, account_type: AccountType) -> i64 {
        match account_type {
            AccountType::Asset => {
                self.posted_debits_minor - self.posted_credits_minor - self.pending_credits_minor
            }
            AccountType::Liability => {
                self.posted_credits_minor - self.posted_debits_minor - self.pending_debits_minor
            }
        }
    }

    pub fn add(&mut self, side: Side, pending: bool, amount: i64) -> Result<(), LedgerError> {
        let slot = match (side, pending) {
            (Side::Debit, false) => &mut self.posted_debits_minor,
            (Side::Credit, false) => &mut self.posted_credits_minor,
            (Side::Debit, true) => &mut self.pending_debits_minor,
            (Side::Credit, true) => &mut self.pending_credits_minor,
        };
        *slot = add_minor(*slot, amount)?;
        Ok(())
    }

    pub fn remove_pending(&mut self, side: Side, amount: i64) -> Result<(), LedgerError> {
        let slot = match side {
            Side::Debit => &mut self.pending_debits_minor,
            Side::Credit => &mut self.pending_credits_minor,
        };
        *slot = sub_minor(*slot, amount)?;
        assert!(
            *slot >= 0,
            "pending total went negative: a resolution without its pending entry"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_codes_round_trip_through_text() {
        let e = EnrollmentId::parse("E-1").unwrap();
        for code in AccountCode::FIXED
            .into_iter()
            .chain([AccountCode::Prepaid(e)])
        {
            assert_eq!(AccountCode::parse(&code.to_string()), Ok(code));
        }
        assert_eq!(
            AccountCode::parse("cash").map_err(|e| e.code()),
            Err("unknown_account_code")
        );
    }
}
