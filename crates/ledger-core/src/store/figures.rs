//! The overview's kept figures (`institution_figures`): one summary row per
//! institution with what the overview shows and what its coverage (the one
//! definition, [`crate::domain::risk::coverage`]) is computed from, kept up
//! to date in the transaction of every write that changes it, so that the
//! overview of a province is an index read, never an aggregate over
//! postings per request.
//!
//! - an entry batch adds its new entries' postings to the rows of the
//!   institutions it touched (read under lock, one write per batch);
//! - a statement ingest, a new supervised account and a new institution
//!   refresh the rows they touch from the set-wise read
//!   ([`Store::coverage_facts`]) in their own transaction (`refresh_figures!`);
//! - an alert raised, acted on or resolved recounts its institution's open
//!   alerts (`recount_alerts!`, in the alerts' transaction).
//!
//! Coverage is kept as of the latest data: the bank side from every
//! account's latest closing, the ledger side at the end of the day the
//! banks reported through. Read on a day before some closing (a clock set
//! back, a statement dated ahead), a row is not valid for that day
//! ([`KeptFigures::coverage_on`] says so) and the reader computes it the
//! set-wise way instead.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::domain::entry::Entry;
use crate::domain::feeds::AccountKind;
use crate::domain::ids::{InstitutionId, JurisdictionCode};
use crate::domain::registry::SupervisionMode;
use crate::domain::replay::BooksOn;
use crate::domain::risk::coverage::{self, Coverage, OwedFigures, Unconfirmed};
use crate::store::coverage::CoverageFacts;
use crate::store::rows::{corrupt, corrupt_as};
use crate::store::Result;

/// The day kept coverage is computed on: after any day data can carry, so
/// that every account's latest closing counts and the day the banks
/// reported through is always before it.
pub const KEPT_AS_OF: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 30) {
    Some(d) => d,
    None => panic!("a valid day"),
};

/// One institution's kept row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFigures {
    pub institution: InstitutionId,
    pub jurisdiction: JurisdictionCode,
    /// What families are owed now (unearned tuition and approved, unpaid
    /// refunds), escrow and deposit, as the books have them now.
    pub owed_minor: i64,
    pub escrow_minor: i64,
    pub deposit_minor: i64,
    /// The day the banks reported through (what is owed is read at its
    /// end); none while no account has sent a closing.
    pub owed_on: Option<NaiveDate>,
    /// The latest closing of any supervised account.
    pub closings_through: Option<NaiveDate>,
    /// The closings counted, summed; or why the banks have not confirmed.
    pub bank: std::result::Result<i64, Unconfirmed>,
    /// The ledger at the end of `owed_on` (every entry while none).
    pub figures: OwedFigures,
    /// Coverage in basis points (none: unconfirmed or nothing owed).
    pub coverage_bp: Option<i64>,
    pub red_alerts: u32,
    pub yellow_alerts: u32,
}

impl KeptFigures {
    /// The row's coverage read on `as_of`; `None` when the row is not valid
    /// for that day (a closing after it), for the caller to compute.
    pub fn coverage_on(
        &self,
        mode: SupervisionMode,
        as_of: NaiveDate,
    ) -> Option<std::result::Result<Coverage, Unconfirmed>> {
        if self.closings_through.is_some_and(|d| d > as_of) {
            return None;
        }
        Some(match &self.bank {
            Err(why) => Err(why.clone()),
            Ok(bank) => Ok(coverage::assemble(
                mode,
                as_of,
                Vec::new(),
                i128::from(*bank),
                self.owed_on.map_or(as_of, |d| d.min(as_of)),
                &self.figures,
            )),
        })
    }

    /// The row from the set-wise facts read on [`KEPT_AS_OF`].
    pub fn of_facts(
        institution: InstitutionId,
        jurisdiction: JurisdictionCode,
        mode: SupervisionMode,
        facts: &CoverageFacts,
        now: (i64, i64, i64),
        alerts: (u32, u32),
    ) -> Result<KeptFigures> {
        let bank = match coverage::confirmed(mode, &facts.accounts) {
            Ok((_, bank)) => Ok(i64::try_from(bank)
                .map_err(|_| corrupt("closings", format!("{institution}: beyond i64")))?),
            Err(why) => Err(why),
        };
        let mut kept = KeptFigures {
            institution,
            jurisdiction,
            owed_minor: now.0,
            escrow_minor: now.1,
            deposit_minor: now.2,
            owed_on: Some(facts.owed_on).filter(|d| *d < KEPT_AS_OF),
            closings_through: facts
                .accounts
                .iter()
                .filter_map(|a| a.latest.map(|c| c.date))
                .max(),
            bank,
            figures: facts.figures,
            coverage_bp: None,
            red_alerts: alerts.0,
            yellow_alerts: alerts.1,
        };
        kept.coverage_bp = kept.basis_points(mode);
        Ok(kept)
    }

