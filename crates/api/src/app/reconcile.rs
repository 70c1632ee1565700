//! Reconciliation as use cases: the report (each supervised account's
//! statement days and every bank line matched, suggested or unmatched and
//! why; it records nothing), the recording run (`reconcile --record`, the
//! hourly job: keep matches, book credits to suspense, confirm or void what
//! the bank executed or returned, keep the statement days), and an
//! officer's decision on a suggestion. The rules are ledger-core's
//! (`domain::recon`); this module loads, calls them and stores what they
//! decide.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use ledger_core::domain::feeds::BankAccount;
use ledger_core::domain::money::format_minor;
use ledger_core::domain::recon::account::{match_account, Quarantine, StatementLine};
use ledger_core::domain::recon::days::{self, SettledChain, StatementDay};
use ledger_core::domain::recon::{booking, Match, ReconcileError, ReconcileOutcome};
use ledger_core::domain::replay::BooksOn;
use ledger_core::store::{IdSpan, MatchRecord, ReconDay, Watermark};
use ledger_core::{Currency, Entry, InstitutionId, Store, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{AppError, AppResult};

/// Every entry of an institution, by seq.
pub async fn all_entries(store: &Store, id: &InstitutionId) -> AppResult<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = store.entries(id, after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        entries.extend(page);
    }
    Ok(entries)
}

/// The matcher refuses only inputs we built: stored lines it cannot take
/// are data this version cannot read.
fn matcher_failed(e: ReconcileError) -> AppError {
    AppError::Store(StoreError::Corrupt(format!("[{}] {e}", e.code())))
}

fn recon_day(d: &StatementDay) -> ReconDay {
    ReconDay {
        statement_key: d.statement_key.clone(),
        day: d.day,
        bank_closing_minor: d.bank_closing_minor,
        ledger_balance_minor: d.ledger_balance_minor,
        owed_minor: d.owed_minor,
        status: d.status.code().to_string(),
    }
}

/// The supervised accounts of one institution (which must exist) or of all.
pub async fn accounts_in_scope(
    store: &Store,
    institution: Option<&InstitutionId>,
) -> AppResult<Vec<BankAccount>> {
    let ids = match institution {
        Some(id) => vec![id.clone()],
        None => store
            .institutions()
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect(),
    };
    let mut accounts = Vec::new();
    for id in &ids {
        store.institution(id).await?;
        accounts.extend(store.supervised_accounts(id).await?);
    }
    Ok(accounts)
}

/// The bank's latest closing of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BankClosingView {
    pub statement: String,
    /// Decimal string.
    pub amount: String,
    pub date: NaiveDate,
}

/// One statement day's three figures (decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DayView {
    pub date: NaiveDate,
    pub statement: String,
    pub bank_closing: String,
    /// The ledger's balance of the account at the end of the day.
    pub ledger_balance: String,
    /// What the books owed at the end of the day.
    pub owed: String,
    pub bank_minus_ledger: String,
    /// `agrees`, `differs` or `quarantined`.
    #[schema(example = "agrees")]
    pub status: String,
}

/// Where the account's statement chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QuarantineView {
    /// The first missing day: nothing reported from it on is booked.
    pub from: NaiveDate,
    pub explanation: String,
    /// The last statement before the gap.
    pub after: String,
    /// The first statement after the gap.
    pub before: String,
}

/// A bank line as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineView {
    /// The statement's key.
    pub statement: String,
    /// The line's number on its statement.
    pub line: i64,
    /// Signed decimal string: credit (money in) positive.
    pub amount: String,
    /// The booking date, when the bank gave one.
    pub date: Option<NaiveDate>,
    pub end_to_end_id: Option<String>,
    pub bank_ref: Option<String>,
}

/// A journal entry as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReportedEntry {
    pub seq: u64,
    pub client_id: Option<String>,
    pub kind: Option<String>,
}

