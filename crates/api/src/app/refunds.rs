//! The refund workflow's decisions: a family's request, an officer's
//! approval or refusal (deemed approval when unanswered), the refund into
//! the books and so the outbox, and the other ways an approved refund is
//! settled when escrow cannot pay it. Every step is safe to repeat: entries
//! carry client ids fixed by the refund (a repeat is a replay) and state
//! moves are conditional (a repeat moves nothing).

use chrono::NaiveDate;
use ledger_core::domain::refunds::{Payee, Refund, RefundState};
use ledger_core::{
    Amount, ClientId, Command, Entry, Institution, RefundId, RefundSource, Request, Store,
};

use crate::app::{AppError, AppResult};

/// Working days by the rule pack's calendar: weekends, the pack's public
/// holidays and its make-up working days.
fn working_days_after(
    rules: &ledger_core::domain::policy::ResolvedRules,
    day: NaiveDate,
    n: u32,
) -> AppResult<NaiveDate> {
    rules
        .params
        .calendar()?
        .add_working_days(day, n)
        .ok_or_else(|| {
            AppError::invalid(
                "calendar_exhausted",
                "day",
                format!("{n} working days after {day} run off the rule pack's calendar"),
            )
        })
}

/// The day a request is deemed approved if nobody answers.
pub async fn answer_by(
    store: &Store,
    institution: &Institution,
    day: NaiveDate,
) -> AppResult<NaiveDate> {
    let rules = store.rules_for(institution, day).await?;
    let n = rules.params.refund_answer_working_days.unwrap_or(5);
    working_days_after(&rules, day, n)
}

/// A refund's id, derived from who asked and their Idempotency-Key: the
/// same request always names the same refund, so no retry can make two.
/// 80 bits of SHA-256, "RF" and 20 hex digits.
pub fn refund_id_for(token_id: &str, key: &str) -> AppResult<RefundId> {
    Ok(RefundId::parse(format!(
        "RF{}",
        request_key(token_id, key)[..20].to_ascii_uppercase()
    ))?)
}

/// What names one caller's request across its attempts: the SHA-256 of
/// the caller's token id and the request's Idempotency-Key, in hex. Records
/// that are not ledger entries (events) keep it, so a retry finds them.
pub fn request_key(token_id: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(
        Sha256::new()
            .chain_update(token_id.as_bytes())
            .chain_update(b"\0")
            .chain_update(key.as_bytes())
            .finalize(),
    )
}

/// What an entry moved: every posting of a refund step moves the same
/// amount.
fn postings_amount(entry: &Entry) -> AppResult<Amount> {
    let minor = entry.postings.first().map_or(0, |p| p.amount.minor());
    Ok(Amount::from_minor(minor)?)
}

/// What became of an approved refund when the workflow took it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instructed {
    /// In the books and the outbox: the bank will be told to pay.
    Yes,
    /// The books refused the refund itself (nothing left to refund): it is
    /// declined, with the reason on its trail.
    DeclinedByBooks,
    /// Owed, but it cannot be paid from escrow now (escrow does not hold
    /// the money): left approved, to be tried again on the next pass.
    SetAside { reason: String },
}

/// Approved → instructed: the refund enters the books (approved, then the
/// payment instructed from escrow, pending) and so the outbox.
pub async fn instruct(store: &Store, refund: &Refund, today: NaiveDate) -> AppResult<Instructed> {
    instruct_from(store, refund, today, RefundSource::Escrow).await
}

/// How an approved refund escrow could not pay is settled another way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The institution paid the family itself; `bank_ref` is the bank's
    /// reference of that payment.
    PaidByInstitution { bank_ref: String },
    /// An officer decided to pay it from the risk deposit: instructed to
    /// the bank from the deposit account.
    FromDeposit,
}

