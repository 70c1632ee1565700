//! Run-off risk as use cases: load institutions' records (one at a time, or
//! set-wise for a national scan), build each snapshot and evaluate it (the
//! rules are ledger-core's, `domain::risk`), rank a jurisdiction, keep the
//! signals as alerts; and the ranked list as the API answers it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use ledger_core::domain::alerts::{AlertKind, Finding, RecordReport};
use ledger_core::domain::money::format_minor;
use ledger_core::domain::policy::ResolvedRules;
use ledger_core::domain::risk::snapshot::{self, AccountRecords, Records, SnapshotError};
use ledger_core::domain::risk::{
    self, Assessment, EntryRef, EventKind, Evidence, InstitutionEvent, ReleaseIssue, RiskInput,
    SignalKind,
};
use ledger_core::store::{AccountKey, EventRow, IdSpan};
use ledger_core::{Currency, Institution, InstitutionId, JurisdictionCode, Store, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{AppError, AppResult};

fn account_key(a: &ledger_core::domain::feeds::BankAccount) -> AccountKey {
    (
        a.institution.to_string(),
        a.bank.clone(),
        a.account_no.clone(),
    )
}

/// The events the risk engine reads, from the stored ones.
fn risk_events(events: &[EventRow]) -> Vec<InstitutionEvent> {
    events
        .iter()
        .filter_map(|(_, kind, date, _, _)| {
            Some(InstitutionEvent {
                kind: EventKind::from_code(kind)?,
                date: *date,
            })
        })
        .collect()
}

/// One institution's records: the set-wise read ([`records_in`]) over its
/// own span of ids, one query per kind of record (none of them reads
/// another institution's rows).
pub async fn records_of(
    store: &Store,
    institution: &Institution,
    as_of: NaiveDate,
    reading: Reading,
) -> AppResult<Records> {
    let span = IdSpan::one(&institution.id);
    let mut records =
        records_in(store, vec![institution.clone()], Some(span), as_of, reading).await?;
    records
        .pop()
        .ok_or_else(|| AppError::Store(StoreError::Corrupt("no records read".into())))
}

/// The records of every institution given, set-wise: one query per kind
/// of record for the whole store, whatever the number of institutions
/// (the national scan loaded at once).
pub async fn records_all(
    store: &Store,
    institutions: Vec<Institution>,
    as_of: NaiveDate,
    reading: Reading,
) -> AppResult<Vec<Records>> {
    records_in(store, institutions, None, as_of, reading).await
}

/// How much of the history a read brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Every entry and every bank line: what a page, an export or coverage
    /// shows, and the reference the windowed read is held to.
    Whole,
    /// What the risk engine's windows need (`snapshot::lessons_listed_from`
    /// gives the day they start), with the assessment unchanged:
    /// - the lessons consumed before that day summed per enrollment by the
    ///   database (four in five of an institution's entries);
    /// - the banks' lines matched as reconciliation kept them
    ///   (`snapshot::KeptAccount`): only the lines of statements closing
    ///   from that day, and those of statements holding a line no kept
    ///   match claims, are read; the matcher runs on what is left open.
    ///   When anything is dated after the day assessed (a past day), the
    ///   lines are read whole and matched afresh as of that day;
    /// - the families' lesson records at rest before that day (recorded,
    ///   due and every step taken before it: `confirmations::at_rest`)
    ///   summed per enrollment by the database, the rest listed with their
    ///   trails.
    Windowed,
}

