//! Rows as both dialects read them, and their checked conversion into domain
//! types: stored data that does not parse is `corrupt_data`, never a panic.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::accounts::{AccountCode, Side, Totals};
use crate::domain::books::{EnrollmentBook, KnownEntry};
use crate::domain::entry::{Entry, EntryKind, Posting};
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId, JurisdictionCode};
use crate::domain::money::{Amount, Currency};
use crate::domain::policy::RulePack;
use crate::domain::registry::{
    Category, Enrollment, EnrollmentState, Institution, InstitutionStatus, SupervisionMode,
};
use crate::store::{Result, StoreError};

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

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

pub(crate) struct EnrollmentRow {
    pub institution_id: String,
    pub enrollment_id: String,
    pub student_ref: String,
    pub hours_bought: i64,
    pub bonus_hours: i64,
    pub price_minor: i64,
    pub currency: String,
    pub course_start: NaiveDate,
    pub course_end: NaiveDate,
    pub hours_consumed: i64,
    pub paid_minor: i64,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<EnrollmentRow> for EnrollmentBook {
    type Error = StoreError;
    fn try_from(r: EnrollmentRow) -> Result<Self> {
        let c = |e| corrupt("enrollment", e);
        let hours = |h: i64| u32::try_from(h).map_err(|e| corrupt("enrollment hours", e));
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
                created_at: r.created_at,
            },
            paid_minor: r.paid_minor,
        })
    }
}

pub(crate) fn account_code(text: &str) -> Result<AccountCode> {
    AccountCode::parse(text).map_err(|e| corrupt("account", e))
}

pub(crate) fn totals(values: [i64; 4]) -> Totals {
    Totals {
        posted_debits_minor: values[0],
        posted_credits_minor: values[1],
        pending_debits_minor: values[2],
        pending_credits_minor: values[3],
    }
}

pub(crate) struct EntryRow {
    pub institution_id: String,
    pub seq: i64,
    pub client_id: String,
    pub kind: String,
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub external_ref: Option<String>,
    pub enrollment_id: Option<String>,
    pub hours: Option<i64>,
    pub refers_to_seq: Option<i64>,
    pub rule_pack: Option<String>,
    pub flags: String,
    pub request_hash: String,
    pub prev_hash: String,
    pub hash: String,
    /// The kind of the entry that confirmed, voided or reversed this one.
    pub referred_by: Option<String>,
}

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
            account: self.account_code,
            side: Side::parse(&self.side).ok_or_else(|| corrupt("posting side", &self.side))?,
            amount_minor: self.amount_minor,
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
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
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

/// Groups (start, ancestor, rule pack of the ancestor) rows, ordered root
/// first per start, into each jurisdiction's chain and the distinct packs.
pub(crate) fn rule_context(
    rows: Vec<(String, String, Option<RulePack>)>,
) -> Result<(crate::store::Chains, Vec<RulePack>)> {
    let parse = |c: String| JurisdictionCode::parse(c).map_err(|e| corrupt("jurisdiction", e));
    let mut chains = crate::store::Chains::new();
    let mut packs = std::collections::BTreeMap::new();
    for (start, code, pack) in rows {
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
