//! Coverage, the one definition every surface prints (the README, the
//! command line's `balances` and `risk`, the API and the console): what the
//! banks confirm they hold for an institution, over what it owes families.
//!
//! - **held**: the latest end-of-day closing on or before the day of each
//!   supervised escrow and risk-deposit account, as its bank sent it (never
//!   the ledger's idea of it), less the releases instructed and not yet
//!   confirmed (money already promised to the institution);
//! - **owed**: unearned tuition plus approved, unpaid refunds, from the
//!   ledger at the end of the day those closings cover (sales recorded
//!   since are not yet confirmed either way), less the unearned tuition a
//!   deposit-mode institution collected outside escrow by design (the
//!   deposit's own rule covers that, not custody; in "both" mode tuition
//!   belongs in escrow and counts in full);
//! - **coverage** = held ÷ owed in basis points, exact integer arithmetic,
//!   rounded down (towards the more alarming figure); none when nothing is
//!   owed, and not confirmed at all when an account the institution's
//!   supervision mode requires has sent no statement.

use chrono::NaiveDate;

use crate::domain::feeds::AccountKind;
use crate::domain::registry::SupervisionMode;
use crate::domain::replay::BooksOn;
use crate::domain::risk::{latest_closing, Closing, LedgerFigures, RiskInput};

/// The figures behind one institution's coverage on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The day assessed.
    pub as_of: NaiveDate,
    /// The banks' latest closings of every supervised account counted,
    /// escrow first, by account number.
    pub closings: Vec<(AccountKind, String, Closing)>,
    /// Their sum.
    pub bank_minor: i128,
    /// Releases instructed and not yet confirmed.
    pub in_flight_minor: i128,
    /// Unearned tuition on `owed_on`.
    pub unearned_minor: i128,
    /// Approved, unpaid refunds on `owed_on`.
    pub refund_payable_minor: i128,
    /// Unearned tuition collected outside escrow (deposit mode), which
    /// custody is not meant to hold.
    pub outside_minor: i128,
    /// The day what is owed is read on: the closings' day when it is
    /// before `as_of`, else `as_of`.
    pub owed_on: NaiveDate,
}

impl Coverage {
    /// What the banks hold for families: closings less releases in flight.
    pub fn held_minor(&self) -> i128 {
        self.bank_minor - self.in_flight_minor
    }

    /// What families are owed from supervised money.
    pub fn owed_minor(&self) -> i128 {
        self.unearned_minor + self.refund_payable_minor - self.outside_minor
    }

    /// held ÷ owed in basis points (10000 = 100%), rounded down; `None`
    /// when nothing is owed (or the figures are beyond exact arithmetic).
    pub fn basis_points(&self) -> Option<i128> {
        basis_points(self.held_minor(), self.owed_minor())
    }
}

/// `held / owed` in basis points rounded down (floor, also below zero);
/// `None` when nothing is owed.
pub fn basis_points(held_minor: i128, owed_minor: i128) -> Option<i128> {
    if owed_minor <= 0 {
        return None;
    }
    Some(held_minor.checked_mul(10_000)?.div_euclid(owed_minor))
}

/// Why an institution's coverage is not confirmed on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unconfirmed {
    /// Its supervision mode requires an account of this kind; none is on file.
    NoAccount(AccountKind),
    /// This account has sent no end-of-day statement on or before the day.
    NoStatement(String),
}

impl Unconfirmed {
    pub fn code(&self) -> &'static str {
        match self {
            Unconfirmed::NoAccount(_) => "no_supervised_account",
            Unconfirmed::NoStatement(_) => "no_bank_statement",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Unconfirmed::NoAccount(kind) => format!("no {} account on file", kind.code()),
            Unconfirmed::NoStatement(account_no) => {
                format!("account {account_no} has sent no statement",)
            }
        }
    }
}

/// Whether an institution's supervision mode requires an account of a kind.
pub fn mode_requires(mode: SupervisionMode, kind: AccountKind) -> bool {
    matches!(
        (mode, kind),
        (
            SupervisionMode::Custody | SupervisionMode::Both,
            AccountKind::Escrow
        ) | (
            SupervisionMode::Deposit | SupervisionMode::Both,
            AccountKind::Deposit
        )
    )
}

