//! Lessons as a request until the family confirms them (课消确认), and the
//! releases that follow confirmation (按课消拨付). An institution records
//! lessons (pending); the family confirms or disputes; silence past the rule
//! pack's working days is a deemed confirmation (the lessons job); an
//! officer decides a dispute. Only an earned record posts its
//! `LessonsConsumed` entry (client id `lesson-<id>`, so posting again is a
//! replay). What may be released: confirmed, unreleased earnings less those
//! of frozen enrollments (an open dispute or refund request), less the rule
//! pack's reserve; nothing while an officer has frozen the institution.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::domain::lessons::{
    self, CutOff, Earning, Lesson, LessonState, LessonStep, Releasable, ReleaseInput,
};
use ledger_core::domain::money::format_minor;
use ledger_core::domain::refunds::RefundState;
use ledger_core::store::{FreezeRecord, NewLesson};
use ledger_core::{
    AccountCode, ClientId, Command, EnrollmentId, Entry, Institution, LedgerError, Request, Store,
};

use crate::app::{AppError, AppResult};

/// Lessons an institution says it gave.
#[derive(Debug, Clone)]
pub struct LessonAsk {
    pub enrollment: String,
    /// Signed, so that a negative number is refused by this rule, not by a
    /// parser.
    pub hours: i64,
    pub occurred_on: NaiveDate,
}

/// The most class hours one record may carry (no package holds more).
const MAX_HOURS: i64 = 10_000;

/// Records lessons as pending the family's confirmation. Refused: hours not
/// positive, an unknown enrollment, lessons dated after today, more hours
/// than the package has left once every record not upheld is counted.
pub async fn record(
    store: &Store,
    institution: &Institution,
    ask: LessonAsk,
    recorded_by: &str,
    request_key: Option<&str>,
    today: NaiveDate,
) -> AppResult<Lesson> {
    if ask.hours <= 0 {
        return Err(AppError::invalid(
            "hours_must_be_positive",
            "hours",
            format!("hours {} must be positive", ask.hours),
        ));
    }
    if ask.hours > MAX_HOURS {
        return Err(AppError::invalid(
            "invalid_field",
            "hours",
            format!("{} class hours is more than any package holds", ask.hours),
        ));
    }
    let hours = u32::try_from(ask.hours).unwrap_or(u32::MAX);
    let enrollment = EnrollmentId::parse(ask.enrollment).map_err(|e| AppError::Invalid {
        code: e.code(),
        field: Some("enrollment".into()),
        detail: e.to_string(),
    })?;
    ledger_core::domain::bounds::check_day("occurred_on", ask.occurred_on)?;
    if ask.occurred_on > today {
        return Err(AppError::invalid(
            "lessons_in_the_future",
            "occurred_on",
            format!(
                "lessons of {} cannot be recorded on {today}: they have not been given yet",
                ask.occurred_on
            ),
        ));
    }
    let Some(e) = store
        .enrollment_book(&institution.id, &enrollment)
        .await?
        .map(|b| b.state.enrollment)
    else {
        return Err(LedgerError::UnknownEnrollment {
            institution: institution.id.to_string(),
            enrollment: enrollment.to_string(),
        }
        .into());
    };
    // A repeat of the same request is the record already kept.
    if let Some(key) = request_key {
        if let Some(kept) = kept(store, institution, &enrollment, key).await? {
            return Ok(kept);
        }
    }
    let counted = hours_counted(store, institution, &enrollment).await?;
    let total = e.hours_bought.saturating_add(e.bonus_hours);
    let remaining = total.saturating_sub(counted);
    if hours > remaining {
        return Err(LedgerError::EnrollmentHoursExhausted {
            enrollment: enrollment.to_string(),
            remaining,
            requested: hours,
        }
        .into());
    }
    let rules = store.rules_for(institution, today).await?;
    let window = rules.params.lesson_confirm_working_days.unwrap_or(15);
    let answer_by =
        lessons::answer_by(&rules.params.calendar()?, today, window).ok_or_else(|| {
            AppError::invalid(
                "calendar_exhausted",
                "occurred_on",
                format!("{window} working days after {today} run off the rule pack's calendar"),
            )
        })?;
    let record = store
        .record_lesson(
            &NewLesson {
                institution: institution.id.clone(),
                enrollment,
                hours,
                occurred_on: ask.occurred_on,
                recorded_by: recorded_by.to_string(),
                answer_by,
            },
            request_key,
        )
        .await?;
    find(store, institution, &record.id).await
}