/// The records of the institutions given, set-wise: one query per kind of
/// record for the span of ids (the whole store without one); rows of
/// institutions not given are dropped as they are read.
pub async fn records_in(
    store: &Store,
    institutions: Vec<Institution>,
    span: Option<IdSpan<'_>>,
    as_of: NaiveDate,
    reading: Reading,
) -> AppResult<Vec<Records>> {
    let wanted: HashMap<String, usize> = institutions
        .iter()
        .enumerate()
        .map(|(n, i)| (i.id.to_string(), n))
        .collect();
    let mut rules: HashMap<String, ResolvedRules> = HashMap::new();
    let mut records = Vec::with_capacity(institutions.len());
    for institution in institutions {
        let code = institution.jurisdiction.to_string();
        if !rules.contains_key(&code) {
            rules.insert(code.clone(), store.rules_for(&institution, as_of).await?);
        }
        records.push(Records {
            rules: rules[&code].clone(),
            institution,
            entries: Vec::new(),
            accounts: Vec::new(),
            enrollments: Vec::new(),
            refunds: Vec::new(),
            events: Vec::new(),
            lessons: Vec::new(),
            release_asks: Vec::new(),
            lessons_summed: Vec::new(),
            lessons_at_rest: Vec::new(),
            open_entries: None,
        });
    }
    let slot = |id: &str| wanted.get(id).copied();
    // The banks' statements first, without their lines: how far back the
    // windows reach depends on the latest statement of each account.
    let (registered, mut balances, accounts) = tokio::try_join!(
        store.account_registrations(span),
        store.statement_balances_in(span),
        store.supervised_accounts_in(span),
    )?;
    for account in accounts {
        if let Some(n) = slot(account.institution.as_str()) {
            let key = account_key(&account);
            records[n].accounts.push(AccountRecords {
                statements: balances.remove(&key).unwrap_or_default(),
                registered_on: registered.get(&key).copied(),
                account,
                kept: None,
            });
        }
    }
    // One day for the whole read (the earliest any institution needs):
    // reading from an earlier day than one needs changes nothing.
    let windows_from = match reading {
        Reading::Whole => None,
        Reading::Windowed => records
            .iter()
            .map(|r| snapshot::lessons_listed_from(&r.rules, &r.accounts, as_of))
            .try_fold(None::<NaiveDate>, |earliest, from| {
                from.map(|d| Some(earliest.map_or(d, |e| e.min(d))))
            })
            .flatten(),
    };
    match windows_from {
        Some(from) => {
            // The open entries before the lines: a match kept in between
            // then leaves an entry open with its line claimed (harmless:
            // nothing is left for it to match), never a line open without
            // the entry it settles (an unauthorized outflow).
            let mut open = store.open_transfer_seqs_in(span).await?;
            for r in &mut records {
                r.open_entries = Some(open.remove(r.institution.id.as_str()).unwrap_or_default());
            }
            let mut lines = store.statement_lines_kept_in(span, from).await?;
            for r in &mut records {
                for a in &mut r.accounts {
                    let (read, kept) = lines.remove(&account_key(&a.account)).unwrap_or_default();
                    a.statements.lines = read.lines;
                    a.statements.intraday = read.intraday;
                    a.kept = Some(kept);
                }
            }
        }
        None => read_every_line(store, span, &mut records).await?,
    }
    let lessons_from = windows_from.map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc());
    // Nothing to sum (a young store, or a day early in its history): the
    // entries' plain read, which needs no join to leave lessons out.
    let lessons_from = match lessons_from {
        Some(before) if !store.lessons_before_exist(span, before).await? => None,
        other => other,
    };
    let mut after: Option<(String, i64)> = None;
    loop {
        let page = store
            .entries_in(
                span,
                after.as_ref().map(|(i, s)| (i.as_str(), *s)),
                50_000,
                lessons_from,
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.institution.to_string(), last.seq));
        for e in page {
            if let Some(n) = slot(e.institution.as_str()) {
                records[n].entries.push(e);
            }
        }
    }
    // Reconciliation's kept matches stand for a re-run of the matcher only
    // when nothing is dated after the day assessed (a past day reads the
    // whole history of the banks' lines, matched afresh as of that day).
    if windows_from.is_some() && records.iter().any(|r| recorded_after(r, as_of)) {
        read_every_line(store, span, &mut records).await?;
    }
    // The rest at once, each read on a connection of its own (SQLite's
    // readers, PostgreSQL's pool): none depends on another, and all come
    // after the entries. The sums after the entries: a lesson booked late,
    // between the two reads, is then in the sums and not in the entries,
    // never in neither.
    let summed = async {
        match lessons_from {
            Some(before) => store.lessons_summed_in(span, before).await.map(Some),
            None => Ok(None),
        }
    };
    let (summed, enrollments, mut trails, refunds, events, lessons, approvals) = tokio::try_join!(
        summed,
        store.enrollments_in(span),
        store.refund_trails_in(span),
        store.refunds_in(span),
        store.events_in(span),
        store.lessons_in(span, windows_from),
        store.approvals_in(span),
    )?;
    if let Some(summed) = summed {
        for (institution, summed) in summed {
            if let Some(n) = slot(institution.as_str()) {
                records[n].lessons_summed.push(summed);
            }
        }
        for r in &mut records {
            r.lessons_summed
                .sort_by(|a, b| a.enrollment.cmp(&b.enrollment));
        }
    }
    for e in enrollments {
        if let Some(n) = slot(e.institution.as_str()) {
            records[n].enrollments.push(e);
        }
    }
    for r in refunds {
        if let Some(n) = slot(r.institution.as_str()) {
            let trail = trails
                .remove(&(r.institution.to_string(), r.id.to_string()))
                .unwrap_or_default();
            records[n].refunds.push((r, trail));
        }
    }
    for (institution, events) in events {
        if let Some(n) = slot(&institution) {
            records[n].events = risk_events(&events);
        }
    }
    for (institution, lessons) in lessons {
        if let Some(n) = slot(&institution) {
            records[n].lessons = lessons.listed;
            records[n].lessons_at_rest = lessons.at_rest;
        }
    }
    for a in approvals {
        let Some(n) = a.institution.as_ref().and_then(|i| slot(i.as_str())) else {
            continue;
        };
        let currency = records[n].institution.currency;
        if let Some(ask) = crate::app::approvals::release_ask(&a, currency) {
            records[n].release_asks.push(ask);
        }
    }
    Ok(records)
}