/// Lines and entries that go together, with the evidence in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MatchView {
    /// The matcher's pass: `reversal`, `identifier`, `reference`,
    /// `counterparty`, `grouped` or `amount_date`.
    #[schema(example = "identifier")]
    pub pass: String,
    pub lines: Vec<LineView>,
    /// Empty for a reversal pair.
    pub entries: Vec<ReportedEntry>,
    pub explanation: String,
}

/// A bank line in no match or suggestion, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UnmatchedLineView {
    pub statement: String,
    pub line: i64,
    pub amount: String,
    pub date: Option<NaiveDate>,
    pub end_to_end_id: Option<String>,
    pub bank_ref: Option<String>,
    /// `not_booked`, `zero_amount`, `duplicate`, `reversal`,
    /// `reference_amount_mismatch`, `ambiguous`, `unmatched_debit`,
    /// `no_candidate`, or `undated` (neither booking nor value date).
    #[schema(example = "no_candidate")]
    pub reason: String,
    /// Money out that no instruction of ours explains.
    pub unauthorized_outflow: bool,
    /// Whether the line waits in quarantine (absent for undated and
    /// provisional lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<bool>,
}

/// An entry no bank line settles, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UnmatchedEntryView {
    pub seq: u64,
    pub client_id: Option<String>,
    pub kind: Option<String>,
    /// `returned`, `reference_amount_mismatch`, `ambiguous` or
    /// `no_candidate`.
    #[schema(example = "no_candidate")]
    pub reason: String,
}

/// Intraday lines of days no end-of-day statement covers yet: matched, but
/// nothing is booked from them until the statement confirms them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProvisionalView {
    pub note: String,
    /// Matches and suggestions together.
    pub matches: Vec<MatchView>,
    pub unmatched_lines: Vec<UnmatchedLineView>,
}

/// One supervised account reconciled against the books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccountReconciliation {
    pub institution: String,
    pub bank: String,
    pub account: String,
    /// `escrow` or `deposit`.
    #[schema(example = "escrow")]
    pub kind: String,
    /// The bank's latest closing; null before any statement closed.
    pub bank_closing: Option<BankClosingView>,
    /// The ledger's balance of the account (at the end of the day asked).
    pub ledger_balance: String,
    /// What the books owe from the account.
    pub owed: String,
    /// The bank's latest closing less the ledger's balance; null without a
    /// closing.
    pub bank_minus_ledger: Option<String>,
    /// Each end-of-day statement's day, in issue order.
    pub days: Vec<DayView>,
    /// Where the statement chain breaks; null when it does not.
    pub quarantine: Option<QuarantineView>,
    pub provisional: ProvisionalView,
    /// Automatic matches.
    pub matches: Vec<MatchView>,
    /// Matches for an officer to confirm or reject.
    pub suggestions: Vec<MatchView>,
    pub unmatched_lines: Vec<UnmatchedLineView>,
    pub unmatched_entries: Vec<UnmatchedEntryView>,
}

const PROVISIONAL_NOTE: &str = "intraday lines of days no end-of-day statement covers yet: nothing is booked from them until the statement confirms them";

/// Renders one account's matched lines and entries for the report.
struct Names<'a> {
    currency: Currency,
    by_seq: BTreeMap<i64, &'a Entry>,
}