/// Settles an approved refund that escrow cannot pay (see
/// [`Instructed::SetAside`]): its payment entry takes the client id the
/// escrow instruction would have had, so a refund is paid at most once
/// whichever way it goes.
async fn settle_set_aside(
    store: &Store,
    refund: &Refund,
    how: Settlement,
    actor: &str,
    today: NaiveDate,
) -> AppResult<Instructed> {
    let bank_ref = match how {
        Settlement::FromDeposit => {
            return instruct_from(store, refund, today, RefundSource::Deposit).await
        }
        Settlement::PaidByInstitution { bank_ref } => bank_ref,
    };
    let institution = store.institution(&refund.institution).await?;
    let Some(approved) = approval_entry(store, refund, &institution).await? else {
        return Ok(Instructed::DeclinedByBooks);
    };
    let paid = store
        .execute(Request {
            institution: refund.institution.clone(),
            client_id: ClientId::parse(refund.instruction_client_id())?,
            currency: institution.currency,
            occurred_at: store.now(),
            external_ref: Some(bank_ref.clone()),
            command: Command::RecordRefundPaidByInstitution {
                amount: postings_amount(&approved)?,
            },
        })
        .await;
    let paid = match paid {
        Ok(p) => p,
        Err(e) if e.rejection().is_some() => {
            return Ok(Instructed::SetAside {
                reason: format!(
                    "refund {} cannot be recorded as paid by {}: [{}] {e}",
                    refund.id,
                    institution.name,
                    e.code()
                ),
            })
        }
        Err(e) => return Err(e.into()),
    };
    store
        .move_refund(
            &refund.institution,
            refund.id.as_str(),
            RefundState::Approved,
            RefundState::Paid,
            actor,
            Some(&format!(
                "paid by {} itself ({} {}), bank reference {bank_ref}",
                institution.name,
                ledger_core::domain::money::format_minor(
                    postings_amount(&paid)?.minor(),
                    institution.currency
                ),
                institution.currency.code()
            )),
            None,
            Some(paid.client_id.as_str()),
        )
        .await?;
    Ok(Instructed::Yes)
}