/// Every line of every account of the records, to be matched afresh
/// (without reconciliation's kept matches).
async fn read_every_line(
    store: &Store,
    span: Option<IdSpan<'_>>,
    records: &mut [Records],
) -> AppResult<()> {
    let mut lines = store.statement_lines_in(span).await?;
    for r in records.iter_mut() {
        r.open_entries = None;
        for a in &mut r.accounts {
            a.statements = lines.remove(&account_key(&a.account)).unwrap_or_default();
            a.kept = None;
        }
    }
    Ok(())
}

/// Whether an institution's records hold an entry, a bank line or a
/// statement dated after `day`.
fn recorded_after(r: &Records, day: NaiveDate) -> bool {
    r.entries.iter().any(|e| e.occurred_at.date_naive() > day)
        || r.accounts.iter().any(|a| {
            let s = &a.statements;
            s.lines
                .iter()
                .chain(&s.intraday)
                .any(|l| l.day().is_some_and(|d| d > day))
                || s.statements
                    .iter()
                    .any(|st| st.opening.or(st.closing).is_some_and(|(_, d)| d > day))
        })
}

/// The snapshot of one institution on one day, from its records.
pub fn snapshot(records: &Records, as_of: NaiveDate) -> AppResult<RiskInput> {
    snapshot::snapshot(records, as_of).map_err(|e| match e {
        SnapshotError::Rules(e) => AppError::from(e),
        SnapshotError::Matcher(e) => {
            AppError::Store(StoreError::Corrupt(format!("[{}] {e}", e.code())))
        }
    })
}

/// Institutions a scan of a few dozen (each institution its own span)
/// reads at once: as many as SQLite has readers.
const READ_AT_ONCE: usize = 4;

/// Beyond this many institutions a scan loads set-wise: one query per kind
/// of record for a span of institutions instead of one per kind for each.
pub const SET_WISE_FROM: usize = 50;

/// Institutions of the store a streamed scan loads at a time: their
/// records and snapshots are what it holds besides the listing of
/// institutions and the assessments (BENCHMARKS.md, `bench risk-stored`).
pub const STREAM_CHUNK: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loading {
    PerInstitution,
    /// Every record of every institution at once (what the streamed scan
    /// must equal).
    SetWise,
}

