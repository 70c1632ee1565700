//! Every rule the ledger can refuse on, as one enum with stable codes.
//!
//! Precedence when several rules fail at once: the request is checked in the
//! order parse (ids, amounts, currency) → references (institution, enrollment,
//! entry, account) → idempotency (`exists_with_different_fields`) → the
//! operation's own rules (hours, caps, refundable) → floors
//! (`would_overdraw`), and the first failure is reported.

use crate::domain::money::Currency;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("amount {text:?} is not a decimal number (expected digits with an optional '.', e.g. \"1234.50\")")]
    InvalidAmount { text: String },
    #[error("amount {amount} must be positive")]
    AmountMustBePositive { amount: String },
    #[error("amount {amount} has more decimal places than {currency} allows ({allowed})")]
    TooManyDecimals {
        amount: String,
        currency: Currency,
        allowed: u32,
    },
    #[error("amount is out of range")]
    AmountOverflow,
    #[error("currency {currency:?} is not supported (supported: CNY, HKD, USD)")]
    UnsupportedCurrency { currency: String },
    #[error("currency {found} does not match the account's currency {expected}")]
    CurrencyMismatch { expected: Currency, found: Currency },
    #[error("{what} {value:?} is not a valid identifier: {reason}")]
    InvalidId {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("entry is unbalanced: debits {debits_minor} != credits {credits_minor} (minor units)")]
    EntryUnbalanced {
        debits_minor: i64,
        credits_minor: i64,
    },
    #[error("entry has no postings")]
    EntryHasNoPostings,
    #[error("entry posts to {account} on both sides")]
    AccountsMustDiffer { account: String },
    #[error("hours {hours} must be positive")]
    HoursMustBePositive { hours: i64 },
    #[error("enrollment is invalid: {reason}")]
    InvalidEnrollment { reason: String },
    #[error("institution is invalid: {reason}")]
    InvalidInstitution { reason: String },
    #[error("rule pack is invalid: {reason}")]
    InvalidRulePack { reason: String },
    #[error("account {account:?} is not an account of the chart")]
    UnknownAccountCode { account: String },
    #[error("institution {institution} has no account {account}")]
    UnknownAccount {
        institution: String,
        account: String,
    },
    #[error("institution {institution} does not exist")]
    UnknownInstitution { institution: String },
    #[error("jurisdiction {code} does not exist")]
    UnknownJurisdiction { code: String },
    #[error("institution {institution} has no enrollment {enrollment}")]
    UnknownEnrollment {
        institution: String,
        enrollment: String,
    },
    #[error("institution {institution} has no entry with client id {client_id}")]
    UnknownEntry {
        institution: String,
        client_id: String,
    },
    #[error("{what} {id} already exists with different fields")]
    ExistsWithDifferentFields { what: &'static str, id: String },
    #[error("{account} would go below zero: available {available_minor}, requested {requested_minor} (minor units)")]
    WouldOverdraw {
        account: String,
        available_minor: i64,
        requested_minor: i64,
    },
    #[error("enrollment {enrollment} has {remaining} class hours left, {requested} requested")]
    EnrollmentHoursExhausted {
        enrollment: String,
        remaining: u32,
        requested: u32,
    },
    #[error("charge breaks the {rule} cap of rule pack {rule_pack}: {detail}")]
    ChargeExceedsCap {
        rule: &'static str,
        rule_pack: String,
        detail: String,
    },
    #[error("payment of {amount_minor} would bring enrollment {enrollment} above its price: {paid_minor} of {price_minor} already paid (minor units)")]
    PaymentExceedsPrice {
        enrollment: String,
        amount_minor: i64,
        paid_minor: i64,
        price_minor: i64,
    },
    #[error("refund of {requested_minor} exceeds the refundable {refundable_minor} of enrollment {enrollment} (minor units)")]
    RefundExceedsRefundable {
        enrollment: String,
        requested_minor: i64,
        refundable_minor: i64,
    },
    #[error("entry {client_id} is not pending")]
    NotPending { client_id: String },
    #[error("pending entry {client_id} was already {outcome}")]
    AlreadyResolved {
        client_id: String,
        outcome: &'static str,
    },
    #[error("entry {client_id} cannot be reversed: {reason}")]
    CannotReverse { client_id: String, reason: String },
    #[error("institution {institution} did not exist at {at} (created {created_at})")]
    BeforeInstitutionExisted {
        institution: String,
        at: String,
        created_at: String,
    },
    #[error("bank {bank} is not registered")]
    UnknownBank { bank: String },
    #[error("account {account} at bank {bank} is not a registered supervised account")]
    UnknownBankAccount { bank: String, account: String },
    #[error("account {account} at bank {bank} already belongs to institution {institution}")]
    BankAccountTaken {
        bank: String,
        account: String,
        institution: String,
    },
    #[error("institution {institution} has no alert {key}")]
    UnknownAlert { institution: String, key: String },
    #[error("an alert that is {from} cannot be {action}")]
    InvalidAlertTransition {
        from: &'static str,
        action: &'static str,
    },
    #[error("{what} is already claimed by another reconciliation match; {by} cannot claim it")]
    AlreadyClaimed { what: String, by: String },
    #[error("institution {institution} has no reconciliation suggestion {match_id}")]
    UnknownSuggestion {
        institution: String,
        match_id: String,
    },
    #[error("suggestion {match_id} was already decided ({status})")]
    SuggestionDecided { match_id: String, status: String },
    #[error("{op} needs the field {field}")]
    MissingField { op: String, field: &'static str },
    #[error("field {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("institution {institution} is {status} and takes no new entries")]
    InstitutionNotActive { institution: String, status: String },
    #[error("institution {institution} has no lesson record {lesson}")]
    UnknownLesson { institution: String, lesson: String },
    #[error("the lesson record cannot be {step}: it is {state} ({reason})")]
    LessonStepRefused {
        step: &'static str,
        state: &'static str,
        reason: String,
    },
}

/// What kind of refusal a rule is, for an edge to answer by: HTTP maps each
/// kind to a status, the command line to an exit code. Every rule has one,
/// and the match in [`LedgerError::kind`] is exhaustive, so a new rule
/// cannot reach an edge unclassified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule of the books.
    Invalid,
    /// Something it names does not exist (or is out of the caller's sight).
    NotFound,
    /// It clashes with what is already recorded: a different request under
    /// the same id, a decision already taken, a claim already held.
    Conflict,
    /// The caller may not do this.
    Forbidden,
}

