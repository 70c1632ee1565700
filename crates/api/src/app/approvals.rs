//! Maker–checker: no one person moves money out alone. A manual release,
//! a payee change, a refund above the rule pack's threshold and a rule pack
//! that loosens a limit are recorded as requests; a second, different
//! officer whose jurisdiction covers them approves (the effect happens
//! then, once) or rejects (with the reason). The rules of who may are
//! `ledger_core::domain::approvals`; this is the use case.
//!
//! A decision is claimed before its effect runs, and recorded after (see
//! [`approve`] for why): exactly one decider wins, an effect happens at
//! most once, one cut short is completed by a retry or the workflow job,
//! and one the books refuse (nothing left to release) leaves the request
//! pending, to be rejected.

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::domain::approvals::{
    check_approver, check_officer, refund_needs_second_officer, Approval, ApprovalKind,
    ApprovalRefusal, Claim, Decision, Party, Standing,
};
use ledger_core::domain::policy::floors::{limit_changes, Loosening};
use ledger_core::domain::refunds::{Payee, Refund, RefundState};
use ledger_core::{AccountCode, ClientId, Institution, JurisdictionCode, RulePack, Store};
use serde::{Deserialize, Serialize};

use crate::app::{refunds, releases, AppError, AppResult};

fn refused(e: ApprovalRefusal) -> AppError {
    if e.is_conflict() {
        AppError::conflict(e.code(), e.to_string())
    } else {
        AppError::forbidden(e.code(), e.to_string())
    }
}

/// An approval's id, from who asked and their request's key: a retry
/// finds the request the first attempt made. "AP" and 20 hex digits.
pub fn approval_id_for(token_id: &str, key: &str) -> String {
    format!(
        "AP{}",
        refunds::request_key(token_id, key)[..20].to_ascii_uppercase()
    )
}

fn encode<T: Serialize>(payload: &T) -> AppResult<String> {
    serde_json::to_string(payload)
        .map_err(|e| AppError::Store(ledger_core::StoreError::Corrupt(e.to_string())))
}