    fn basis_points(&self, mode: SupervisionMode) -> Option<i64> {
        self.coverage_on(mode, KEPT_AS_OF)
            .and_then(|c| c.ok())
            .and_then(|c| c.basis_points())
            .and_then(|bp| i64::try_from(bp).ok())
    }

    /// What the overview sorts by: coverage, with none (unconfirmed or
    /// nothing owed) as fully covered, last.
    pub fn coverage_sort(&self) -> i64 {
        self.coverage_bp.unwrap_or(i64::MAX)
    }

    /// This row's values for [`BATCH_COLUMNS`], in that order.
    pub(crate) fn batch_values(&self) -> [Option<i64>; BATCH_COLUMNS.len()] {
        [
            Some(self.owed_minor),
            Some(self.escrow_minor),
            Some(self.deposit_minor),
            Some(self.figures.unearned_prepaid_minor),
            Some(self.figures.refund_payable_minor),
            Some(self.figures.pending_release_minor),
            Some(self.figures.held_by_institution_minor),
            self.coverage_bp,
            Some(self.coverage_sort()),
        ]
    }

    /// The row after a batch's new entries of this institution: each adds
    /// to the books now, and to the figures at the end of `owed_on` when it
    /// occurred by then.
    pub(crate) fn after(&self, mode: SupervisionMode, entries: &[&Entry]) -> Result<KeptFigures> {
        let all = BooksOn::replay(entries.iter().copied(), NaiveDate::MAX);
        let due = BooksOn::replay(
            entries.iter().copied(),
            self.owed_on.unwrap_or(NaiveDate::MAX),
        );
        let overflow = || {
            corrupt(
                "institution figures",
                format!("{}: overflow", self.institution),
            )
        };
        let add = |a: i64, b: i64| a.checked_add(b).ok_or_else(overflow);
        let mut next = self.clone();
        next.owed_minor = add(
            add(self.owed_minor, all.prepaid())?,
            all.balance("refund_payable"),
        )?;
        next.escrow_minor = add(self.escrow_minor, all.balance("escrow_cash"))?;
        next.deposit_minor = add(self.deposit_minor, all.balance("deposit_cash"))?;
        next.figures = self
            .figures
            .plus(&OwedFigures::of_books(&due))
            .ok_or_else(overflow)?;
        next.coverage_bp = next.basis_points(mode);
        Ok(next)
    }
}

/// The rows of the touched institutions after a batch's new entries.
pub(crate) fn after_batch(
    kept: Vec<KeptFigures>,
    modes: &HashMap<InstitutionId, SupervisionMode>,
    entries: &[Entry],
) -> Result<Vec<KeptFigures>> {
    let mut by_institution: HashMap<&InstitutionId, Vec<&Entry>> = HashMap::new();
    for e in entries {
        by_institution.entry(&e.institution).or_default().push(e);
    }
    kept.into_iter()
        .filter_map(|k| {
            let new = by_institution.get(&k.institution)?;
            let mode = *modes.get(&k.institution)?;
            Some(k.after(mode, new))
        })
        .collect()
}

/// The kept row as both dialects read it.
#[derive(sqlx::FromRow)]
pub(crate) struct FiguresRow {
    pub institution_id: String,
    pub jurisdiction_code: String,
    pub owed_minor: i64,
    pub escrow_minor: i64,
    pub deposit_minor: i64,
    pub owed_on: Option<NaiveDate>,
    pub closings_through: Option<NaiveDate>,
    pub bank_minor: Option<i64>,
    pub unconfirmed: Option<String>,
    pub unconfirmed_detail: Option<String>,
    pub unearned_minor: i64,
    pub refund_payable_minor: i64,
    pub pending_release_minor: i64,
    pub held_by_institution_minor: i64,
    pub coverage_bp: Option<i64>,
    pub red_alerts: i32,
    pub yellow_alerts: i32,
}

