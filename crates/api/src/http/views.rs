//! What the API answers with: the books as decimal strings in major units,
//! never floats, never minor units on the wire.

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::domain::money::format_minor;
use ledger_core::store::BalanceSheet;
use ledger_core::{Currency, Enrollment, Entry, Institution};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn money(minor: i64, currency: Currency) -> String {
    format_minor(minor, currency)
}

fn code<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstitutionView {
    #[schema(example = "INS-410922-001")]
    pub id: String,
    pub name: String,
    pub licence_no: String,
    #[schema(example = "410922")]
    pub jurisdiction: String,
    /// custody, deposit or both.
    pub mode: String,
    /// subject or non_subject.
    pub category: String,
    /// active, suspended or closed.
    pub status: String,
    #[schema(example = "CNY")]
    pub currency: String,
}

impl From<&Institution> for InstitutionView {
    fn from(i: &Institution) -> Self {
        InstitutionView {
            id: i.id.to_string(),
            name: i.name.clone(),
            licence_no: i.licence_no.clone(),
            jurisdiction: i.jurisdiction.to_string(),
            mode: code(&i.mode),
            category: code(&i.category),
            status: code(&i.status),
            currency: i.currency.code().to_string(),
        }
    }
}

/// Cursor paging: pass `next_cursor` back as `cursor` until it is null.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Opaque: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500; default 50.
    pub limit: Option<u32>,
}

impl PageParams {
    pub fn limit(&self) -> Result<usize, crate::http::problem::ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n @ 1..=500) => Ok(n as usize),
            Some(n) => Err(crate::http::problem::ApiError::invalid(
                "limit",
                format!("limit {n} is outside 1 to 500"),
            )),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstitutionPage {
    pub items: Vec<InstitutionView>,
    pub next_cursor: Option<String>,
}

/// What families are owed against what backs it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Figures {
    /// Prepaid tuition not yet earned, plus approved refunds not yet paid.
    #[schema(example = "125000.00")]
    pub owed_to_families: String,
    pub prepaid: String,
    pub refund_payable: String,
    /// The supervised account, as the books have it.
    pub escrow: String,
    /// The risk deposit, as the books have it.
    pub deposit: String,
    pub held_by_institution: String,
    pub releasable: String,
}

/// Coverage, the one definition (README, "Coverage"): what the banks'
/// latest closings of the supervised accounts hold, less releases in
/// flight, over what families are owed the day those closings cover.
#[derive(Debug, Serialize, ToSchema)]
pub struct CoverageView {
    /// The day assessed.
    pub as_of: NaiveDate,
    /// held / owed, four decimals, rounded down; null when nothing is owed
    /// or the banks have not confirmed it.
    #[schema(example = "0.8753")]
    pub ratio: Option<String>,
    /// The banks' closings less releases in flight; null when unconfirmed.
    pub held: Option<String>,
    /// Unearned tuition plus approved, unpaid refunds on `owed_on`.
    pub owed: Option<String>,
    /// The day the closings cover (what is owed is read on it).
    pub owed_on: Option<NaiveDate>,
    /// Why the banks have not confirmed it (`no_supervised_account`,
    /// `no_bank_statement`), when they have not.
    pub unconfirmed: Option<String>,
}

impl CoverageView {
    pub fn of(c: &crate::app::oversight::CoverageOf, as_of: NaiveDate, currency: Currency) -> Self {
        let wide = |v: i128| {
            i64::try_from(v)
                .map(|v| money(v, currency))
                .unwrap_or_else(|_| v.to_string())
        };
        match c {
            Ok(c) => CoverageView {
                as_of,
                ratio: c
                    .basis_points()
                    .and_then(|bp| i64::try_from(bp).ok())
                    .map(|bp| Decimal::new(bp, 4).to_string()),
                held: Some(wide(c.held_minor())),
                owed: Some(wide(c.owed_minor())),
                owed_on: Some(c.owed_on),
                unconfirmed: None,
            },
            Err(why) => CoverageView {
                as_of,
                ratio: None,
                held: None,
                owed: None,
                owed_on: None,
                unconfirmed: Some(why.code().to_string()),
            },
        }
    }
}