impl Names<'_> {
    fn money(&self, minor: i64) -> String {
        format_minor(minor, self.currency)
    }

    fn line(&self, l: &StatementLine) -> LineView {
        LineView {
            statement: l.statement_key.clone(),
            line: l.line_no,
            amount: self.money(l.amount_minor),
            date: l.booking_date,
            end_to_end_id: l.end_to_end_id.clone(),
            bank_ref: l.bank_ref.clone(),
        }
    }

    fn entry(&self, id: u64) -> ReportedEntry {
        let e = self.by_seq.get(&(id as i64));
        ReportedEntry {
            seq: id,
            client_id: e.map(|e| e.client_id.to_string()),
            kind: e.map(|e| e.kind.code().to_string()),
        }
    }

    fn matches<'m>(
        &self,
        list: impl IntoIterator<Item = &'m Match>,
        lines: &[StatementLine],
    ) -> Vec<MatchView> {
        list.into_iter()
            .map(|m| MatchView {
                pass: m.pass.code().to_string(),
                lines: m
                    .lines
                    .iter()
                    .map(|i| self.line(&lines[*i as usize]))
                    .collect(),
                entries: m.transfers.iter().map(|i| self.entry(*i)).collect(),
                explanation: m.explanation.clone(),
            })
            .collect()
    }

    fn unmatched_line(
        &self,
        l: &StatementLine,
        reason: &str,
        unauthorized_outflow: bool,
        quarantined: Option<bool>,
    ) -> UnmatchedLineView {
        let LineView {
            statement,
            line,
            amount,
            date,
            end_to_end_id,
            bank_ref,
        } = self.line(l);
        UnmatchedLineView {
            statement,
            line,
            amount,
            date,
            end_to_end_id,
            bank_ref,
            reason: reason.to_string(),
            unauthorized_outflow,
            quarantined,
        }
    }

    fn day(&self, d: &StatementDay) -> DayView {
        DayView {
            date: d.day,
            statement: d.statement_key.clone(),
            bank_closing: self.money(d.bank_closing_minor),
            ledger_balance: self.money(d.ledger_balance_minor),
            owed: self.money(d.owed_minor),
            bank_minus_ledger: self.money(d.bank_closing_minor - d.ledger_balance_minor),
            status: d.status.code().to_string(),
        }
    }

    fn quarantine(&self, q: &Quarantine) -> QuarantineView {
        let b = &q.chain_break;
        QuarantineView {
            from: b.quarantined_from,
            explanation: format!(
                "statement {} opens at {} on {} but the statement before it, {}, closed at {} on {}: a statement is missing or wrong, so nothing the bank reported from {} on is booked until the gap is filled",
                b.before,
                self.money(b.opening_minor),
                b.opening_date,
                b.after,
                self.money(b.after_closing_minor),
                b.after_closing_date,
                b.quarantined_from
            ),
            after: b.after.clone(),
            before: b.before.clone(),
        }
    }

    fn unmatched_lines(
        &self,
        outcome: &ReconcileOutcome,
        lines: &[StatementLine],
        quarantine: Option<Option<&Quarantine>>,
    ) -> Vec<UnmatchedLineView> {
        outcome
            .unmatched_lines
            .iter()
            .map(|(id, reason)| {
                let l = &lines[*id as usize];
                let held =
                    quarantine.map(|q| ledger_core::domain::recon::account::quarantined(q, l));
                self.unmatched_line(l, reason.code(), reason.is_unauthorized_outflow(), held)
            })
            .collect()
    }
}