/// The ledger figures coverage reads (minor units, at the end of one day).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwedFigures {
    /// Unearned tuition: every `prepaid/{enrollment}` together.
    pub unearned_prepaid_minor: i64,
    /// Approved, unpaid refunds.
    pub refund_payable_minor: i64,
    /// Releases instructed and not yet confirmed.
    pub pending_release_minor: i64,
    /// Tuition the institution holds itself (deposit mode).
    pub held_by_institution_minor: i64,
}

impl OwedFigures {
    /// The figures of the books as they stood at the end of a day.
    pub fn of_books(books: &BooksOn) -> OwedFigures {
        OwedFigures {
            unearned_prepaid_minor: books.prepaid(),
            refund_payable_minor: books.balance("refund_payable"),
            pending_release_minor: books.pending_debits("releasable"),
            held_by_institution_minor: books.balance("held_by_institution"),
        }
    }
}

impl OwedFigures {
    /// These figures with `delta`'s added (`None` beyond exact arithmetic).
    pub fn plus(&self, delta: &OwedFigures) -> Option<OwedFigures> {
        Some(OwedFigures {
            unearned_prepaid_minor: self
                .unearned_prepaid_minor
                .checked_add(delta.unearned_prepaid_minor)?,
            refund_payable_minor: self
                .refund_payable_minor
                .checked_add(delta.refund_payable_minor)?,
            pending_release_minor: self
                .pending_release_minor
                .checked_add(delta.pending_release_minor)?,
            held_by_institution_minor: self
                .held_by_institution_minor
                .checked_add(delta.held_by_institution_minor)?,
        })
    }
}

impl From<&LedgerFigures> for OwedFigures {
    fn from(l: &LedgerFigures) -> OwedFigures {
        OwedFigures {
            unearned_prepaid_minor: l.unearned_prepaid_minor,
            refund_payable_minor: l.refund_payable_minor,
            pending_release_minor: l.pending_release_minor,
            held_by_institution_minor: l.held_by_institution_minor,
        }
    }
}

/// A supervised account and its bank's latest end-of-day closing on or
/// before the day assessed (none: it has sent no statement by then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountClosing {
    pub kind: AccountKind,
    pub account_no: String,
    pub latest: Option<Closing>,
}

/// The day through which the banks have reported, when before `as_of`:
/// the earliest of the escrow accounts' latest closings (the deposit
/// accounts' for an institution without an escrow account that reported);
/// what families are owed is read at the end of that day. The same day
/// the risk snapshot reads `ledger_at_statements` on.
pub fn statements_through(as_of: NaiveDate, accounts: &[AccountClosing]) -> Option<NaiveDate> {
    let through = |kind: AccountKind| {
        accounts
            .iter()
            .filter(|a| a.kind == kind)
            .filter_map(|a| a.latest.map(|c| c.date))
            .min()
    };
    through(AccountKind::Escrow)
        .or_else(|| through(AccountKind::Deposit))
        .filter(|day| *day < as_of)
}

/// The ledger figures what is owed is read from: at the end of the day the
/// banks' latest closings cover when that is before the day assessed.
pub fn owed_figures(input: &RiskInput) -> (NaiveDate, &LedgerFigures) {
    match &input.ledger_at_statements {
        Some((day, figures)) if *day < input.as_of => (*day, figures),
        _ => (input.as_of, &input.ledger),
    }
}

/// An institution's coverage on the snapshot's day.
pub fn coverage(input: &RiskInput) -> Result<Coverage, Unconfirmed> {
    let accounts: Vec<AccountClosing> = input
        .accounts
        .iter()
        .map(|a| AccountClosing {
            kind: a.kind,
            account_no: a.account_no.clone(),
            latest: latest_closing(a, input.as_of),
        })
        .collect();
    let (owed_on, ledger) = owed_figures(input);
    coverage_of(
        input.institution.mode,
        input.as_of,
        &accounts,
        owed_on,
        &OwedFigures::from(ledger),
    )
}

