//! Rows as both dialects read them (`FromRow`, one struct per shape of row,
//! the same for PostgreSQL and SQLite), and their checked conversion into
//! domain types: stored data that does not parse is `corrupt_data`, never a
//! panic.

use chrono::NaiveDate;

use crate::domain::accounts::{AccountCode, Side, Totals};
use crate::domain::books::ChainHead;
use crate::domain::books::{EnrollmentBook, KnownEntry};
use crate::domain::entry::{Entry, EntryKind, Posting};
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId, JurisdictionCode};
use crate::domain::money::{Amount, Currency};
use crate::domain::policy::RulePack;
use crate::domain::registry::{
    Category, Enrollment, EnrollmentState, Institution, InstitutionStatus, SupervisionMode,
};
use crate::store::time::DbTime;
use crate::store::{Result, StoreError};

/// Stored data this version cannot read: what it is, and why. The store's
/// one way of saying so.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

/// The conversion of `what` failed with `e`, as a `map_err` argument.
pub(crate) fn corrupt_as<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| corrupt(what, e)
}

#[derive(sqlx::FromRow)]
pub(crate) struct InstitutionRow {
    pub institution_id: String,
    pub name: String,
    pub licence_no: String,
    pub jurisdiction_code: String,
    pub mode: String,
    pub category: String,
    pub status: String,
    pub currency: String,
}

impl TryFrom<InstitutionRow> for Institution {
    type Error = StoreError;
    fn try_from(r: InstitutionRow) -> Result<Self> {
        let c = |e| corrupt("institution", e);
        Ok(Institution {
            id: InstitutionId::parse(r.institution_id).map_err(c)?,
            name: r.name,
            licence_no: r.licence_no,
            jurisdiction: JurisdictionCode::parse(r.jurisdiction_code).map_err(c)?,
            mode: SupervisionMode::parse(&r.mode).map_err(c)?,
            category: Category::parse(&r.category).map_err(c)?,
            status: InstitutionStatus::parse(&r.status).map_err(c)?,
            currency: r.currency.parse::<Currency>().map_err(c)?,
        })
    }
}

