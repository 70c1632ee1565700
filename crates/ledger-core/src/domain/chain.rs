//! The per-institution hash chain and the canonical encodings it hashes.
//!
//! Canonical encoding (version 1): a sequence of fields, each written as its
//! UTF-8 byte length in decimal, a ':' and the bytes, so no field can bleed
//! into the next. Absent optional fields are the empty string; times are
//! microseconds since the Unix epoch in decimal; amounts are minor units in
//! decimal. An entry's hash is SHA-256 over `prev_hash` (hex) followed by the
//! entry's encoding; the first entry's `prev_hash` is 64 zeros.
//!
//! Record chains (version 1) cover what is not an entry: per institution,
//! each enrollment's contract (its counters are checked against the entries
//! instead), each bank statement (with its lines, through the statement's
//! content hash), each refund's fixed terms (its payee), each refund event
//! and each payee version, each lesson record, its steps and each freeze,
//! each maker–checker request naming the institution and its decision;
//! and, deployment-wide, the audit log. A record's
//! digest is SHA-256 (hex) over its encoding (`enrollment/v1`,
//! `statement/v1`, `refund/v1`, `refund_event/v1`, `payee/v1`, `lesson/v1`,
//! `lesson_event/v1`, `freeze/v1`, `approval/v1`, `approval_decision/v1`,
//! `audit/v1`, fields as below); a link's
//! hash is SHA-256 over the previous link's hash (hex) followed by the
//! encoding of `link/v1`, the scope (the institution id, or `audit`), the
//! link's seq, the record's kind, its key and its digest. Dates are
//! `YYYY-MM-DD`; booleans `true`/`false`.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use sha2::{Digest, Sha256};

use crate::domain::entry::{Entry, Request};
use crate::domain::feeds::FeedStatement;
use crate::domain::refunds::{Payee, Refund};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub(crate) struct Encoder(pub(crate) Vec<u8>);

impl Encoder {
    pub(crate) fn field(&mut self, value: &str) -> &mut Self {
        self.0.extend_from_slice(value.len().to_string().as_bytes());
        self.0.push(b':');
        self.0.extend_from_slice(value.as_bytes());
        self
    }
    pub(crate) fn opt(&mut self, value: Option<impl ToString>) -> &mut Self {
        let text = value.map(|v| v.to_string()).unwrap_or_default();
        self.field(&text)
    }
}

/// The canonical bytes of an entry (everything but its own hash).
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut e = Encoder(Vec::with_capacity(256));
    e.field("entry/v1")
        .field(entry.institution.as_str())
        .field(&entry.seq.to_string())
        .field(entry.client_id.as_str())
        .field(entry.kind.code())
        .field(entry.currency.code())
        .field(&entry.occurred_at.timestamp_micros().to_string())
        .field(&entry.recorded_at.timestamp_micros().to_string())
        .opt(entry.external_ref.as_deref())
        .opt(entry.enrollment.as_ref())
        .opt(entry.hours)
        .opt(entry.refers_to_seq)
        .opt(entry.rule_pack.as_deref())
        .field(&entry.flags.join(","))
        .field(&entry.request_hash)
        .field(&entry.postings.len().to_string());
    for p in &entry.postings {
        e.field(&p.account.to_string())
            .field(p.side.code())
            .field(&p.amount.minor().to_string());
    }
    e.0
}

pub fn entry_hash(prev_hash: &str, entry: &Entry) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(encode_entry(entry));
    hex::encode(hasher.finalize())
}

/// SHA-256 over a request's content (not its recording): equal for a replay.
pub fn request_hash(request: &Request) -> String {
    let command = serde_json::to_string(&request.command)
        .expect("commands are plain data and always serialize");
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("request/v1")
        .field(request.institution.as_str())
        .field(request.client_id.as_str())
        .field(request.currency.code())
        .field(&request.occurred_at.timestamp_micros().to_string())
        .opt(request.external_ref.as_deref())
        .field(&command);
    hex::encode(Sha256::digest(&e.0))
}

fn digest(e: &Encoder) -> String {
    hex::encode(Sha256::digest(&e.0))
}