/// Every institution in `scope` (and below it) evaluated as of a day,
/// riskiest first: a few institutions read at once for a few dozen,
/// streamed beyond.
pub async fn assess(
    store: &Store,
    scope: &JurisdictionCode,
    as_of: NaiveDate,
) -> AppResult<Vec<Assessment>> {
    let institutions: Vec<Institution> = store
        .institutions()
        .await?
        .into_iter()
        .filter(|i| scope.covers(&i.jurisdiction))
        .collect();
    if institutions.len() > SET_WISE_FROM {
        return assess_streamed(store, scope, as_of, STREAM_CHUNK).await;
    }
    assess_loaded(
        store,
        institutions,
        as_of,
        Loading::PerInstitution,
        Reading::Windowed,
    )
    .await
}

/// The institutions given, evaluated as of a day, riskiest first, their
/// records loaded as asked (every way gives the same answer).
pub async fn assess_loaded(
    store: &Store,
    institutions: Vec<Institution>,
    as_of: NaiveDate,
    loading: Loading,
    reading: Reading,
) -> AppResult<Vec<Assessment>> {
    let records = match loading {
        Loading::SetWise => records_all(store, institutions, as_of, reading).await?,
        // A few institutions at once, each read on connections of its own
        // (SQLite's readers, PostgreSQL's pool), kept in their order.
        Loading::PerInstitution => {
            use futures_util::{StreamExt, TryStreamExt};
            // The futures made first: a stream that maps borrowed
            // institutions makes a future the spawned jobs cannot prove Send.
            let reads: Vec<_> = institutions
                .iter()
                .map(|institution| records_of(store, institution, as_of, reading))
                .collect();
            futures_util::stream::iter(reads)
                .buffered(READ_AT_ONCE)
                .try_collect()
                .await?
        }
    };
    let mut pending = Pending::new();
    for r in &records {
        pending
            .entry(peer_group(&r.institution))
            .or_default()
            .push(risk::evaluate_before_peers(&snapshot(r, as_of)?));
    }
    Ok(risk::rank(judged_with_peers(pending)))
}

