//! What the store reports: balance sheets (now or at any past instant) and
//! the result of re-verifying the hash chains and running totals.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::accounts::{AccountCode, AccountType, Side, Totals};
use crate::domain::chain::{entry_hash, GENESIS_HASH};
use crate::domain::checkpoint::{ChainPosition, Heads, InstitutionHeads};
use crate::domain::entry::{Entry, EntryKind, Phase};
use crate::domain::ids::InstitutionId;
use crate::domain::money::Currency;
use crate::store::seal::Walk;
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

    /// Assets less liabilities on posted balances: zero in balanced books.
    pub fn imbalance_minor(&self) -> i64 {
        self.sum(|a| a.account_type == AccountType::Asset)
            - self.sum(|a| a.account_type == AccountType::Liability)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    /// `None`: the audit log (deployment-wide).
    pub institution: Option<String>,
    /// Which chain: `entries`, `enrollments` (counters against the entries),
    /// `records` (statements and lines, refunds, refund events, payees),
    /// `audit`, `institutions` (one in the checkpoint is gone), or
    /// `figures` (`Store::verify_figures`: the overview's kept row differs
    /// from the books).
    pub chain: String,
    /// The first entry or link that does not match, where there is one.
    pub seq: Option<i64>,
    pub client_id: Option<String>,
    pub reason: String,
    /// The failure is against a signed checkpoint: the database no longer
    /// extends what it held then.
    pub checkpoint: bool,
}

