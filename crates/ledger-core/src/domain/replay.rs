//! The books as they stood at the end of a past day, replayed from the
//! entries by the day the money moved (`occurred_at`), so that a statement
//! day reads as it was lived, whatever was recorded later.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::domain::accounts::{AccountCode, AccountType, Side};
use crate::domain::entry::{Entry, Phase};

/// One account's totals replayed (minor units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Replayed {
    posted_debits: i64,
    posted_credits: i64,
    pending_debits: i64,
}

/// Every account's balance at the end of one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BooksOn {
    accounts: BTreeMap<String, Replayed>,
}

impl BooksOn {
    /// The entries that occurred on or before `day`, in any order.
    pub fn replay<'a>(entries: impl IntoIterator<Item = &'a Entry>, day: NaiveDate) -> BooksOn {
        let mut books = BooksOn::default();
        for e in entries {
            if e.occurred_at.date_naive() <= day {
                books.apply(e);
            }
        }
        books
    }

    /// The books at the end of each of `days` (ascending), in one pass over
    /// the entries: `f` reads what it needs from each day's books.
    pub fn at_each<T>(entries: &[Entry], days: &[NaiveDate], f: impl Fn(&BooksOn) -> T) -> Vec<T> {
        BooksOn::default().moved_on(entries, days, f)
    }

    /// These books moved on by `entries` (any order): the books at the end
    /// of each of `days` (ascending), in one pass. With the books at the
    /// end of the day before some day D and the entries that occurred on or
    /// after D, it gives each day from D on without replaying what came
    /// before.
    pub fn moved_on<T>(
        self,
        entries: &[Entry],
        days: &[NaiveDate],
        f: impl Fn(&BooksOn) -> T,
    ) -> Vec<T> {
        let mut ordered: Vec<&Entry> = entries.iter().collect();
        ordered.sort_by_key(|e| e.occurred_at);
        let mut books = self;
        let mut next = ordered.into_iter().peekable();
        days.iter()
            .map(|day| {
                while let Some(e) = next.next_if(|e| e.occurred_at.date_naive() <= *day) {
                    books.apply(e);
                }
                f(&books)
            })
            .collect()
    }

    fn apply(&mut self, e: &Entry) {
        for p in &e.postings {
            let account = p.account.to_string();
            self.add(&account, e.kind.phase(), p.side, p.amount.minor());
        }
    }

    /// Adds postings of one account, one phase and one side (any number of
    /// them summed into `amount`) as [`BooksOn::replay`] would: the way a
    /// set-wise read feeds the books from totals the database summed.
    pub fn add(&mut self, account: &str, phase: Phase, side: Side, amount: i64) {
        let t = self.accounts.entry(account.to_string()).or_default();
        match (phase, side == Side::Debit) {
            (Phase::Posted, true) => t.posted_debits += amount,
            (Phase::Posted, false) => t.posted_credits += amount,
            (Phase::Pending, true) => t.pending_debits += amount,
            (Phase::Pending, false) => {}
            (Phase::PostPending, true) => {
                t.pending_debits -= amount;
                t.posted_debits += amount;
            }
            (Phase::PostPending, false) => t.posted_credits += amount,
            (Phase::VoidPending, true) => t.pending_debits -= amount,
            (Phase::VoidPending, false) => {}
        }
    }

    /// The posted balance, signed as the account's type reads it (assets
    /// debit-positive, liabilities credit-positive); zero when untouched.
    pub fn balance(&self, account: &str) -> i64 {
        let Some(t) = self.accounts.get(account) else {
            return 0;
        };
        match AccountCode::parse(account).map(|c| c.account_type()) {
            Ok(AccountType::Asset) => t.posted_debits - t.posted_credits,
            _ => t.posted_credits - t.posted_debits,
        }
    }

    /// Posted debits and credits of an account so far (zero when untouched).
    pub fn posted(&self, account: &str) -> (i64, i64) {
        self.accounts
            .get(account)
            .map_or((0, 0), |t| (t.posted_debits, t.posted_credits))
    }

    /// Debits instructed and not yet confirmed or voided by the bank.
    pub fn pending_debits(&self, account: &str) -> i64 {
        self.accounts.get(account).map_or(0, |t| t.pending_debits)
    }

    /// Unearned tuition: every `prepaid/{enrollment}` together.
    pub fn prepaid(&self) -> i64 {
        self.accounts
            .keys()
            .filter(|a| a.starts_with("prepaid/"))
            .map(|a| self.balance(a))
            .sum()
    }

    /// What the supervised escrow account holds for others: unearned
    /// tuition, earned tuition not yet released, approved refunds not yet
    /// paid and receipts not yet attributed.
    pub fn owed_from_escrow(&self) -> i64 {
        self.prepaid()
            + self.balance("releasable")
            + self.balance("refund_payable")
            + self.balance("unidentified")
    }
}