/// The refund's approval in the books (a replay after the first time), or
/// none when the books refuse it: then the refund is declined, with why.
async fn approval_entry(
    store: &Store,
    refund: &Refund,
    institution: &Institution,
) -> AppResult<Option<Entry>> {
    // The entries occur when the refund was approved: a step repeated after
    // a crash, however much later, is then the same request (a replay).
    let approved_at = store
        .refund_trail(&refund.institution, refund.id.as_str())
        .await?
        .into_iter()
        .rev()
        .find(|e| e.state == RefundState::Approved.code())
        .map_or_else(|| store.now(), |e| e.at);
    let approved = store
        .execute(Request {
            institution: refund.institution.clone(),
            client_id: ClientId::parse(refund.approval_client_id())?,
            currency: institution.currency,
            occurred_at: approved_at,
            external_ref: Some(refund.id.to_string()),
            command: Command::ApproveRefund {
                enrollment: refund.enrollment.clone(),
                amount: refund.amount_minor.map(Amount::from_minor).transpose()?,
            },
        })
        .await;
    match approved {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.rejection().is_some() => {
            store
                .move_refund(
                    &refund.institution,
                    refund.id.as_str(),
                    RefundState::Approved,
                    RefundState::Declined,
                    "ledger",
                    Some(&format!("the books refused the refund: [{}] {e}", e.code())),
                    None,
                    None,
                )
                .await?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Approved → instructed, paid from `source`.
async fn instruct_from(
    store: &Store,
    refund: &Refund,
    today: NaiveDate,
    source: RefundSource,
) -> AppResult<Instructed> {
    let institution = store.institution(&refund.institution).await?;
    let Some(approved) = approval_entry(store, refund, &institution).await? else {
        return Ok(Instructed::DeclinedByBooks);
    };
    let approved_at = approved.occurred_at;
    let request = |client_id: String, command: Command| -> AppResult<Request> {
        Ok(Request {
            institution: refund.institution.clone(),
            client_id: ClientId::parse(client_id)?,
            currency: institution.currency,
            occurred_at: approved_at,
            external_ref: Some(refund.id.to_string()),
            command,
        })
    };
    let payment = store
        .execute(request(
            refund.instruction_client_id(),
            Command::InstructRefundPayment {
                amount: postings_amount(&approved)?,
                source,
            },
        )?)
        .await;
    let payment = match payment {
        Ok(p) => p,
        Err(e) if e.rejection().is_some() => {
            let owed = ledger_core::domain::money::format_minor(
                postings_amount(&approved)?.minor(),
                institution.currency,
            );
            let whose = match institution.mode {
                ledger_core::SupervisionMode::Custody => {
                    "the supervised account must be put right before it can be paid".to_string()
                }
                mode => format!(
                    "{} collects in {} mode and holds the tuition itself: it must pay the family and record it (POST /v1/refunds/{}/paid-by-institution with the bank's reference), or an officer decides to pay it from the risk deposit (POST /v1/refunds/{}/pay-from-deposit)",
                    institution.name,
                    mode.code(),
                    refund.id,
                    refund.id
                ),
            };
            let from = match source {
                RefundSource::Escrow => "escrow",
                RefundSource::Deposit => "the risk deposit",
            };
            return Ok(Instructed::SetAside {
                reason: format!(
                    "refund {} of {owed} {} is approved but {from} cannot pay it: [{}] {e}; {whose}",
                    refund.id,
                    institution.currency.code(),
                    e.code()
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let rules = store.rules_for(&institution, today).await?;
    let pay_by = working_days_after(
        &rules,
        today,
        rules.params.refund_pay_working_days.unwrap_or(15),
    )?;
    store
        .move_refund(
            &refund.institution,
            refund.id.as_str(),
            RefundState::Approved,
            RefundState::Instructed,
            "workflow",
            Some(&format!(
                "refund of {} {} owed; payment instruction {} queued for the bank",
                ledger_core::domain::money::format_minor(
                    postings_amount(&payment)?.minor(),
                    institution.currency
                ),
                institution.currency.code(),
                payment.client_id
            )),
            Some(pay_by),
            Some(payment.client_id.as_str()),
        )
        .await?;
    Ok(Instructed::Yes)
}

/// A family's refund request, as the caller sent it.
#[derive(Debug, Clone)]
pub struct RefundAsk {
    pub enrollment: String,
    /// A decimal string; `None` refunds everything not yet consumed.
    pub amount: Option<String>,
    pub payee: ledger_core::domain::refunds::Payee,
    pub reason: Option<String>,
}

/// Records a refund request against an institution the caller may act on.
/// `refund_id` follows from the caller's request ([`refund_id_for`]), so a
/// repeat whose first answer was lost finds the refund the first attempt
/// made instead of making a second; `today` is when it was accepted.
pub async fn request(
    store: &Store,
    institution: &Institution,
    ask: RefundAsk,
    refund_id: RefundId,
    requested_by: String,
    today: NaiveDate,
) -> AppResult<Refund> {
    let field = |f: &str, e: ledger_core::LedgerError| AppError::Invalid {
        code: e.code(),
        field: Some(f.to_string()),
        detail: e.to_string(),
    };
    let enrollment =
        ledger_core::EnrollmentId::parse(ask.enrollment).map_err(|e| field("enrollment", e))?;
    let amount_minor = ask
        .amount
        .as_deref()
        .map(|a| ledger_core::Amount::parse(a, institution.currency).map(|a| a.minor()))
        .transpose()
        .map_err(|e| field("amount", e))?;
    check_payee(&ask.payee, "payee.")?;
    if let Some(made) = store.refund_by_id(refund_id.as_str()).await? {
        return Ok(made);
    }
    check_refundable(store, institution, &enrollment, amount_minor).await?;
    let refund = Refund {
        institution: institution.id.clone(),
        id: refund_id,
        enrollment,
        amount_minor,
        payee: ask.payee,
        reason: ask.reason,
        requested_by,
        requested_on: today,
        answer_by: answer_by(store, institution, today).await?,
        state: RefundState::Requested,
        pay_by: None,
        instruction_id: None,
    };
    store.create_refund(&refund).await?;
    Ok(refund)
}

/// Refuses a request the books could never approve as asked: for an
/// enrollment the institution does not have, or for more than its tuition
/// paid and not yet consumed (its `prepaid` account, less what is already
/// on its way out), or for "everything" when nothing is left. Approval
/// checks it again against the books of its own day; a request is held to
/// it when made because an open request stops the enrollment's releases.
async fn check_refundable(
    store: &Store,
    institution: &Institution,
    enrollment: &ledger_core::EnrollmentId,
    amount_minor: Option<i64>,
) -> AppResult<()> {
    if store
        .enrollment_book(&institution.id, enrollment)
        .await?
        .is_none()
    {
        return Err(ledger_core::LedgerError::UnknownEnrollment {
            institution: institution.id.to_string(),
            enrollment: enrollment.to_string(),
        }
        .into());
    }
    let refundable = store
        .account(
            &institution.id,
            &ledger_core::AccountCode::Prepaid(enrollment.clone()),
        )
        .await?
        .available_minor;
    let money = |minor| ledger_core::domain::money::format_minor(minor, institution.currency);
    let refused = |detail: String| {
        Err(AppError::invalid(
            "refund_exceeds_refundable",
            "amount",
            detail,
        ))
    };
    match amount_minor {
        None if refundable <= 0 => refused(format!(
            "enrollment {enrollment} has no tuition left to refund: everything paid is consumed or already on its way back"
        )),
        Some(asked) if asked <= 0 => refused(format!(
            "amount {} is not a refund: it must be more than zero",
            money(asked)
        )),
        Some(asked) if asked > refundable => refused(format!(
            "amount {} is more than enrollment {enrollment} can get back now: {} {} (tuition paid and not yet consumed)",
            money(asked),
            money(refundable),
            institution.currency.code()
        )),
        _ => Ok(()),
    }
}

/// A refund by its id. Refund ids are ours ("RF" and hex): anything else
/// cannot exist and is not looked up.
pub async fn find(store: &Store, id: &str) -> AppResult<Refund> {
    let not_found = || AppError::not_found(format!("refund {id:?}"));
    // Anything not of our shape cannot exist and is not looked up.
    let Ok(id) = RefundId::parse(id) else {
        return Err(not_found());
    };
    store.refund_by_id(id.as_str()).await?.ok_or_else(not_found)
}

/// An officer's answer to a requested refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Decline,
}

/// Decides a requested refund. An approval takes it into the books at
/// once (or sets it aside, see [`Instructed`]); a decline needs a reason
/// (`comment`); a refund already decided is refused. Returns the refund as
/// it now stands.
pub async fn decide(
    store: &Store,
    refund: &Refund,
    decision: Decision,
    actor: &str,
    comment: Option<&str>,
    today: NaiveDate,
) -> AppResult<Refund> {
    let to = match decision {
        Decision::Approve => RefundState::Approved,
        Decision::Decline => RefundState::Declined,
    };
    let comment = crate::app::error::note("comment", comment.unwrap_or(""))?;
    let comment = comment.as_deref();
    if decision == Decision::Decline && comment.is_none() {
        // The family's money stays with the school: the family reads why.
        return Err(AppError::invalid(
            "reason_required",
            "comment",
            format!(
                "refund {} is declined with a reason: give a comment the family can read",
                refund.id
            ),
        ));
    }
    let moved = refund.state == RefundState::Requested
        && store
            .move_refund(
                &refund.institution,
                refund.id.as_str(),
                RefundState::Requested,
                to,
                actor,
                comment,
                None,
                None,
            )
            .await?;
    if !moved {
        return Err(AppError::conflict(
            "refund_already_decided",
            format!(
                "refund {} is {}, not waiting for a decision",
                refund.id,
                refund.state.code()
            ),
        ));
    }
    if decision == Decision::Approve {
        if let Some(approved) = store
            .refund(&refund.institution, refund.id.as_str())
            .await?
        {
            if approved.state == RefundState::Approved {
                instruct(store, &approved, today).await?;
            }
        }
    }
    now(store, refund).await
}

/// Settles an approved refund escrow could not pay, the way the caller
/// decided; refused when the refund is not waiting for that, or when the
/// institution's mode means escrow pays it.
pub async fn settle(
    store: &Store,
    refund: &Refund,
    how: Settlement,
    actor: &str,
    today: NaiveDate,
) -> AppResult<Refund> {
    if let Settlement::PaidByInstitution { bank_ref } = &how {
        check_bank_ref(bank_ref)?;
        let institution = store.institution(&refund.institution).await?;
        if institution.mode == ledger_core::SupervisionMode::Custody {
            return Err(AppError::conflict(
                "refund_paid_from_escrow",
                format!(
                    "{} is supervised in custody mode: its refunds are paid from escrow by the bank, not by the institution",
                    institution.name
                ),
            ));
        }
    }
    if refund.state != RefundState::Approved {
        return Err(AppError::conflict(
            "refund_not_awaiting_payment",
            format!(
                "refund {} is {}: only an approved refund escrow could not pay is settled this way",
                refund.id,
                refund.state.code()
            ),
        ));
    }
    let how = match how {
        Settlement::PaidByInstitution { bank_ref } => Settlement::PaidByInstitution {
            bank_ref: bank_ref.trim().to_string(),
        },
        other => other,
    };
    match settle_set_aside(store, refund, how, actor, today).await? {
        Instructed::Yes => now(store, refund).await,
        Instructed::DeclinedByBooks => Err(AppError::conflict(
            "refund_declined_by_books",
            format!(
                "the books refused refund {}: it is declined (see its history)",
                refund.id
            ),
        )),
        Instructed::SetAside { reason } => Err(AppError::Invalid {
            code: "refund_not_payable",
            field: None,
            detail: reason,
        }),
    }
}

/// Where money goes: a name (up to 140 characters, none a control
/// character), an account and a bank (ASCII letters and digits, up to 34
/// and 35): what a pain.001 creditor holds. The bank adapter's own rule
/// ([`bank_adapter::instruction::Creditor::check`]), applied when the payee
/// is given, so that a payee the instruction could not carry is refused
/// before anything is stored rather than found when the outbox sends it.
/// `prefix` names the fields as the caller sent them (`payee.name`).
pub fn check_payee(payee: &Payee, prefix: &str) -> AppResult<()> {
    let creditor = bank_adapter::instruction::Creditor {
        name: payee.name.clone(),
        account: payee.account.clone(),
        bank: payee.bank.clone(),
    };
    creditor.check().map_err(|(name, reason)| {
        let field = format!("{prefix}{name}");
        AppError::invalid("invalid_field", field.clone(), format!("{field} {reason}"))
    })
}

/// The bank's reference of a payment: 1 to 64 characters, none a control
/// character, surrounding blanks aside.
fn check_bank_ref(bank_ref: &str) -> AppResult<()> {
    let bank_ref = bank_ref.trim();
    if bank_ref.is_empty()
        || bank_ref.chars().count() > 64
        || bank_ref.chars().any(char::is_control)
    {
        return Err(AppError::invalid(
            "invalid_field",
            "bank_ref",
            "the bank's reference of the payment: 1 to 64 characters",
        ));
    }
    Ok(())
}

/// The refund as it stands now.
async fn now(store: &Store, refund: &Refund) -> AppResult<Refund> {
    Ok(store
        .refund(&refund.institution, refund.id.as_str())
        .await?
        .unwrap_or_else(|| refund.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payee(name: &str, account: &str, bank: &str) -> Payee {
        Payee {
            name: name.into(),
            account: account.into(),
            bank: bank.into(),
        }
    }

    #[test]
    fn a_payee_names_someone_an_account_and_a_bank() {
        assert!(check_payee(&payee("张三", "6222000011112222", "CMBCCNBS"), "payee.").is_ok());
        for (p, field) in [
            (payee(" ", "6222", "CMB"), "payee.name"),
            (payee("张三", "", "CMB"), "payee.account"),
            (payee("张三", "6222", &"B".repeat(36)), "payee.bank"),
            // What a pain.001 could not carry is refused when given, not
            // when the outbox builds the instruction.
            (payee("张三", "6214 8301 0012 3456", "CMB"), "payee.account"),
            (payee("张三", &"6".repeat(35), "CMB"), "payee.account"),
            (payee("张三", "6222", "招商银行"), "payee.bank"),
            (payee("张\u{7}三", "6222", "CMB"), "payee.name"),
            (payee(&"名".repeat(141), "6222", "CMB"), "payee.name"),
        ] {
            let e = check_payee(&p, "payee.").unwrap_err();
            assert_eq!(e.field().as_deref(), Some(field), "{e}");
            assert_eq!(e.code(), "invalid_field");
            assert!(e.to_string().contains(field), "{e}");
        }
        assert!(check_payee(&payee(&"名".repeat(140), &"6".repeat(34), "CMBCCNBS"), "").is_ok());
        // The institution's own payee is sent without a prefix.
        let e = check_payee(&payee("", "1", "B"), "").unwrap_err();
        assert_eq!(e.field().as_deref(), Some("name"));
    }

    #[test]
    fn only_ids_of_our_shape_are_refund_ids() {
        let made = refund_id_for("token-1", "key-1").unwrap();
        assert!(RefundId::parse(made.as_str()).is_ok());
        for bad in [
            "",
            "RF",
            "RX1234",
            "rf1234",
            "RF12-34",
            "RF ",
            &format!("RF{}", "0".repeat(31)),
        ] {
            assert!(RefundId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_refund_id_follows_from_the_caller_and_the_key() {
        let id = |token: &str, key: &str| refund_id_for(token, key).unwrap();
        let a = id("token-1", "key-1");
        assert_eq!(a, id("token-1", "key-1"));
        assert_ne!(a, id("token-2", "key-1"));
        assert_ne!(a, id("token-1", "key-2"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(request_key("ab", "c"), request_key("a", "bc"));
        assert_eq!(a.as_str().len(), 22);
    }

    #[test]
    fn a_bank_reference_is_short_printable_text() {
        assert!(check_bank_ref(" CMB20261105-000731 ").is_ok());
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
            assert!(check_bank_ref(bad).is_err(), "{bad:?}");
        }
    }
}
