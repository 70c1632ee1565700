//! The jurisdiction overview officers start their day with: every
//! institution in a jurisdiction and below, its figures from the books and
//! its open alerts, once for the API and the console.
//!
//! Coverage has one definition, the domain's
//! ([`ledger_core::domain::risk::coverage`]): what the banks' latest
//! closings of the supervised escrow and deposit accounts hold, less
//! releases in flight, over what families are owed (unearned tuition plus
//! approved, unpaid refunds) the day those closings cover, rounded down.
//! The risk engine's shortfall signal reads the same figure; this module
//! is where every surface (API, console, command line) gets it.

use std::collections::HashMap;

use chrono::NaiveDate;
use ledger_core::domain::alerts::{Alert, AlertStatus};
use ledger_core::domain::risk::coverage::{self, Coverage, Unconfirmed};
use ledger_core::store::BalanceSheet;
use ledger_core::{Institution, InstitutionId, Jurisdiction, JurisdictionCode, Store};

use crate::app::risk::{records_all, records_of, snapshot, SET_WISE_FROM};
use crate::app::{AppError, AppResult};

/// An institution's coverage on a day, or why the banks have not confirmed it.
pub type CoverageOf = Result<Coverage, Unconfirmed>;

/// Coverage in basis points, `None` when unconfirmed or nothing is owed.
pub fn coverage_bp(c: &CoverageOf) -> Option<i128> {
    c.as_ref().ok().and_then(Coverage::basis_points)
}

/// The coverage of each institution given on a day, set-wise: a fixed
/// number of queries whatever the number of institutions (the supervised
/// accounts' latest closings and the ledger figures summed by the
/// database, [`Store::coverage_facts`]), fed to the same domain function
/// the per-institution path ([`coverage_of`]) reaches through the risk
/// snapshot, so the two never differ (a test holds them equal).
pub async fn coverages(
    store: &Store,
    institutions: &[Institution],
    as_of: NaiveDate,
) -> AppResult<HashMap<InstitutionId, CoverageOf>> {
    let ids: Vec<InstitutionId> = institutions.iter().map(|i| i.id.clone()).collect();
    let mut facts = store.coverage_facts(&ids, as_of).await?;
    let mut out = HashMap::with_capacity(institutions.len());
    for i in institutions {
        let Some(f) = facts.remove(&i.id) else {
            continue;
        };
        let c = coverage::coverage_of(i.mode, as_of, &f.accounts, f.owed_on, &f.figures);
        out.insert(i.id.clone(), c);
    }
    Ok(out)
}

/// The coverage of each institution given on a day the long way: every
/// record of each institution loaded and its risk snapshot made (set-wise
/// beyond [`SET_WISE_FROM`] institutions, as the scan does). What
/// [`coverages`] must equal; kept for the tests and the benchmark's
/// baseline.
pub async fn coverages_by_records(
    store: &Store,
    institutions: &[Institution],
    as_of: NaiveDate,
) -> AppResult<HashMap<InstitutionId, CoverageOf>> {
    let records = if institutions.len() > SET_WISE_FROM {
        records_all(store, institutions.to_vec(), as_of).await?
    } else {
        let mut records = Vec::with_capacity(institutions.len());
        for i in institutions {
            records.push(records_of(store, i, as_of).await?);
        }
        records
    };
    let mut out = HashMap::with_capacity(records.len());
    for r in &records {
        let input = snapshot(r, as_of)?;
        out.insert(r.institution.id.clone(), coverage::coverage(&input));
    }
    Ok(out)
}

/// One institution's coverage on a day.
pub async fn coverage_of(
    store: &Store,
    institution: &Institution,
    as_of: NaiveDate,
) -> AppResult<CoverageOf> {
    let records = records_of(store, institution, as_of).await?;
    Ok(coverage::coverage(&snapshot(&records, as_of)?))
}

/// One institution of the overview.
#[derive(Debug, Clone)]
pub struct OverviewRow {
    pub institution: Institution,
    pub sheet: BalanceSheet,
    /// Today's coverage (the one definition).
    pub coverage: CoverageOf,
    pub open_alerts: u32,
    pub red_alerts: u32,
    pub yellow_alerts: u32,
}

