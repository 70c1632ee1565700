//! The jurisdiction overview officers start their day with: every
//! institution in a jurisdiction and below, its figures from the books and
//! its open alerts, once for the API and the console.
//!
//! Coverage has one definition here, the books' own
//! ([`ledger_core::store::BalanceSheet::coverage_basis_points`]): escrow
//! plus risk deposit as the ledger holds them, over what families are owed
//! (unearned tuition plus approved, unpaid refunds), rounded down.

use ledger_core::domain::alerts::{Alert, AlertStatus, Severity};
use ledger_core::store::BalanceSheet;
use ledger_core::{Institution, Jurisdiction, JurisdictionCode, Store};

use crate::app::{AppError, AppResult};

/// One institution of the overview.
#[derive(Debug, Clone)]
pub struct OverviewRow {
    pub institution: Institution,
    pub sheet: BalanceSheet,
    pub open_alerts: u32,
    pub red_alerts: u32,
    pub yellow_alerts: u32,
}

impl OverviewRow {
    /// Riskiest first: more open red alerts, then more yellow, then the
    /// lower coverage (nothing owed counts as fully covered), then by id.
    pub fn risk_order(a: &OverviewRow, b: &OverviewRow) -> std::cmp::Ordering {
        let cover = |r: &OverviewRow| r.sheet.coverage_basis_points().unwrap_or(i64::MAX);
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
    let alerts = store.alerts(None, None).await?;
    let covered: Vec<Institution> = store
        .institutions()
        .await?
        .into_iter()
        .filter(|i| code.covers(&i.jurisdiction))
        .collect();
    let sheets = store.balance_sheets(&covered).await?;
    let mut rows = Vec::new();
    for i in covered {
        let Some(sheet) = sheets.get(&i.id) else {
            continue;
        };
        let open: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.institution == i.id && is_open(a))
            .collect();
        let count = |s: Severity| open.iter().filter(|a| a.severity == s).count() as u32;
        rows.push(OverviewRow {
            open_alerts: open.len() as u32,
            red_alerts: count(Severity::Red),
            yellow_alerts: count(Severity::Yellow),
            sheet: sheet.clone(),
            institution: i,
        });
    }
    Ok(Overview { jurisdiction, rows })
}