/// An institution with its chain head, as a batch locks it.
#[derive(sqlx::FromRow)]
pub(crate) struct LockedRow {
    #[sqlx(flatten)]
    pub institution: InstitutionRow,
    pub created_at: DbTime,
    #[sqlx(flatten)]
    pub head: HeadRow,
    pub rule_pack_generation: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct HeadRow {
    pub last_seq: i64,
    pub last_hash: String,
    pub last_recorded_at: Option<DbTime>,
}

impl From<HeadRow> for ChainHead {
    fn from(r: HeadRow) -> Self {
        ChainHead {
            last_seq: r.last_seq,
            last_hash: r.last_hash,
            last_recorded_at: r.last_recorded_at.map(DbTime::utc),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EnrollmentRow {
    pub institution_id: String,
    pub enrollment_id: String,
    pub student_ref: String,
    pub hours_bought: i32,
    pub bonus_hours: i32,
    pub price_minor: i64,
    pub currency: String,
    pub course_start: NaiveDate,
    pub course_end: NaiveDate,
    pub hours_consumed: i32,
    pub paid_minor: i64,
    pub created_at: DbTime,
}

impl TryFrom<EnrollmentRow> for EnrollmentBook {
    type Error = StoreError;
    fn try_from(r: EnrollmentRow) -> Result<Self> {
        let c = |e| corrupt("enrollment", e);
        let hours = |h: i32| u32::try_from(h).map_err(|e| corrupt("enrollment hours", e));
        Ok(EnrollmentBook {
            state: EnrollmentState {
                enrollment: Enrollment {
                    institution: InstitutionId::parse(r.institution_id).map_err(c)?,
                    id: EnrollmentId::parse(r.enrollment_id).map_err(c)?,
                    student_ref: r.student_ref,
                    hours_bought: hours(r.hours_bought)?,
                    bonus_hours: hours(r.bonus_hours)?,
                    price: Amount::from_minor(r.price_minor).map_err(c)?,
                    currency: r.currency.parse::<Currency>().map_err(c)?,
                    course_start: r.course_start,
                    course_end: r.course_end,
                },
                hours_consumed: hours(r.hours_consumed)?,
                created_at: r.created_at.utc(),
            },
            paid_minor: r.paid_minor,
        })
    }
}

impl TryFrom<EnrollmentRow> for Enrollment {
    type Error = StoreError;
    fn try_from(r: EnrollmentRow) -> Result<Self> {
        Ok(EnrollmentBook::try_from(r)?.state.enrollment)
    }
}

pub(crate) fn account_code(text: &str) -> Result<AccountCode> {
    AccountCode::parse(text).map_err(|e| corrupt("account", e))
}

/// An account's four totals; a posting's running totals are read into it
/// under the same names (`posted_debits_after_minor as posted_debits_minor`).
#[derive(sqlx::FromRow, Clone, Copy)]
pub(crate) struct TotalsRow {
    pub posted_debits_minor: i64,
    pub posted_credits_minor: i64,
    pub pending_debits_minor: i64,
    pub pending_credits_minor: i64,
}

impl From<TotalsRow> for Totals {
    fn from(r: TotalsRow) -> Self {
        Totals {
            posted_debits_minor: r.posted_debits_minor,
            posted_credits_minor: r.posted_credits_minor,
            pending_debits_minor: r.pending_debits_minor,
            pending_credits_minor: r.pending_credits_minor,
        }
    }
}

/// One account of one institution with its totals.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub institution_id: String,
    pub account_code: String,
    #[sqlx(flatten)]
    pub totals: TotalsRow,
}

impl TryFrom<AccountRow> for (InstitutionId, AccountCode, Totals) {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self> {
        Ok((
            InstitutionId::parse(r.institution_id).map_err(corrupt_as("account"))?,
            account_code(&r.account_code)?,
            r.totals.into(),
        ))
    }
}

/// Converts every row, failing on the first that does not convert.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct EntryRow {
    pub institution_id: String,
    pub seq: i64,
    pub client_id: String,
    pub kind: String,
    pub currency: String,
    pub occurred_at: DbTime,
    pub recorded_at: DbTime,
    pub external_ref: Option<String>,
    pub enrollment_id: Option<String>,
    pub hours: Option<i32>,
    pub refers_to_seq: Option<i64>,
    pub rule_pack: Option<String>,
    pub flags: String,
    pub request_hash: String,
    pub prev_hash: String,
    pub hash: String,
    /// The kind of the entry that confirmed, voided or reversed this one
    /// (read only where a batch replays).
    #[sqlx(default)]
    pub referred_by: Option<String>,
}

/// An entry with its postings as one JSON array of `[account, side,
/// amount]`, in leg order: a read that brings one row an entry instead of
/// one more a posting (SQLite, where each row costs a hand-off between
/// threads).
#[derive(sqlx::FromRow)]
pub(crate) struct EntryPostingsRow {
    #[sqlx(flatten)]
    pub entry: EntryRow,
    pub postings_json: String,
}

impl EntryPostingsRow {
    pub fn into_entry(self) -> Result<Entry> {
        let legs: Vec<(String, String, i64)> = serde_json::from_str(&self.postings_json)
            .map_err(|e| corrupt("postings of an entry", e))?;
        let postings = legs
            .into_iter()
            .map(|(account_code, side, amount_minor)| {
                PostingRow {
                    institution_id: String::new(),
                    seq: self.entry.seq,
                    account_code,
                    side,
                    amount_minor,
                }
                .into_posting()
            })
            .collect::<Result<Vec<_>>>()?;
        self.entry.into_entry(postings)
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PostingRow {
    pub institution_id: String,
    pub seq: i64,
    pub account_code: String,
    pub side: String,
    pub amount_minor: i64,
}

impl PostingRow {
    pub fn into_posting(self) -> Result<Posting> {
        Ok(Posting {
            account: AccountCode::parse(&self.account_code)
                .map_err(|_| corrupt("posting account", &self.account_code))?,
            side: Side::parse(&self.side).ok_or_else(|| corrupt("posting side", &self.side))?,
            amount: Amount::from_minor(self.amount_minor)
                .map_err(|_| corrupt("posting amount", self.amount_minor.to_string()))?,
        })
    }
}

impl EntryRow {
    pub fn into_known(self, postings: Vec<Posting>) -> Result<KnownEntry> {
        let referred_by = match &self.referred_by {
            Some(k) => Some(EntryKind::parse(k).ok_or_else(|| corrupt("entry kind", k))?),
            None => None,
        };
        Ok(KnownEntry {
            entry: self.into_entry(postings)?,
            referred_by,
        })
    }

    pub fn into_entry(self, postings: Vec<Posting>) -> Result<Entry> {
        let c = |e| corrupt("entry", e);
        Ok(Entry {
            institution: InstitutionId::parse(self.institution_id).map_err(c)?,
            seq: self.seq,
            client_id: ClientId::parse(self.client_id).map_err(c)?,
            kind: EntryKind::parse(&self.kind).ok_or_else(|| corrupt("entry kind", &self.kind))?,
            currency: self.currency.parse::<Currency>().map_err(c)?,
            occurred_at: self.occurred_at.utc(),
            recorded_at: self.recorded_at.utc(),
            external_ref: self.external_ref,
            enrollment: self
                .enrollment_id
                .map(EnrollmentId::parse)
                .transpose()
                .map_err(c)?,
            hours: self
                .hours
                .map(u32::try_from)
                .transpose()
                .map_err(|e| corrupt("entry hours", e))?,
            refers_to_seq: self.refers_to_seq,
            rule_pack: self.rule_pack,
            flags: if self.flags.is_empty() {
                vec![]
            } else {
                self.flags.split(',').map(str::to_string).collect()
            },
            postings,
            request_hash: self.request_hash,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Attaches postings (ordered by institution, seq, leg) to their entries.
pub(crate) fn assemble<T>(
    rows: Vec<EntryRow>,
    postings: Vec<PostingRow>,
    build: impl Fn(EntryRow, Vec<Posting>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut by_key: std::collections::HashMap<(String, i64), Vec<Posting>> =
        std::collections::HashMap::new();
    for p in postings {
        let key = (p.institution_id.clone(), p.seq);
        by_key.entry(key).or_default().push(p.into_posting()?);
    }
    rows.into_iter()
        .map(|r| {
            let ps = by_key
                .remove(&(r.institution_id.clone(), r.seq))
                .unwrap_or_default();
            build(r, ps)
        })
        .collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct RulePackRow {
    pub jurisdiction_code: String,
    pub version: i32,
    pub effective_from: NaiveDate,
    pub params: String,
}

impl TryFrom<RulePackRow> for RulePack {
    type Error = StoreError;
    fn try_from(r: RulePackRow) -> Result<Self> {
        Ok(RulePack {
            jurisdiction: JurisdictionCode::parse(r.jurisdiction_code)
                .map_err(corrupt_as("rule pack"))?,
            version: u32::try_from(r.version).map_err(corrupt_as("rule pack version"))?,
            effective_from: r.effective_from,
            params: serde_json::from_str(&r.params).map_err(corrupt_as("rule pack params"))?,
        })
    }
}

/// One ancestor of a jurisdiction (`start`), with one of the ancestor's
/// rule packs if it has any.
#[derive(sqlx::FromRow)]
pub(crate) struct RuleContextRow {
    pub start: String,
    pub code: String,
    pub jurisdiction_code: Option<String>,
    pub version: Option<i32>,
    pub effective_from: Option<NaiveDate>,
    pub params: Option<String>,
}

/// Groups (start, ancestor, rule pack of the ancestor) rows, ordered root
/// first per start, into each jurisdiction's chain and the distinct packs.
pub(crate) fn rule_context(
    rows: Vec<RuleContextRow>,
) -> Result<(crate::store::Chains, Vec<RulePack>)> {
    let parse = |c: String| JurisdictionCode::parse(c).map_err(|e| corrupt("jurisdiction", e));
    let mut chains = crate::store::Chains::new();
    let mut packs = std::collections::BTreeMap::new();
    for r in rows {
        let (start, code) = (r.start, r.code);
        let pack = match (r.jurisdiction_code, r.version, r.effective_from, r.params) {
            (Some(jurisdiction_code), Some(version), Some(effective_from), Some(params)) => {
                Some(RulePack::try_from(RulePackRow {
                    jurisdiction_code,
                    version,
                    effective_from,
                    params,
                })?)
            }
            _ => None,
        };
        let chain = chains.entry(parse(start)?).or_default();
        let code = parse(code)?;
        // An ancestor with several packs appears once per pack.
        if chain.last() != Some(&code) {
            chain.push(code);
        }
        if let Some(p) = pack {
            packs.insert((p.jurisdiction.clone(), p.version), p);
        }
    }
    Ok((chains, packs.into_values().collect()))
}

/// The columns of an entry row before its hashes (a macro, for `concat!`).
macro_rules! entry_columns_but_hashes {
    () => {
        "e.institution_id, e.seq, e.client_id, e.kind, e.currency, e.occurred_at, \
         e.recorded_at, e.external_ref, e.enrollment_id, e.hours, e.refers_to_seq, e.rule_pack, \
         e.flags"
    };
}

/// The columns of an entry row, for queries that alias `entries` as `e`.
pub(crate) const ENTRY_COLUMNS: &str = concat!(
    entry_columns_but_hashes!(),
    ", e.request_hash, e.prev_hash, e.hash"
);

/// [`ENTRY_COLUMNS`] with the request hash and the chain's hashes left
/// empty: for reads whose entries are judged, never verified or shown.
pub(crate) const ENTRY_COLUMNS_UNCHAINED: &str = concat!(
    entry_columns_but_hashes!(),
    ", '' as request_hash, '' as prev_hash, '' as hash"
);

impl TryFrom<LockedRow> for crate::store::LockedInstitution {
    type Error = StoreError;
    fn try_from(r: LockedRow) -> Result<Self> {
        Ok(crate::store::LockedInstitution {
            institution: r.institution.try_into()?,
            created_at: r.created_at.utc(),
            head: r.head.into(),
            rule_pack_generation: r.rule_pack_generation,
        })
    }
}