/// One supervised account reconciled against its institution's books as
/// they stood at the end of `until` (everything, without it). Records
/// nothing.
pub async fn report_account(
    store: &Store,
    account: &BankAccount,
    until: Option<NaiveDate>,
) -> AppResult<AccountReconciliation> {
    let entries = all_entries(store, &account.institution).await?;
    let stored = store.statement_lines(account).await?;
    let matched = match_account(stored, account.kind, &entries, until).map_err(matcher_failed)?;
    let quarantined = matched
        .quarantine
        .as_ref()
        .map(|q| q.statements.clone())
        .unwrap_or_default();
    let names = Names {
        currency: account.currency,
        by_seq: entries.iter().map(|e| (e.seq, e)).collect(),
    };
    let days = days::statement_days(
        account.kind,
        &matched.statements.statements,
        &quarantined,
        &entries,
    );
    let books = BooksOn::replay(&entries, until.unwrap_or(NaiveDate::MAX));
    let (cash, owed) = days::figures(&books, account.kind);
    let lines = &matched.statements.lines;
    let closing = matched.statements.closing.as_ref();
    let provisional = &matched.provisional;
    let outcome = &matched.outcome;
    let p = &matched.provisional_outcome;
    let mut unmatched_lines =
        names.unmatched_lines(outcome, lines, Some(matched.quarantine.as_ref()));
    unmatched_lines.extend(
        matched
            .undated
            .iter()
            .map(|i| names.unmatched_line(&lines[*i], "undated", false, None)),
    );
    Ok(AccountReconciliation {
        institution: account.institution.to_string(),
        bank: account.bank.clone(),
        account: account.account_no.clone(),
        kind: account.kind.code().to_string(),
        bank_closing: closing.map(|c| BankClosingView {
            statement: c.statement_key.clone(),
            amount: names.money(c.balance_minor),
            date: c.date,
        }),
        ledger_balance: names.money(cash),
        owed: names.money(owed),
        bank_minus_ledger: closing.map(|c| names.money(c.balance_minor - cash)),
        days: days.iter().map(|d| names.day(d)).collect(),
        quarantine: matched.quarantine.as_ref().map(|q| names.quarantine(q)),
        provisional: ProvisionalView {
            note: PROVISIONAL_NOTE.to_string(),
            matches: names.matches(p.matches.iter().chain(&p.suggestions), provisional),
            unmatched_lines: names.unmatched_lines(p, provisional, None),
        },
        matches: names.matches(&outcome.matches, lines),
        suggestions: names.matches(&outcome.suggestions, lines),
        unmatched_lines,
        unmatched_entries: outcome
            .unmatched_transfers
            .iter()
            .map(|(id, reason)| {
                let ReportedEntry {
                    seq,
                    client_id,
                    kind,
                } = names.entry(*id);
                UnmatchedEntryView {
                    seq,
                    client_id,
                    kind,
                    reason: reason.code().to_string(),
                }
            })
            .collect(),
    })
}

/// The supervised accounts of one institution (or of all) reconciled.
pub async fn report(
    store: &Store,
    institution: Option<&InstitutionId>,
    until: Option<NaiveDate>,
) -> AppResult<Vec<AccountReconciliation>> {
    if let Some(day) = until {
        ledger_core::domain::bounds::check_day("date", day)?;
    }
    let mut reports = Vec::new();
    for account in accounts_in_scope(store, institution).await? {
        reports.push(report_account(store, &account, until).await?);
    }
    Ok(reports)
}

/// What one recording run did on one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordedAccount {
    pub institution: String,
    pub bank: String,
    pub account: String,
    pub matches_kept: u32,
    /// Kept by an earlier run (the same lines, the same match).
    pub matches_already_kept: u32,
    /// Pending instructions the bank executed, now confirmed.
    pub instructions_confirmed: u64,
    /// Credits nobody could attribute, booked to unidentified.
    pub credits_to_suspense: u64,
    /// Pending instructions the bank returned, now voided (with an alert).
    pub instructions_voided_as_returned: u64,
    /// Bank debits no instruction of ours explains.
    pub unauthorized_outflows: u64,
    /// The first day waiting in quarantine, if the statement chain breaks.
    pub quarantined_from: Option<NaiveDate>,
    /// Statement days kept (new or changed).
    pub days_recorded: u32,
}

