//! The snapshot the risk engine reads, filled from one institution's
//! records (books, supervised accounts with their statements, enrollments,
//! refunds, events, the rule pack): the ledger's figures by day, what the
//! banks showed and what reconciliation made of it. Pure: the application
//! layer loads the records (one institution at a time or set-wise) and
//! calls [`snapshot`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::domain::accounts::{AccountCode, Side};
use crate::domain::entry::{Entry, EntryKind, Posting};
use crate::domain::error::LedgerError;
use crate::domain::feeds::{AccountKind, BankAccount};
use crate::domain::ids::{ClientId, EnrollmentId};
use crate::domain::money::Amount;
use crate::domain::policy::{self, ResolvedRules};
use crate::domain::recon::account::{match_account, AccountStatements, StatementLine};
use crate::domain::recon::ReconcileError;
use crate::domain::refunds::{Refund, RefundEvent, RefundState};
use crate::domain::registry::{Enrollment, Institution};
use crate::domain::replay::BooksOn;
use crate::domain::risk::{
    schedule, BalanceMismatch, BankLine, CapFlag, Closing, DayFigures, EntryRef, InstitutionEvent,
    LedgerFigures, PendingInstruction, RefundRequest, RiskInput, SupervisedAccount,
};

/// One supervised account of an institution, what its bank reported, and
/// the day it was registered (when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecords {
    pub account: BankAccount,
    pub statements: AccountStatements,
    pub registered_on: Option<NaiveDate>,
    /// What reconciliation keeps of the lines given, when the read left
    /// out the lines it settled before the windows (see [`KeptAccount`]);
    /// `None`: the lines are the whole history, matched afresh.
    pub kept: Option<KeptAccount>,
}

/// Reconciliation's kept matches on one account, as the daily scan reads
/// them instead of re-matching the whole history: the matcher then runs
/// only on the lines no kept match claims against the entries
/// reconciliation can still match ([`Records::open_entries`]), as
/// `reconcile --record` does, and a claimed line counts as the kept match
/// says. The lines read are then every line of the statements that close
/// on or after the day the windows start, and every statement holding an
/// unclaimed line (whole: a line's balance before it needs its
/// statement's lines before it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptAccount {
    /// The lines read (statement key, line number) a kept match claims.
    pub claimed: BTreeSet<(String, i64)>,
    /// Of them, the debits whose match settles entries of ours: money out
    /// that we instructed.
    pub instructed: BTreeSet<(String, i64)>,
    /// Entries on or after the day the windows start that a kept match on
    /// this account claims: tuition that reached it, instructions it
    /// executed.
    pub settled: BTreeSet<i64>,
}

/// Everything the risk engine reads about one institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    pub institution: Institution,
    /// Every entry of the institution, by seq.
    pub entries: Vec<Entry>,
    pub accounts: Vec<AccountRecords>,
    pub enrollments: Vec<Enrollment>,
    /// Each refund with its trail.
    pub refunds: Vec<(Refund, Vec<RefundEvent>)>,
    /// The events the engine reads (others are left out by the caller).
    pub events: Vec<InstitutionEvent>,
    /// The rule pack in force on the day assessed.
    pub rules: ResolvedRules,
    /// Lesson records with their trails (families' answers): every one,
    /// or those not at rest when `lessons_at_rest` sums the rest
    /// (`confirmations::at_rest`).
    pub lessons: Vec<crate::domain::lessons::Lesson>,
    pub lessons_at_rest: Vec<crate::domain::risk::confirmations::RecordsAtRest>,
    /// Manual release requests and when each was decided.
    pub release_asks: Vec<crate::domain::risk::ReleaseAsk>,
    /// Lessons consumed before a day no check reads, summed per enrollment
    /// instead of listed in `entries` (empty when every lesson is listed):
    /// see [`lessons_listed_from`].
    pub lessons_summed: Vec<LessonsSummed>,
    /// With the accounts' kept matches ([`KeptAccount`]): the entries
    /// reconciliation can still match (transfers no kept match claims, and
    /// the entries that confirm, void or reverse them).
    pub open_entries: Option<BTreeSet<i64>>,
}

/// One enrollment's lessons consumed before a day, summed: what a snapshot
/// needs of lessons whose days no check reads. They still count in every
/// balance (the books, unearned tuition, what is releasable), in each
/// enrollment's hours consumed so far (the pace of releases) and in the
/// day the institution's history begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonsSummed {
    pub enrollment: Option<EnrollmentId>,
    /// When the first of them occurred.
    pub first_at: DateTime<Utc>,
    /// The first of them booked (the least seq: a lesson booked late can
    /// have occurred first).
    pub first_seq: i64,
    pub hours: u32,
    pub postings: SummedPostings,
}

/// Postings summed by account and side (minor units), in that order.
pub type SummedPostings = Vec<(AccountCode, Side, i64)>;

