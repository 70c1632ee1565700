//! The passes over id-sorted inputs: who has claimed what, the indexes each
//! pass looks things up in, and the reasons left for whatever nobody claimed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use crate::domain::money::format_minor;
use chrono::NaiveDate;

use super::assign::assign;
use super::group::{self, Found};
use super::normalize::{
    normalize_party, normalize_reference, remittance_tokens, usable_identifier,
};
use super::{
    BankLine, GroupSearchReport, LedgerTransfer, LineStatus, Match, MatchConfig, Pass, Reason,
    ReconcileOutcome,
};

/// Ids listed in an [`Reason::Ambiguous`]; the total is always given.
const LISTED: usize = 10;

/// More candidates than this for one line in one pass is a tie no evidence
/// of that pass can resolve: it is noted, not handed to the assignment.
const MAX_CANDIDATES: usize = 64;

/// Which field of a bank line carried the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    EndToEndId,
    BankRef,
    Remittance,
    Name,
    Account,
}

impl Field {
    fn words(self) -> &'static str {
        match self {
            Field::EndToEndId => "end-to-end id",
            Field::BankRef => "bank reference",
            Field::Remittance => "remittance text",
            Field::Name => "counterparty name",
            Field::Account => "counterparty account",
        }
    }

    /// When one pair is linked through several fields, the strongest wins:
    /// the end-to-end id is ours, the bank reference is the bank's, the
    /// remittance is whatever the payer typed.
    fn rank(self) -> u8 {
        match self {
            Field::EndToEndId => 0,
            Field::BankRef => 1,
            Field::Remittance => 2,
            Field::Account => 3,
            Field::Name => 4,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Evidence<'a> {
    Identifier { field: Field, value: &'a str },
    Token { field: Field, reference: &'a str },
    Counterparty { field: Field },
}

impl Evidence<'_> {
    fn rank(&self) -> u8 {
        match self {
            Evidence::Identifier { field, .. }
            | Evidence::Token { field, .. }
            | Evidence::Counterparty { field } => field.rank(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Edge<'a> {
    line: usize,
    transfer: usize,
    evidence: Evidence<'a>,
}

#[derive(Debug, Default)]
struct Ambiguity {
    candidates: BTreeSet<u64>,
    total: usize,
}

impl Ambiguity {
    fn add(&mut self, ids: impl IntoIterator<Item = u64>, total: usize) {
        self.candidates.extend(ids);
        self.total = self.total.max(total).max(self.candidates.len());
    }

    fn into_reason(self) -> Reason {
        Reason::Ambiguous {
            candidates: self.candidates.into_iter().take(LISTED).collect(),
            total: self.total,
        }
    }
}

/// Items keyed by something, each list sorted by (date, index): a window
/// is then a slice found by two binary searches.
type DateIndex<K> = HashMap<K, Vec<(NaiveDate, usize)>>;

fn in_range<'i, K: Hash + Eq>(
    index: &'i DateIndex<K>,
    key: &K,
    (first, last): (NaiveDate, NaiveDate),
) -> &'i [(NaiveDate, usize)] {
    let Some(items) = index.get(key) else {
        return &[];
    };
    let from = items.partition_point(|(d, _)| *d < first);
    let to = items.partition_point(|(d, _)| *d <= last);
    &items[from..to.max(from)]
}

fn sorted<K>(mut index: DateIndex<K>) -> DateIndex<K> {
    for items in index.values_mut() {
        items.sort_unstable();
    }
    index
}

/// Exact transfer references to transfers, as chains in one arena: a
/// million transfers do not need a million small vectors.
struct RefIndex<'a> {
    heads: HashMap<&'a str, usize>,
    /// (transfer, next entry or `usize::MAX`).
    entries: Vec<(usize, usize)>,
}

impl<'a> RefIndex<'a> {
    fn new(transfers: &[&'a LedgerTransfer]) -> Self {
        let mut index = RefIndex {
            heads: HashMap::with_capacity(transfers.len()),
            entries: Vec::with_capacity(transfers.len()),
        };
        for (t, transfer) in transfers.iter().enumerate() {
            for reference in &transfer.references {
                if let Some(key) = usable_identifier(Some(reference)) {
                    let at = index.entries.len();
                    let next = index.heads.insert(key, at).unwrap_or(usize::MAX);
                    index.entries.push((t, next));
                }
            }
        }
        index
    }

    fn get(&self, key: &str) -> Vec<usize> {
        let mut out = vec![];
        let mut at = self.heads.get(key).copied().unwrap_or(usize::MAX);
        while let Some(&(t, next)) = self.entries.get(at) {
            out.push(t);
            at = next;
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

struct Engine<'a> {
    cfg: &'a MatchConfig,
    lines: Vec<&'a BankLine>,
    transfers: Vec<&'a LedgerTransfer>,
    /// Still available to a pass: not claimed, not screened out.
    line_open: Vec<bool>,
    transfer_open: Vec<bool>,
    /// Lines screened out before matching, with why.
    line_reason: HashMap<usize, Reason>,
    windows: HashMap<NaiveDate, (NaiveDate, NaiveDate)>,
    refs: RefIndex<'a>,
    line_mismatch: HashMap<usize, BTreeSet<u64>>,
    transfer_mismatch: HashMap<usize, BTreeSet<u64>>,
    line_ambiguous: HashMap<usize, Ambiguity>,
    transfer_ambiguous: HashMap<usize, Ambiguity>,
    transfer_returned: HashMap<usize, Vec<u64>>,
    matches: Vec<Match>,
    suggestions: Vec<Match>,
    report: GroupSearchReport,
}

/// Inputs are sorted by id and checked by the caller ([`super::reconcile`]).
pub(super) fn run<'a>(
    lines: Vec<&'a BankLine>,
    transfers: Vec<&'a LedgerTransfer>,
    cfg: &'a MatchConfig,
) -> ReconcileOutcome {
    let mut dates: Vec<NaiveDate> = lines
        .iter()
        .map(|l| l.booking_date)
        .chain(transfers.iter().map(|t| t.date))
        .collect();
    dates.sort_unstable();
    dates.dedup();
    let windows = dates
        .into_iter()
        .map(|d| (d, cfg.calendar.window(d, cfg.window_working_days)))
        .collect();
    let mut engine = Engine {
        cfg,
        line_open: vec![true; lines.len()],
        transfer_open: vec![true; transfers.len()],
        refs: RefIndex::new(&transfers),
        lines,
        transfers,
        line_reason: HashMap::new(),
        windows,
        line_mismatch: HashMap::new(),
        transfer_mismatch: HashMap::new(),
        line_ambiguous: HashMap::new(),
        transfer_ambiguous: HashMap::new(),
        transfer_returned: HashMap::new(),
        matches: vec![],
        suggestions: vec![],
        report: GroupSearchReport::default(),
    };
    engine.screen_lines();
    engine.pass_reversal();
    engine.pass_identifier();
    engine.pass_reference();
    engine.pass_counterparty();
    engine.pass_grouped();
    engine.pass_amount_date();
    engine.finish()
}

impl<'a> Engine<'a> {
    fn window(&self, date: NaiveDate) -> (NaiveDate, NaiveDate) {
        // Every date of the inputs was computed up front.
        self.windows.get(&date).copied().unwrap_or((date, date))
    }

    fn within(&self, line: usize, transfer: usize) -> bool {
        let (first, last) = self.window(self.lines[line].booking_date);
        (first..=last).contains(&self.transfers[transfer].date)
    }

    fn distance(&self, line: usize, transfer: usize) -> u64 {
        self.cfg
            .calendar
            .working_days_between(self.lines[line].booking_date, self.transfers[transfer].date)
    }

    /// "0 working days apart", "1 working day apart": read by officers.
    fn apart(&self, line: usize, transfer: usize) -> String {
        match self.distance(line, transfer) {
            1 => "1 working day apart".to_string(),
            n => format!("{n} working days apart"),
        }
    }

    fn money(&self, minor: i64) -> String {
        format_minor(minor, self.cfg.currency)
    }

    fn open_lines(&self) -> Vec<usize> {
        (0..self.lines.len())
            .filter(|&i| self.line_open[i])
            .collect()
    }

    fn open_transfers(&self) -> Vec<usize> {
        (0..self.transfers.len())
            .filter(|&t| self.transfer_open[t])
            .collect()
    }

    fn close_line(&mut self, line: usize, reason: Reason) {
        self.line_open[line] = false;
        self.line_reason.insert(line, reason);
    }

    fn record(
        &mut self,
        lines: &[usize],
        transfers: &[usize],
        pass: Pass,
        automatic: bool,
        explanation: String,
    ) {
        for &l in lines {
            self.line_open[l] = false;
        }
        for &t in transfers {
            self.transfer_open[t] = false;
        }
        let mut line_ids: Vec<u64> = lines.iter().map(|&l| self.lines[l].id).collect();
        let mut transfer_ids: Vec<u64> = transfers.iter().map(|&t| self.transfers[t].id).collect();
        line_ids.sort_unstable();
        transfer_ids.sort_unstable();
        let found = Match {
            lines: line_ids,
            transfers: transfer_ids,
            pass,
            explanation,
        };
        if automatic {
            self.matches.push(found);
        } else {
            self.suggestions.push(found);
        }
    }

    fn note_line_ambiguous(&mut self, line: usize, transfers: &[usize], total: usize) {
        let ids: Vec<u64> = transfers.iter().map(|&t| self.transfers[t].id).collect();
        self.line_ambiguous.entry(line).or_default().add(ids, total);
    }

    fn note_transfer_ambiguous(&mut self, transfer: usize, lines: &[usize], total: usize) {
        let ids: Vec<u64> = lines.iter().map(|&l| self.lines[l].id).collect();
        self.transfer_ambiguous
            .entry(transfer)
            .or_default()
            .add(ids, total);
    }

    /// Duplicates, lines that are not booked, lines of zero.
    fn screen_lines(&mut self) {
        let booked = |l: &BankLine| l.status == LineStatus::Booked;
        let mut canonical: HashMap<(&str, i64, bool), usize> = HashMap::new();
        for (i, l) in self.lines.iter().enumerate() {
            if let Some(bank_ref) = usable_identifier(l.bank_ref.as_deref()) {
                canonical
                    .entry((bank_ref, l.amount_minor, l.reversal))
                    .and_modify(|c| {
                        if !booked(self.lines[*c]) && booked(l) {
                            *c = i;
                        }
                    })
                    .or_insert(i);
            }
        }
        for i in 0..self.lines.len() {
            let l = self.lines[i];
            let first = usable_identifier(l.bank_ref.as_deref())
                .and_then(|r| canonical.get(&(r, l.amount_minor, l.reversal)))
                .copied()
                .filter(|&c| c != i);
            let reason = if let Some(c) = first {
                Some(Reason::Duplicate {
                    of: self.lines[c].id,
                })
            } else if !booked(l) {
                Some(Reason::NotBooked { status: l.status })
            } else if l.amount_minor == 0 {
                Some(Reason::ZeroAmount)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.close_line(i, reason);
            }
        }
    }

    fn identifiers(l: &'a BankLine) -> impl Iterator<Item = (Field, &'a str)> {
        [
            (Field::EndToEndId, l.end_to_end_id.as_deref()),
            (Field::BankRef, l.bank_ref.as_deref()),
        ]
        .into_iter()
        .filter_map(|(field, value)| usable_identifier(value).map(|v| (field, v)))
    }

    /// Pass 0: a reversal cancels the line it reverses; every reversal line
    /// leaves the pool here, paired or not.
    fn pass_reversal(&mut self) {
        let reversals: Vec<usize> = self
            .open_lines()
            .into_iter()
            .filter(|&i| self.lines[i].reversal)
            .collect();
        if reversals.is_empty() {
            return;
        }
        let mut originals: HashMap<&str, Vec<usize>> = HashMap::new();
        for i in self.open_lines() {
            let l = self.lines[i];
            if !l.reversal {
                for (_, value) in Self::identifiers(l) {
                    originals.entry(value).or_default().push(i);
                }
            }
        }
        for r in reversals {
            let rev = self.lines[r];
            // Checked on input: no amount is i64::MIN.
            let original_amount = -rev.amount_minor;
            let original = Self::identifiers(rev)
                .flat_map(|(_, value)| originals.get(value).into_iter().flatten().copied())
                .filter(|&o| {
                    let line = self.lines[o];
                    self.line_open[o]
                        && line.amount_minor == original_amount
                        && line.booking_date <= rev.booking_date
                })
                .max_by_key(|&o| (self.lines[o].booking_date, Reverse(o)));
            let mut named: Vec<usize> = Self::identifiers(rev)
                .chain(
                    original
                        .into_iter()
                        .flat_map(|o| Self::identifiers(self.lines[o])),
                )
                .flat_map(|(_, value)| self.refs.get(value))
                .filter(|&t| self.transfers[t].amount_minor == original_amount)
                .collect();
            named.sort_unstable();
            named.dedup();
            let named_ids: Vec<u64> = named.iter().map(|&t| self.transfers[t].id).collect();
            match original {
                Some(o) => {
                    let orig = self.lines[o];
                    let mut pair = vec![orig.id, rev.id];
                    pair.sort_unstable();
                    for &t in &named {
                        self.transfer_returned.insert(t, pair.clone());
                    }
                    let shared = Self::identifiers(rev)
                        .find(|(_, v)| Self::identifiers(orig).any(|(_, w)| w == *v))
                        .map(|(field, v)| format!("{} {v}", field.words()))
                        .unwrap_or_default();
                    let returned = if named_ids.is_empty() {
                        String::new()
                    } else {
                        format!("; transfer(s) {named_ids:?} it would have settled are returned")
                    };
                    let explanation = format!(
                        "line {} (booked {}, amount {}) reverses line {} (booked {}, amount {}), same {shared}: the two cancel out{returned}",
                        rev.id,
                        rev.booking_date,
                        self.money(rev.amount_minor),
                        orig.id,
                        orig.booking_date,
                        self.money(orig.amount_minor),
                    );
                    self.record(&[o, r], &[], Pass::Reversal, true, explanation);
                }
                None => self.close_line(
                    r,
                    Reason::Reversal {
                        transfers: named_ids,
                    },
                ),
            }
        }
    }

    /// Pass 1: exact identifier, exact amount, no window.
    fn pass_identifier(&mut self) {
        let mut edges = vec![];
        for i in self.open_lines() {
            let l = self.lines[i];
            for (field, value) in Self::identifiers(l) {
                let named = self.refs.get(value);
                let open: Vec<usize> = named
                    .into_iter()
                    .filter(|&t| self.transfer_open[t])
                    .collect();
                if open.len() > MAX_CANDIDATES {
                    let same: Vec<usize> = open
                        .iter()
                        .copied()
                        .filter(|&t| self.transfers[t].amount_minor == l.amount_minor)
                        .collect();
                    self.note_line_ambiguous(i, &same[..same.len().min(LISTED)], same.len());
                    continue;
                }
                for t in open {
                    if self.transfers[t].amount_minor == l.amount_minor {
                        edges.push(Edge {
                            line: i,
                            transfer: t,
                            evidence: Evidence::Identifier { field, value },
                        });
                    } else {
                        self.line_mismatch
                            .entry(i)
                            .or_default()
                            .insert(self.transfers[t].id);
                        self.transfer_mismatch.entry(t).or_default().insert(l.id);
                    }
                }
            }
        }
        self.resolve(edges, Pass::Identifier);
    }

    /// Pass 2: normalized tokens against normalized references, exact
    /// amount, within the window.
    fn pass_reference(&mut self) {
        let mut index: HashMap<String, Vec<(usize, &'a str)>> = HashMap::new();
        for t in self.open_transfers() {
            for reference in &self.transfers[t].references {
                if let Some(key) = normalize_reference(reference) {
                    index.entry(key).or_default().push((t, reference.as_str()));
                }
            }
        }
        if index.is_empty() {
            return;
        }
        let mut edges = vec![];
        for i in self.open_lines() {
            let l = self.lines[i];
            let mut tokens: Vec<(Field, String)> = Self::identifiers(l)
                .filter_map(|(field, value)| normalize_reference(value).map(|k| (field, k)))
                .collect();
            if let Some(text) = l.remittance.as_deref() {
                tokens.extend(
                    remittance_tokens(text)
                        .into_iter()
                        .map(|k| (Field::Remittance, k)),
                );
            }
            let mut mine = vec![];
            for (field, token) in &tokens {
                for &(t, reference) in index.get(token).into_iter().flatten() {
                    if self.transfers[t].amount_minor == l.amount_minor && self.within(i, t) {
                        mine.push(Edge {
                            line: i,
                            transfer: t,
                            evidence: Evidence::Token {
                                field: *field,
                                reference,
                            },
                        });
                    }
                }
            }
            self.take_candidates(i, mine, &mut edges);
        }
        self.resolve(edges, Pass::Reference);
    }

    /// Keeps a line's candidate edges, unless there are too many to be
    /// evidence of anything.
    fn take_candidates(&mut self, line: usize, mut mine: Vec<Edge<'a>>, edges: &mut Vec<Edge<'a>>) {
        let mut distinct: Vec<usize> = mine.iter().map(|e| e.transfer).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > MAX_CANDIDATES {
            self.note_line_ambiguous(line, &distinct[..LISTED], distinct.len());
        } else {
            edges.append(&mut mine);
        }
    }

    /// Pass 3: exact amount, within the window, same counterparty.
    fn pass_counterparty(&mut self) {
        let mut index: DateIndex<(i64, String)> = HashMap::new();
        for t in self.open_transfers() {
            let transfer = self.transfers[t];
            if let Some(party) = transfer.counterparty.as_deref().and_then(normalize_party) {
                index
                    .entry((transfer.amount_minor, party))
                    .or_default()
                    .push((transfer.date, t));
            }
        }
        if index.is_empty() {
            return;
        }
        let index = sorted(index);
        let mut edges = vec![];
        for i in self.open_lines() {
            let l = self.lines[i];
            let window = self.window(l.booking_date);
            let mut mine = vec![];
            for (field, value) in [
                (Field::Name, l.counterparty_name.as_deref()),
                (Field::Account, l.counterparty_account.as_deref()),
            ] {
                let Some(party) = value.and_then(normalize_party) else {
                    continue;
                };
                for &(_, t) in in_range(&index, &(l.amount_minor, party), window) {
                    mine.push(Edge {
                        line: i,
                        transfer: t,
                        evidence: Evidence::Counterparty { field },
                    });
                }
            }
            self.take_candidates(i, mine, &mut edges);
        }
        self.resolve(edges, Pass::Counterparty);
    }

    /// A pair that is the only candidate on both sides is automatic; every
    /// tie is resolved as one assignment per connected group of candidates,
    /// whose pairs become suggestions; what the assignment leaves out is
    /// noted as ambiguous.
    fn resolve(&mut self, mut edges: Vec<Edge<'a>>, pass: Pass) {
        // Stable: among equal keys the first-built edge (reference order
        // within the transfer) explains the pair.
        edges.sort_by_key(|e| (e.line, e.transfer, e.evidence.rank()));
        edges.dedup_by_key(|e| (e.line, e.transfer));
        let mut line_degree: HashMap<usize, u32> = HashMap::with_capacity(edges.len());
        let mut transfer_degree: HashMap<usize, u32> = HashMap::with_capacity(edges.len());
        for e in &edges {
            *line_degree.entry(e.line).or_default() += 1;
            *transfer_degree.entry(e.transfer).or_default() += 1;
        }
        let mut ties = vec![];
        for e in edges {
            if line_degree.get(&e.line) == Some(&1) && transfer_degree.get(&e.transfer) == Some(&1)
            {
                let explanation = format!("{}; the only candidate on both sides", self.explain(&e));
                self.record(&[e.line], &[e.transfer], pass, true, explanation);
            } else {
                ties.push(e);
            }
        }
        for component in components(&ties) {
            self.resolve_tie(&component, pass);
        }
    }

    fn resolve_tie(&mut self, edges: &[Edge<'a>], pass: Pass) {
        let mut rows: Vec<usize> = edges.iter().map(|e| e.line).collect();
        let mut cols: Vec<usize> = edges.iter().map(|e| e.transfer).collect();
        rows.sort_unstable();
        rows.dedup();
        cols.sort_unstable();
        cols.dedup();
        let local: Vec<(usize, usize, u64)> = edges
            .iter()
            .map(|e| {
                let r = rows.binary_search(&e.line).unwrap_or(0);
                let c = cols.binary_search(&e.transfer).unwrap_or(0);
                (r, c, self.distance(e.line, e.transfer))
            })
            .collect();
        let pairs = assign(rows.len(), cols.len(), &local);
        let row_ids = list_ids(rows.iter().map(|&l| self.lines[l].id));
        let col_ids = list_ids(cols.iter().map(|&t| self.transfers[t].id));
        let tie = format!(
            "; a tie among lines {row_ids} and transfers {col_ids}, resolved as the assignment with the least total date distance (confirm)"
        );
        let mut assigned_rows = vec![false; rows.len()];
        let mut assigned_cols = vec![false; cols.len()];
        for (r, c) in pairs {
            assigned_rows[r] = true;
            assigned_cols[c] = true;
            if let Some(e) = edges
                .iter()
                .find(|e| e.line == rows[r] && e.transfer == cols[c])
            {
                let explanation = format!("{}{tie}", self.explain(e));
                self.record(&[e.line], &[e.transfer], pass, false, explanation);
            }
        }
        for (r, &line) in rows.iter().enumerate() {
            if !assigned_rows[r] {
                let mine: Vec<usize> = edges
                    .iter()
                    .filter(|e| e.line == line)
                    .map(|e| e.transfer)
                    .collect();
                self.note_line_ambiguous(line, &mine, mine.len());
            }
        }
        for (c, &transfer) in cols.iter().enumerate() {
            if !assigned_cols[c] {
                let mine: Vec<usize> = edges
                    .iter()
                    .filter(|e| e.transfer == transfer)
                    .map(|e| e.line)
                    .collect();
                self.note_transfer_ambiguous(transfer, &mine, mine.len());
            }
        }
    }

    fn explain(&self, e: &Edge<'_>) -> String {
        let l = self.lines[e.line];
        let t = self.transfers[e.transfer];
        let target = format!("{} {}", t.kind.code(), t.id);
        let evidence = match e.evidence {
            Evidence::Identifier { field, value } => {
                format!("{} {value} equals a reference of {target}", field.words())
            }
            Evidence::Token { field, reference } => format!(
                "{} contains {}, the normalized reference {reference} of {target}",
                field.words(),
                normalize_reference(reference).unwrap_or_default()
            ),
            Evidence::Counterparty { field } => {
                let value = match field {
                    Field::Account => l.counterparty_account.as_deref(),
                    _ => l.counterparty_name.as_deref(),
                };
                format!(
                    "{} {} is the counterparty of {target}",
                    field.words(),
                    value.unwrap_or_default()
                )
            }
        };
        let value = match l.value_date {
            Some(v) if v != l.booking_date => format!(", value {v},"),
            _ => String::new(),
        };
        format!(
            "line {}: {evidence}, amount {}, booked {}{value} for a transfer dated {} ({})",
            l.id,
            self.money(l.amount_minor),
            l.booking_date,
            t.date,
            self.apart(e.line, e.transfer)
        )
    }

    fn line_index(&self) -> DateIndex<i64> {
        let mut index: DateIndex<i64> = HashMap::new();
        for i in self.open_lines() {
            let l = self.lines[i];
            index
                .entry(l.amount_minor)
                .or_default()
                .push((l.booking_date, i));
        }
        sorted(index)
    }

    fn transfer_index(&self) -> DateIndex<i64> {
        let mut index: DateIndex<i64> = HashMap::new();
        for t in self.open_transfers() {
            let transfer = self.transfers[t];
            index
                .entry(transfer.amount_minor)
                .or_default()
                .push((transfer.date, t));
        }
        sorted(index)
    }

    /// Pass 4: exact sums, one side against several of the other, suggested.
    fn pass_grouped(&mut self) {
        if self.cfg.max_group_size < 2 {
            return;
        }
        let by_transfer = self.transfer_index();
        let by_line = self.line_index();
        // Open items without a 1:1 exact-amount partner in the window, by
        // sign, sorted by (date, index).
        let mut line_pool: [Vec<(NaiveDate, usize)>; 2] = [vec![], vec![]];
        let mut transfer_pool: [Vec<(NaiveDate, usize)>; 2] = [vec![], vec![]];
        for i in self.open_lines() {
            let l = self.lines[i];
            if in_range(&by_transfer, &l.amount_minor, self.window(l.booking_date)).is_empty() {
                line_pool[usize::from(l.amount_minor > 0)].push((l.booking_date, i));
            }
        }
        for t in self.open_transfers() {
            let transfer = self.transfers[t];
            if in_range(&by_line, &transfer.amount_minor, self.window(transfer.date)).is_empty() {
                transfer_pool[usize::from(transfer.amount_minor > 0)].push((transfer.date, t));
            }
        }
        for pool in line_pool.iter_mut().chain(transfer_pool.iter_mut()) {
            pool.sort_unstable();
        }
        let mut left = self.cfg.max_group_search_steps;
        // One line for many transfers (a batched release) first: it is the
        // common case.
        let mut targets: Vec<usize> = line_pool.iter().flatten().map(|&(_, i)| i).collect();
        targets.sort_unstable();
        for i in targets {
            if !self.line_open[i] {
                continue;
            }
            let l = self.lines[i];
            let pool = &transfer_pool[usize::from(l.amount_minor > 0)];
            let found = self.search_group(
                l.amount_minor,
                self.window(l.booking_date),
                pool,
                &mut left,
                |e, t| e.transfer_open[t].then_some(e.transfers[t].amount_minor),
            );
            match found {
                Some(Found::Group { members, another }) => {
                    let explanation = self.explain_group(&[i], &members, another);
                    self.record(&[i], &members, Pass::Grouped, false, explanation);
                }
                // Cut, or no budget left to start.
                Some(Found::Cut) | None => self.report.cut_lines.push(l.id),
                Some(Found::Nothing) => {}
            }
        }
        let mut targets: Vec<usize> = transfer_pool.iter().flatten().map(|&(_, t)| t).collect();
        targets.sort_unstable();
        for t in targets {
            if !self.transfer_open[t] {
                continue;
            }
            let transfer = self.transfers[t];
            let pool = &line_pool[usize::from(transfer.amount_minor > 0)];
            let found = self.search_group(
                transfer.amount_minor,
                self.window(transfer.date),
                pool,
                &mut left,
                |e, l| e.line_open[l].then_some(e.lines[l].amount_minor),
            );
            match found {
                Some(Found::Group { members, another }) => {
                    let explanation = self.explain_group(&members, &[t], another);
                    self.record(&members, &[t], Pass::Grouped, false, explanation);
                }
                Some(Found::Cut) | None => self.report.cut_transfers.push(transfer.id),
                Some(Found::Nothing) => {}
            }
        }
        self.report.cut =
            !self.report.cut_lines.is_empty() || !self.report.cut_transfers.is_empty();
    }

    /// Searches `pool` (same sign as `target`, sorted by date) within
    /// `window` for members summing to `target`. `amount` says whether a
    /// member is still open and its amount. `None` when no budget was left
    /// to start. Members are returned as pool item indices (line or
    /// transfer indices).
    fn search_group(
        &mut self,
        target: i64,
        (first, last): (NaiveDate, NaiveDate),
        pool: &[(NaiveDate, usize)],
        left: &mut usize,
        amount: impl Fn(&Self, usize) -> Option<i64>,
    ) -> Option<Found> {
        if *left == 0 {
            return None;
        }
        let mut budget = self.cfg.max_group_search_steps_per_target.min(*left);
        let start_budget = budget;
        let from = pool.partition_point(|(d, _)| *d < first);
        let to = pool.partition_point(|(d, _)| *d <= last).max(from);
        let size = target.unsigned_abs();
        let mut candidates: Vec<(u64, usize)> = vec![];
        let mut cut = false;
        for &(_, item) in &pool[from..to] {
            if budget == 0 {
                cut = true;
                break;
            }
            budget -= 1;
            if let Some(a) = amount(self, item) {
                if a.unsigned_abs() < size {
                    candidates.push((a.unsigned_abs(), item));
                }
            }
        }
        let found = if cut {
            Found::Cut
        } else {
            candidates.sort_unstable_by_key(|&(a, item)| (Reverse(a), item));
            // Each below |target| <= i64::MAX, so each fits an i64.
            let amounts: Vec<i64> = candidates.iter().map(|&(a, _)| a as i64).collect();
            match group::find(size as i64, &amounts, self.cfg.max_group_size, &mut budget) {
                Found::Group { members, another } => Found::Group {
                    members: members.into_iter().map(|m| candidates[m].1).collect(),
                    another,
                },
                other => other,
            }
        };
        let used = start_budget - budget;
        *left -= used;
        self.report.steps += used;
        Some(found)
    }

    fn explain_group(&self, lines: &[usize], transfers: &[usize], another: bool) -> String {
        let describe_lines = || {
            lines
                .iter()
                .map(|&l| {
                    format!(
                        "line {} ({}, booked {})",
                        self.lines[l].id,
                        self.money(self.lines[l].amount_minor),
                        self.lines[l].booking_date
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let describe_transfers = || {
            transfers
                .iter()
                .map(|&t| {
                    let tr = self.transfers[t];
                    format!(
                        "{} {} ({}, dated {})",
                        tr.kind.code(),
                        tr.id,
                        self.money(tr.amount_minor),
                        tr.date
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (one, many, count) = if lines.len() == 1 {
            (describe_lines(), describe_transfers(), transfers.len())
        } else {
            (describe_transfers(), describe_lines(), lines.len())
        };
        let caveat = if another {
            "; another combination of as many items has the same sum"
        } else {
            ""
        };
        format!(
            "{one} equals the exact sum of {count} items: {many}, all within {} working days; grouped by amount only, confirm{caveat}",
            self.cfg.window_working_days
        )
    }

    /// Pass 5: amount and date only, suggested when the pair is the only
    /// candidate on both sides; otherwise noted as ambiguous.
    fn pass_amount_date(&mut self) {
        let by_transfer = self.transfer_index();
        let by_line = self.line_index();
        let mut pairs = vec![];
        for i in self.open_lines() {
            let l = self.lines[i];
            let found = in_range(&by_transfer, &l.amount_minor, self.window(l.booking_date));
            if let [(_, t)] = found {
                let transfer = self.transfers[*t];
                let back = in_range(&by_line, &transfer.amount_minor, self.window(transfer.date));
                if back.len() == 1 {
                    pairs.push((i, *t));
                    continue;
                }
            }
            if !found.is_empty() {
                let listed: Vec<usize> = found.iter().take(LISTED).map(|&(_, t)| t).collect();
                self.note_line_ambiguous(i, &listed, found.len());
            }
        }
        let paired: BTreeSet<usize> = pairs.iter().map(|&(_, t)| t).collect();
        for t in self.open_transfers() {
            if paired.contains(&t) {
                continue;
            }
            let transfer = self.transfers[t];
            let found = in_range(&by_line, &transfer.amount_minor, self.window(transfer.date));
            if !found.is_empty() {
                let listed: Vec<usize> = found.iter().take(LISTED).map(|&(_, l)| l).collect();
                self.note_transfer_ambiguous(t, &listed, found.len());
            }
        }
        for (i, t) in pairs {
            let l = self.lines[i];
            let transfer = self.transfers[t];
            let explanation = format!(
                "line {}: only the amount {} and the date agree with {} {} (booked {} for a transfer dated {}, {}), no reference or counterparty does; the only candidate on both sides, confirm",
                l.id,
                self.money(l.amount_minor),
                transfer.kind.code(),
                transfer.id,
                l.booking_date,
                transfer.date,
                self.apart(i, t)
            );
            self.record(&[i], &[t], Pass::AmountDate, false, explanation);
        }
    }

    fn finish(mut self) -> ReconcileOutcome {
        let mut unmatched_lines = vec![];
        for i in 0..self.lines.len() {
            let l = self.lines[i];
            let reason = if self.line_open[i] {
                if let Some(ids) = self.line_mismatch.remove(&i) {
                    Reason::ReferenceAmountMismatch {
                        counterparts: ids.into_iter().collect(),
                    }
                } else if let Some(ambiguity) = self.line_ambiguous.remove(&i) {
                    ambiguity.into_reason()
                } else if l.amount_minor < 0 {
                    Reason::UnmatchedDebit
                } else {
                    Reason::NoCandidate
                }
            } else if let Some(reason) = self.line_reason.remove(&i) {
                reason
            } else {
                continue;
            };
            unmatched_lines.push((l.id, reason));
        }
        let mut unmatched_transfers = vec![];
        for t in 0..self.transfers.len() {
            if !self.transfer_open[t] {
                continue;
            }
            let reason = if let Some(lines) = self.transfer_returned.remove(&t) {
                Reason::Returned { lines }
            } else if let Some(ids) = self.transfer_mismatch.remove(&t) {
                Reason::ReferenceAmountMismatch {
                    counterparts: ids.into_iter().collect(),
                }
            } else if let Some(ambiguity) = self.transfer_ambiguous.remove(&t) {
                ambiguity.into_reason()
            } else {
                Reason::NoCandidate
            };
            unmatched_transfers.push((self.transfers[t].id, reason));
        }
        let key = |m: &Match| (m.lines.first().copied(), m.transfers.first().copied());
        self.matches.sort_by_key(key);
        self.suggestions.sort_by_key(key);
        ReconcileOutcome {
            matches: self.matches,
            suggestions: self.suggestions,
            unmatched_lines,
            unmatched_transfers,
            group_search: self.report,
        }
    }
}

/// `[1, 2, 3]`, or `[1, 2, … and 90 more]` past [`LISTED`] ids: an
/// explanation stays readable however large the tie.
fn list_ids(ids: impl ExactSizeIterator<Item = u64>) -> String {
    let total = ids.len();
    let shown: Vec<String> = ids.take(LISTED).map(|id| id.to_string()).collect();
    if total > LISTED {
        format!("[{}, … and {} more]", shown.join(", "), total - LISTED)
    } else {
        format!("[{}]", shown.join(", "))
    }
}

/// Connected groups of tied edges (lines and transfers linked through
/// shared candidates), in order of their smallest line.
fn components<'a>(edges: &[Edge<'a>]) -> Vec<Vec<Edge<'a>>> {
    let mut parent: HashMap<(bool, usize), (bool, usize)> = HashMap::new();
    fn root(
        parent: &mut HashMap<(bool, usize), (bool, usize)>,
        mut node: (bool, usize),
    ) -> (bool, usize) {
        while let Some(&up) = parent.get(&node) {
            if up == node {
                break;
            }
            let grand = parent.get(&up).copied().unwrap_or(up);
            parent.insert(node, grand);
            node = up;
        }
        node
    }
    for e in edges {
        let a = root(&mut parent, (false, e.line));
        let b = root(&mut parent, (true, e.transfer));
        parent.entry(a).or_insert(a);
        parent.entry(b).or_insert(b);
        if a != b {
            let (keep, join) = if a < b { (a, b) } else { (b, a) };
            parent.insert(join, keep);
        }
    }
    let mut groups: HashMap<(bool, usize), Vec<Edge<'a>>> = HashMap::new();
    for e in edges {
        let r = root(&mut parent, (false, e.line));
        groups.entry(r).or_default().push(*e);
    }
    let mut out: Vec<Vec<Edge<'a>>> = groups.into_values().collect();
    out.sort_by_key(|g| g.iter().map(|e| e.line).min());
    out
}