impl RecordedAccount {
    /// The run's outcomes by name, for the jobs' counters.
    pub fn outcomes(&self) -> [(&'static str, u64); 5] {
        [
            ("matches_kept", u64::from(self.matches_kept)),
            ("instructions_confirmed", self.instructions_confirmed),
            (
                "instructions_voided_as_returned",
                self.instructions_voided_as_returned,
            ),
            ("credits_to_suspense", self.credits_to_suspense),
            ("unauthorized_outflows", self.unauthorized_outflows),
        ]
    }
}

fn match_record(account: &BankAccount, kept: booking::KeptMatch) -> MatchRecord {
    MatchRecord {
        match_id: kept.match_id,
        bank: account.bank.clone(),
        account_no: account.account_no.clone(),
        pass: kept.pass.to_string(),
        automatic: kept.automatic,
        explanation: kept.explanation,
        lines: kept.lines,
        entries: kept.entries,
    }
}

/// What the booking steps of a recording run did.
struct Booked {
    kept: ledger_core::store::RecordedMatches,
    confirmed: u64,
    suspended: u64,
    voided: u64,
    unauthorized_outflows: u64,
    /// The entries it booked.
    entries: Vec<Entry>,
}

/// The booking steps of a recording run over the lines of an account and
/// the institution's entries (claimed ones are left out of the matcher):
/// keep the matches and suggestions, book unattributed credits to
/// suspense, confirm what the bank executed and void (alert first) what it
/// returned.
async fn book(
    store: &Store,
    account: &BankAccount,
    lines: &[StatementLine],
    (claimed_lines, claimed_entries): &ledger_core::store::Claimed,
    held: Option<&Quarantine>,
    entries: &[Entry],
) -> AppResult<Booked> {
    let open_lines = booking::open_lines(lines, claimed_lines, held);
    let open_entries = entries.iter().filter(|e| !claimed_entries.contains(&e.seq));
    let (_, outcome) =
        ledger_core::domain::recon::account::run_matcher(&open_lines, open_entries, account.kind)
            .map_err(matcher_failed)?;
    let mut records: Vec<MatchRecord> = booking::kept_matches(account, &open_lines, &outcome)
        .into_iter()
        .map(|k| match_record(account, k))
        .collect();

    let receipts = booking::suspense_receipts(account, &open_lines, &outcome)?;
    let suspended = receipts.len() as u64;
    let mut booked: Vec<Entry> = Vec::new();
    if !receipts.is_empty() {
        let posted = store
            .execute_batch(receipts.iter().map(|r| r.request.clone()).collect())
            .await?;
        for (entry, receipt) in posted.iter().zip(&receipts) {
            records.push(match_record(account, receipt.kept(entry)));
        }
        booked.extend(posted);
    }
    let kept = store.record_matches(&account.institution, &records).await?;

    let mut requests = booking::confirmations(account, &open_lines, &outcome, entries)?;
    let confirmed = requests.len() as u64;
    let voids = booking::voids(account, &outcome, entries)?;
    let voided = voids.len() as u64;
    let returned = booking::returned_findings(account, &voids, entries);
    requests.extend(voids);
    // The alert first: if the run died after the voids, the next run would
    // no longer see them as returned and the alert would never be raised.
    if !returned.is_empty() {
        store
            .record_findings(&account.institution, store.now().date_naive(), &returned)
            .await?;
    }
    if !requests.is_empty() {
        booked.extend(store.execute_batch(requests).await?);
    }
    Ok(Booked {
        kept,
        confirmed,
        suspended,
        voided,
        unauthorized_outflows: outcome
            .unmatched_lines
            .iter()
            .filter(|(_, r)| r.is_unauthorized_outflow())
            .count() as u64,
        entries: booked,
    })
}

fn recorded(
    account: &BankAccount,
    booked: &Booked,
    held: Option<&Quarantine>,
    days_recorded: u32,
) -> RecordedAccount {
    RecordedAccount {
        institution: account.institution.to_string(),
        bank: account.bank.clone(),
        account: account.account_no.clone(),
        matches_kept: booked.kept.stored,
        matches_already_kept: booked.kept.already_held,
        instructions_confirmed: booked.confirmed,
        credits_to_suspense: booked.suspended,
        instructions_voided_as_returned: booked.voided,
        unauthorized_outflows: booked.unauthorized_outflows,
        quarantined_from: held.map(|q| q.chain_break.quarantined_from),
        days_recorded,
    }
}

fn quarantined_statements(held: Option<&Quarantine>) -> std::collections::BTreeSet<String> {
    held.map(|q| q.statements.clone()).unwrap_or_default()
}

/// `reconcile --record` on one account: keeps its automatic matches (their
/// claims make a re-run skip what is settled) and its suggestions for an
/// officer, books unattributed credits to suspense, confirms the pending
/// instructions the bank executed and voids those it returned (raising an
/// alert first), and keeps each statement day's figures; from end-of-day
/// lines outside quarantine only.
///
/// It costs what is new and open, not the history: the matcher reads the
/// lines and transfers no kept match claims (with the entries that settle
/// them), selected by the database; the statements and kept days are read
/// from the day the account's chain is settled through
/// ([`SettledChain`], kept with the watermark: before it the chain cannot
/// break and the days cannot change while no statement arrives for them
/// and no entry moves money on them); the statement days are recomputed
/// from the first day that can have changed ([`days::recompute_from`]: a
/// day not kept yet, or the earliest day an entry written since the
/// account's watermark moved money on), moved on from the latest kept day
/// before it (or from the books the database sums, with none kept), and
/// the days before read as they were kept. It records exactly what
/// [`record_account_full`] records.
pub async fn record_account(
    store: &Store,
    account: &BankAccount,
    until: Option<NaiveDate>,
) -> AppResult<RecordedAccount> {
    let institution = &account.institution;
    let (bank, account_no) = (&account.bank, &account.account_no);
    let entries: Vec<Entry> = store
        .open_transfer_entries(institution)
        .await?
        .into_iter()
        .filter(|e| until.is_none_or(|d| e.occurred_at.date_naive() <= d))
        .collect();
    let watermark = store.recon_watermark(institution, bank, account_no).await?;
    let settled = settled_chain(store, account, watermark, until).await?;
    let mut stored = store
        .open_statement_lines(account, settled.map(|c| c.through))
        .await?;
    let mut read = stored.statements.clone();
    if let Some(day) = until {
        stored.cut_at(day);
    }
    let held = Quarantine::of(&stored.statements);
    let booked = book(
        store,
        account,
        &stored.lines,
        &Default::default(),
        held.as_ref(),
        &entries,
    )
    .await?;

    // Each statement day's figures, with the books as this run leaves them.
    // Read before anything else: every entry up to it is counted below.
    let seen = store.last_seq(institution).await?;
    let changed_from = store
        .earliest_occurred_after(institution, watermark.map_or(0, |w| w.entry_seq))
        .await?;
    let mut statements = stored.statements;
    // An entry written since that moved money before the settled day (this
    // run's bookings included) changes days kept before it: the chain is
    // read whole again (it breaks where it broke: only the days move).
    let settled = match settled {
        Some(c) if changed_from.is_some_and(|d| d < c.through) => {
            let mut whole = store.statement_balances(account, None).await?;
            read = whole.statements.clone();
            if let Some(day) = until {
                whole.cut_at(day);
            }
            statements = whole.statements;
            None
        }
        kept => kept,
    };
    let kept = store
        .recon_kept_figures(institution, bank, account_no, settled.map(|c| c.through))
        .await?;
    let from = days::recompute_from(&statements, &kept, changed_from);
    // The window starts after the latest kept day before `from` when there
    // is one (its figures hold, and the figures add up), else at `from`
    // with the books before it summed by the database.
    let anchor = from.and_then(|from| {
        statements
            .iter()
            .filter_map(|s| {
                let k = kept.get(&s.key)?;
                (s.closing.map(|c| c.1) == Some(k.day) && k.day < from).then_some(*k)
            })
            .max_by_key(|k| k.day)
            .and_then(|k| Some((k.day.succ_opt()?, k)))
    });
    let mut books_before = BooksOn::default();
    let (window_from, figures_before) = match (from, anchor) {
        (_, Some((next, k))) => (Some(next), (k.ledger_balance_minor, k.owed_minor)),
        (Some(day), None) => {
            books_before = store.books_before(institution, day).await?;
            (Some(day), (0, 0))
        }
        (None, None) => (None, (0, 0)),
    };
    let since = match window_from {
        Some(day) => store.entries_occurred_from(institution, day).await?,
        None => Vec::new(),
    };
    let window = window_from.map(|from| days::Window {
        from,
        books_before: &books_before,
        figures_before,
        entries: &since,
    });
    // The quarantine of the statements the days are computed from: the
    // same as `held` unless the chain was read again above and a statement
    // came in between (then the next run matches its lines).
    let days_held = Quarantine::of(&statements);
    let days: Vec<ReconDay> = days::statement_days_since(
        account.kind,
        &statements,
        &quarantined_statements(days_held.as_ref()),
        &kept,
        window.as_ref(),
    )
    .iter()
    .map(recon_day)
    .collect();
    // Days kept beyond `until` are not recomputed by this run: the
    // watermark cannot move past entries that may change them.
    let beyond = until.is_some_and(|u| kept.values().any(|k| k.day > u));
    let watermark = (!beyond).then(|| Watermark {
        entry_seq: seen,
        chain: SettledChain::after_run(settled, &read, &statements),
    });
    let days_recorded = store
        .record_days(institution, bank, account_no, &days, watermark)
        .await?;
    Ok(recorded(account, &booked, held.as_ref(), days_recorded))
}

/// The chain the runs before settled (see [`SettledChain`]), while it
/// holds for this run: it looks at least that far, and the store holds
/// no statement for those days that the count kept with it leaves out.
async fn settled_chain(
    store: &Store,
    account: &BankAccount,
    watermark: Option<Watermark>,
    until: Option<NaiveDate>,
) -> AppResult<Option<SettledChain>> {
    let Some(chain) = watermark.and_then(|w| w.chain) else {
        return Ok(None);
    };
    if until.is_some_and(|u| u < chain.through) {
        return Ok(None);
    }
    let held = store
        .statements_issued_through(account, chain.through)
        .await?;
    Ok((held == chain.statements).then_some(chain))
}

/// [`record_account`] the way it was first written, from the whole
/// history: every entry of the institution, every line of the account,
/// every statement day replayed. It records the same; it stays as the
/// reference the incremental run is tested against, and as a way to
/// rebuild the days from scratch (it leaves the watermark as it is, so the
/// next incremental run is never less careful).
pub async fn record_account_full(
    store: &Store,
    account: &BankAccount,
    until: Option<NaiveDate>,
) -> AppResult<RecordedAccount> {
    let entries: Vec<Entry> = all_entries(store, &account.institution)
        .await?
        .into_iter()
        .filter(|e| until.is_none_or(|d| e.occurred_at.date_naive() <= d))
        .collect();
    let claimed = store
        .claimed(&account.institution, &account.bank, &account.account_no)
        .await?;
    let mut stored = store.statement_lines(account).await?;
    if let Some(day) = until {
        stored.cut_at(day);
    }
    let held = Quarantine::of(&stored.statements);
    let booked = book(
        store,
        account,
        &stored.lines,
        &claimed,
        held.as_ref(),
        &entries,
    )
    .await?;
    // Each statement day's figures, with the books as this run leaves them.
    let mut after = entries;
    after.extend(booked.entries.iter().cloned());
    let days: Vec<ReconDay> = days::statement_days(
        account.kind,
        &stored.statements,
        &quarantined_statements(held.as_ref()),
        &after,
    )
    .iter()
    .map(recon_day)
    .collect();
    let days_recorded = store
        .record_days(
            &account.institution,
            &account.bank,
            &account.account_no,
            &days,
            None,
        )
        .await?;
    Ok(recorded(account, &booked, held.as_ref(), days_recorded))
}

/// [`record_account`] on the supervised accounts of one institution (or
/// of all), then the open transfers kept as this run leaves them
/// ([`Store::keep_open_transfers`]): the next run reads what is open and
/// new, not the history.
pub async fn record(
    store: &Store,
    institution: Option<&InstitutionId>,
    until: Option<NaiveDate>,
) -> AppResult<Vec<RecordedAccount>> {
    let mut reports = Vec::new();
    for account in accounts_in_scope(store, institution).await? {
        reports.push(record_account(store, &account, until).await?);
    }
    let kept = store
        .keep_open_transfers(institution.map(IdSpan::one))
        .await?;
    tracing::debug!(
        marked = kept.marked,
        listed = kept.listed,
        claimed = kept.claimed,
        "open transfers kept"
    );
    Ok(reports)
}

/// One statement day as reconciliation recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordedDayView {
    pub bank: String,
    pub account: String,
    /// `escrow` or `deposit`.
    pub kind: String,
    pub date: NaiveDate,
    pub statement: String,
    /// 1 when the day was first kept; each change of its figures adds one.
    pub version: i64,
    /// Whether a later version of this day exists.
    pub superseded: bool,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// The bank's closing balance that day (decimal string).
    pub bank_closing: String,
    /// The ledger's balance of the account at the end of that day.
    pub ledger_balance: String,
    /// What the books said was owed at the end of that day.
    pub owed: String,
    pub bank_minus_ledger: String,
    /// `agrees`, `differs` or `quarantined`.
    pub status: String,
}