/// An institution's coverage on `as_of`, from its supervised accounts'
/// latest closings (in the order of its accounts) and the ledger's figures
/// on `owed_on`: the one computation the per-institution path (through
/// the risk snapshot), the set-wise path and the overview's kept figures
/// share ([`confirmed`] then [`assemble`]).
pub fn coverage_of(
    mode: SupervisionMode,
    as_of: NaiveDate,
    accounts: &[AccountClosing],
    owed_on: NaiveDate,
    ledger: &OwedFigures,
) -> Result<Coverage, Unconfirmed> {
    let (closings, bank) = confirmed(mode, accounts)?;
    Ok(assemble(mode, as_of, closings, bank, owed_on, ledger))
}

/// The closings counted for an institution's coverage, escrow first.
pub type Counted = Vec<(AccountKind, String, Closing)>;

/// The closings counted for an institution's coverage and their sum, or
/// why its banks have not confirmed it: the bank side of [`coverage_of`],
/// which changes only when a statement or an account arrives (the
/// overview keeps it).
pub fn confirmed(
    mode: SupervisionMode,
    accounts: &[AccountClosing],
) -> Result<(Counted, i128), Unconfirmed> {
    let mut closings = Vec::new();
    let mut bank: i128 = 0;
    for kind in [AccountKind::Escrow, AccountKind::Deposit] {
        let required = mode_requires(mode, kind);
        let mut of_kind = Vec::new();
        let mut missing = None;
        for account in accounts.iter().filter(|a| a.kind == kind) {
            match account.latest {
                Some(c) => of_kind.push((kind, account.account_no.clone(), c)),
                None => {
                    missing = Some(account.account_no.clone());
                    break;
                }
            }
        }
        let any = accounts.iter().any(|a| a.kind == kind);
        match (any, missing) {
            // An account the mode does not require adds nothing when it is
            // absent or silent; one it requires leaves coverage unconfirmed.
            (false, _) if !required => {}
            (true, Some(_)) if !required => {}
            (false, _) => return Err(Unconfirmed::NoAccount(kind)),
            (true, Some(account_no)) => return Err(Unconfirmed::NoStatement(account_no)),
            (true, None) => {
                bank += of_kind
                    .iter()
                    .map(|(_, _, c)| i128::from(c.balance_minor))
                    .sum::<i128>();
                closings.extend(of_kind);
            }
        }
    }
    Ok((closings, bank))
}

/// Coverage from its confirmed bank side (`closings` summing to
/// `bank_minor`) and the ledger's figures on `owed_on`: the ledger side of
/// [`coverage_of`].
pub fn assemble(
    mode: SupervisionMode,
    as_of: NaiveDate,
    closings: Counted,
    bank_minor: i128,
    owed_on: NaiveDate,
    ledger: &OwedFigures,
) -> Coverage {
    Coverage {
        as_of,
        closings,
        bank_minor,
        in_flight_minor: i128::from(ledger.pending_release_minor.max(0)),
        unearned_minor: i128::from(ledger.unearned_prepaid_minor),
        refund_payable_minor: i128::from(ledger.refund_payable_minor),
        // Only deposit mode holds tuition outside escrow by design; in
        // custody and "both" modes tuition belongs in escrow, and money an
        // institution kept is exactly what coverage must show missing.
        outside_minor: if mode == SupervisionMode::Deposit {
            i128::from(ledger.unearned_prepaid_minor)
                .min(i128::from(ledger.held_by_institution_minor))
                .max(0)
        } else {
            0
        },
        owed_on,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(held: i128, owed: i128, expected: Option<i128>) {
        assert_eq!(basis_points(held, owed), expected, "{held} / {owed}");
    }

    #[test]
    fn coverage_is_rounded_down_in_basis_points_and_absent_when_nothing_is_owed() {
        check(1, 3, Some(3_333));
        check(2, 3, Some(6_666));
        check(300_000, 270_000, Some(11_111));
        check(5, 5, Some(10_000));
        check(0, 5, Some(0));
        // Below zero (more in flight than held) it still rounds down.
        check(-1, 3, Some(-3_334));
        check(5, 0, None);
        check(5, -1, None);
        check(i128::MAX, 1, None);
    }
}