/// Peers are the institutions of one jurisdiction and category.
type PeerGroup = (String, &'static str);

fn peer_group(i: &Institution) -> PeerGroup {
    (i.jurisdiction.to_string(), i.category.code())
}

/// `chunk` consecutive institutions of the store (in its order of ids)
/// and those of them in scope.
struct Slice {
    first: String,
    last: String,
    members: Vec<Institution>,
}

/// [`assess`] of a scope of any size in bounded memory: the store's
/// institutions are read `chunk` at a time (in id order, one query per
/// kind of record for the chunk's span of ids), each read once. Each
/// chunk's records and snapshots are dropped once every check that needs
/// no peers has run ([`risk::BeforePeers`]: those checks' signals and the
/// few figures the rest read); when every chunk is in, each peer group's
/// statistics are taken and its members judged against them. Equal to
/// [`assess_loaded`] of the scope's institutions.
///
/// Like the reads of the scan at once (several queries, no common
/// transaction), the chunks need not see the same instant: a write
/// landing between two chunks' reads counts in the later one.
pub async fn assess_streamed(
    store: &Store,
    scope: &JurisdictionCode,
    as_of: NaiveDate,
    chunk: usize,
) -> AppResult<Vec<Assessment>> {
    assert!(chunk > 0, "a chunk holds at least one institution");
    // Chunks of the store rather than of the scope: a span of ids then
    // holds at most `chunk` institutions whatever the scope.
    let mut slices: Vec<Slice> = Vec::new();
    let mut all = store.institutions().await?.into_iter().peekable();
    while let Some(first) = all.peek().map(|i| i.id.to_string()) {
        let mut last = first.clone();
        let mut members = Vec::new();
        for i in all.by_ref().take(chunk) {
            last = i.id.to_string();
            if scope.covers(&i.jurisdiction) {
                members.push(i);
            }
        }
        if !members.is_empty() {
            slices.push(Slice {
                first,
                last,
                members,
            });
        }
    }
    let mut pending = Pending::new();
    for slice in slices {
        let Slice {
            first,
            last,
            members,
        } = slice;
        let ids = IdSpan {
            first: &first,
            last: &last,
        };
        let records = records_in(store, members, Some(ids), as_of, Reading::Windowed).await?;
        for r in &records {
            pending
                .entry(peer_group(&r.institution))
                .or_default()
                .push(risk::evaluate_before_peers(&snapshot(r, as_of)?));
        }
    }
    Ok(risk::rank(judged_with_peers(pending)))
}

/// Institutions evaluated but for their peers, by peer group.
type Pending = HashMap<PeerGroup, Vec<risk::BeforePeers>>;

/// Judges each institution against the statistics of its peers among
/// those given: the institutions of the same jurisdiction and category on
/// the same day. Each group's holdings are freed as it is judged.
fn judged_with_peers(pending: Pending) -> Vec<Assessment> {
    let mut judged = Vec::with_capacity(pending.values().map(Vec::len).sum());
    for members in pending.into_values() {
        let figures: Vec<risk::PeerFigures> = members
            .iter()
            .map(risk::BeforePeers::peer_figures)
            .collect();
        let peers = risk::peer_stats(&figures);
        judged.extend(members.into_iter().map(|p| p.with_peers(Some(&peers))));
    }
    judged
}

/// The alerts a run leaves: each signal as a finding keyed by its condition.
fn findings(a: &Assessment) -> AppResult<Vec<Finding>> {
    a.signals
        .iter()
        .map(|s| {
            Ok(Finding {
                key: s.key.clone(),
                kind: AlertKind::Signal(s.kind),
                severity: s.severity,
                summary: s.summary.clone(),
                evidence: serde_json::to_string(&s.evidence).map_err(|e| {
                    AppError::Store(StoreError::Corrupt(format!("evidence of {}: {e}", s.key)))
                })?,
                rule_pack: s.rule_pack.clone(),
            })
        })
        .collect()
}

/// Keeps each assessment's signals as alerts (the same condition updates
/// its alert) and resolves what the engine no longer finds in the
/// institutions it assessed; the others keep their alerts.
pub async fn record_alerts(
    store: &Store,
    ranked: &[Assessment],
    as_of: NaiveDate,
) -> AppResult<Vec<(InstitutionId, RecordReport)>> {
    let mut recorded = Vec::new();
    let mut seen: BTreeMap<&InstitutionId, BTreeSet<String>> = BTreeMap::new();
    for a in ranked {
        let found = findings(a)?;
        seen.insert(
            &a.institution,
            found.iter().map(|f| f.key.clone()).collect(),
        );
        let report = store.record_findings(&a.institution, as_of, &found).await?;
        recorded.push((a.institution.clone(), report));
    }
    let kinds: Vec<AlertKind> = SignalKind::ALL.into_iter().map(AlertKind::Signal).collect();
    store
        .resolve_cleared(
            &kinds,
            as_of,
            "risk-engine",
            "the risk engine no longer finds this condition",
            |institution, key| seen.get(institution).is_none_or(|keys| keys.contains(key)),
        )
        .await?;
    Ok(recorded)
}

/// The daily job's last step: the lessons before the day the windows of
/// `as_of` start kept summed (the earliest day of every rule pack in force,
/// so that no institution's read starts before its mark), so that the next
/// scan reads a day's lessons on top of the sums instead of summing the
/// history again ([`Store::keep_lesson_sums`]). Every institution is kept,
/// whatever the scope scanned: the sums are a cache of the books, equal
/// whoever moves them.
async fn keep_lesson_sums(store: &Store, as_of: NaiveDate) -> AppResult<()> {
    let mut jurisdictions: BTreeMap<String, Institution> = BTreeMap::new();
    for i in store.institutions().await? {
        jurisdictions.entry(i.jurisdiction.to_string()).or_insert(i);
    }
    let mut before: Option<NaiveDate> = None;
    for institution in jurisdictions.values() {
        let rules = store.rules_for(institution, as_of).await?;
        if let Some(day) = snapshot::lessons_windows_from(&rules, as_of) {
            before = Some(before.map_or(day, |b| b.min(day)));
        }
    }
    if let Some(day) = before {
        let kept = store
            .keep_lesson_sums(None, day.and_time(chrono::NaiveTime::MIN).and_utc())
            .await?;
        tracing::info!(
            before = %day,
            institutions = kept.marked,
            enrollments = kept.enrollments,
            "lesson sums kept"
        );
    }
    Ok(())
}

/// What one scan found (and, when asked, kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub as_of: NaiveDate,
    pub scope: JurisdictionCode,
    /// Riskiest first.
    pub ranked: Vec<Assessment>,
    /// Per institution, what keeping its signals as alerts did (empty when
    /// the scan recorded nothing).
    pub recorded: Vec<(InstitutionId, RecordReport)>,
}