impl OverviewRow {
    /// Riskiest first: more open red alerts, then more yellow, then the
    /// lower coverage (nothing owed counts as fully covered), then by id.
    pub fn risk_order(a: &OverviewRow, b: &OverviewRow) -> std::cmp::Ordering {
        let cover = |r: &OverviewRow| coverage_bp(&r.coverage).unwrap_or(i128::MAX);
        b.red_alerts
            .cmp(&a.red_alerts)
            .then(b.yellow_alerts.cmp(&a.yellow_alerts))
            .then(cover(a).cmp(&cover(b)))
            .then(a.institution.id.as_str().cmp(b.institution.id.as_str()))
    }
}

#[derive(Debug, Clone)]
pub struct Overview {
    pub jurisdiction: Jurisdiction,
    /// The day coverage is computed on.
    pub as_of: NaiveDate,
    /// In the order of the institutions' ids.
    pub rows: Vec<OverviewRow>,
}

/// Whether an alert still asks for attention.
pub fn is_open(a: &Alert) -> bool {
    a.status != AlertStatus::Resolved
}

/// The overview of a jurisdiction and everything below it.
pub async fn overview(store: &Store, code: &JurisdictionCode) -> AppResult<Overview> {
    let jurisdiction = store
        .jurisdictions()
        .await?
        .into_iter()
        .find(|j| &j.code == code)
        .ok_or_else(|| AppError::not_found(format!("jurisdiction {code}")))?;
    let covered: Vec<Institution> = store
        .institutions()
        .await?
        .into_iter()
        .filter(|i| code.covers(&i.jurisdiction))
        .collect();
    let ids: Vec<InstitutionId> = covered.iter().map(|i| i.id.clone()).collect();
    // Counted by the database: the overview reads no alert itself.
    let alerts = store.open_alert_counts(&ids).await?;
    let sheets = store.balance_sheets(&covered).await?;
    let as_of = crate::app::jobs::today(store);
    let mut coverages = coverages(store, &covered, as_of).await?;
    let mut rows = Vec::new();
    for i in covered {
        let Some(sheet) = sheets.get(&i.id) else {
            continue;
        };
        let (red, yellow) = alerts.get(&i.id).copied().unwrap_or((0, 0));
        rows.push(OverviewRow {
            open_alerts: red + yellow,
            red_alerts: red,
            yellow_alerts: yellow,
            sheet: sheet.clone(),
            coverage: coverages
                .remove(&i.id)
                .unwrap_or(Err(Unconfirmed::NoAccount(
                    ledger_core::domain::feeds::AccountKind::Escrow,
                ))),
            institution: i,
        });
    }
    Ok(Overview {
        jurisdiction,
        as_of,
        rows,
    })
}

/// How many days the institution page's chart shows at most.
pub const CHART_DAYS: u64 = 180;

/// An institution day by day (owed, escrow in the books, the bank's
/// closings, inflows and outflows) from its first activity, at most
/// [`CHART_DAYS`] days, ending today; or ending on its last activity when
/// that is more than [`CHART_DAYS`] days ago (a dormant institution's
/// chart shows its figures, not months of flat lines).
pub async fn history(
    store: &Store,
    institution: &Institution,
    today: NaiveDate,
) -> AppResult<Vec<ledger_core::domain::history::DayPoint>> {
    use ledger_core::domain::feeds::AccountKind;
    let entries = crate::app::reconcile::all_entries(store, &institution.id).await?;
    let mut closings = Vec::new();
    let mut dates: Vec<NaiveDate> = entries.iter().map(|e| e.occurred_at.date_naive()).collect();
    for account in store.supervised_accounts(&institution.id).await? {
        if account.kind != AccountKind::Escrow {
            continue;
        }
        let statements = store.statement_lines(&account).await?;
        let days: Vec<(NaiveDate, i64)> = statements
            .statements
            .iter()
            .filter_map(|s| s.closing.map(|(minor, day)| (day, minor)))
            .collect();
        dates.extend(days.iter().map(|(d, _)| *d));
        closings.push(days);
    }
    let span = chrono::Days::new(CHART_DAYS - 1);
    let (Some(earliest), Some(latest)) = (dates.iter().min(), dates.iter().max()) else {
        return Ok(Vec::new());
    };
    let last = match today.checked_sub_days(span) {
        Some(window) if *latest < window => *latest,
        _ => today,
    };
    let first = last
        .checked_sub_days(span)
        .map_or(*earliest, |w| w.max(*earliest));
    Ok(ledger_core::domain::history::daily(
        &entries, &closings, first, last,
    ))
}