fn decode<'a, T: Deserialize<'a>>(a: &'a Approval) -> AppResult<T> {
    serde_json::from_str(&a.payload).map_err(|e| {
        AppError::Store(ledger_core::StoreError::Corrupt(format!(
            "approval {} payload: {e}",
            a.id
        )))
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct ReleasePayload {
    instruction_id: String,
    amount: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PayeePayload {
    name: String,
    account: String,
    bank: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct RefundPayload {
    refund_id: String,
    comment: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RulePackPayload {
    version: u32,
    effective_from: NaiveDate,
    params: ledger_core::RuleParams,
}

#[allow(clippy::too_many_arguments)]
async fn record(
    store: &Store,
    id: String,
    kind: ApprovalKind,
    jurisdiction: JurisdictionCode,
    institution: Option<&Institution>,
    subject: String,
    payload: String,
    summary: String,
    by: &Party,
    at: DateTime<Utc>,
) -> AppResult<Approval> {
    Ok(store
        .create_approval(&Approval {
            id,
            kind,
            jurisdiction,
            institution: institution.map(|i| i.id.clone()),
            subject,
            payload,
            summary,
            requested_by: by.describe(),
            requested_token: by.token_id.clone(),
            requested_name: by.name.clone(),
            requested_at: at,
            claim: None,
            decision: None,
        })
        .await?)
}

/// Asks for a manual release of `amount` to the payee on file, under
/// `instruction_id` (the bank instruction's end-to-end id once approved).
/// Checked now as the release itself would be (the id's shape, a payee on
/// file, the amount, what is releasable today); checked again on approval.
pub async fn request_release(
    store: &Store,
    institution: &Institution,
    instruction_id: ClientId,
    amount: &str,
    by: &Party,
    at: DateTime<Utc>,
) -> AppResult<Approval> {
    let parsed = releases::check_release(store, institution, &instruction_id, amount).await?;
    crate::app::lessons::check_manual_release(store, institution, parsed.minor(), at.date_naive())
        .await?;
    let decimal = ledger_core::domain::money::format_minor(parsed.minor(), institution.currency);
    record(
        store,
        approval_id_for(&by.token_id, instruction_id.as_str()),
        ApprovalKind::Release,
        institution.jurisdiction.clone(),
        Some(institution),
        institution.id.to_string(),
        encode(&ReleasePayload {
            instruction_id: instruction_id.to_string(),
            amount: decimal.clone(),
        })?,
        format!(
            "release {decimal} {} of {} to its payee on file (instruction {instruction_id})",
            institution.currency.code(),
            institution.name
        ),
        by,
        at,
    )
    .await
}

/// What a payee PUT did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayeeChange {
    /// That account is already on file: nothing to approve.
    Unchanged(Payee),
    /// A new account waits for a second officer.
    Waiting(Box<Approval>),
}

/// Asks to put a new payee account on file (the account on file, put
/// again, is no change and needs no one).
pub async fn request_payee_change(
    store: &Store,
    institution: &Institution,
    payee: Payee,
    by: &Party,
    at: DateTime<Utc>,
) -> AppResult<PayeeChange> {
    refunds::check_payee(&payee, "")?;
    if store.payee(&institution.id).await?.as_ref() == Some(&payee) {
        return Ok(PayeeChange::Unchanged(payee));
    }
    let key = format!(
        "payee\0{}\0{}\0{}\0{}",
        institution.id, payee.name, payee.account, payee.bank
    );
    let approval = record(
        store,
        approval_id_for(&by.token_id, &key),
        ApprovalKind::PayeeChange,
        institution.jurisdiction.clone(),
        Some(institution),
        institution.id.to_string(),
        encode(&PayeePayload {
            name: payee.name.clone(),
            account: payee.account.clone(),
            bank: payee.bank.clone(),
        })?,
        format!(
            "pay {}'s releases to {} account {} at {}",
            institution.name, payee.name, payee.account, payee.bank
        ),
        by,
        at,
    )
    .await?;
    Ok(PayeeChange::Waiting(Box::new(approval)))
}

/// What an officer's approval of a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundApproval {
    /// Decided (at or below the threshold): in the books.
    Decided(Refund),
    /// Above the rule pack's threshold: waits for a second officer.
    Waiting(Approval),
}

/// An officer approves a requested refund. Whoever requested it may not
/// (nor another token of theirs); above the rule pack's
/// `refund_two_officers_above_minor` a second officer must also approve.
pub async fn approve_refund(
    store: &Store,
    refund: &Refund,
    by: &Party,
    comment: Option<&str>,
    key: &str,
    today: NaiveDate,
) -> AppResult<RefundApproval> {
    let institution = store.institution(&refund.institution).await?;
    if by.is_described_by(&refund.requested_by) {
        return Err(refused(ApprovalRefusal::SamePerson {
            what: format!("refund {}", refund.id),
            requested_by: refund.requested_by.clone(),
        }));
    }
    if refund.state != RefundState::Requested {
        return Err(AppError::conflict(
            "refund_already_decided",
            format!(
                "refund {} is {}, not waiting for a decision",
                refund.id,
                refund.state.code()
            ),
        ));
    }
    let rules = store.rules_for(&institution, today).await?;
    let amount_minor = match refund.amount_minor {
        Some(a) => a,
        // Everything not yet consumed: what the enrollment holds now.
        None => store
            .balances(&institution.id)
            .await?
            .balance(&AccountCode::Prepaid(refund.enrollment.clone()).to_string()),
    };
    if !refund_needs_second_officer(amount_minor, rules.params.refund_two_officers_above_minor) {
        let decided = refunds::decide(
            store,
            refund,
            refunds::Decision::Approve,
            &by.describe(),
            comment,
            today,
        )
        .await?;
        return Ok(RefundApproval::Decided(decided));
    }
    let amount = ledger_core::domain::money::format_minor(amount_minor, institution.currency);
    let approval = record(
        store,
        approval_id_for(&by.token_id, &format!("refund\0{}\0{key}", refund.id)),
        ApprovalKind::Refund,
        institution.jurisdiction.clone(),
        Some(&institution),
        refund.id.to_string(),
        encode(&RefundPayload {
            refund_id: refund.id.to_string(),
            comment: comment.map(str::to_string),
        })?,
        format!(
            "refund {amount} {} to {} (refund {}, above the rule pack's threshold)",
            institution.currency.code(),
            refund.payee.name,
            refund.id
        ),
        by,
        store.now(),
    )
    .await?;
    Ok(RefundApproval::Waiting(approval))
}

/// A refund nobody answered by its day is deemed approved by the rule; above
/// the rule pack's two-officer threshold the rule is the first approval and
/// an officer's the second: the refund waits, as a request of the workflow
/// (one per refund, whatever the number of passes), for an officer. `None`
/// at or below the threshold: the workflow approves it alone.
pub async fn deemed_refund_needs_officer(
    store: &Store,
    refund: &Refund,
    today: NaiveDate,
) -> AppResult<Option<Approval>> {
    let institution = store.institution(&refund.institution).await?;
    let rules = store.rules_for(&institution, today).await?;
    let amount_minor = match refund.amount_minor {
        Some(a) => a,
        None => store
            .balances(&institution.id)
            .await?
            .balance(&AccountCode::Prepaid(refund.enrollment.clone()).to_string()),
    };
    if !refund_needs_second_officer(amount_minor, rules.params.refund_two_officers_above_minor) {
        return Ok(None);
    }
    let workflow = Party {
        token_id: "workflow".into(),
        name: "workflow".into(),
        standing: ledger_core::domain::approvals::Standing::Other("workflow"),
    };
    let amount = ledger_core::domain::money::format_minor(amount_minor, institution.currency);
    let approval = record(
        store,
        approval_id_for("workflow", &format!("refund\0{}\0deemed", refund.id)),
        ApprovalKind::Refund,
        institution.jurisdiction.clone(),
        Some(&institution),
        refund.id.to_string(),
        encode(&RefundPayload {
            refund_id: refund.id.to_string(),
            comment: Some(format!("deemed approved: not answered by {}", refund.answer_by)),
        })?,
        format!(
            "refund {amount} {} to {} (refund {}, deemed approved: not answered by {}; above the rule pack's threshold, an officer approves)",
            institution.currency.code(),
            refund.payee.name,
            refund.id,
            refund.answer_by
        ),
        &workflow,
        store.now(),
    )
    .await?;
    Ok(Some(approval))
}

fn floor_refusal(pack: &RulePack, l: &Loosening) -> AppError {
    AppError::forbidden(
        "loosens_floor",
        format!(
            "rule pack {}@{}: {} {} would loosen {} set by {}; only that jurisdiction or one above it may loosen it",
            pack.jurisdiction, pack.version, l.param, l.to, l.from, l.set_by
        ),
    )
}

/// What publishing a rule pack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Tightens or leaves the limits alone: in force from its date.
    InForce,
    /// Loosens a limit its own jurisdiction set: waits for a second officer.
    Waiting(Box<Approval>),
}

/// Publishes a rule pack as `by` asked: refused when it loosens a limit set
/// above its jurisdiction (`loosens_floor`, naming the parameter, the floor
/// and who set it); waiting for a second officer when it loosens one of
/// its own; otherwise in force at once.
pub async fn publish_rule_pack(
    store: &Store,
    pack: &RulePack,
    by: &Party,
    key: &str,
) -> AppResult<Published> {
    pack.params.validate()?;
    let (chain, packs) = store.rule_context(&pack.jurisdiction).await?;
    // A version already published is a replay (or a clash the store names).
    if packs
        .iter()
        .any(|p| p.jurisdiction == pack.jurisdiction && p.version == pack.version)
    {
        crate::app::registry::publish_rule_pack(store, pack).await?;
        return Ok(Published::InForce);
    }
    let changes = limit_changes(&chain, &packs, pack);
    if let Some(l) = changes.below_floor.first() {
        return Err(floor_refusal(pack, l));
    }
    if changes.loosened.is_empty() {
        crate::app::registry::publish_rule_pack(store, pack).await?;
        return Ok(Published::InForce);
    }
    let what = changes
        .loosened
        .iter()
        .map(|l| format!("{} {} → {} (set by {})", l.param, l.from, l.to, l.set_by))
        .collect::<Vec<_>>()
        .join("; ");
    let approval = record(
        store,
        approval_id_for(&by.token_id, &format!("rule_pack\0{key}")),
        ApprovalKind::RulePack,
        pack.jurisdiction.clone(),
        None,
        format!("{}@{}", pack.jurisdiction, pack.version),
        encode(&RulePackPayload {
            version: pack.version,
            effective_from: pack.effective_from,
            params: pack.params.clone(),
        })?,
        format!(
            "rule pack {}@{} from {} loosens {what}",
            pack.jurisdiction, pack.version, pack.effective_from
        ),
        by,
        store.now(),
    )
    .await?;
    Ok(Published::Waiting(Box::new(approval)))
}

/// The rule every publication obeys, with or without a second officer:
/// no pack loosens a limit set above its jurisdiction.
pub async fn check_floors(store: &Store, pack: &RulePack) -> AppResult<()> {
    let (chain, packs) = store.rule_context(&pack.jurisdiction).await?;
    let changes = limit_changes(&chain, &packs, pack);
    match changes.below_floor.first() {
        Some(l) => Err(floor_refusal(pack, l)),
        None => Ok(()),
    }
}

/// The caller as the approval rules see it (the API's token, or the
/// console's officer account).
pub fn party(caller: &crate::access::Caller) -> Party {
    use crate::access::{Role, Scope};
    let standing = match (&caller.role, &caller.scope) {
        (Role::Officer, Scope::Jurisdiction(code)) => Standing::Officer(code.clone()),
        (Role::Institution, Scope::Institution(id)) => Standing::Institution(id.clone()),
        (role, _) => Standing::Other(role.as_str()),
    };
    Party {
        token_id: caller.token_id.clone(),
        name: caller.name.clone(),
        standing,
    }
}

/// Whether `id` has the shape of ours: "AP" and 20 hex digits.
fn is_approval_id(id: &str) -> bool {
    id.len() == 22 && id.starts_with("AP") && id[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// A request by its id (ours: "AP" and hex; anything else is not looked up).
pub async fn find(store: &Store, id: &str) -> AppResult<Approval> {
    let not_found = || AppError::not_found(format!("approval {id:?}"));
    if !is_approval_id(id) {
        return Err(not_found());
    }
    store.approval(id).await?.ok_or_else(not_found)
}

/// One page of the requests whose jurisdiction `sees` accepts, oldest
/// first, after `cursor`; and the cursor of the next page.
pub async fn list(
    store: &Store,
    sees: impl Fn(&JurisdictionCode) -> bool,
    pending_only: bool,
    cursor: Option<&str>,
    limit: usize,
) -> AppResult<(Vec<Approval>, Option<String>)> {
    // The cursor is a request's id, which is ours ([`find`]).
    if let Some(c) = cursor.filter(|c| !is_approval_id(c)) {
        return Err(AppError::invalid(
            "invalid_field",
            "cursor",
            format!("cursor {c:?} is not one this API gave out"),
        ));
    }
    let mut items: Vec<Approval> = store
        .approvals(cursor, pending_only)
        .await?
        .into_iter()
        .filter(|a| sees(&a.jurisdiction))
        .take(limit + 1)
        .collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|a| a.id.clone())
    } else {
        None
    };
    Ok((items, next))
}

/// A second officer approves: the decision is claimed, the effect happens
/// (once), then the decision is recorded.
///
/// Why claim first rather than one transaction: the effects go through
/// their own store paths, each one transaction of its own (a release
/// through the group-committed books, a payee version, a refund's move, a
/// rule pack), so the decision cannot join them. Running the effect and
/// then writing the decision (as before) let a rejection land between the
/// two, after the money moved, and let two approvers both run it. So the
/// decision is claimed first, a compare-and-set on the request's one claim
/// row: of concurrent approvals and rejections exactly one wins, and every
/// other is refused with 409 `approval_being_decided` (naming who, since
/// when) or `approval_already_decided`. The effect then runs under the
/// claim; every effect is idempotent (a release under its instruction id
/// and the claim's instant, a payee already on file, a refund moved by
/// this approval, a rule pack version), so one cut short (a crash, a lost
/// connection) is completed by the approver's retry or by the workflow
/// job ([`complete_stalled`]), and until then the request shows as
/// `approving`, never silently approved-but-not-done. An effect the books
/// refuse withdraws the claim: nothing changed, the request is pending.
pub async fn approve(store: &Store, approval: &Approval, by: &Party) -> AppResult<Approval> {
    if let Some(mine) = repeated(approval, by, true) {
        return Ok(mine);
    }
    check_approver(approval, by).map_err(|e| refused_for(approval, e))?;
    if approval.kind == ApprovalKind::Refund {
        // The refund's own requester may not be the second officer either.
        let p: RefundPayload = decode(approval)?;
        let refund = refunds::find(store, &p.refund_id).await?;
        check_officer(
            &format!("refund {}", refund.id),
            &approval.jurisdiction,
            by,
            by.is_described_by(&refund.requested_by),
            &refund.requested_by,
        )
        .map_err(refused)?;
    }
    let asked = Claim {
        approved: true,
        by: by.describe(),
        token: by.token_id.clone(),
        at: store.now(),
    };
    let (claimed, lease) = store
        .claim_approval(&approval.id, &asked, store.now() - APPROVAL_STALLED_AFTER)
        .await?;
    match (&claimed.decision, &claimed.claim, lease) {
        // A retry of one's own approval, already recorded.
        (Some(d), _, _) if d.approved && d.token == by.token_id => Ok(claimed),
        // One's own claim, whose run is ours: new, or taken over from a
        // run cut short. (A run of it still under way answers 409.)
        (None, Some(c), Some(lease)) if c.approved && c.token == by.token_id => {
            let claim = c.clone();
            complete(store, &claimed, &claim, lease).await
        }
        _ => Err(lost(&claimed)),
    }
}

/// How long the run of an approval's effect holds its claim before the
/// approver's retry or the workflow job may take it over: far beyond any
/// effect's own time (a release waits at most seconds in the write queue).
pub const APPROVAL_STALLED_AFTER: chrono::Duration = chrono::Duration::minutes(2);

/// The request, when `by` already gave it this very answer: a repeat is
/// answered as the first was.
fn repeated(approval: &Approval, by: &Party, approved: bool) -> Option<Approval> {
    approval
        .decision
        .as_ref()
        .filter(|d| d.approved == approved && d.token == by.token_id)
        .map(|_| approval.clone())
}

/// A refusal of `approval`'s answer: a conflict names the decision that
/// won (or the one under way), who took it and when.
fn refused_for(approval: &Approval, e: ApprovalRefusal) -> AppError {
    if e.is_conflict() {
        lost(approval)
    } else {
        refused(e)
    }
}

/// Why a decider lost: the decision that won, or the one under way.
fn lost(a: &Approval) -> AppError {
    let refusal = match (&a.decision, &a.claim) {
        (None, Some(c)) => ApprovalRefusal::BeingDecided {
            id: a.id.clone(),
            state: if c.approved { "approved" } else { "rejected" },
            by: c.by.clone(),
            since: c.at,
        },
        _ => ApprovalRefusal::AlreadyDecided {
            id: a.id.clone(),
            state: a.state(),
        },
    };
    match &a.decision {
        Some(d) => AppError::conflict(
            refusal.code(),
            format!("{refusal} by {} at {}", d.by, d.at.to_rfc3339()),
        ),
        None => refused(refusal),
    }
}

/// Runs a claimed approval's effect and records its decision; withdraws
/// the claim when the books refuse the effect (the request is pending
/// again). Any other failure keeps the claim: a retry completes it.
async fn complete(
    store: &Store,
    approval: &Approval,
    claim: &Claim,
    lease: DateTime<Utc>,
) -> AppResult<Approval> {
    if let Err(e) = effect(store, approval, claim).await {
        use crate::app::error::Kind;
        if matches!(
            e.kind(),
            Kind::Invalid | Kind::Conflict | Kind::Forbidden | Kind::NotFound
        ) {
            store
                .withdraw_approval_claim(&approval.id, &claim.token, lease)
                .await?;
        }
        return Err(e);
    }
    let decided = store
        .decide_approval(
            &approval.id,
            &Decision {
                approved: true,
                by: claim.by.clone(),
                token: claim.token.clone(),
                reason: None,
                at: store.now(),
            },
        )
        .await?;
    match &decided.decision {
        Some(d) if d.approved && d.token == claim.token => Ok(decided),
        _ => Err(lost(&decided)),
    }
}

/// What an approval does, idempotently, as its claim says (who, when).
async fn effect(store: &Store, approval: &Approval, claim: &Claim) -> AppResult<()> {
    let today = claim.at.date_naive();
    match approval.kind {
        ApprovalKind::Release => {
            let p: ReleasePayload = decode(approval)?;
            let institution = institution_of(store, approval).await?;
            // The claim's instant: a retry asks the books for the very
            // same entry, which they answer as a replay.
            releases::release(
                store,
                &institution,
                ClientId::parse(p.instruction_id)?,
                &p.amount,
                claim.at,
            )
            .await?;
        }
        ApprovalKind::PayeeChange => {
            let p: PayeePayload = decode(approval)?;
            let institution = institution_of(store, approval).await?;
            let set_by = format!(
                "{}, approved by {} (approval {})",
                approval.requested_by, claim.by, approval.id
            );
            releases::set_payee(
                store,
                &institution,
                Payee {
                    name: p.name,
                    account: p.account,
                    bank: p.bank,
                },
                &set_by,
            )
            .await?;
        }
        ApprovalKind::Refund => {
            let p: RefundPayload = decode(approval)?;
            let refund = refunds::find(store, &p.refund_id).await?;
            let mark = format!("(approval {})", approval.id);
            if refund.state != RefundState::Requested
                && store
                    .refund_trail(&refund.institution, refund.id.as_str())
                    .await?
                    .iter()
                    .any(|e| {
                        e.state == RefundState::Approved.code()
                            && e.detail.as_deref().is_some_and(|d| d.ends_with(&mark))
                    })
            {
                // Moved by this approval before it was cut short.
                return Ok(());
            }
            let comment = format!(
                "{}; approved first by {} {mark}",
                p.comment.as_deref().unwrap_or("approved"),
                approval.requested_by,
            );
            refunds::decide(
                store,
                &refund,
                refunds::Decision::Approve,
                &claim.by,
                Some(&comment),
                today,
            )
            .await?;
        }
        ApprovalKind::RulePack => {
            let p: RulePackPayload = decode(approval)?;
            let pack = RulePack {
                jurisdiction: approval.jurisdiction.clone(),
                version: p.version,
                effective_from: p.effective_from,
                params: p.params,
            };
            // The floors above may have tightened since it was asked.
            check_floors(store, &pack).await?;
            crate::app::registry::publish_rule_pack(store, &pack).await?;
        }
    }
    Ok(())
}

/// Completes the approvals claimed more than `after` ago and not recorded
/// (an approver's request cut short between its claim and its decision):
/// the effect runs as the claim says, the decision is recorded; an effect
/// the books refuse returns the request to pending. The workflow job runs
/// this; each is safe to run again, and alongside a live approver.
pub async fn complete_stalled(store: &Store, after: chrono::Duration) -> AppResult<u32> {
    let mut completed = 0;
    for a in store.approvals_claimed_before(store.now() - after).await? {
        let Some(claim) = a.claim.clone() else {
            continue;
        };
        // Another runner (the approver's retry, another job) took it.
        let Some(lease) = store
            .take_over_approval_claim(&a.id, &claim.token, store.now() - after)
            .await?
        else {
            continue;
        };
        match complete(store, &a, &claim, lease).await {
            Ok(_) => completed += 1,
            Err(e) => {
                tracing::warn!(approval = %a.id, error = %e, "stalled approval not completed")
            }
        }
    }
    Ok(completed)
}

/// A second officer rejects, with the reason: nothing happens, ever. The
/// rejection is claimed and recorded in one transaction, so it is refused
/// once an approval has been claimed (its effect may have run).
pub async fn reject(
    store: &Store,
    approval: &Approval,
    by: &Party,
    reason: &str,
) -> AppResult<Approval> {
    crate::app::error::note("reason", reason)?;
    if reason.trim().is_empty() {
        return Err(AppError::invalid(
            "invalid_field",
            "reason",
            "a rejection says why: give a reason",
        ));
    }
    if let Some(mine) = repeated(approval, by, false) {
        return Ok(mine);
    }
    check_approver(approval, by).map_err(|e| refused_for(approval, e))?;
    let decided = store
        .decide_approval(
            &approval.id,
            &Decision {
                approved: false,
                by: by.describe(),
                token: by.token_id.clone(),
                reason: Some(reason.to_string()),
                at: store.now(),
            },
        )
        .await?;
    match &decided.decision {
        Some(d) if !d.approved && d.token == by.token_id => Ok(decided),
        _ => Err(lost(&decided)),
    }
}

async fn institution_of(store: &Store, approval: &Approval) -> AppResult<Institution> {
    let id = approval.institution.as_ref().ok_or_else(|| {
        AppError::Store(ledger_core::StoreError::Corrupt(format!(
            "approval {} names no institution",
            approval.id
        )))
    })?;
    Ok(store.institution(id).await?)
}

/// A manual release request as the risk engine reads it (what it asks
/// for, when, and when it was decided); `None` for other kinds, or a
/// payload this version cannot read.
pub fn release_ask(
    a: &Approval,
    currency: ledger_core::Currency,
) -> Option<ledger_core::domain::risk::ReleaseAsk> {
    if a.kind != ApprovalKind::Release {
        return None;
    }
    let payload: ReleasePayload = decode(a).ok()?;
    let amount = ledger_core::Amount::parse(&payload.amount, currency).ok()?;
    Some(ledger_core::domain::risk::ReleaseAsk {
        id: a.id.clone(),
        asked_on: a.requested_at.date_naive(),
        decided_on: a.decision.as_ref().map(|d| d.at.date_naive()),
        amount_minor: amount.minor(),
    })
}