impl VerifyFailure {
    pub(crate) fn new(
        institution: Option<&str>,
        chain: &str,
        seq: Option<i64>,
        client_id: Option<String>,
        reason: String,
    ) -> Self {
        VerifyFailure {
            institution: institution.map(str::to_string),
            chain: chain.to_string(),
            seq,
            client_id,
            reason,
            checkpoint: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub institutions: u64,
    pub entries: u64,
    /// Links of the institutions' record chains.
    pub records: u64,
    pub audit_entries: u64,
    /// When a checkpoint was given: the instant it attests.
    pub checkpoint_attested_at: Option<DateTime<Utc>>,
    pub failures: Vec<VerifyFailure>,
    /// Every chain's end, recomputed from the rows (what `attest` signs).
    #[serde(skip)]
    pub heads: Heads,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Whether a chain that ends at `end` (recomputed from the rows, `at_wanted`
/// being its hash at the checkpoint's position) extends the checkpoint's
/// position `cp`; the reason when it does not.
fn extends(noun: &str, cp: &ChainPosition, walk: &Walk) -> Option<String> {
    if cp.seq > walk.end.seq {
        return Some(if walk.broken {
            format!(
                "the checkpoint has {noun} {} hash {}…, the chain breaks after {} (see above)",
                cp.seq,
                short(&cp.hash),
                walk.end.seq
            )
        } else {
            format!(
                "the checkpoint has {noun} {} hash {}…, the database ends at {}",
                cp.seq,
                short(&cp.hash),
                walk.end.seq
            )
        });
    }
    match &walk.at_wanted {
        Some(hash) if *hash == cp.hash => None,
        Some(hash) => Some(format!(
            "{noun} {} recomputes to {}… from the rows, the checkpoint has {}…: what it covers was rewritten",
            cp.seq,
            short(hash),
            short(&cp.hash)
        )),
        None => Some(format!(
            "the checkpoint has {noun} {}, which the database's chain does not reach",
            cp.seq
        )),
    }
}

/// Compares each chain with the checkpoint.
pub(crate) fn against_checkpoint(
    institution: Option<&str>,
    chain: &str,
    noun: &str,
    cp: &ChainPosition,
    walk: &Walk,
    report: &mut VerifyReport,
) {
    if let Some(reason) = extends(noun, cp, walk) {
        let mut f = VerifyFailure::new(institution, chain, Some(cp.seq), None, reason);
        f.checkpoint = true;
        report.failures.push(f);
    }
}

/// Enrollment counters as the entries imply them.
#[derive(Default)]
struct Implied {
    hours: BTreeMap<String, i64>,
    paid: BTreeMap<String, i64>,
    /// Payments by seq, for reversals: (enrollment, amount).
    payments: BTreeMap<i64, (String, i64)>,
}

impl Implied {
    fn add(&mut self, entry: &Entry) {
        let Some(enrollment) = entry.enrollment.as_ref().map(|e| e.to_string()) else {
            return;
        };
        let debits = || -> i64 {
            entry
                .postings
                .iter()
                .filter(|p| p.side == Side::Debit)
                .map(|p| p.amount.minor())
                .fold(0, i64::saturating_add)
        };
        match entry.kind {
            EntryKind::LessonsConsumed => {
                let h = self.hours.entry(enrollment).or_default();
                *h = h.saturating_add(i64::from(entry.hours.unwrap_or(0)));
            }
            EntryKind::TuitionPaid
            | EntryKind::TuitionCollectedOutside
            | EntryKind::ReceiptAttributed => {
                let amount = debits();
                self.payments
                    .insert(entry.seq, (enrollment.clone(), amount));
                let p = self.paid.entry(enrollment).or_default();
                *p = p.saturating_add(amount);
            }
            EntryKind::Reversal => {
                if let Some((target, amount)) = entry
                    .refers_to_seq
                    .and_then(|seq| self.payments.get(&seq).cloned())
                {
                    let p = self.paid.entry(target).or_default();
                    *p = p.saturating_sub(amount);
                }
            }
            _ => {}
        }
    }
}

/// Checks one institution: its entries (hash chain, running totals, account
/// totals, head), its enrollments' counters against the entries, its record
/// chain; and, given its heads in a checkpoint, that both chains extend them.
pub(crate) async fn verify_institution(
    store: &Store,
    id: &InstitutionId,
    wanted: Option<&InstitutionHeads>,
    report: &mut VerifyReport,
) -> Result<()> {
    report.institutions += 1;
    let mut walk = Walk {
        end: ChainPosition {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        },
        at_wanted: None,
        broken: true,
        links: 0,
    };
    let mut implied = Implied::default();
    verify_entries(
        store,
        id,
        wanted.map(|w| w.entries.seq),
        &mut walk,
        &mut implied,
        report,
    )
    .await?;
    if !walk.broken {
        verify_counters(store, id, &implied, report).await?;
    }
    let records = store
        .verify_records(id, wanted.map(|w| w.records.seq), &mut report.failures)
        .await?;
    report.records += records.links;
    if let Some(w) = wanted {
        let at = Some(id.as_str());
        against_checkpoint(at, "entries", "sequence", &w.entries, &walk, report);
        against_checkpoint(at, "records", "record link", &w.records, &records, report);
    }
    report.heads.institutions.push(InstitutionHeads {
        institution: id.to_string(),
        entries: walk.end,
        records: records.end,
    });
    Ok(())
}

async fn verify_counters(
    store: &Store,
    id: &InstitutionId,
    implied: &Implied,
    report: &mut VerifyReport,
) -> Result<()> {
    for (enrollment, hours, paid) in store.enrollment_counters(id.as_str()).await? {
        let want_hours = implied.hours.get(&enrollment).copied().unwrap_or(0);
        let want_paid = implied.paid.get(&enrollment).copied().unwrap_or(0);
        if (hours, paid) != (want_hours, want_paid) {
            report.failures.push(VerifyFailure::new(
                Some(id.as_str()),
                "enrollments",
                None,
                None,
                format!(
                    "enrollment {enrollment} says {hours} hours consumed and {paid} paid (minor units), \
                     its entries imply {want_hours} hours and {want_paid}"
                ),
            ));
        }
    }
    Ok(())
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
async fn verify_entries(
    store: &Store,
    id: &InstitutionId,
    wanted: Option<i64>,
    walk: &mut Walk,
    implied: &mut Implied,
    report: &mut VerifyReport,
) -> Result<()> {
    let fail = |seq: Option<i64>, client_id: Option<String>, reason: String| {
        VerifyFailure::new(Some(id.as_str()), "entries", seq, client_id, reason)
    };
    if wanted == Some(0) {
        walk.at_wanted = Some(GENESIS_HASH.to_string());
    }
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut last_seq = 0;
    let mut running: BTreeMap<String, Totals> = BTreeMap::new();
    // Batches may commit while this runs: the walk follows the entries to
    // their end, then reads the head; a head ahead of the walk is either a
    // batch that landed meanwhile (its entries are there: walk on) or a tail
    // that is gone.
    let mut head = store.head(id).await?;
    loop {
        loop {
            let entries = store.entries(id, last_seq, PAGE).await?;
            let page_end = entries.last().map_or(last_seq, |e| e.seq);
            // Postings of entries committed after the page was read are theirs,
            // not strays (strays are counted below, in one statement).
            let snapshots = store.posting_snapshots(id, last_seq, PAGE).await?;
            let mut snapshots = snapshots
                .into_iter()
                .filter(|(seq, _, _)| *seq <= page_end)
                .peekable();
            if entries.is_empty() {
                break;
            }
            for entry in &entries {
                report.entries += 1;
                let at = |reason: String| {
                    fail(Some(entry.seq), Some(entry.client_id.to_string()), reason)
                };
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
                    let totals = running.entry(p.account.to_string()).or_default();
                    if apply(totals, entry.kind.phase(), p.side, p.amount.minor()).is_none() {
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
                implied.add(entry);
                walk.end = ChainPosition {
                    seq: last_seq,
                    hash: prev_hash.clone(),
                };
                if wanted == Some(last_seq) {
                    walk.at_wanted = Some(prev_hash.clone());
                }
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
        if head.last_seq < last_seq {
            head = store.head(id).await?;
        }
        // Walk on while the head is ahead and its entries are there.
        if head.last_seq <= last_seq || store.entries(id, last_seq, 1).await?.is_empty() {
            break;
        }
    }
    // Every entry chains: what follows compares the rest with them.
    walk.broken = false;
    if head.last_seq != last_seq || head.last_hash != prev_hash {
        report.failures.push(fail(
            None,
            None,
            format!(
                "chain head says seq {}, the entries end at {last_seq}",
                head.last_seq
            ),
        ));
        return Ok(());
    }
    // Each account's totals are those its last posting left (read in one
    // statement, so a batch landing meanwhile cannot split them), and those
    // are what the walk recomputed when the walk reached that posting.
    for (code, stored, last) in store.account_totals_and_last_postings(id.as_str()).await? {
        let left = last.map(|(_, t)| t).unwrap_or_default();
        if stored != left {
            report.failures.push(fail(
                None,
                None,
                format!("account {code} totals are {stored:?}, its last posting left {left:?}"),
            ));
            return Ok(());
        }
        let walked = last.is_none_or(|(seq, _)| seq <= last_seq);
        let recomputed = running.get(&code).copied().unwrap_or_default();
        if walked && stored != recomputed {
            report.failures.push(fail(
                None,
                None,
                format!("account {code} totals are {stored:?}, the postings sum to {recomputed:?}"),
            ));
            return Ok(());
        }
    }
    let strays = store.postings_without_entries(id.as_str()).await?;
    if strays > 0 {
        report.failures.push(fail(
            None,
            None,
            format!("{strays} postings belong to no entry"),
        ));
    }
    Ok(())
}