/// A bank statement as stored: what the bank said (its lines, through
/// [`FeedStatement::content_hash`]) and where it came from.
pub fn statement_digest(
    institution: &str,
    bank: &str,
    s: &FeedStatement,
    received_at_micros: i64,
) -> String {
    let mut e = Encoder(Vec::with_capacity(256));
    e.field("statement/v1")
        .field(institution)
        .field(bank)
        .field(&s.account_no)
        .field(&s.key())
        .field(&s.format)
        .field(&s.statement_id)
        .opt(s.sequence.as_deref())
        .field(if s.provisional { "true" } else { "false" })
        .field(&s.lines.len().to_string())
        .field(&s.content_hash())
        .field(&s.file_sha256)
        .field(&s.message.to_string())
        .field(&received_at_micros.to_string());
    digest(&e)
}

/// An enrollment's contract as stored (not its counters, which move).
pub struct EnrollmentFields<'a> {
    pub institution: &'a str,
    pub enrollment: &'a str,
    pub student_ref: &'a str,
    pub hours_bought: i64,
    pub bonus_hours: i64,
    pub price_minor: i64,
    pub currency: &'a str,
    pub course_start: NaiveDate,
    pub course_end: NaiveDate,
    pub created_at_micros: i64,
}

/// The digest of an enrollment's contract as registered at
/// `created_at_micros` (both dialects link it the same way).
pub fn enrollment_record_digest(
    e: &crate::domain::registry::Enrollment,
    created_at_micros: i64,
) -> String {
    enrollment_digest(&EnrollmentFields {
        institution: e.institution.as_str(),
        enrollment: e.id.as_str(),
        student_ref: &e.student_ref,
        hours_bought: i64::from(e.hours_bought),
        bonus_hours: i64::from(e.bonus_hours),
        price_minor: e.price.minor(),
        currency: e.currency.code(),
        course_start: e.course_start,
        course_end: e.course_end,
        created_at_micros,
    })
}

pub fn enrollment_digest(f: &EnrollmentFields<'_>) -> String {
    let mut e = Encoder(Vec::with_capacity(192));
    e.field("enrollment/v1")
        .field(f.institution)
        .field(f.enrollment)
        .field(f.student_ref)
        .field(&f.hours_bought.to_string())
        .field(&f.bonus_hours.to_string())
        .field(&f.price_minor.to_string())
        .field(f.currency)
        .field(&date(f.course_start))
        .field(&date(f.course_end))
        .field(&f.created_at_micros.to_string());
    digest(&e)
}

/// The key of a statement's link: bank, account number and statement key.
pub fn statement_key(bank: &str, account_no: &str, key: &str) -> String {
    format!("{bank}/{account_no}/{key}")
}

/// A refund's terms, fixed when it is requested: whom it pays, how much.
pub fn refund_digest(r: &Refund) -> String {
    let mut e = Encoder(Vec::with_capacity(256));
    e.field("refund/v1")
        .field(r.institution.as_str())
        .field(r.id.as_str())
        .field(r.enrollment.as_str())
        .opt(r.amount_minor)
        .field(&r.payee.name)
        .field(&r.payee.account)
        .field(&r.payee.bank)
        .opt(r.reason.as_deref())
        .field(&r.requested_by)
        .field(&date(r.requested_on))
        .field(&date(r.answer_by));
    digest(&e)
}

/// One move of a refund (its trail is append-only).
#[allow(clippy::too_many_arguments)]
pub fn refund_event_digest(
    institution: &str,
    refund_id: &str,
    seq: i64,
    at_micros: i64,
    actor: &str,
    state: &str,
    detail: Option<&str>,
) -> String {
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("refund_event/v1")
        .field(institution)
        .field(refund_id)
        .field(&seq.to_string())
        .field(&at_micros.to_string())
        .field(actor)
        .field(state)
        .opt(detail);
    digest(&e)
}

/// The key of a refund event's link.
pub fn refund_event_key(refund_id: &str, seq: i64) -> String {
    format!("{refund_id}#{seq}")
}

/// One version of where an institution's releases are paid.
pub fn payee_digest(
    institution: &str,
    version: i64,
    payee: &Payee,
    set_by: &str,
    set_at_micros: i64,
) -> String {
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("payee/v1")
        .field(institution)
        .field(&version.to_string())
        .field(&payee.name)
        .field(&payee.account)
        .field(&payee.bank)
        .field(set_by)
        .field(&set_at_micros.to_string());
    digest(&e)
}