/// The columns of a kept row, in [`FiguresRow`]'s order, as written.
/// The columns of a kept row that a batch changes (the books now, the
/// ledger side, coverage): each dialect's writer sets these, from
/// [`KeptFigures::batch_values`], and moves `updated_at` and `revision`.
pub(crate) const BATCH_COLUMNS: [&str; 9] = [
    "owed_minor",
    "escrow_minor",
    "deposit_minor",
    "unearned_minor",
    "refund_payable_minor",
    "pending_release_minor",
    "held_by_institution_minor",
    "coverage_bp",
    "coverage_sort",
];

/// `column = <value>, …` for [`BATCH_COLUMNS`], each value written by
/// `value(index, column)` in the writer's own placeholders.
pub(crate) fn batch_assignments(value: impl Fn(usize, &str) -> String) -> String {
    BATCH_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = {}", value(i, c)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) const FIGURES_COLUMNS: &str = "institution_id, jurisdiction_code, owed_minor, \
    escrow_minor, deposit_minor, owed_on, closings_through, bank_minor, unconfirmed, \
    unconfirmed_detail, unearned_minor, refund_payable_minor, pending_release_minor, \
    held_by_institution_minor, coverage_bp, red_alerts, yellow_alerts";

impl TryFrom<FiguresRow> for KeptFigures {
    type Error = crate::store::StoreError;
    fn try_from(r: FiguresRow) -> Result<KeptFigures> {
        let c = corrupt_as("institution figures");
        let bank = match (r.bank_minor, r.unconfirmed.as_deref()) {
            (Some(b), None) => Ok(b),
            (None, Some("no_supervised_account")) => Err(Unconfirmed::NoAccount(
                AccountKind::parse(r.unconfirmed_detail.as_deref().unwrap_or_default())
                    .map_err(&c)?,
            )),
            (None, Some("no_bank_statement")) => Err(Unconfirmed::NoStatement(
                r.unconfirmed_detail.unwrap_or_default(),
            )),
            (b, u) => {
                return Err(corrupt(
                    "institution figures",
                    format!("bank {b:?} with unconfirmed {u:?}"),
                ))
            }
        };
        let count = |n: i32| u32::try_from(n).map_err(corrupt_as("institution figures"));
        Ok(KeptFigures {
            institution: InstitutionId::parse(r.institution_id).map_err(&c)?,
            jurisdiction: JurisdictionCode::parse(r.jurisdiction_code).map_err(&c)?,
            owed_minor: r.owed_minor,
            escrow_minor: r.escrow_minor,
            deposit_minor: r.deposit_minor,
            owed_on: r.owed_on,
            closings_through: r.closings_through,
            bank,
            figures: OwedFigures {
                unearned_prepaid_minor: r.unearned_minor,
                refund_payable_minor: r.refund_payable_minor,
                pending_release_minor: r.pending_release_minor,
                held_by_institution_minor: r.held_by_institution_minor,
            },
            coverage_bp: r.coverage_bp,
            red_alerts: count(r.red_alerts)?,
            yellow_alerts: count(r.yellow_alerts)?,
        })
    }
}

impl KeptFigures {
    /// Why unconfirmed, as stored: its code and what it names.
    pub(crate) fn unconfirmed_columns(&self) -> (Option<&'static str>, Option<String>) {
        match &self.bank {
            Ok(_) => (None, None),
            Err(why @ Unconfirmed::NoAccount(kind)) => {
                (Some(why.code()), Some(kind.code().to_string()))
            }
            Err(why @ Unconfirmed::NoStatement(account)) => {
                (Some(why.code()), Some(account.clone()))
            }
        }
    }
}

/// Writes kept rows one statement each (inserted or replaced) in the
/// transaction `$tx` (either dialect), stamped `$now`.
macro_rules! upsert_figures {
    ($tx:expr, $now:expr, $rows:expr) => {{
        let now: $crate::store::DbTime = $now;
        for k in $rows {
            let k: &$crate::store::figures::KeptFigures = k;
            let (why, detail) = k.unconfirmed_columns();
            sqlx::query(&format!(
                "insert into institution_figures ({}, coverage_sort, updated_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                   $17, $18, $19) \
                 on conflict (institution_id) do update set \
                   jurisdiction_code = excluded.jurisdiction_code, \
                   owed_minor = excluded.owed_minor, escrow_minor = excluded.escrow_minor, \
                   deposit_minor = excluded.deposit_minor, owed_on = excluded.owed_on, \
                   closings_through = excluded.closings_through, \
                   bank_minor = excluded.bank_minor, unconfirmed = excluded.unconfirmed, \
                   unconfirmed_detail = excluded.unconfirmed_detail, \
                   unearned_minor = excluded.unearned_minor, \
                   refund_payable_minor = excluded.refund_payable_minor, \
                   pending_release_minor = excluded.pending_release_minor, \
                   held_by_institution_minor = excluded.held_by_institution_minor, \
                   coverage_bp = excluded.coverage_bp, red_alerts = excluded.red_alerts, \
                   yellow_alerts = excluded.yellow_alerts, \
                   coverage_sort = excluded.coverage_sort, updated_at = excluded.updated_at, \
                   revision = institution_figures.revision + 1",
                $crate::store::figures::FIGURES_COLUMNS
            ))
            .bind(k.institution.as_str())
            .bind(k.jurisdiction.as_str())
            .bind(k.owed_minor)
            .bind(k.escrow_minor)
            .bind(k.deposit_minor)
            .bind(k.owed_on)
            .bind(k.closings_through)
            .bind(k.bank.as_ref().ok().copied())
            .bind(why)
            .bind(detail)
            .bind(k.figures.unearned_prepaid_minor)
            .bind(k.figures.refund_payable_minor)
            .bind(k.figures.pending_release_minor)
            .bind(k.figures.held_by_institution_minor)
            .bind(k.coverage_bp)
            .bind(i32::try_from(k.red_alerts).unwrap_or(i32::MAX))
            .bind(i32::try_from(k.yellow_alerts).unwrap_or(i32::MAX))
            .bind(k.coverage_sort())
            .bind(now)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// The kept rows of the institutions `$ids` as the set-wise read computes
/// them on `$exec` (`&mut *tx` of a transaction, either dialect, `$dialect`
/// its marker), written nowhere: what [`refresh_figures!`] writes and what
/// `verify` compares the kept rows with.
macro_rules! kept_rows_on {
    ($exec:expr, $dialect:expr, $ids:expr) => {
        async {
            let ids: &[$crate::domain::ids::InstitutionId] = $ids;
            let d = $dialect;
            let list = || ids.iter().map(|i| i.as_str());
            let institutions: Vec<(String, String, String)> = sqlx::query_as(&format!(
                "select institution_id, jurisdiction_code, mode from institutions \
                 where institution_id {}",
                d.in_list(1)
            ))
            .bind(d.list(list()))
            .fetch_all($exec)
            .await?;
            let facts =
                coverage_facts_on!($exec, d, ids, $crate::store::figures::KEPT_AS_OF).await?;
            let accounts: Vec<$crate::store::rows::AccountRow> = sqlx::query_as(&format!(
                "select * from accounts where institution_id {} \
                 and (account_code in ('escrow_cash', 'deposit_cash', 'refund_payable') \
                   or account_code like 'prepaid/%')",
                d.in_list(1)
            ))
            .bind(d.list(list()))
            .fetch_all($exec)
            .await?;
            let alerts: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
                "select institution_id, \
                   cast(sum(case when severity = 'red' then 1 else 0 end) as bigint), \
                   cast(sum(case when severity = 'yellow' then 1 else 0 end) as bigint) \
                 from alerts where institution_id {} and status <> 'resolved' \
                 group by institution_id",
                d.in_list(1)
            ))
            .bind(d.list(list()))
            .fetch_all($exec)
            .await?;
            $crate::store::figures::kept_rows(institutions, &facts, accounts, alerts)
        }
    };
}

/// Recomputes the kept rows of the institutions `$ids` from the set-wise
/// read, inside the writer's transaction `$tx` (either dialect, `$dialect`
/// its marker), after locking the rows (PostgreSQL), so that an entry
/// batch either committed before (and is read) or waits and adds to the
/// refreshed row.
macro_rules! refresh_figures {
    ($tx:ident, $dialect:ident, $now:expr, $ids:expr) => {{
        let ids: &[$crate::domain::ids::InstitutionId] = $ids;
        if !ids.is_empty() {
            let d = $dialect;
            if d.takes_row_locks() {
                sqlx::query(&format!(
                    "select institution_id from institution_figures where institution_id {} \
                     order by institution_id for update",
                    d.in_list(1)
                ))
                .bind(d.list(ids.iter().map(|i| i.as_str())))
                .execute(&mut *$tx)
                .await?;
            }
            let rows = kept_rows_on!(&mut *$tx, d, ids).await?;
            upsert_figures!($tx, $now, &rows);
        }
    }};
}

/// The kept rows from what [`kept_rows_on!`] read.
pub(crate) fn kept_rows(
    institutions: Vec<(String, String, String)>,
    facts: &HashMap<InstitutionId, CoverageFacts>,
    accounts: Vec<crate::store::rows::AccountRow>,
    alerts: Vec<(String, i64, i64)>,
) -> Result<Vec<KeptFigures>> {
    use crate::domain::accounts::{AccountCode, Totals};
    use crate::store::report::{AccountBalance, BalanceSheet};
    let c = corrupt_as("institution figures");
    let mut sheets: HashMap<InstitutionId, Vec<AccountBalance>> = HashMap::new();
    let accounts: Vec<(InstitutionId, AccountCode, Totals)> =
        crate::store::rows::convert(accounts)?;
    for (id, code, totals) in accounts {
        sheets
            .entry(id)
            .or_default()
            .push(AccountBalance::new(&code, totals));
    }
    let mut counts: HashMap<String, (u32, u32)> = HashMap::new();
    for (id, red, yellow) in alerts {
        let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        counts.insert(id, (n(red), n(yellow)));
    }
    let mut out = Vec::with_capacity(institutions.len());
    for (id, jurisdiction, mode) in institutions {
        let alerts = counts.get(&id).copied().unwrap_or((0, 0));
        let id = InstitutionId::parse(id).map_err(&c)?;
        let mode = SupervisionMode::parse(&mode).map_err(&c)?;
        let jurisdiction = JurisdictionCode::parse(jurisdiction).map_err(&c)?;
        let Some(f) = facts.get(&id) else {
            return Err(corrupt("institution figures", format!("{id}: no facts")));
        };
        let sheet = BalanceSheet {
            institution: id.clone(),
            currency: crate::domain::money::Currency::Cny,
            as_of: None,
            accounts: sheets.remove(&id).unwrap_or_default(),
        };
        let now = (
            sheet.owed_to_families_minor(),
            sheet.escrow_minor(),
            sheet.deposit_minor(),
        );
        out.push(KeptFigures::of_facts(
            id,
            jurisdiction,
            mode,
            f,
            now,
            alerts,
        )?);
    }
    Ok(out)
}

/// How the overview's institutions are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FiguresSort {
    /// Riskiest first: more open red alerts, then more yellow, then the
    /// lower coverage, then by id.
    #[default]
    Risk,
    /// The lowest coverage first (none counts as fully covered), then by id.
    Coverage,
    /// The most owed to families first, then by id.
    Owed,
    /// By name, then by id.
    Name,
}

impl FiguresSort {
    pub fn parse(s: &str) -> Option<FiguresSort> {
        Some(match s {
            "risk" => FiguresSort::Risk,
            "coverage" => FiguresSort::Coverage,
            "owed" => FiguresSort::Owed,
            "name" => FiguresSort::Name,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            FiguresSort::Risk => "risk",
            FiguresSort::Coverage => "coverage",
            FiguresSort::Owed => "owed",
            FiguresSort::Name => "name",
        }
    }

    fn order_by(self) -> &'static str {
        match self {
            FiguresSort::Risk => {
                "f.red_alerts desc, f.yellow_alerts desc, f.coverage_sort, f.institution_id"
            }
            FiguresSort::Coverage => "f.coverage_sort, f.institution_id",
            FiguresSort::Owed => "f.owed_minor desc, f.institution_id",
            FiguresSort::Name => "i.name, f.institution_id",
        }
    }
}

/// Which institutions by their open alerts: the overview's traffic light.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertLevel {
    /// An open red alert.
    Red,
    /// Open yellow alerts, no red.
    Yellow,
    /// No open alert.
    Green,
}

impl AlertLevel {
    pub fn parse(s: &str) -> Option<AlertLevel> {
        Some(match s {
            "red" => AlertLevel::Red,
            "yellow" => AlertLevel::Yellow,
            "green" => AlertLevel::Green,
            _ => return None,
        })
    }

    fn condition(self) -> &'static str {
        match self {
            AlertLevel::Red => " and f.red_alerts > 0",
            AlertLevel::Yellow => " and f.red_alerts = 0 and f.yellow_alerts > 0",
            AlertLevel::Green => " and f.red_alerts = 0 and f.yellow_alerts = 0",
        }
    }
}