/// Scans a jurisdiction (which must exist; the nation without one) as of a
/// day (today without one), and keeps the signals as alerts if asked.
pub async fn scan(
    store: &Store,
    jurisdiction: Option<JurisdictionCode>,
    as_of: Option<NaiveDate>,
    record: bool,
) -> AppResult<Scan> {
    let as_of = as_of.unwrap_or_else(|| store.now().date_naive());
    ledger_core::domain::bounds::check_day("as_of", as_of)?;
    let scope = match jurisdiction {
        Some(code) => {
            if !store.jurisdictions().await?.iter().any(|j| j.code == code) {
                return Err(AppError::not_found(format!("jurisdiction {code}")));
            }
            code
        }
        None => JurisdictionCode::national(),
    };
    let ranked = assess(store, &scope, as_of).await?;
    let recorded = if record {
        let recorded = record_alerts(store, &ranked, as_of).await?;
        keep_lesson_sums(store, as_of).await?;
        recorded
    } else {
        Vec::new()
    };
    Ok(Scan {
        as_of,
        scope,
        ranked,
        recorded,
    })
}

/// A journal entry, as an officer can look it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EntryRefView {
    pub seq: i64,
    pub client_id: String,
}

impl From<&EntryRef> for EntryRefView {
    fn from(e: &EntryRef) -> Self {
        EntryRefView {
            seq: e.seq,
            client_id: e.client_id.to_string(),
        }
    }
}

/// A bank line that took money out of a supervised account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BankLineView {
    /// `account/statement#line`.
    pub line_id: String,
    /// `escrow` or `deposit`.
    pub account: String,
    pub bank_ref: Option<String>,
    pub date: NaiveDate,
    /// Minor units, positive: the amount debited.
    pub amount_minor: i64,
    /// The account's balance just before the debit (minor units), when the
    /// bank says.
    pub balance_before_minor: Option<i64>,
}

/// A statement day whose bank closing differs from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MismatchView {
    /// `escrow` or `deposit`.
    pub account: String,
    pub account_no: String,
    pub date: NaiveDate,
    pub bank_closing_minor: i64,
    pub ledger_balance_minor: i64,
}

/// A release executed unconfirmed or ahead of the enrollment's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReleaseFindingView {
    pub entry: EntryRefView,
    pub date: NaiveDate,
    pub amount_minor: i64,
    /// `unconfirmed` or `ahead_of_schedule`.
    pub issue: String,
}

/// A refund request as the engine saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RefundRequestView {
    pub enrollment: String,
    pub amount_minor: i64,
    pub requested_on: NaiveDate,
    pub approved_on: Option<NaiveDate>,
    pub paid_on: Option<NaiveDate>,
    /// The approval entry, once there is one.
    pub entry: Option<EntryRefView>,
}

/// A cap breach recorded on an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CapFlagView {
    pub entry: EntryRefView,
    pub date: NaiveDate,
    /// The cap broken, e.g. `max_amount_per_charge`.
    pub rule: String,
    pub enrollment: Option<String>,
}

/// An institution event the engine reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RiskEventView {
    /// `legal_representative_change` or `closure_notice`.
    pub kind: String,
    pub date: NaiveDate,
}

/// One piece of evidence behind a signal, by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EvidenceView {
    /// A figure, as a decimal string in the institution's currency.
    Amount {
        name: String,
        amount: String,
    },
    /// A ratio in basis points (10000 = 100%), rounded down.
    Ratio {
        name: String,
        #[schema(value_type = i64)]
        bp: i128,
    },
    Count {
        name: String,
        value: u64,
    },
    Date {
        name: String,
        date: NaiveDate,
    },
    /// A threshold of the rule pack, in the unit its name ends with.
    Rule {
        name: String,
        value: i64,
    },
    Entry {
        entry: EntryRefView,
    },
    BankLine {
        line: BankLineView,
    },
    Account {
        /// `escrow` or `deposit`.
        kind: String,
        account_no: String,
    },
    Mismatch {
        mismatch: MismatchView,
    },
    Release {
        finding: ReleaseFindingView,
    },
    Refund {
        request: RefundRequestView,
        /// `unanswered` or `unpaid`.
        overdue: String,
        deadline: NaiveDate,
    },
    CapFlag {
        flag: CapFlagView,
    },
    Event {
        event: RiskEventView,
    },
    Enrollment {
        id: String,
    },
    /// An instruction of ours the bank had not executed by its deadline.
    Instruction {
        entry: EntryRefView,
        /// `release`, `refund` or `deposit_return`.
        what: String,
        date: NaiveDate,
        amount: String,
        deadline: NaiveDate,
    },
    /// One sign an escalation combines, as its own signal said it.
    Sign {
        kind: String,
        severity: String,
        key: String,
        summary: String,
    },
}