async fn kept(
    store: &Store,
    institution: &Institution,
    enrollment: &EnrollmentId,
    key: &str,
) -> AppResult<Option<Lesson>> {
    let Some(id) = store.lesson_by_request_key(&institution.id, key).await? else {
        return Ok(None);
    };
    let lesson = find(store, institution, &id).await?;
    if lesson.record.enrollment != *enrollment {
        return Err(LedgerError::ExistsWithDifferentFields {
            what: "lesson record",
            id,
        }
        .into());
    }
    Ok(Some(lesson))
}

/// Hours an enrollment has used up: every lesson record not upheld, and
/// lessons posted straight into the books (imported history). Both summed
/// by the database over the enrollment's own rows.
async fn hours_counted(
    store: &Store,
    institution: &Institution,
    enrollment: &EnrollmentId,
) -> AppResult<u32> {
    let recorded = store
        .lesson_hours_recorded(&institution.id, enrollment)
        .await?;
    let imported = store
        .lesson_hours_posted_directly(&institution.id, enrollment)
        .await?;
    Ok(recorded.saturating_add(imported))
}

/// One lesson record with its trail.
pub async fn find(store: &Store, institution: &Institution, id: &str) -> AppResult<Lesson> {
    store.lesson(&institution.id, id).await?.ok_or_else(|| {
        LedgerError::UnknownLesson {
            institution: institution.id.to_string(),
            lesson: id.to_string(),
        }
        .into()
    })
}

/// What a step on a lesson record came to.
#[derive(Debug, Clone)]
pub struct Answered {
    pub lesson: Lesson,
    /// The entry the lessons were posted as, once earned.
    pub entry: Option<Entry>,
    /// Earned, but the books refused them for now (e.g. the tuition is not
    /// paid yet): the lessons job tries again.
    pub not_posted: Option<String>,
}

/// Takes a step on a lesson record: a family's confirmation or dispute, an
/// officer's decision on a dispute. A dispute and a decision need a reason.
pub async fn answer(
    store: &Store,
    institution: &Institution,
    id: &str,
    step: LessonStep,
    actor: &str,
    reason: Option<&str>,
    today: NaiveDate,
) -> AppResult<Answered> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if matches!(
        step,
        LessonStep::Dispute | LessonStep::Uphold | LessonStep::Reject
    ) && reason.is_none()
    {
        return Err(AppError::invalid(
            "reason_required",
            "reason",
            "a dispute, and an officer's decision on one, says why: give a reason",
        ));
    }
    let lesson = find(store, institution, id).await?;
    let to = lessons::step(lesson.state(), step)?;
    if !store
        .append_lesson_event(
            &institution.id,
            id,
            lesson.last_seq(),
            to,
            actor,
            reason,
            today,
        )
        .await?
    {
        let now = find(store, institution, id).await?;
        return Err(AppError::conflict(
            "lesson_step_refused",
            format!(
                "lesson record {id} was answered by someone else meanwhile: it is {}",
                now.state().code()
            ),
        ));
    }
    let lesson = find(store, institution, id).await?;
    let (entry, not_posted) = if to.is_earned() {
        match post(store, institution, &lesson).await {
            Ok(e) => (Some(e), None),
            Err(AppError::Refused { error, .. }) => (None, Some(error.to_string())),
            Err(e) => return Err(e),
        }
    } else {
        (None, None)
    };
    Ok(Answered {
        lesson,
        entry,
        not_posted,
    })
}

/// Posts an earned record's lessons into the books (a replay if posted).
pub async fn post(store: &Store, institution: &Institution, lesson: &Lesson) -> AppResult<Entry> {
    Ok(store.execute(consumption(institution, lesson)?).await?)
}