/// Which kept rows, in what order, how many.
#[derive(Debug, Clone)]
pub struct FiguresQuery {
    /// This jurisdiction and everything below it.
    pub jurisdiction: JurisdictionCode,
    /// A part of the name or licence number, any case (over the whole
    /// jurisdiction, not a page).
    pub search: Option<String>,
    pub level: Option<AlertLevel>,
    pub sort: FiguresSort,
    pub offset: u64,
    /// `None`: every row.
    pub limit: Option<u64>,
}

/// The totals of the rows a query selects (every page), per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FiguresTotals {
    pub institutions: u64,
    pub owed_minor: i64,
    pub escrow_minor: i64,
    pub deposit_minor: i64,
    pub red_alerts: u64,
    pub yellow_alerts: u64,
}

/// The state of a jurisdiction's kept rows, as [`Store::figures_stamp`]
/// reads it: equal stamps, equal rows.
///
/// [`Store::figures_stamp`]: crate::store::Store::figures_stamp
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiguresStamp {
    pub rows: i64,
    pub revisions: i64,
}

/// A page of kept rows with their institutions.
#[derive(Debug, Clone)]
pub struct FiguresPage {
    pub rows: Vec<(crate::domain::registry::Institution, KeptFigures)>,
    pub totals: Vec<(crate::domain::money::Currency, FiguresTotals)>,
}