/// Minor units of any width as a decimal string of the currency's scale.
fn money_wide(minor: i128, currency: Currency) -> String {
    if let Ok(narrow) = i64::try_from(minor) {
        return format_minor(narrow, currency);
    }
    let digits = minor.unsigned_abs().to_string();
    let scale = currency.exponent() as usize;
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if minor < 0 { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

fn issue_code(issue: ReleaseIssue) -> &'static str {
    match issue {
        ReleaseIssue::Unconfirmed => "unconfirmed",
        ReleaseIssue::AheadOfSchedule => "ahead_of_schedule",
    }
}

impl EvidenceView {
    pub fn of(e: &Evidence, currency: Currency) -> EvidenceView {
        match e {
            Evidence::Amount { name, minor } => EvidenceView::Amount {
                name: name.to_string(),
                amount: money_wide(*minor, currency),
            },
            Evidence::Ratio { name, bp } => EvidenceView::Ratio {
                name: name.to_string(),
                bp: *bp,
            },
            Evidence::Count { name, value } => EvidenceView::Count {
                name: name.to_string(),
                value: *value,
            },
            Evidence::Date { name, date } => EvidenceView::Date {
                name: name.to_string(),
                date: *date,
            },
            Evidence::Rule { name, value } => EvidenceView::Rule {
                name: name.to_string(),
                value: *value,
            },
            Evidence::Entry { entry } => EvidenceView::Entry {
                entry: entry.into(),
            },
            Evidence::BankLine { line } => EvidenceView::BankLine {
                line: BankLineView {
                    line_id: line.line_id.clone(),
                    account: line.account.code().to_string(),
                    bank_ref: line.bank_ref.clone(),
                    date: line.date,
                    amount_minor: line.amount_minor,
                    balance_before_minor: line.balance_before_minor,
                },
            },
            Evidence::Account { kind, account_no } => EvidenceView::Account {
                kind: kind.code().to_string(),
                account_no: account_no.clone(),
            },
            Evidence::Mismatch { mismatch } => EvidenceView::Mismatch {
                mismatch: MismatchView {
                    account: mismatch.account.code().to_string(),
                    account_no: mismatch.account_no.clone(),
                    date: mismatch.date,
                    bank_closing_minor: mismatch.bank_closing_minor,
                    ledger_balance_minor: mismatch.ledger_balance_minor,
                },
            },
            Evidence::Release { finding } => EvidenceView::Release {
                finding: ReleaseFindingView {
                    entry: (&finding.entry).into(),
                    date: finding.date,
                    amount_minor: finding.amount_minor,
                    issue: issue_code(finding.issue).to_string(),
                },
            },
            Evidence::Refund {
                request,
                overdue,
                deadline,
            } => EvidenceView::Refund {
                request: RefundRequestView {
                    enrollment: request.enrollment.to_string(),
                    amount_minor: request.amount_minor,
                    requested_on: request.requested_on,
                    approved_on: request.approved_on,
                    paid_on: request.paid_on,
                    entry: request.entry.as_ref().map(EntryRefView::from),
                },
                overdue: overdue.to_string(),
                deadline: *deadline,
            },
            Evidence::CapFlag { flag } => EvidenceView::CapFlag {
                flag: CapFlagView {
                    entry: (&flag.entry).into(),
                    date: flag.date,
                    rule: flag.rule.clone(),
                    enrollment: flag.enrollment.as_ref().map(|e| e.to_string()),
                },
            },
            Evidence::Event { event } => EvidenceView::Event {
                event: RiskEventView {
                    kind: event.kind.code().to_string(),
                    date: event.date,
                },
            },
            Evidence::Enrollment { id } => EvidenceView::Enrollment { id: id.to_string() },
            Evidence::Instruction {
                instruction,
                deadline,
            } => EvidenceView::Instruction {
                entry: (&instruction.entry).into(),
                what: instruction.what.to_string(),
                date: instruction.date,
                amount: money_wide(instruction.amount_minor.into(), currency),
                deadline: *deadline,
            },
            Evidence::Sign {
                kind,
                severity,
                key,
                summary,
            } => EvidenceView::Sign {
                kind: kind.code().to_string(),
                severity: severity.code().to_string(),
                key: key.clone(),
                summary: summary.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignalView {
    #[schema(example = "unauthorized_outflow")]
    pub kind: String,
    /// yellow or red.
    pub severity: String,
    pub summary: String,
    /// The figures, rules, entries and bank lines behind the signal.
    pub evidence: Vec<EvidenceView>,
    pub rule_pack: String,
}

/// A check that could not run for lack of data, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NotEvaluatedView {
    /// The signal kind the check would raise.
    #[schema(example = "feed_silence")]
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RiskRow {
    pub id: String,
    pub name: String,
    pub jurisdiction: String,
    /// 0 (nothing found) to 100.
    pub score: u32,
    /// Coverage in basis points (10000 = 100%), the one definition
    /// (`domain::risk::coverage`); null when nothing is owed or the banks
    /// have not confirmed it.
    pub coverage_bp: Option<i64>,
    pub signals: Vec<SignalView>,
    /// Checks that could not run for lack of data, and why.
    pub not_evaluated: Vec<NotEvaluatedView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RiskList {
    pub as_of: NaiveDate,
    /// Riskiest first; institutions with no signal included.
    pub institutions: Vec<RiskRow>,
}

/// The jurisdiction's institutions (and those below it) evaluated as of a
/// day, riskiest first, amounts in each institution's currency.
pub async fn risk_list(
    store: &Store,
    scope: &JurisdictionCode,
    as_of: NaiveDate,
) -> AppResult<RiskList> {
    ledger_core::domain::bounds::check_day("as_of", as_of)?;
    let ranked = assess(store, scope, as_of).await?;
    let currencies: BTreeMap<String, Currency> = store
        .institutions()
        .await?
        .into_iter()
        .map(|i| (i.id.to_string(), i.currency))
        .collect();
    let institutions = ranked
        .iter()
        .map(|a| {
            let currency = currencies
                .get(a.institution.as_str())
                .copied()
                .unwrap_or(Currency::Cny);
            RiskRow {
                id: a.institution.to_string(),
                name: a.name.clone(),
                jurisdiction: a.jurisdiction.to_string(),
                score: a.score,
                coverage_bp: a.coverage_bp.and_then(|bp| i64::try_from(bp).ok()),
                signals: a
                    .signals
                    .iter()
                    .map(|s| SignalView {
                        kind: s.kind.code().to_string(),
                        severity: s.severity.code().to_string(),
                        summary: s.summary.clone(),
                        evidence: s
                            .evidence
                            .iter()
                            .map(|e| EvidenceView::of(e, currency))
                            .collect(),
                        rule_pack: s.rule_pack.clone(),
                    })
                    .collect(),
                not_evaluated: a
                    .not_evaluated
                    .iter()
                    .map(|n| NotEvaluatedView {
                        kind: n.kind.code().to_string(),
                        reason: n.reason.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(RiskList {
        as_of,
        institutions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_amounts_are_written_exactly_at_the_currencys_scale() {
        let cny = Currency::Cny;
        for (minor, text) in [
            (0_i128, "0.00"),
            (5, "0.05"),
            (-5, "-0.05"),
            (123_456, "1234.56"),
            (i128::from(i64::MAX) + 1, "92233720368547758.08"),
            (-(i128::from(i64::MAX) + 2), "-92233720368547758.09"),
        ] {
            assert_eq!(money_wide(minor, cny), text, "{minor}");
        }
    }
}