impl From<&BalanceSheet> for Figures {
    fn from(s: &BalanceSheet) -> Self {
        let c = s.currency;
        Figures {
            owed_to_families: money(s.owed_to_families_minor(), c),
            prepaid: money(s.prepaid_minor(), c),
            refund_payable: money(s.balance("refund_payable"), c),
            escrow: money(s.escrow_minor(), c),
            deposit: money(s.deposit_minor(), c),
            held_by_institution: money(s.balance("held_by_institution"), c),
            releasable: money(s.balance("releasable"), c),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    #[schema(example = "escrow_cash")]
    pub account: String,
    /// asset or liability.
    pub account_type: String,
    /// Posted balance on the account's normal side.
    pub balance: String,
    /// Balance less pending outflows.
    pub available: String,
    pub posted_debits: String,
    pub posted_credits: String,
    pub pending_debits: String,
    pub pending_credits: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalancesView {
    pub institution: String,
    pub currency: String,
    /// The instant asked for; null for now.
    pub as_of: Option<DateTime<Utc>>,
    pub figures: Figures,
    pub accounts: Vec<AccountView>,
}

impl From<&BalanceSheet> for BalancesView {
    fn from(s: &BalanceSheet) -> Self {
        let c = s.currency;
        BalancesView {
            institution: s.institution.to_string(),
            currency: c.code().to_string(),
            as_of: s.as_of,
            figures: Figures::from(s),
            accounts: s
                .accounts
                .iter()
                .map(|a| AccountView {
                    account: a.account.clone(),
                    account_type: code(&a.account_type),
                    balance: money(a.balance_minor, c),
                    available: money(a.available_minor, c),
                    posted_debits: money(a.totals.posted_debits_minor, c),
                    posted_credits: money(a.totals.posted_credits_minor, c),
                    pending_debits: money(a.totals.pending_debits_minor, c),
                    pending_credits: money(a.totals.pending_credits_minor, c),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PostingView {
    pub account: String,
    /// debit or credit.
    pub side: String,
    pub amount: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    pub institution: String,
    /// Position in the institution's hash chain, from 1.
    pub seq: i64,
    /// The caller's id for the request (the Idempotency-Key over HTTP).
    pub client_id: String,
    #[schema(example = "tuition_paid")]
    pub kind: String,
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub external_ref: Option<String>,
    pub enrollment: Option<String>,
    pub hours: Option<u32>,
    /// The entry this one confirms, voids or reverses.
    pub refers_to_seq: Option<i64>,
    pub rule_pack: Option<String>,
    /// Caps the rule pack flags without rejecting.
    pub flags: Vec<String>,
    pub postings: Vec<PostingView>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&Entry> for EntryView {
    fn from(e: &Entry) -> Self {
        EntryView {
            institution: e.institution.to_string(),
            seq: e.seq,
            client_id: e.client_id.to_string(),
            kind: code(&e.kind),
            currency: e.currency.code().to_string(),
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
            external_ref: e.external_ref.clone(),
            enrollment: e.enrollment.as_ref().map(|x| x.to_string()),
            hours: e.hours,
            refers_to_seq: e.refers_to_seq,
            rule_pack: e.rule_pack.clone(),
            flags: e.flags.clone(),
            postings: e
                .postings
                .iter()
                .map(|p| PostingView {
                    account: p.account.to_string(),
                    side: code(&p.side),
                    amount: money(p.amount.minor(), e.currency),
                })
                .collect(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPage {
    pub items: Vec<EntryView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentView {
    pub institution: String,
    pub id: String,
    pub student_ref: String,
    pub hours_bought: u32,
    pub bonus_hours: u32,
    pub price: String,
    pub currency: String,
    pub course_start: NaiveDate,
    pub course_end: NaiveDate,
}

impl From<&Enrollment> for EnrollmentView {
    fn from(e: &Enrollment) -> Self {
        EnrollmentView {
            institution: e.institution.to_string(),
            id: e.id.to_string(),
            student_ref: e.student_ref.clone(),
            hours_bought: e.hours_bought,
            bonus_hours: e.bonus_hours,
            price: money(e.price.minor(), e.currency),
            currency: e.currency.code().to_string(),
            course_start: e.course_start,
            course_end: e.course_end,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentPage {
    pub items: Vec<EnrollmentView>,
    pub next_cursor: Option<String>,
}

/// Risk evidence on the wire: figures the engine keeps in minor units
/// (`"minor": 178978`) become decimal strings (`"amount": "1789.78"`), like
/// every amount this API gives out.
pub fn evidence_json(value: serde_json::Value, currency: Currency) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| evidence_json(v, currency))
                .collect(),
        ),
        Value::Object(mut fields) => {
            if let Some(minor) = fields.get("minor").and_then(Value::as_i64) {
                fields.remove("minor");
                fields.insert("amount".into(), Value::String(money(minor, currency)));
            }
            Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, evidence_json(v, currency)))
                    .collect(),
            )
        }
        other => other,
    }
}
