//! What the store reports: balance sheets (now or at any past instant) and
//! the result of re-verifying the hash chains and running totals.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::accounts::{AccountCode, AccountType, Side, Totals};
use crate::domain::chain::{entry_hash, GENESIS_HASH};
use crate::domain::entry::Phase;
use crate::domain::ids::InstitutionId;
use crate::domain::money::Currency;
use crate::store::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountBalance {
    pub account: String,
    pub account_type: AccountType,
    #[serde(flatten)]
    pub totals: Totals,
    /// Posted balance on the account's normal side.
    pub balance_minor: i64,
    /// Balance less pending outflows: what the floor is checked against.
    pub available_minor: i64,
}

impl AccountBalance {
    pub fn new(code: &AccountCode, totals: Totals) -> Self {
        let t = code.account_type();
        AccountBalance {
            account: code.to_string(),
            account_type: t,
            totals,
            balance_minor: totals.posted_balance(t),
            available_minor: totals.available(t),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceSheet {
    pub institution: InstitutionId,
    pub currency: Currency,
    /// `None` for the current balances.
    pub as_of: Option<DateTime<Utc>>,
    pub accounts: Vec<AccountBalance>,
}

impl BalanceSheet {
    /// Posted balance of one account (zero if it has none).
    pub fn balance(&self, account: &str) -> i64 {
        self.accounts
            .iter()
            .find(|a| a.account == account)
            .map_or(0, |a| a.balance_minor)
    }

    fn sum(&self, keep: impl Fn(&AccountBalance) -> bool) -> i64 {
        self.accounts
            .iter()
            .filter(|a| keep(a))
            .map(|a| a.balance_minor)
            .sum()
    }

    /// Unearned tuition: the sum of every `prepaid/{enrollment}`.
    pub fn prepaid_minor(&self) -> i64 {
        self.sum(|a| a.account.starts_with("prepaid/"))
    }

    /// What families are owed: unearned tuition and approved, unpaid refunds.
    pub fn owed_to_families_minor(&self) -> i64 {
        self.prepaid_minor() + self.balance("refund_payable")
    }

    pub fn escrow_minor(&self) -> i64 {
        self.balance("escrow_cash")
    }

    pub fn deposit_minor(&self) -> i64 {
        self.balance("deposit_cash")
    }

    /// (escrow + deposit) / owed to families, in basis points, rounded down
    /// (never overstating cover); `None` when nothing is owed.
    pub fn coverage_basis_points(&self) -> Option<i64> {
        let owed = i128::from(self.owed_to_families_minor());
        if owed <= 0 {
            return None;
        }
        let held = i128::from(self.escrow_minor()) + i128::from(self.deposit_minor());
        i64::try_from(held * 10_000 / owed).ok()
    }

    /// Assets less liabilities on posted balances: zero in balanced books.
    pub fn imbalance_minor(&self) -> i64 {
        self.sum(|a| a.account_type == AccountType::Asset)
            - self.sum(|a| a.account_type == AccountType::Liability)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    pub institution: InstitutionId,
    /// The first entry that does not match (`None`: the account totals or
    /// chain head disagree with otherwise sound entries).
    pub seq: Option<i64>,
    pub client_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub institutions: u64,
    pub entries: u64,
    pub failures: Vec<VerifyFailure>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

fn apply(totals: &mut Totals, phase: Phase, side: Side, amount: i64) -> Option<()> {
    let (posted, pending) = match side {
        Side::Debit => (
            &mut totals.posted_debits_minor,
            &mut totals.pending_debits_minor,
        ),
        Side::Credit => (
            &mut totals.posted_credits_minor,
            &mut totals.pending_credits_minor,
        ),
    };
    match phase {
        Phase::Posted => *posted = posted.checked_add(amount)?,
        Phase::Pending => *pending = pending.checked_add(amount)?,
        Phase::PostPending => {
            *pending = pending.checked_sub(amount)?;
            *posted = posted.checked_add(amount)?;
        }
        Phase::VoidPending => *pending = pending.checked_sub(amount)?,
    }
    Some(())
}

const PAGE: i64 = 1_000;

/// Walks one institution's chain in pages, recomputing hashes and running
/// totals; records the first failure in `report`.
pub(crate) async fn verify_institution(
    store: &Store,
    id: &InstitutionId,
    report: &mut VerifyReport,
) -> Result<()> {
    report.institutions += 1;
    let fail = |seq: Option<i64>, client_id: Option<String>, reason: String| VerifyFailure {
        institution: id.clone(),
        seq,
        client_id,
        reason,
    };
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut last_seq = 0;
    let mut running: BTreeMap<String, Totals> = BTreeMap::new();
    loop {
        let entries = store.entries(id, last_seq, PAGE).await?;
        let snapshots = store.posting_snapshots(id, last_seq, PAGE).await?;
        let mut snapshots = snapshots.into_iter().peekable();
        if entries.is_empty() {
            break;
        }
        for entry in &entries {
            report.entries += 1;
            let at =
                |reason: String| fail(Some(entry.seq), Some(entry.client_id.to_string()), reason);
            if entry.seq != last_seq + 1 {
                report.failures.push(at(format!(
                    "expected seq {}, found {}",
                    last_seq + 1,
                    entry.seq
                )));
                return Ok(());
            }
            if entry.prev_hash != prev_hash {
                report
                    .failures
                    .push(at("prev_hash does not link to the previous entry".into()));
                return Ok(());
            }
            let recomputed = entry_hash(&prev_hash, entry);
            if recomputed != entry.hash {
                report.failures.push(at(format!(
                    "content does not match its hash (stored {}, recomputed {})",
                    &entry.hash[..entry.hash.len().min(12)],
                    &recomputed[..12]
                )));
                return Ok(());
            }
            for (leg, p) in entry.postings.iter().enumerate() {
                let totals = running.entry(p.account.clone()).or_default();
                if apply(totals, entry.kind.phase(), p.side, p.amount_minor).is_none() {
                    report.failures.push(at(format!(
                        "posting {leg} overflows or unwinds a pending amount that is not there"
                    )));
                    return Ok(());
                }
                match snapshots.next() {
                    Some((seq, l, stored)) if seq == entry.seq && l == leg as i64 => {
                        if stored != *totals {
                            report.failures.push(at(format!(
                                "running totals of {} after posting {leg} are {stored:?}, recomputed {totals:?}",
                                p.account
                            )));
                            return Ok(());
                        }
                    }
                    _ => {
                        report
                            .failures
                            .push(at(format!("posting {leg} has no stored running totals")));
                        return Ok(());
                    }
                }
            }
            prev_hash = entry.hash.clone();
            last_seq = entry.seq;
        }
        if snapshots.peek().is_some() {
            report.failures.push(fail(
                Some(last_seq),
                None,
                "postings exist beyond the entries".into(),
            ));
            return Ok(());
        }
    }
    for (code, stored) in store.account_rows(id).await? {
        let recomputed = running.get(&code.to_string()).copied().unwrap_or_default();
        if stored != recomputed {
            report.failures.push(fail(
                None,
                None,
                format!("account {code} totals are {stored:?}, the postings sum to {recomputed:?}"),
            ));
            return Ok(());
        }
    }
    let head = store.head(id).await?;
    if head.last_seq != last_seq || head.last_hash != prev_hash {
        report.failures.push(fail(
            None,
            None,
            format!(
                "chain head says seq {}, the entries end at {last_seq}",
                head.last_seq
            ),
        ));
    }
    Ok(())
}