impl LessonsSummed {
    /// The sums as one entry of lessons consumed on the first one's day,
    /// which the snapshot folds in as it does the listed entries. Its
    /// client id names what it stands for; nothing reads its hash.
    fn as_entry(&self, institution: &Institution) -> Entry {
        let client_id = format!(
            "lessons-summed-{}-{}",
            self.enrollment.as_ref().map_or("", |e| e.as_str()),
            self.first_seq
        );
        Entry {
            institution: institution.id.clone(),
            seq: self.first_seq,
            client_id: ClientId::parse(client_id)
                .unwrap_or_else(|_| ClientId::parse("lessons-summed").expect("a valid id")),
            kind: EntryKind::LessonsConsumed,
            currency: institution.currency,
            occurred_at: self.first_at,
            recorded_at: self.first_at,
            external_ref: None,
            enrollment: self.enrollment.clone(),
            hours: Some(self.hours),
            refers_to_seq: None,
            rule_pack: None,
            flags: vec![],
            postings: self
                .postings
                .iter()
                .filter_map(|(account, side, minor)| {
                    Some(Posting {
                        account: account.clone(),
                        side: *side,
                        amount: Amount::from_minor(*minor).ok()?,
                    })
                })
                .collect(),
            request_hash: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// A week to spare beyond the longest span over which the engine reads
/// lessons day by day (see [`lessons_listed_from`]).
const LESSONS_SPARE_DAYS: u64 = 7;

/// The first day from which a snapshot on `as_of` must have the lessons
/// consumed listed one by one; before it they may come summed per
/// enrollment ([`LessonsSummed`]) with every figure the risk engine reads
/// unchanged. `None`: every lesson must be listed (a rule pack without the
/// recent or baseline window reads the whole history).
///
/// What reads lessons, and how far back: the daily figures in the recent
/// and baseline windows (`lookback_days`, `baseline_days`); releases in the
/// recent window, against each enrollment's hours so far (sums keep them)
/// and any day beyond a timetable in the 30 days before each release; and
/// the books on the day of each account's latest statement closing, which
/// can be older than the windows (a bank gone silent): the day returned is
/// never after it. `tests/detection.rs` (api) holds the assessment equal
/// either way, day by day over a simulated county.
pub fn lessons_listed_from(
    rules: &ResolvedRules,
    accounts: &[AccountRecords],
    as_of: NaiveDate,
) -> Option<NaiveDate> {
    let mut from = lessons_windows_from(rules, as_of)?;
    for a in accounts {
        // As `AccountStatements::cut_at(as_of)` leaves them, without
        // copying the lines: the latest closing of the statements known by
        // then (the day the books are compared on), and the account's last
        // closing (the balance mismatch's day).
        let s = &a.statements;
        let known = s
            .statements
            .iter()
            .filter(|st| st.opening.or(st.closing).is_none_or(|(_, d)| d <= as_of))
            .filter_map(|st| st.closing.map(|(_, d)| d))
            .filter(|d| *d <= as_of)
            .max();
        let last = match &s.closing {
            Some(c) if c.date <= as_of => Some(c.date),
            _ => known,
        };
        for day in [known, last].into_iter().flatten() {
            from = from.min(day);
        }
    }
    Some(from)
}

/// The day the windows of a snapshot on `as_of` start, whatever the
/// accounts' statements: [`lessons_listed_from`] is never after it, so
/// lessons kept summed before it (`Store::keep_lesson_sums`) serve that
/// day's scan and every later one. `None` for a pack without both windows.
pub fn lessons_windows_from(rules: &ResolvedRules, as_of: NaiveDate) -> Option<NaiveDate> {
    let p = &rules.params;
    let recent = u64::from(p.lookback_days?);
    let before = u64::from(p.baseline_days?).max(schedule::BEYOND_TIMETABLE_DAYS);
    as_of.checked_sub_days(chrono::Days::new(recent + before + LESSONS_SPARE_DAYS))
}

/// Moves the lessons consumed before `from` out of `records.entries` into
/// per-enrollment sums: what the store's set-wise read does in the
/// database (`Store::lessons_summed_in`), done on records already loaded.
pub fn sum_lessons_before(records: &mut Records, from: NaiveDate) {
    let (before, kept): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut records.entries)
        .into_iter()
        .partition(|e| e.kind == EntryKind::LessonsConsumed && e.occurred_at.date_naive() < from);
    records.entries = kept;
    let mut sums: BTreeMap<Option<EnrollmentId>, LessonsSummed> = BTreeMap::new();
    for e in before {
        let s = sums
            .entry(e.enrollment.clone())
            .or_insert_with(|| LessonsSummed {
                enrollment: e.enrollment.clone(),
                first_at: e.occurred_at,
                first_seq: e.seq,
                hours: 0,
                postings: vec![],
            });
        // Each the least of its own: sums kept by the database grow by
        // taking the least of each, whatever order lessons are booked in.
        s.first_at = s.first_at.min(e.occurred_at);
        s.first_seq = s.first_seq.min(e.seq);
        s.hours += e.hours.unwrap_or(0);
        for p in &e.postings {
            match s
                .postings
                .iter_mut()
                .find(|(a, side, _)| *a == p.account && *side == p.side)
            {
                Some((_, _, minor)) => *minor += p.amount.minor(),
                None => s
                    .postings
                    .push((p.account.clone(), p.side, p.amount.minor())),
            }
        }
    }
    for s in sums.values_mut() {
        s.postings.sort();
    }
    records.lessons_summed.extend(sums.into_values());
}

/// Why a snapshot could not be made: the rule pack's calendar contradicts
/// itself, or the stored lines are not what the matcher takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Rules(#[from] LedgerError),
    #[error(transparent)]
    Matcher(#[from] ReconcileError),
}

fn amount_to(entry: &Entry, account: &str) -> i64 {
    entry
        .postings
        .iter()
        .filter(|p| {
            p.account == account
                || (account == "prepaid/"
                    && matches!(p.account, crate::domain::accounts::AccountCode::Prepaid(_)))
        })
        .map(|p| p.amount.minor())
        .sum()
}

/// What the bank showed of one supervised account up to `as_of`.
struct AccountSeen {
    account: SupervisedAccount,
    /// Entries a bank line settles (matched or suggested): tuition that
    /// arrived, instructions executed.
    settled: BTreeSet<i64>,
    debits: Vec<BankLine>,
    /// Debit lines matched to an instruction of ours.
    instructed: Vec<String>,
    unauthorized: Vec<BankLine>,
    /// (date, debits, credits) of each bank line.
    movements: Vec<(NaiveDate, i64)>,
    mismatch: Option<BalanceMismatch>,
}

/// The line of an account the risk engine reads, with the balance before it.
fn bank_line(
    account: &BankAccount,
    l: &StatementLine,
    before: &BTreeMap<(&str, i64), i64>,
) -> Option<BankLine> {
    Some(BankLine {
        line_id: format!("{}/{}#{}", account.account_no, l.statement_key, l.line_no),
        account: account.kind,
        bank_ref: l.bank_ref.clone(),
        date: l.booking_date.or(l.value_date)?,
        amount_minor: -l.amount_minor,
        balance_before_minor: before.get(&(l.statement_key.as_str(), l.line_no)).copied(),
    })
}

/// The balance before each line: its statement's opening plus the lines
/// before it on that statement (lines come in statement order, and a
/// statement's lines are read all or none).
fn balances_before(statements: &AccountStatements) -> BTreeMap<(&str, i64), i64> {
    let openings: BTreeMap<&str, i64> = statements
        .statements
        .iter()
        .filter_map(|s| s.opening.map(|(minor, _)| (s.key.as_str(), minor)))
        .collect();
    let mut running: BTreeMap<&str, i64> = BTreeMap::new();
    let mut before = BTreeMap::new();
    for l in &statements.lines {
        let key = l.statement_key.as_str();
        let so_far = running.entry(key).or_insert(0);
        if let Some(opening) = openings.get(key) {
            before.insert((key, l.line_no), opening + *so_far);
        }
        *so_far += l.amount_minor;
    }
    before
}

fn account_seen(
    account: &BankAccount,
    stored: &AccountStatements,
    kept: Option<&KeptAccount>,
    entries: &[Entry],
    open_entries: Option<&BTreeSet<i64>>,
    as_of: NaiveDate,
) -> Result<AccountSeen, ReconcileError> {
    let mut lines_seen = stored.clone();
    lines_seen.cut_at(as_of);
    // With what reconciliation keeps, the matcher runs on what it left
    // open (as `reconcile --record` does); without, on the whole history.
    let (to_match, claimed_settled, claimed_instructed) = match kept {
        Some(k) => {
            let mut open = lines_seen.clone();
            open.lines
                .retain(|l| !k.claimed.contains(&(l.statement_key.clone(), l.line_no)));
            (open, k.settled.clone(), Some(&k.instructed))
        }
        None => (lines_seen.clone(), BTreeSet::new(), None),
    };
    let matcher_entries: Vec<Entry> = match open_entries.filter(|_| kept.is_some()) {
        Some(open) => entries
            .iter()
            .filter(|e| open.contains(&e.seq))
            .cloned()
            .collect(),
        None => entries.to_vec(),
    };
    let matched = match_account(to_match, account.kind, &matcher_entries, Some(as_of))?;
    let before = balances_before(&lines_seen);
    let open_lines = &matched.statements.lines;
    let mut seen = AccountSeen {
        account: SupervisedAccount {
            kind: account.kind,
            account_no: account.account_no.clone(),
            closings: lines_seen
                .statements
                .iter()
                .filter_map(|s| s.closing)
                .map(|(balance_minor, date)| Closing {
                    date,
                    balance_minor,
                })
                .collect(),
            chain_break: matched.quarantine.as_ref().map(|q| q.chain_break.clone()),
            registered_on: None,
        },
        settled: matched
            .outcome
            .matches
            .iter()
            .chain(&matched.outcome.suggestions)
            .flat_map(|m| m.transfers.iter().map(|t| *t as i64))
            .chain(claimed_settled)
            .collect(),
        debits: Vec::new(),
        instructed: Vec::new(),
        unauthorized: Vec::new(),
        movements: Vec::new(),
        mismatch: None,
    };
    for m in matched
        .outcome
        .matches
        .iter()
        .chain(&matched.outcome.suggestions)
        .filter(|m| !m.transfers.is_empty())
    {
        for id in &m.lines {
            if let Some(l) = open_lines.get(*id as usize).filter(|l| l.amount_minor < 0) {
                seen.instructed
                    .extend(bank_line(account, l, &before).map(|l| l.line_id));
            }
        }
    }
    for l in &lines_seen.lines {
        let Some(date) = l.booking_date.or(l.value_date) else {
            continue;
        };
        seen.movements.push((date, l.amount_minor));
        if l.amount_minor < 0 {
            seen.debits.extend(bank_line(account, l, &before));
            if claimed_instructed.is_some_and(|i| i.contains(&(l.statement_key.clone(), l.line_no)))
            {
                seen.instructed
                    .extend(bank_line(account, l, &before).map(|l| l.line_id));
            }
        }
    }
    for (id, reason) in &matched.outcome.unmatched_lines {
        if reason.is_unauthorized_outflow() {
            if let Some(l) = open_lines.get(*id as usize) {
                seen.unauthorized.extend(bank_line(account, l, &before));
            }
        }
    }
    // The latest statement day, against the ledger at the end of that day.
    if let Some(closing) = &lines_seen.closing {
        let (bank, date) = (&closing.balance_minor, &closing.date);
        let books = BooksOn::replay(entries, *date);
        let ledger = match account.kind {
            AccountKind::Escrow => books.balance("escrow_cash"),
            AccountKind::Deposit => books.balance("deposit_cash"),
        };
        if *bank != ledger {
            seen.mismatch = Some(BalanceMismatch {
                account: account.kind,
                account_no: account.account_no.clone(),
                date: *date,
                bank_closing_minor: *bank,
                ledger_balance_minor: ledger,
            });
        }
    }
    Ok(seen)
}

/// Each enrollment sold (its first charge) and whether at the caps.
fn packages_sold(
    institution: &Institution,
    rules: &ResolvedRules,
    enrollments: &[Enrollment],
    first_charge: &BTreeMap<&str, NaiveDate>,
) -> Vec<schedule::PackageSold> {
    enrollments
        .iter()
        .filter_map(|en| {
            Some(schedule::PackageSold {
                date: *first_charge.get(en.id.as_str())?,
                at_caps: policy::at_caps(rules, en, institution.category),
            })
        })
        .collect()
}

/// Each enrollment's first charge (tuition paid or collected outside), by
/// occurred date: the day its package was sold.
fn first_charges(entries: &[Entry]) -> BTreeMap<&str, NaiveDate> {
    let mut first: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for e in entries.iter().filter(|e| {
        matches!(
            e.kind,
            EntryKind::TuitionPaid | EntryKind::TuitionCollectedOutside
        )
    }) {
        if let Some(id) = &e.enrollment {
            let day = e.occurred_at.date_naive();
            first
                .entry(id.as_str())
                .and_modify(|d| *d = (*d).min(day))
                .or_insert(day);
        }
    }
    first
}

/// The day each family first asked for its money back: a refund request
/// through the workflow (declined ones too: the family still asked), or a
/// refund approval entry where no request came first.
fn first_asks<'a>(
    refunds: &'a [(Refund, Vec<RefundEvent>)],
    entries: &'a [Entry],
) -> BTreeMap<&'a str, NaiveDate> {
    let mut first: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    let asks = refunds
        .iter()
        .map(|(r, _)| (r.enrollment.as_str(), r.requested_on))
        .chain(
            entries
                .iter()
                .filter(|e| e.kind == EntryKind::RefundApproved)
                .filter_map(|e| {
                    Some((e.enrollment.as_ref()?.as_str(), e.occurred_at.date_naive()))
                }),
        );
    for (id, day) in asks {
        first
            .entry(id)
            .and_modify(|d| *d = (*d).min(day))
            .or_insert(day);
    }
    first
}