/// The entry an earned record's lessons make: consumed on the day they
/// were earned (confirmed, or deemed so), under the record's own client id.
fn consumption(institution: &Institution, lesson: &Lesson) -> AppResult<Request> {
    let at = lesson
        .trail
        .iter()
        .rev()
        .find(|e| e.state.is_earned())
        .map(|e| e.at)
        .ok_or_else(|| {
            AppError::conflict(
                "lesson_not_earned",
                format!("lesson record {} is not confirmed", lesson.record.id),
            )
        })?;
    Ok(Request {
        institution: institution.id.clone(),
        client_id: ClientId::parse(lesson.client_id())?,
        currency: institution.currency,
        occurred_at: at,
        external_ref: None,
        command: Command::ConsumeLessons {
            enrollment: lesson.record.enrollment.clone(),
            hours: lesson.record.hours,
        },
    })
}

/// What the lessons job did in one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LessonPass {
    pub deemed_confirmed: u32,
    pub posted: u32,
    /// Earned records the books still refuse (tried again next pass).
    pub not_posted: u32,
}

/// Earned records written per transaction by the lessons job.
const POST_CHUNK: usize = 500;

/// The lessons job: records unanswered past their day are deemed confirmed;
/// every earned record not yet in the books is posted.
pub async fn deem_and_post(store: &Store, today: NaiveDate) -> AppResult<LessonPass> {
    let mut pass = LessonPass::default();
    for r in store.unanswered_lessons(today).await? {
        debug_assert!(lessons::is_due(r.answer_by, today));
        if store
            .append_lesson_event(
                &r.institution,
                &r.id,
                0,
                LessonState::DeemedConfirmed,
                "workflow",
                Some(&format!(
                    "deemed confirmed: the family did not answer by {}",
                    r.answer_by
                )),
                today,
            )
            .await?
        {
            pass.deemed_confirmed += 1;
        }
    }
    let mut unposted = store.earned_lessons_unposted().await?;
    for institution in store.institutions().await? {
        let Some(unposted) = unposted.remove(institution.id.as_str()) else {
            continue;
        };
        // An institution's earned lessons in one transaction, each with its
        // own outcome (as group commit writes single requests): one the
        // books refuse (hours exhausted) does not hold back the others.
        let items = unposted
            .iter()
            .map(|l| Ok((consumption(&institution, l)?, None)))
            .collect::<AppResult<Vec<_>>>()?;
        for chunk in unposted.chunks(POST_CHUNK).zip(items.chunks(POST_CHUNK)) {
            let (lessons, items) = chunk;
            for (l, outcome) in lessons.iter().zip(store.execute_each(items).await?) {
                match outcome.map_err(AppError::from) {
                    Ok(_) => pass.posted += 1,
                    Err(AppError::Refused { error, .. }) => {
                        pass.not_posted += 1;
                        tracing::warn!(institution = %institution.id, lesson = %l.record.id, %error,
                            "confirmed lessons not posted; tried again next pass");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(pass)
}

/// One enrollment's account, as its family sees it.
#[derive(Debug, Clone)]
pub struct EnrollmentAccount {
    pub enrollment: ledger_core::Enrollment,
    pub paid_minor: i64,
    /// Unearned tuition: what a refund could return now.
    pub refundable_minor: i64,
    /// Hours in the books (earned).
    pub hours_consumed: u32,
    pub lessons: Vec<Lesson>,
    pub refunds: Vec<ledger_core::domain::refunds::Refund>,
    /// Whether the enrollment's release is held (a dispute, a refund request).
    pub release_frozen: bool,
}

/// One enrollment's account: paid, lessons by state, refundable, refunds.
pub async fn account(
    store: &Store,
    institution: &Institution,
    enrollment: &str,
) -> AppResult<EnrollmentAccount> {
    let unknown = || -> AppError {
        LedgerError::UnknownEnrollment {
            institution: institution.id.to_string(),
            enrollment: enrollment.to_string(),
        }
        .into()
    };
    let id = EnrollmentId::parse(enrollment).map_err(|_| unknown())?;
    // The enrollment's own rows only: its counters (kept by the books, so
    // paid is net of reversed payments), its prepaid account, its lesson
    // records and refunds; never the institution's whole history.
    let book = store
        .enrollment_book(&institution.id, &id)
        .await?
        .ok_or_else(unknown)?;
    let refundable_minor = store
        .account(&institution.id, &AccountCode::Prepaid(id.clone()))
        .await?
        .balance_minor;
    let lessons = store.lessons(&institution.id, Some(&id)).await?;
    let refunds = store.refunds_of(&institution.id, &id).await?;
    let release_frozen = lessons.iter().any(|l| l.state().freezes_enrollment())
        || refunds.iter().any(|r| holds_release(r.state));
    Ok(EnrollmentAccount {
        enrollment: book.state.enrollment,
        paid_minor: book.paid_minor,
        refundable_minor,
        hours_consumed: book.state.hours_consumed,
        lessons,
        refunds,
        release_frozen,
    })
}

/// A refund request holds its enrollment's release until it is decided
/// and paid or refused.
fn holds_release(state: RefundState) -> bool {
    matches!(state, RefundState::Requested | RefundState::Approved)
}

/// Freezes an institution's releases (or lifts the freeze), with a reason.
pub async fn freeze(
    store: &Store,
    institution: &Institution,
    frozen: bool,
    reason: &str,
    actor: &str,
) -> AppResult<Vec<FreezeRecord>> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::invalid(
            "reason_required",
            "reason",
            "a freeze and its lift say why: give a reason",
        ));
    }
    // Freezing a frozen institution again records the new reason too; a
    // lift needs a freeze to lift.
    if !frozen && !is_frozen(&store.freezes(&institution.id).await?) {
        return Err(AppError::conflict(
            "not_frozen",
            format!(
                "{} is not frozen: there is no freeze to lift",
                institution.id
            ),
        ));
    }
    store
        .record_freeze(&institution.id, frozen, reason, actor)
        .await?;
    Ok(store.freezes(&institution.id).await?)
}

fn is_frozen(freezes: &[FreezeRecord]) -> bool {
    freezes.last().is_some_and(|f| f.frozen)
}

/// Earnings read per round trip while looking for the unreleased ones.
const EARNINGS_PAGE: i64 = 500;

/// What may be released now for the confirmations `cutoff` admits.
///
/// Read from the unreleased earnings only: released oldest first, what
/// the `releasable` account still holds (less releases in flight) is the
/// newest earnings that add up to it, the oldest of them perhaps partly
/// released. So the earnings are read newest first until they cover that
/// balance, and the domain's oldest-first walk runs over those alone with
/// what was released of them; the result is the walk over every earning
/// (`tests/http/lessons.rs` holds it equal to
/// [`releasable_from_every_earning`]). Before, each pass of a
/// release day read every lesson record and entry of the institution.
pub async fn releasable(
    store: &Store,
    institution: &Institution,
    cutoff: &CutOff,
    today: NaiveDate,
) -> AppResult<Releasable> {
    releasable_paged(store, institution, cutoff, today, EARNINGS_PAGE).await
}

/// [`releasable`], reading the earnings `page` at a time (the tests read
/// them one and two at a time, so that a page ends inside the walk).
pub async fn releasable_paged(
    store: &Store,
    institution: &Institution,
    cutoff: &CutOff,
    today: NaiveDate,
    page: i64,
) -> AppResult<Releasable> {
    let id = &institution.id;
    let available_minor = store
        .account(id, &AccountCode::Releasable)
        .await?
        .available_minor;
    let mut newest_first = Vec::new();
    let mut unreleased: i64 = 0;
    let mut before = None;
    while unreleased < available_minor {
        let read = store.earnings_newest_first(id, before, page).await?;
        let Some(last) = read.last() else {
            break;
        };
        before = Some(last.seq);
        for e in read {
            unreleased = unreleased.saturating_add(e.amount_minor);
            newest_first.push(e);
            if unreleased >= available_minor {
                break;
            }
        }
    }
    let records: Vec<&str> = newest_first
        .iter()
        .filter_map(|e| e.client_id.strip_prefix(&lessons::lesson_client_id("")))
        .collect();
    let earned_on = store.lessons_earned_on(id, &records).await?;
    let enrollments: BTreeSet<&str> = newest_first.iter().map(|e| e.enrollment.as_str()).collect();
    let enrollments: Vec<&str> = enrollments.into_iter().collect();
    let mut frozen = store.enrollments_held_by_disputes(id, &enrollments).await?;
    // The states `holds_release` names.
    for state in [RefundState::Requested, RefundState::Approved] {
        for r in store.refunds(Some(id), Some(state)).await? {
            frozen.insert(r.enrollment);
        }
    }
    let earnings: Vec<Earning> = newest_first
        .iter()
        .rev()
        .map(|e| Earning {
            enrollment: e.enrollment.clone(),
            amount_minor: e.amount_minor,
            confirmed_on: e
                .client_id
                .strip_prefix(&lessons::lesson_client_id(""))
                .and_then(|record| earned_on.get(record).copied())
                .unwrap_or(e.occurred_on),
        })
        .collect();
    let rules = store.rules_for(institution, today).await?;
    let reserve_bp = rules.params.release_reserve_bp.unwrap_or(0);
    Ok(lessons::releasable(&ReleaseInput {
        earnings: &earnings,
        // Of the earnings read, what releases (instructed or paid) paid
        // for: the oldest read may be partly released.
        released_minor: unreleased - available_minor,
        available_minor,
        frozen: &frozen,
        cutoff,
        // Only the reserve reads it.
        unearned_minor: if reserve_bp > 0 {
            store.prepaid_total(id).await?
        } else {
            0
        },
        reserve_bp,
        institution_frozen: is_frozen(&store.freezes(id).await?),
    }))
}

/// [`releasable`] as the release job computed it before: the walk over
/// every earning of the institution, from every lesson record, entry and
/// account. Kept as the reference the tests hold the read of the
/// unreleased earnings to, and that `simulate --families-confirm` times it
/// against; nothing in the service calls it.
pub async fn releasable_from_every_earning(
    store: &Store,
    institution: &Institution,
    cutoff: &CutOff,
    today: NaiveDate,
) -> AppResult<Releasable> {
    let id = &institution.id;
    let all = store.lessons(id, None).await?;
    let earned_on: std::collections::BTreeMap<String, NaiveDate> = all
        .iter()
        .filter_map(|l| l.earned_on().map(|d| (l.client_id(), d)))
        .collect();
    let mut frozen: BTreeSet<EnrollmentId> = all
        .iter()
        .filter(|l| l.state().freezes_enrollment())
        .map(|l| l.record.enrollment.clone())
        .collect();
    for r in store.refunds(Some(id), None).await? {
        if holds_release(r.state) {
            frozen.insert(r.enrollment);
        }
    }
    let earnings: Vec<Earning> = store
        .entries(id, 0, i64::MAX)
        .await?
        .into_iter()
        .filter(|e| e.kind == ledger_core::EntryKind::LessonsConsumed && !e.postings.is_empty())
        .filter_map(|e| {
            Some(Earning {
                enrollment: e.enrollment.clone()?,
                amount_minor: e.postings.first().map_or(0, |p| p.amount.minor()),
                confirmed_on: earned_on
                    .get(e.client_id.as_str())
                    .copied()
                    .unwrap_or_else(|| e.occurred_at.date_naive()),
            })
        })
        .collect();
    let earned_total: i64 = earnings.iter().map(|e| e.amount_minor).sum();
    let sheet = store.balances(id).await?;
    let available_minor = sheet
        .accounts
        .iter()
        .find(|a| a.account == "releasable")
        .map_or(0, |a| a.available_minor);
    let rules = store.rules_for(institution, today).await?;
    Ok(lessons::releasable(&ReleaseInput {
        earnings: &earnings,
        // What left `releasable` (instructed or paid) paid for earnings.
        released_minor: earned_total - available_minor,
        available_minor,
        frozen: &frozen,
        cutoff,
        unearned_minor: sheet.prepaid_minor(),
        reserve_bp: rules.params.release_reserve_bp.unwrap_or(0),
        institution_frozen: is_frozen(&store.freezes(id).await?),
    }))
}

/// Refuses a manual release beyond what may be released, with the figures.
pub async fn check_manual_release(
    store: &Store,
    institution: &Institution,
    amount_minor: i64,
    today: NaiveDate,
) -> AppResult<()> {
    let r = releasable(store, institution, &CutOff::Day(today), today).await?;
    let money = |m: i64| format_minor(m, institution.currency);
    if r.institution_frozen {
        return Err(AppError::conflict(
            "institution_frozen",
            format!(
                "{} is frozen by an officer: nothing is released until the freeze is lifted",
                institution.id
            ),
        ));
    }
    if amount_minor > r.releasable_minor {
        return Err(AppError::invalid(
            "release_exceeds_releasable",
            "amount",
            format!(
                "a release of {} exceeds what may be released, {}: earned and unreleased {}, \
                 held by disputes or refund requests {}, kept as reserve {}",
                money(amount_minor),
                money(r.releasable_minor),
                money(r.unreleased_minor),
                money(r.frozen_minor),
                money(r.reserve_minor),
            ),
        ));
    }
    Ok(())
}

/// Whether a release could be made at all: not while the institution is
/// frozen, nor with nothing in `releasable` (its posted balance bounds
/// what is available), nor without escrow cash to pay it from (a school
/// in deposit mode keeps its families' tuition itself; the books would
/// refuse the instruction). Three one-row reads, where what may be
/// released reads the unreleased earnings, all of them for such a school,
/// on each pass of a release day until the cycle is instructed.
pub async fn may_release(store: &Store, institution: &Institution) -> AppResult<bool> {
    let id = &institution.id;
    Ok(!is_frozen(&store.freezes(id).await?)
        && store
            .account(id, &AccountCode::Releasable)
            .await?
            .balance_minor
            > 0
        && store
            .account(id, &AccountCode::EscrowCash)
            .await?
            .available_minor
            > 0)
}

/// The bank instruction id of an institution's release cycle: the end-to-end
/// id the bank sees and dedupes on, so unique across institutions (eight hex
/// digits of the SHA-256 of the institution id) and fixed by the cycle
/// (`REL-1A2B3C4D-W2026-09-28`, at most 35 characters as pain.001 allows).
pub fn cycle_instruction_id(institution: &Institution, cycle: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(institution.id.as_str().as_bytes()));
    format!("REL-{}-{cycle}", digest[..8].to_ascii_uppercase())
}

/// The release job for one institution: on a release day of its rule
/// pack's cadence, one instruction for the cycle (`cycle_instruction_id`) to the
/// payee on file, of what may be released; none when there is nothing,
/// no payee, or the cycle's instruction exists already.
pub async fn release_cycle(
    store: &Store,
    institution: &Institution,
    today: NaiveDate,
    at: DateTime<Utc>,
) -> AppResult<Option<Entry>> {
    let rules = store.rules_for(institution, today).await?;
    let cadence = rules
        .params
        .release_cadence
        .unwrap_or(lessons::ReleaseCadence::Weekly);
    let Some((cycle, cutoff)) = cadence.cycle(&rules.params.calendar()?, today) else {
        return Ok(None);
    };
    let instruction = cycle_instruction_id(institution, &cycle);
    if store.has_entry(&institution.id, &instruction).await? {
        return Ok(None);
    }
    if store.payee(&institution.id).await?.is_none() {
        return Ok(None);
    }
    if !may_release(store, institution).await? {
        return Ok(None);
    }
    let r = releasable(store, institution, &cutoff, today).await?;
    if r.releasable_minor <= 0 {
        return Ok(None);
    }
    // One runner makes the cycle's instruction (the others see the claim);
    // one that dies before making it leaves the earnings to the next cycle.
    if !store
        .claim_job_run(
            &format!("release:{}", institution.id),
            &cycle,
            &format!("pid {}", std::process::id()),
        )
        .await?
    {
        return Ok(None);
    }
    let amount = format_minor(r.releasable_minor, institution.currency);
    let entry = crate::app::releases::instruct(
        store,
        institution,
        ClientId::parse(instruction)?,
        &amount,
        at,
    )
    .await?;
    Ok(Some(entry))
}