impl LedgerError {
    /// The kind of refusal, for the edges.
    pub fn kind(&self) -> ErrorKind {
        use LedgerError::*;
        match self {
            UnknownInstitution { .. }
            | UnknownEnrollment { .. }
            | UnknownEntry { .. }
            | UnknownJurisdiction { .. }
            | UnknownAlert { .. }
            | UnknownSuggestion { .. }
            | UnknownBank { .. }
            | UnknownBankAccount { .. }
            | UnknownAccount { .. }
            | UnknownLesson { .. } => ErrorKind::NotFound,
            ExistsWithDifferentFields { .. }
            | AlreadyResolved { .. }
            | AlreadyClaimed { .. }
            | SuggestionDecided { .. }
            | NotPending { .. }
            | BankAccountTaken { .. }
            | InvalidAlertTransition { .. }
            | LessonStepRefused { .. } => ErrorKind::Conflict,
            InvalidAmount { .. }
            | AmountMustBePositive { .. }
            | TooManyDecimals { .. }
            | AmountOverflow
            | UnsupportedCurrency { .. }
            | CurrencyMismatch { .. }
            | InvalidId { .. }
            | EntryUnbalanced { .. }
            | EntryHasNoPostings
            | AccountsMustDiffer { .. }
            | HoursMustBePositive { .. }
            | InvalidEnrollment { .. }
            | InvalidInstitution { .. }
            | InvalidRulePack { .. }
            | UnknownAccountCode { .. }
            | WouldOverdraw { .. }
            | EnrollmentHoursExhausted { .. }
            | ChargeExceedsCap { .. }
            | PaymentExceedsPrice { .. }
            | RefundExceedsRefundable { .. }
            | CannotReverse { .. }
            | BeforeInstitutionExisted { .. }
            | InstitutionNotActive { .. }
            | MissingField { .. }
            | InvalidField { .. } => ErrorKind::Invalid,
        }
    }

    /// Stable snake_case code for API clients; never changes once published.
    pub fn code(&self) -> &'static str {
        use LedgerError::*;
        match self {
            InvalidAmount { .. } => "invalid_amount",
            AmountMustBePositive { .. } => "amount_must_be_positive",
            TooManyDecimals { .. } => "too_many_decimals",
            AmountOverflow => "amount_overflow",
            UnsupportedCurrency { .. } => "unsupported_currency",
            CurrencyMismatch { .. } => "currency_mismatch",
            InvalidId { .. } => "invalid_id",
            EntryUnbalanced { .. } => "entry_unbalanced",
            EntryHasNoPostings => "entry_has_no_postings",
            AccountsMustDiffer { .. } => "accounts_must_differ",
            HoursMustBePositive { .. } => "hours_must_be_positive",
            InvalidEnrollment { .. } => "invalid_enrollment",
            InvalidInstitution { .. } => "invalid_institution",
            InvalidRulePack { .. } => "invalid_rule_pack",
            UnknownAccountCode { .. } => "unknown_account_code",
            UnknownAccount { .. } => "unknown_account",
            UnknownInstitution { .. } => "unknown_institution",
            UnknownJurisdiction { .. } => "unknown_jurisdiction",
            UnknownEnrollment { .. } => "unknown_enrollment",
            UnknownEntry { .. } => "unknown_entry",
            ExistsWithDifferentFields { .. } => "exists_with_different_fields",
            WouldOverdraw { .. } => "would_overdraw",
            EnrollmentHoursExhausted { .. } => "enrollment_hours_exhausted",
            ChargeExceedsCap { .. } => "charge_exceeds_cap",
            PaymentExceedsPrice { .. } => "payment_exceeds_price",
            RefundExceedsRefundable { .. } => "refund_exceeds_refundable",
            NotPending { .. } => "not_pending",
            AlreadyResolved { .. } => "already_resolved",
            CannotReverse { .. } => "cannot_reverse",
            BeforeInstitutionExisted { .. } => "before_institution_existed",
            InstitutionNotActive { .. } => "institution_not_active",
            MissingField { .. } => "missing_field",
            UnknownSuggestion { .. } => "unknown_suggestion",
            SuggestionDecided { .. } => "suggestion_decided",
            AlreadyClaimed { .. } => "already_claimed",
            UnknownAlert { .. } => "unknown_alert",
            InvalidAlertTransition { .. } => "invalid_alert_transition",
            UnknownBank { .. } => "unknown_bank",
            UnknownBankAccount { .. } => "unknown_bank_account",
            BankAccountTaken { .. } => "bank_account_taken",
            InvalidField { .. } => "invalid_field",
            UnknownLesson { .. } => "unknown_lesson",
            LessonStepRefused { .. } => "lesson_step_refused",
        }
    }
}