/// The statement days recording runs kept for an institution, by account
/// then day: the latest version of each day, or (`history`) every version,
/// oldest first.
pub async fn recorded_days(
    store: &Store,
    institution: &InstitutionId,
    history: bool,
) -> AppResult<Vec<RecordedDayView>> {
    let accounts = store.supervised_accounts(institution).await?;
    let kept = store.recon_day_history(institution).await?;
    let mut days = Vec::with_capacity(kept.len());
    for (n, r) in kept.iter().enumerate() {
        let superseded = kept.get(n + 1).is_some_and(|next| {
            (&next.bank, &next.account_no, &next.day.statement_key)
                == (&r.bank, &r.account_no, &r.day.statement_key)
        });
        if superseded && !history {
            continue;
        }
        // A recorded day always belongs to a supervised account (foreign
        // key to its statement); the account gives currency and kind.
        let account = accounts
            .iter()
            .find(|a| a.bank == r.bank && a.account_no == r.account_no)
            .ok_or_else(|| {
                AppError::Store(StoreError::Corrupt(format!(
                    "recorded day of {} at {} has no supervised account",
                    r.account_no, r.bank
                )))
            })?;
        let money = |minor: i64| format_minor(minor, account.currency);
        days.push(RecordedDayView {
            bank: r.bank.clone(),
            account: r.account_no.clone(),
            kind: account.kind.code().to_string(),
            date: r.day.day,
            statement: r.day.statement_key.clone(),
            version: r.version,
            superseded,
            recorded_at: r.recorded_at,
            bank_closing: money(r.day.bank_closing_minor),
            ledger_balance: money(r.day.ledger_balance_minor),
            owed: money(r.day.owed_minor),
            bank_minus_ledger: money(r.day.bank_closing_minor - r.day.ledger_balance_minor),
            status: r.day.status.clone(),
        });
    }
    Ok(days)
}