#[derive(sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    institution: crate::store::rows::InstitutionRow,
    #[sqlx(flatten)]
    figures: FiguresRow,
}

/// The kept columns but the two the institution's own row carries.
const PAGE_COLUMNS: &str = "i.*, f.owed_minor, f.escrow_minor, f.deposit_minor, f.owed_on, \
    f.closings_through, f.bank_minor, f.unconfirmed, f.unconfirmed_detail, f.unearned_minor, \
    f.refund_payable_minor, f.pending_release_minor, f.held_by_institution_minor, \
    f.coverage_bp, f.red_alerts, f.yellow_alerts";

/// The filter of a query (its binds from `$1`: the search pattern, when
/// searching), and the codes bounding the jurisdiction.
fn page_filter(q: &FiguresQuery) -> (String, Option<String>) {
    let code = q.jurisdiction.as_str();
    let b = code.as_bytes();
    // The significant pairs of digits, as `JurisdictionCode::covers` reads
    // them; every code below shares them (codes are six digits, so a
    // range of equal-length digit strings is the same in any collation).
    let significant = (0..3)
        .rev()
        .find(|&pair| &b[2 * pair..2 * pair + 2] != b"00")
        .map_or(0, |pair| 2 * pair + 2);
    let prefix = &code[..significant];
    let mut sql = if significant == 0 {
        String::from("where 1 = 1")
    } else {
        format!(
            "where f.jurisdiction_code >= '{prefix}{low}' and f.jurisdiction_code <= '{prefix}{high}'",
            low = "0".repeat(6 - significant),
            high = "9".repeat(6 - significant),
        )
    };
    let pattern = q
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let escaped = s
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
    if pattern.is_some() {
        sql.push_str(
            " and (lower(i.name) like $1 escape '\\' or lower(i.licence_no) like $1 escape '\\')",
        );
    }
    if let Some(level) = q.level {
        sql.push_str(level.condition());
    }
    (sql, pattern)
}