/// A lesson record as the institution recorded it (its trail is chained
/// step by step).
#[allow(clippy::too_many_arguments)]
pub fn lesson_digest(
    institution: &str,
    lesson: &str,
    enrollment: &str,
    hours: i64,
    occurred_on: NaiveDate,
    recorded_by: &str,
    recorded_at_micros: i64,
    answer_by: NaiveDate,
) -> String {
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("lesson/v1")
        .field(institution)
        .field(lesson)
        .field(enrollment)
        .field(&hours.to_string())
        .field(&occurred_on.to_string())
        .field(recorded_by)
        .field(&recorded_at_micros.to_string())
        .field(&answer_by.to_string());
    digest(&e)
}

/// One step of a lesson record's trail: who, when, what, why.
#[allow(clippy::too_many_arguments)]
pub fn lesson_event_digest(
    institution: &str,
    lesson: &str,
    seq: i64,
    at_micros: i64,
    on_day: NaiveDate,
    actor: &str,
    state: &str,
    reason: Option<&str>,
) -> String {
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("lesson_event/v1")
        .field(institution)
        .field(lesson)
        .field(&seq.to_string())
        .field(&at_micros.to_string())
        .field(&on_day.to_string())
        .field(actor)
        .field(state)
        .opt(reason);
    digest(&e)
}

/// The key of a lesson step's link.
pub fn lesson_event_key(lesson: &str, seq: i64) -> String {
    format!("{lesson}#{seq}")
}

/// An officer's freeze of an institution's releases, or its lift.
pub fn freeze_digest(
    institution: &str,
    seq: i64,
    frozen: bool,
    reason: &str,
    actor: &str,
    at_micros: i64,
) -> String {
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("freeze/v1")
        .field(institution)
        .field(&seq.to_string())
        .field(if frozen { "freeze" } else { "lift" })
        .field(reason)
        .field(actor)
        .field(&at_micros.to_string());
    digest(&e)
}

/// A maker–checker request as asked (its decision is a record of its own).
pub fn approval_digest(institution: &str, a: &crate::domain::approvals::Approval) -> String {
    let mut e = Encoder(Vec::with_capacity(256));
    e.field("approval/v1")
        .field(institution)
        .field(&a.id)
        .field(a.kind.code())
        .field(a.jurisdiction.as_str())
        .field(&a.subject)
        .field(&a.payload)
        .field(&a.summary)
        .field(&a.requested_by)
        .field(&a.requested_token)
        .field(&a.requested_name)
        .field(
            &truncate_to_micros(a.requested_at)
                .timestamp_micros()
                .to_string(),
        );
    digest(&e)
}

/// A request's one decision: approved or rejected, by whom, when, why.
pub fn approval_decision_digest(
    institution: &str,
    approval: &str,
    d: &crate::domain::approvals::Decision,
) -> String {
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("approval_decision/v1")
        .field(institution)
        .field(approval)
        .field(if d.approved { "approved" } else { "rejected" })
        .field(&d.by)
        .field(&d.token)
        .opt(d.reason.as_deref())
        .field(&truncate_to_micros(d.at).timestamp_micros().to_string());
    digest(&e)
}

/// One record of the audit log, as stored.
pub struct AuditFields<'a> {
    pub seq: i64,
    pub at_micros: i64,
    pub request_id: &'a str,
    pub token_id: Option<&'a str>,
    pub role: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: i64,
    pub outcome: &'a str,
}

pub fn audit_digest(a: &AuditFields<'_>) -> String {
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("audit/v1")
        .field(&a.seq.to_string())
        .field(&a.at_micros.to_string())
        .field(a.request_id)
        .opt(a.token_id)
        .opt(a.role)
        .field(a.method)
        .field(a.path)
        .field(&a.status.to_string())
        .field(a.outcome);
    digest(&e)
}

/// The scope of the audit log's chain.
pub const AUDIT_SCOPE: &str = "audit";

/// A record link's hash: the previous link's hash and this link's content.
pub fn link_hash(
    prev_hash: &str,
    scope: &str,
    seq: i64,
    kind: &str,
    key: &str,
    record_digest: &str,
) -> String {
    let mut e = Encoder(Vec::with_capacity(192));
    e.field("link/v1")
        .field(scope)
        .field(&seq.to_string())
        .field(kind)
        .field(key)
        .field(record_digest);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(&e.0);
    hex::encode(hasher.finalize())
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}
