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
use std::sync::Arc;

use chrono::NaiveDate;
use ledger_core::domain::alerts::{Alert, AlertStatus};
use ledger_core::domain::feeds::AccountKind;
use ledger_core::domain::risk::coverage::{self, Coverage, Unconfirmed};
use ledger_core::store::{
    AlertLevel, BalanceSheet, FiguresQuery, FiguresSort, FiguresStamp, FiguresTotals,
};
use ledger_core::{Currency, Institution, InstitutionId, Jurisdiction, JurisdictionCode, Store};

use crate::app::risk::{records_all, records_of, snapshot, Reading, SET_WISE_FROM};
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
        records_all(store, institutions.to_vec(), as_of, Reading::Whole).await?
    } else {
        let mut records = Vec::with_capacity(institutions.len());
        for i in institutions {
            records.push(records_of(store, i, as_of, Reading::Whole).await?);
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
    let records = records_of(store, institution, as_of, Reading::Whole).await?;
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

/// Which institutions of the overview, in what order, how many.
#[derive(Debug, Clone, Default)]
pub struct OverviewQuery {
    /// A part of the name or licence number (over the whole jurisdiction).
    pub search: Option<String>,
    pub level: Option<AlertLevel>,
    pub sort: FiguresSort,
    pub offset: u64,
    /// `None`: every institution (the exports).
    pub limit: Option<u64>,
}

/// A page of the overview, with the totals of every institution the query
/// selects (not only the page's).
#[derive(Debug, Clone)]
pub struct OverviewPage {
    pub jurisdiction: Jurisdiction,
    /// The day coverage is read on.
    pub as_of: NaiveDate,
    /// In the order asked for.
    pub rows: Vec<OverviewRow>,
    /// Per currency, over every page.
    pub totals: Vec<(Currency, FiguresTotals)>,
    /// How many institutions the query selects, over every page.
    pub matched: u64,
}

/// A page of the overview of a jurisdiction and everything below it, read
/// from the kept figures ([`ledger_core::store::KeptFigures`]): one indexed
/// read for the page, one for the totals, the page's balance sheets;
/// nothing is summed from postings or alerts per request. A row not valid
/// today (a closing dated after it) is computed the set-wise way.
pub async fn overview_page(
    store: &Store,
    code: &JurisdictionCode,
    q: &OverviewQuery,
) -> AppResult<OverviewPage> {
    let jurisdiction = store
        .jurisdiction(code)
        .await?
        .ok_or_else(|| AppError::not_found(format!("jurisdiction {code}")))?;
    let page = store
        .figures_page(&FiguresQuery {
            jurisdiction: code.clone(),
            search: q.search.clone(),
            level: q.level,
            sort: q.sort,
            offset: q.offset,
            limit: q.limit,
        })
        .await?;
    let institutions: Vec<Institution> = page.rows.iter().map(|(i, _)| i.clone()).collect();
    let mut sheets = store.balance_sheets(&institutions).await?;
    let as_of = crate::app::jobs::today(store);
    let stale: Vec<Institution> = page
        .rows
        .iter()
        .filter(|(i, k)| k.coverage_on(i.mode, as_of).is_none())
        .map(|(i, _)| i.clone())
        .collect();
    let mut computed = coverages(store, &stale, as_of).await?;
    let mut rows = Vec::with_capacity(page.rows.len());
    for (i, k) in page.rows {
        let Some(sheet) = sheets.remove(&i.id) else {
            continue;
        };
        let coverage = match k.coverage_on(i.mode, as_of) {
            Some(c) => c,
            None => computed
                .remove(&i.id)
                .unwrap_or(Err(Unconfirmed::NoAccount(AccountKind::Escrow))),
        };
        rows.push(OverviewRow {
            open_alerts: k.red_alerts + k.yellow_alerts,
            red_alerts: k.red_alerts,
            yellow_alerts: k.yellow_alerts,
            sheet,
            coverage,
            institution: i,
        });
    }
    let matched = page.totals.iter().map(|(_, t)| t.institutions).sum();
    Ok(OverviewPage {
        jurisdiction,
        as_of,
        rows,
        totals: page.totals,
        matched,
    })
}

/// Overview pages answered lately, each kept with the stamp of the
/// jurisdiction's kept rows it was read under
/// ([`Store::figures_stamp`]). A request reads the stamp (one indexed
/// aggregate) and gets the kept page when the stamp is unchanged and the
/// day is the same; any write to a row of the jurisdiction, by this
/// process or another (a command-line ingest, another instance), changes
/// the stamp, so a page is never older than the figures it shows. Shared
/// by the API and the console.
#[derive(Debug, Default)]
pub struct OverviewPages {
    kept: std::sync::Mutex<HashMap<PageKey, (FiguresStamp, Slot)>>,
}

/// A page being read, or read: the requests that find the same stamp while
/// it is read wait for that one read (64 officers after a bank's payment
/// make one read, not 64).
type Slot = Arc<tokio::sync::OnceCell<Arc<KeptPage>>>;

/// A page as kept, and what adapters rendered of it (the API's JSON, the
/// console's table per language), so that a page asked for again is not
/// rendered again.
#[derive(Debug)]
pub struct KeptPage {
    pub page: OverviewPage,
    renderings: std::sync::Mutex<HashMap<String, Arc<str>>>,
}

/// Renderings kept per page at most: the keys come from callers' queries
/// (a language, a search as typed), so past this a rendering is made and
/// sent but not kept.
const RENDERINGS_KEPT: usize = 8;

impl KeptPage {
    fn new(page: OverviewPage) -> KeptPage {
        KeptPage {
            page,
            renderings: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// What an adapter rendered of this page under `key`, rendering it with
    /// `render` the first time. Every rendering under one key is the same
    /// (the key names all it depends on besides the page), so a race keeps
    /// either.
    pub fn rendered<E>(
        &self,
        key: &str,
        render: impl FnOnce(&OverviewPage) -> Result<String, E>,
    ) -> Result<Arc<str>, E> {
        let lock = || {
            self.renderings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(bytes) = lock().get(key) {
            return Ok(bytes.clone());
        }
        // Rendered outside the lock: a page of 500 rows takes a while.
        let bytes: Arc<str> = render(&self.page)?.into();
        let mut kept = lock();
        if kept.len() < RENDERINGS_KEPT {
            kept.entry(key.to_string()).or_insert_with(|| bytes.clone());
        }
        Ok(bytes)
    }
}

impl std::ops::Deref for KeptPage {
    type Target = OverviewPage;

    fn deref(&self) -> &OverviewPage {
        &self.page
    }
}

/// Pages kept at most: past it, all are dropped and the next requests read
/// afresh. A page has at most 500 rows (the API's largest `limit`), so
/// the kept pages hold tens of MiB at worst, whatever searches callers
/// send; the console's pages of 50 a few MiB.
const PAGES_KEPT: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    code: JurisdictionCode,
    search: Option<String>,
    level: Option<AlertLevel>,
    sort: FiguresSort,
    offset: u64,
    limit: Option<u64>,
    as_of: NaiveDate,
}

impl OverviewPages {
    /// [`overview_page`], from the kept pages when nothing it shows has
    /// changed. Whole overviews (no limit, the exports) are not kept.
    pub async fn page(
        &self,
        store: &Store,
        code: &JurisdictionCode,
        q: &OverviewQuery,
    ) -> AppResult<Arc<KeptPage>> {
        if q.limit.is_none() {
            return Ok(Arc::new(KeptPage::new(
                overview_page(store, code, q).await?,
            )));
        }
        // The stamp before the page: a write between the two leaves a page
        // newer than its stamp, which the next request reads again.
        let stamp = store.figures_stamp(code).await?;
        let key = PageKey {
            code: code.clone(),
            search: q.search.clone(),
            level: q.level,
            sort: q.sort,
            offset: q.offset,
            limit: q.limit,
            as_of: crate::app::jobs::today(store),
        };
        let slot = {
            let mut kept = self.lock();
            match kept.get(&key) {
                Some((kept_under, slot)) if *kept_under == stamp => slot.clone(),
                _ => {
                    if kept.len() >= PAGES_KEPT {
                        kept.clear();
                    }
                    let slot = Slot::default();
                    kept.insert(key, (stamp, slot.clone()));
                    slot
                }
            }
        };
        // A read that fails leaves the slot empty: the next request reads.
        let page = slot
            .get_or_try_init(|| async {
                Ok::<_, AppError>(Arc::new(KeptPage::new(
                    overview_page(store, code, q).await?,
                )))
            })
            .await?;
        Ok(page.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PageKey, (FiguresStamp, Slot)>> {
        // A panic while holding the map leaves it whole (inserts and
        // clears only): keep using it.
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The overview of a jurisdiction and everything below it, every
/// institution (the exports), in the order of their ids.
pub async fn overview(store: &Store, code: &JurisdictionCode) -> AppResult<Overview> {
    let page = overview_page(store, code, &OverviewQuery::default()).await?;
    let mut rows = page.rows;
    rows.sort_by(|a, b| a.institution.id.as_str().cmp(b.institution.id.as_str()));
    Ok(Overview {
        jurisdiction: page.jurisdiction,
        as_of: page.as_of,
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