impl crate::store::Store {
    /// The kept rows of the institutions given (those that have one).
    pub async fn kept_figures(
        &self,
        institutions: &[InstitutionId],
    ) -> Result<HashMap<InstitutionId, KeptFigures>> {
        if institutions.is_empty() {
            return Ok(HashMap::new());
        }
        let found: Vec<FiguresRow> = on_reader!(self, |pool, dialect| {
            sqlx::query_as(&format!(
                "select {FIGURES_COLUMNS} from institution_figures where institution_id {}",
                dialect.in_list(1)
            ))
            .bind(dialect.list(institutions.iter().map(InstitutionId::as_str)))
            .fetch_all(pool)
            .await?
        });
        let rows: Vec<KeptFigures> = crate::store::rows::convert(found)?;
        Ok(rows
            .into_iter()
            .map(|k| (k.institution.clone(), k))
            .collect())
    }

    /// A page of the overview's kept rows and the totals of every row the
    /// query selects: two indexed reads, whatever the number of
    /// institutions.
    pub async fn figures_page(&self, q: &FiguresQuery) -> Result<FiguresPage> {
        let (filter, pattern) = page_filter(q);
        let from = "from institution_figures f join institutions i \
                    on i.institution_id = f.institution_id";
        let paged = match q.limit {
            Some(limit) => format!(" limit {limit} offset {}", q.offset),
            // Both dialects take an offset after a limit only.
            None if q.offset > 0 => format!(" limit {} offset {}", i64::MAX, q.offset),
            None => String::new(),
        };
        let rows_sql = format!(
            "select {PAGE_COLUMNS} {from} {filter} order by {}{paged}",
            q.sort.order_by()
        );
        let totals_sql = format!(
            "select i.currency, cast(count(*) as bigint), \
               cast(coalesce(sum(f.owed_minor), 0) as bigint), \
               cast(coalesce(sum(f.escrow_minor), 0) as bigint), \
               cast(coalesce(sum(f.deposit_minor), 0) as bigint), \
               cast(coalesce(sum(f.red_alerts), 0) as bigint), \
               cast(coalesce(sum(f.yellow_alerts), 0) as bigint) \
             {from} {filter} group by i.currency order by i.currency"
        );
        type TotalsRow = (String, i64, i64, i64, i64, i64, i64);
        let (found, totals): (Vec<PageRow>, Vec<TotalsRow>) = on_reader!(self, |pool| {
            let mut rows = sqlx::query_as(&rows_sql);
            let mut sums = sqlx::query_as(&totals_sql);
            if let Some(p) = &pattern {
                rows = rows.bind(p);
                sums = sums.bind(p);
            }
            (rows.fetch_all(pool).await?, sums.fetch_all(pool).await?)
        });
        let c = corrupt_as("institution figures");
        let rows = found
            .into_iter()
            .map(|r| {
                Ok((
                    crate::domain::registry::Institution::try_from(r.institution)?,
                    KeptFigures::try_from(r.figures)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let totals = totals
            .into_iter()
            .map(|(currency, n, owed, escrow, deposit, red, yellow)| {
                Ok((
                    currency
                        .parse::<crate::domain::money::Currency>()
                        .map_err(&c)?,
                    FiguresTotals {
                        institutions: count(n),
                        owed_minor: owed,
                        escrow_minor: escrow,
                        deposit_minor: deposit,
                        red_alerts: count(red),
                        yellow_alerts: count(yellow),
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FiguresPage { rows, totals })
    }

    /// What changes whenever a kept row of the jurisdiction (or below it)
    /// is written or added: how many rows, and the sum of their revisions
    /// (every write adds one to its row's). Read before a page, an equal
    /// stamp later means the page would read the same rows: one indexed
    /// aggregate, cheaper than the page and its balance sheets.
    pub async fn figures_stamp(&self, jurisdiction: &JurisdictionCode) -> Result<FiguresStamp> {
        let (filter, _) = page_filter(&FiguresQuery {
            jurisdiction: jurisdiction.clone(),
            search: None,
            level: None,
            sort: FiguresSort::default(),
            offset: 0,
            limit: None,
        });
        let sql = format!(
            "select cast(count(*) as bigint), cast(coalesce(sum(f.revision), 0) as bigint) \
             from institution_figures f {filter}"
        );
        let (rows, revisions): (i64, i64) =
            on_reader!(self, |pool| sqlx::query_as(&sql).fetch_one(pool).await?);
        Ok(FiguresStamp { rows, revisions })
    }

    /// Recomputes the kept rows of the institutions given (every one when
    /// `None`) from the set-wise read, in one transaction: the repair a
    /// `verify` finding calls for, and the backfill of rows missing.
    pub async fn rebuild_figures(&self, institutions: Option<&[InstitutionId]>) -> Result<u64> {
        let ids: Vec<InstitutionId> = match institutions {
            Some(ids) => ids.to_vec(),
            None => self
                .institutions()
                .await?
                .into_iter()
                .map(|i| i.id)
                .collect(),
        };
        let mut ids = ids;
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(0);
        }
        in_tx!(self, |tx, now, dialect| {
            refresh_figures!(tx, dialect, now, &ids);
        });
        Ok(ids.len() as u64)
    }

    /// Every kept row against its recomputation from the set-wise read, in
    /// one snapshot (a write meanwhile is in both or in neither): each row
    /// that differs, or is missing, as a failure of chain `figures`
    /// ([`Store::rebuild_figures`] repairs it). Kept apart from
    /// [`Store::verify`], whose findings are about the chains: books edited
    /// behind the application's back also make every kept row differ.
    pub async fn verify_figures(&self) -> Result<Vec<crate::store::VerifyFailure>> {
        use crate::store::seal::Snap;
        let mut failures = Vec::new();
        let ids: Vec<InstitutionId> = self
            .institutions()
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect();
        if ids.is_empty() {
            return Ok(failures);
        }
        let read = format!("select {FIGURES_COLUMNS} from institution_figures");
        let mut snap = self.snapshot().await?;
        let (fresh, kept): (Vec<KeptFigures>, Vec<FiguresRow>) = match &mut snap {
            Snap::Pg(tx) => {
                let d = crate::store::postgres::Pg;
                let fresh = kept_rows_on!(&mut **tx, d, &ids).await?;
                (fresh, sqlx::query_as(&read).fetch_all(&mut **tx).await?)
            }
            Snap::Lite(tx) => {
                let d = crate::store::sqlite::Lite;
                let fresh = kept_rows_on!(&mut **tx, d, &ids).await?;
                (fresh, sqlx::query_as(&read).fetch_all(&mut **tx).await?)
            }
        };
        snap.close().await?;
        let kept: Vec<KeptFigures> = crate::store::rows::convert(kept)?;
        let kept: HashMap<InstitutionId, KeptFigures> = kept
            .into_iter()
            .map(|k| (k.institution.clone(), k))
            .collect();
        for f in fresh {
            let reason = match kept.get(&f.institution) {
                None => "the overview has no kept figures for it".to_string(),
                Some(k) if *k != f => format!("kept figures {k:?} differ from the books' {f:?}"),
                Some(_) => continue,
            };
            failures.push(crate::store::VerifyFailure {
                institution: Some(f.institution.to_string()),
                chain: "figures".into(),
                seq: None,
                client_id: None,
                reason,
                checkpoint: false,
            });
        }
        Ok(failures)
    }

    /// Gives every institution created before the kept figures existed its
    /// row (at the first migrate after them; a no-op after). Placeholders
    /// are committed first, so an entry batch meanwhile adds to a row the
    /// refresh then locks and recomputes.
    pub(crate) async fn keep_figures_written_before(&self) -> Result<()> {
        let missing: Vec<String> = on_pool!(self, |pool| sqlx::query_scalar(
            "select i.institution_id from institutions i where not exists \
               (select 1 from institution_figures f where f.institution_id = i.institution_id) \
             order by i.institution_id"
        )
        .fetch_all(pool)
        .await?);
        if missing.is_empty() {
            return Ok(());
        }
        let ids = missing
            .into_iter()
            .map(|id| InstitutionId::parse(id).map_err(corrupt_as("institution")))
            .collect::<Result<Vec<_>>>()?;
        in_tx!(self, |tx, now, dialect| {
            sqlx::query(&format!(
                "insert into institution_figures (institution_id, jurisdiction_code, \
                   coverage_sort, updated_at) \
                 select institution_id, jurisdiction_code, {}, $2 from institutions \
                 where institution_id {} on conflict (institution_id) do nothing",
                i64::MAX,
                dialect.in_list(1)
            ))
            .bind(dialect.list(ids.iter().map(InstitutionId::as_str)))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        });
        // In slices, so that a province's backfill does not hold one long
        // transaction.
        for chunk in ids.chunks(2_000) {
            self.rebuild_figures(Some(chunk)).await?;
        }
        Ok(())
    }
}