/// A match reconciliation only suggested, waiting for an officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Suggestion {
    /// The match's id, for confirm or reject.
    pub id: String,
    /// The matching pass that suggested it.
    pub pass: String,
    pub explanation: String,
}

/// The suggestions of an institution still waiting.
pub async fn suggestions(store: &Store, institution: &InstitutionId) -> AppResult<Vec<Suggestion>> {
    Ok(store
        .suggestions(institution)
        .await?
        .into_iter()
        .map(|(id, pass, explanation)| Suggestion {
            id,
            pass,
            explanation,
        })
        .collect())
}

/// An officer's answer to a suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The match claims its lines and entries.
    Confirm,
    Reject,
}

impl Decision {
    pub fn parse(text: &str) -> AppResult<Decision> {
        match text {
            "confirm" => Ok(Decision::Confirm),
            "reject" => Ok(Decision::Reject),
            other => Err(AppError::invalid(
                "invalid_field",
                "decision",
                format!("{other:?} is not confirm or reject"),
            )),
        }
    }
}

/// Confirms or rejects a suggestion, kept with who and why.
pub async fn decide(
    store: &Store,
    institution: &InstitutionId,
    match_id: &str,
    decision: Decision,
    actor: &str,
    comment: Option<&str>,
) -> AppResult<()> {
    store
        .decide_suggestion(
            institution,
            match_id,
            decision == Decision::Confirm,
            actor,
            comment,
        )
        .await?;
    Ok(())
}