/// The ledger's figures at the end of `day` (entries by occurred date).
fn ledger_figures(entries: &[Entry], day: NaiveDate) -> LedgerFigures {
    let books = BooksOn::replay(entries, day);
    let year_before = day - Duration::days(365);
    let collections_12m = entries
        .iter()
        .filter(|e| {
            let on = e.occurred_at.date_naive();
            on > year_before && on <= day
        })
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::TuitionPaid
                    | EntryKind::ReceiptAttributed
                    | EntryKind::TuitionCollectedOutside
            )
        })
        .map(|e| amount_to(e, "prepaid/"))
        .sum();
    LedgerFigures {
        unearned_prepaid_minor: books.prepaid(),
        refund_payable_minor: books.balance("refund_payable"),
        releasable_minor: books.balance("releasable"),
        unidentified_minor: books.balance("unidentified"),
        escrow_cash_minor: books.balance("escrow_cash"),
        deposit_cash_minor: books.balance("deposit_cash"),
        held_by_institution_minor: books.balance("held_by_institution"),
        pending_release_minor: books.pending_debits("releasable"),
        pending_refund_minor: books.pending_debits("refund_payable"),
        collections_12m_minor: collections_12m,
    }
}

/// The snapshot of one institution on one day, from its records.
pub fn snapshot(records: &Records, as_of: NaiveDate) -> Result<RiskInput, SnapshotError> {
    let institution = &records.institution;
    // Nothing after the day assessed: a past day reads as it was lived.
    let mut entries: Vec<Entry> = records
        .entries
        .iter()
        .filter(|e| e.occurred_at.date_naive() <= as_of)
        .cloned()
        .chain(
            records
                .lessons_summed
                .iter()
                .filter(|s| s.first_at.date_naive() <= as_of)
                .map(|s| s.as_entry(institution)),
        )
        .collect();
    if !records.lessons_summed.is_empty() {
        entries.sort_by_key(|e| e.seq);
    }
    let by_seq: BTreeMap<i64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();

    let mut accounts = Vec::new();
    let mut bank_debits = Vec::new();
    let mut unauthorized_outflows = Vec::new();
    let mut instructed_debits = Vec::new();
    let mut balance_mismatches = Vec::new();
    let mut arrived = BTreeSet::new();
    let mut movements = Vec::new();
    // The day through which the escrow accounts (the deposit accounts for
    // an institution without one) have reported: what families are owed is
    // compared as of then. A deposit account that moves rarely and reports
    // late must not hold back the comparison of the escrow account.
    let mut through: [Option<NaiveDate>; 2] = [None, None];
    for AccountRecords {
        account,
        statements,
        registered_on,
        kept,
    } in &records.accounts
    {
        let open = records.open_entries.as_ref();
        let mut seen = account_seen(account, statements, kept.as_ref(), &entries, open, as_of)?;
        seen.account.registered_on = *registered_on;
        if let Some(latest) = seen.account.closings.iter().map(|c| c.date).max() {
            let slot = &mut through[usize::from(account.kind == AccountKind::Deposit)];
            *slot = Some(slot.map_or(latest, |d| d.min(latest)));
        }
        if account.kind == AccountKind::Escrow {
            arrived.extend(seen.settled);
        }
        accounts.push(seen.account);
        bank_debits.extend(seen.debits);
        unauthorized_outflows.extend(seen.unauthorized);
        instructed_debits.extend(seen.instructed);
        balance_mismatches.extend(seen.mismatch);
        movements.extend(seen.movements);
    }

    let mut days: BTreeMap<NaiveDate, DayFigures> = BTreeMap::new();
    fn day(days: &mut BTreeMap<NaiveDate, DayFigures>, date: NaiveDate) -> &mut DayFigures {
        days.entry(date).or_insert_with(|| DayFigures {
            date,
            ..Default::default()
        })
    }
    for (date, amount) in movements {
        if amount < 0 {
            day(&mut days, date).bank_debits_minor += -amount;
        } else {
            day(&mut days, date).bank_credits_minor += amount;
        }
    }
    let mut cap_flags = Vec::new();
    for e in &entries {
        let date = e.occurred_at.date_naive();
        let d = day(&mut days, date);
        match e.kind {
            EntryKind::TuitionPaid | EntryKind::ReceiptAttributed => {
                let amount = amount_to(e, "prepaid/");
                d.collections_reported_minor += amount;
                // Attributed receipts arrived as bank credits already.
                if e.kind == EntryKind::ReceiptAttributed || arrived.contains(&e.seq) {
                    d.collections_into_escrow_minor += amount;
                }
            }
            EntryKind::TuitionCollectedOutside => {
                let amount = amount_to(e, "prepaid/");
                d.collections_reported_minor += amount;
            }
            EntryKind::LessonsConsumed => {
                d.consumed_minor += amount_to(e, "releasable");
                d.consumed_hours += e.hours.unwrap_or(0);
            }
            EntryKind::PendingConfirmed => {
                let target = e.refers_to_seq.and_then(|s| by_seq.get(&s));
                match target.map(|t| t.kind) {
                    Some(EntryKind::ReleaseInstructed) => {
                        d.released_minor += amount_to(e, "releasable")
                    }
                    Some(EntryKind::RefundPaymentInstructed) => {
                        d.refunds_paid_minor += amount_to(e, "refund_payable")
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        for rule in &e.flags {
            cap_flags.push(CapFlag {
                entry: EntryRef {
                    seq: e.seq,
                    client_id: e.client_id.clone(),
                },
                date,
                rule: rule.clone(),
                enrollment: e.enrollment.clone(),
            });
        }
    }

    let history_from = entries
        .iter()
        .map(|e| e.occurred_at.date_naive())
        .min()
        .unwrap_or(as_of);
    let books_now = BooksOn::replay(&entries, as_of);
    let refund_requests = refund_requests(&records.refunds, &entries, &books_now);
    let rules = records.rules.clone();
    let enrollments = &records.enrollments;
    let first_charge = first_charges(&entries);
    let packages = schedule::package_counts(
        &packages_sold(institution, &rules, enrollments, &first_charge),
        as_of,
        &rules.params,
    );
    let families = crate::domain::risk::family_counts(
        enrollments,
        &first_charge,
        &first_asks(&records.refunds, &entries),
        as_of,
        &rules.params,
    );
    let release_findings = schedule::releases_ahead_of_schedule(
        enrollments,
        &entries,
        rules.params.schedule_pace_max_pct.unwrap_or(100),
        rules.params.max_hours_per_enrollment_day,
    );
    let events = records.events.clone();
    let pending_instructions = pending_instructions(&entries);
    Ok(RiskInput {
        as_of,
        institution: institution.clone(),
        calendar: rules.params.calendar()?,
        rules,
        history_from,
        ledger: ledger_figures(&entries, as_of),
        ledger_at_statements: through[0]
            .or(through[1])
            .filter(|day| *day < as_of)
            .map(|day| (day, ledger_figures(&entries, day))),
        accounts,
        days: days.into_values().collect(),
        packages,
        families,
        bank_debits,
        unauthorized_outflows,
        balance_mismatches,
        release_findings,
        refund_requests,
        cap_flags,
        events,
        confirmations: crate::domain::risk::ConfirmationFacts {
            lessons: records.lessons.clone(),
            at_rest: records.lessons_at_rest.clone(),
            enrollments: records.enrollments.clone(),
            release_asks: records.release_asks.clone(),
        },
        instructed_debits,
        pending_instructions,
        peers: None,
    })
}

/// Instructions sent to the bank that no confirmation or void has settled.
fn pending_instructions(entries: &[Entry]) -> Vec<PendingInstruction> {
    let settled: BTreeSet<i64> = entries
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::PendingConfirmed | EntryKind::PendingVoided
            )
        })
        .filter_map(|e| e.refers_to_seq)
        .collect();
    entries
        .iter()
        .filter(|e| !settled.contains(&e.seq))
        .filter_map(|e| {
            let what = match e.kind {
                EntryKind::ReleaseInstructed => "release",
                EntryKind::RefundPaymentInstructed => "refund",
                EntryKind::DepositReturnInstructed => "deposit_return",
                _ => return None,
            };
            Some(PendingInstruction {
                entry: EntryRef {
                    seq: e.seq,
                    client_id: e.client_id.clone(),
                },
                what,
                date: e.occurred_at.date_naive(),
                amount_minor: e.postings.first().map_or(0, |p| p.amount.minor()),
            })
        })
        .collect()
}

/// The refund workflow's requests as the risk engine sees them: when each
/// was asked, approved (or deemed approved) and paid. Declined requests owe
/// nothing; a returned one is still owed.
///
/// A request for "everything not yet consumed" that nobody has approved
/// yet is worth the enrollment's unearned tuition on the day assessed.
fn refund_requests(
    refunds: &[(Refund, Vec<RefundEvent>)],
    entries: &[Entry],
    books: &BooksOn,
) -> Vec<RefundRequest> {
    let mut out = Vec::new();
    for (r, trail) in refunds {
        if r.state == RefundState::Declined {
            continue;
        }
        let on = |state: RefundState| {
            trail
                .iter()
                .find(|e| e.state == state.code())
                .map(|e| e.at.date_naive())
        };
        let approval = entries
            .iter()
            .find(|e| e.client_id.as_str() == r.approval_client_id());
        out.push(RefundRequest {
            enrollment: r.enrollment.clone(),
            amount_minor: approval
                .map(|e| e.postings.first().map_or(0, |p| p.amount.minor()))
                .or(r.amount_minor)
                .unwrap_or_else(|| books.balance(&format!("prepaid/{}", r.enrollment)).max(0)),
            requested_on: r.requested_on,
            approved_on: on(RefundState::Approved),
            paid_on: on(RefundState::Paid),
            entry: approval.map(|e| EntryRef {
                seq: e.seq,
                client_id: e.client_id.clone(),
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::ids::{InstitutionId, JurisdictionCode};
    use crate::domain::money::Currency;
    use crate::domain::recon::account::{LastClosing, StatementLine};
    use crate::domain::recon::LineStatus;
    use crate::domain::registry::{Category, InstitutionStatus, SupervisionMode};
    use crate::domain::risk::EventKind;
    use crate::domain::statements::StatementBalances;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, d).unwrap()
    }

    fn institution() -> Institution {
        Institution {
            id: InstitutionId::parse("INS-410922-0001".to_string()).unwrap(),
            name: "Sunrise Arts".into(),
            licence_no: "L-1".into(),
            jurisdiction: JurisdictionCode::parse("410922").unwrap(),
            mode: SupervisionMode::Both,
            category: Category::NonSubject,
            status: InstitutionStatus::Active,
            currency: Currency::Cny,
        }
    }

    fn tuition(seq: i64, on: u32, amount_minor: i64) -> Entry {
        let at = Utc.with_ymd_and_hms(2026, 5, on, 9, 0, 0).unwrap();
        Entry {
            institution: institution().id,
            seq,
            client_id: ClientId::parse(format!("pay-{seq}")).unwrap(),
            kind: EntryKind::TuitionPaid,
            currency: Currency::Cny,
            occurred_at: at,
            recorded_at: at,
            external_ref: None,
            enrollment: None,
            hours: None,
            refers_to_seq: None,
            rule_pack: None,
            flags: vec![],
            postings: vec![
                Posting {
                    account: crate::AccountCode::EscrowCash,
                    side: Side::Debit,
                    amount: crate::Amount::from_minor(amount_minor).unwrap(),
                },
                Posting {
                    account: crate::AccountCode::parse("prepaid/E-1").unwrap(),
                    side: Side::Credit,
                    amount: crate::Amount::from_minor(amount_minor).unwrap(),
                },
            ],
            request_hash: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn line(no: i64, on: u32, amount_minor: i64, bank_ref: &str) -> StatementLine {
        StatementLine {
            statement_key: format!("S{on}"),
            line_no: no,
            amount_minor,
            booking_date: Some(day(on)),
            value_date: None,
            status: LineStatus::Booked,
            bank_ref: Some(bank_ref.into()),
            end_to_end_id: None,
            remittance: None,
            counterparty_name: None,
            counterparty_account: None,
            reversal: false,
        }
    }

    /// Tuition of 500 arrives on the 4th; on the 5th 300 leaves with no
    /// instruction of ours; the bank closes the 5th at 200, the ledger
    /// says 500.
    fn records() -> Records {
        let chain = [JurisdictionCode::national()];
        let statements = AccountStatements {
            lines: vec![line(0, 4, 500, "pay-1"), line(0, 5, -300, "X-9")],
            closing: Some(LastClosing {
                statement_key: "S5".into(),
                balance_minor: 200,
                date: day(5),
            }),
            statements: vec![
                StatementBalances {
                    key: "S4".into(),
                    opening: Some((0, day(4))),
                    closing: Some((500, day(4))),
                },
                StatementBalances {
                    key: "S5".into(),
                    opening: Some((500, day(5))),
                    closing: Some((200, day(5))),
                },
            ],
            intraday: vec![],
        };
        Records {
            institution: institution(),
            entries: vec![tuition(1, 4, 500), tuition(2, 9, 700)],
            accounts: vec![AccountRecords {
                account: BankAccount {
                    institution: institution().id,
                    bank: "B".into(),
                    account_no: "6222-0001".into(),
                    kind: AccountKind::Escrow,
                    currency: Currency::Cny,
                },
                statements,
                registered_on: Some(day(1)),
                kept: None,
            }],
            enrollments: vec![],
            refunds: vec![],
            events: vec![InstitutionEvent {
                kind: EventKind::ClosureNotice,
                date: day(5),
            }],
            lessons: vec![],
            release_asks: vec![],
            lessons_summed: vec![],
            lessons_at_rest: vec![],
            open_entries: None,
            rules: policy::resolve(&chain, &[], day(6)),
        }
    }

    #[test]
    fn the_snapshot_shows_what_the_bank_showed_and_nothing_after_the_day() {
        let input = snapshot(&records(), day(6)).unwrap();
        assert_eq!(input.history_from, day(4));
        assert_eq!(
            input.ledger.escrow_cash_minor, 500,
            "the payment of the 9th is ahead"
        );
        assert_eq!(input.accounts.len(), 1);
        assert_eq!(input.accounts[0].closings.len(), 2);
        assert_eq!(input.accounts[0].registered_on, Some(day(1)));
        assert_eq!(input.accounts[0].chain_break, None);
        let out: Vec<_> = input
            .unauthorized_outflows
            .iter()
            .map(|l| (l.line_id.as_str(), l.amount_minor, l.balance_before_minor))
            .collect();
        assert_eq!(out, [("6222-0001/S5#0", 300, Some(500))]);
        assert_eq!(input.bank_debits.len(), 1);
        assert_eq!(input.balance_mismatches.len(), 1);
        assert_eq!(input.balance_mismatches[0].bank_closing_minor, 200);
        assert_eq!(input.balance_mismatches[0].ledger_balance_minor, 500);
        let the_4th = input.days.iter().find(|d| d.date == day(4)).unwrap();
        assert_eq!(
            (
                the_4th.collections_reported_minor,
                the_4th.collections_into_escrow_minor,
                the_4th.bank_credits_minor
            ),
            (500, 500, 500),
            "the bank line settles the payment"
        );
        assert_eq!(input.events.len(), 1);
        assert_eq!(input.ledger_at_statements.map(|(d, _)| d), Some(day(5)));
    }

    /// A family's first ask is a workflow request or, where none came
    /// first, an approval entry; a family counts as could-have-left in a
    /// window when its package was sold by the window's end, its course
    /// had not ended before it began and it had not asked before it.
    #[test]
    fn families_leaving_count_each_family_once_by_its_first_ask() {
        let on = |y: i32, m: u32, d: u32| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(9, 0, 0).unwrap());
        let mut r = records();
        r.entries.clear();
        let mut seq = 0;
        let mut entry = |kind: EntryKind, id: &str, d: NaiveDate| {
            seq += 1;
            let mut e = tuition(seq, 4, 100);
            e.kind = kind;
            e.enrollment = Some(EnrollmentId::parse(id).unwrap());
            e.occurred_at = at(d);
            e.recorded_at = at(d);
            e
        };
        let sold = |id: &str, d: NaiveDate, end: NaiveDate| Enrollment {
            institution: institution().id,
            id: EnrollmentId::parse(id).unwrap(),
            student_ref: "S".into(),
            hours_bought: 20,
            bonus_hours: 0,
            price: crate::Amount::from_minor(100).unwrap(),
            currency: Currency::Cny,
            course_start: d,
            course_end: end,
        };
        let july = on(2026, 7, 31);
        // (enrollment, sold, course end)
        for (id, d, end) in [
            ("E-1", on(2026, 5, 4), july),
            ("E-2", on(2026, 5, 4), july),
            ("E-3", on(2026, 5, 4), july),
            ("E-5", on(2026, 4, 1), on(2026, 4, 30)), // ended before the window
            ("E-6", on(2026, 5, 4), july),            // asks after the day assessed
            ("E-7", on(2026, 6, 1), july),            // sold after it
            ("E-8", on(2026, 4, 1), july),            // asked before the window
        ] {
            r.entries.push(entry(EntryKind::TuitionPaid, id, d));
            r.enrollments.push(sold(id, d, end));
        }
        // E-1 asks through the workflow, then is approved: one family.
        r.entries
            .push(entry(EntryKind::RefundApproved, "E-1", on(2026, 5, 22)));
        // E-2 is approved with no request: the approval is the ask.
        r.entries
            .push(entry(EntryKind::RefundApproved, "E-2", on(2026, 5, 25)));
        let request = |id: &str, d: NaiveDate| Refund {
            institution: institution().id,
            id: crate::domain::ids::RefundId::parse(format!("RF{}", id.replace('-', ""))).unwrap(),
            enrollment: EnrollmentId::parse(id).unwrap(),
            amount_minor: None,
            payee: crate::domain::refunds::Payee {
                name: "P".into(),
                account: "1".into(),
                bank: "B".into(),
            },
            reason: None,
            requested_by: "family".into(),
            requested_on: d,
            answer_by: d,
            state: RefundState::Requested,
            pay_by: None,
            instruction_id: None,
        };
        r.refunds = vec![
            (request("E-1", on(2026, 5, 20)), vec![]),
            (request("E-6", on(2026, 6, 2)), vec![]),
            (request("E-8", on(2026, 4, 20)), vec![]),
        ];
        let input = snapshot(&r, day(31)).unwrap();
        let f = &input.families;
        let leaving: Vec<&str> = f.recent_leaving.iter().map(|e| e.as_str()).collect();
        // Recent window 2–31 May: E-1, E-2, E-3 and E-6 could have left.
        assert_eq!((leaving, f.recent_live), (vec!["E-1", "E-2"], 4));
        // Baseline 1 February – 1 May: E-5 and E-8 (sold in April); E-8 left.
        assert_eq!((f.baseline_leaving, f.baseline_live), (1, 2));
    }

    #[test]
    fn a_rule_pack_whose_calendar_contradicts_itself_makes_no_snapshot() {
        let mut r = records();
        r.rules.params.holidays = Some(vec![day(9)]);
        r.rules.params.makeup_working_days = Some(vec![day(9)]);
        let e = snapshot(&r, day(6)).unwrap_err();
        assert!(matches!(e, SnapshotError::Rules(_)), "{e}");
    }

    #[test]
    fn only_the_events_the_engine_reads_have_a_kind() {
        for (code, kind) in [
            (
                "legal_representative_change",
                Some(EventKind::LegalRepresentativeChange),
            ),
            ("closure_notice", Some(EventKind::ClosureNotice)),
            ("address_change", None),
            ("", None),
        ] {
            assert_eq!(EventKind::from_code(code), kind, "{code:?}");
        }
    }
}
