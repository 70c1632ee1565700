//! Lessons a family confirms (课消确认) over HTTP: the institution records
//! them, the family confirms or disputes, an officer decides a dispute; a
//! family reads its enrollment's account; officers freeze an institution's
//! releases and read what may be released. A family token reaches its own
//! enrollment only: anything else is 404, as if absent.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::domain::lessons::{Lesson, LessonStep, Releasable};
use ledger_core::domain::money::format_minor;
use ledger_core::store::FreezeRecord;
use ledger_core::{ClientId, Currency, Institution};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller, Scope};
use crate::app::lessons::{self, LessonAsk};
use crate::app::{jobs, refunds};
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
use crate::http::record::Accepted;
use crate::http::views::{EnrollmentView, EntryView};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_lessons, list_lessons))
        .routes(routes!(get_lesson))
        .routes(routes!(confirm_lesson))
        .routes(routes!(dispute_lesson))
        .routes(routes!(decide_dispute))
        .routes(routes!(enrollment_account))
        .routes(routes!(freeze, list_freezes))
        .routes(routes!(get_releasable))
}

fn actor(caller: &Caller) -> String {
    format!(
        "{} ({} token {})",
        caller.name,
        caller.role.as_str(),
        caller.token_id
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLessons {
    #[schema(example = "ENR-0001")]
    pub enrollment: String,
    /// Class hours given (positive).
    pub hours: i64,
    /// The day they were given (not after today).
    pub occurred_on: NaiveDate,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LessonStepView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub on_day: NaiveDate,
    pub actor: String,
    /// confirmed, disputed, deemed_confirmed, upheld or dispute_rejected.
    pub state: String,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LessonView {
    #[schema(example = "L1")]
    pub id: String,
    pub institution: String,
    pub enrollment: String,
    pub hours: u32,
    pub occurred_on: NaiveDate,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    /// The family may answer until the end of this day; silent, the
    /// lessons are deemed confirmed the day after.
    pub answer_by: NaiveDate,
    /// pending, confirmed, deemed_confirmed, disputed, upheld or
    /// dispute_rejected.
    pub state: String,
    /// Every step, oldest first: who, when, why.
    pub trail: Vec<LessonStepView>,
}

impl From<&Lesson> for LessonView {
    fn from(l: &Lesson) -> Self {
        LessonView {
            id: l.record.id.clone(),
            institution: l.record.institution.to_string(),
            enrollment: l.record.enrollment.to_string(),
            hours: l.record.hours,
            occurred_on: l.record.occurred_on,
            recorded_by: l.record.recorded_by.clone(),
            recorded_at: l.record.recorded_at,
            answer_by: l.record.answer_by,
            state: l.state().code().to_string(),
            trail: l
                .trail
                .iter()
                .map(|e| LessonStepView {
                    seq: e.seq,
                    at: e.at,
                    on_day: e.on_day,
                    actor: e.actor.clone(),
                    state: e.state.code().to_string(),
                    reason: e.reason.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnsweredView {
    pub lesson: LessonView,
    /// The lessons' entry in the books, once earned.
    pub entry: Option<EntryView>,
    /// Earned, but the books refuse them for now (why): the lessons job
    /// posts them once they can be.
    pub not_posted: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LessonPage {
    pub items: Vec<LessonView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LessonFilter {
    /// Only this enrollment's records.
    pub enrollment: Option<String>,
}

/// The institution the caller may act on, and (for a family) that the
/// enrollment is its own.
async fn scoped(
    state: &AppState,
    caller: &Caller,
    id: &str,
    enrollment: Option<&str>,
    action: Action,
) -> ApiResult<Institution> {
    let i = guard::institution(state, caller, id, action).await?;
    if let Some(e) = enrollment {
        guard::enrollment_in_scope(caller, e)?;
    }
    Ok(i)
}

/// Record lessons given (课消): pending until the family confirms them (or
/// stays silent for the rule pack's working days). Only confirmed lessons
/// are earned.
#[utoipa::path(post, path = "/v1/institutions/{id}/lessons", tag = "lessons",
    request_body = NewLessons,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = LessonView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn record_lessons(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ClientId>,
    Extension(accepted): Extension<Accepted>,
    Path(id): Path<String>,
    Json(body): Json<NewLessons>,
) -> ApiResult<(StatusCode, Json<LessonView>)> {
    let i = guard::institution(&state, &caller, &id, Action::RecordTeaching).await?;
    let lesson = lessons::record(
        &state.store,
        &i,
        LessonAsk {
            enrollment: body.enrollment,
            hours: body.hours,
            occurred_on: body.occurred_on,
        },
        &actor(&caller),
        Some(&refunds::request_key(&caller.token_id, key.as_str())),
        accepted.at.date_naive(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(LessonView::from(&lesson))))
}

/// Lesson records of the institution (a family: of its enrollment only).
#[utoipa::path(get, path = "/v1/institutions/{id}/lessons", tag = "lessons",
    params(("id" = String, Path, description = "Institution id"), LessonFilter),
    responses((status = 200, body = LessonPage), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
async fn list_lessons(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(filter): Query<LessonFilter>,
) -> ApiResult<Json<LessonPage>> {
    let own = match &caller.scope {
        Scope::Enrollment(_, e) => Some(e.to_string()),
        _ => None,
    };
    let wanted = filter.enrollment.or(own);
    let i = scoped(
        &state,
        &caller,
        &id,
        wanted.as_deref(),
        Action::ReadEnrollment,
    )
    .await?;
    let enrollment = wanted
        .map(|e| {
            ledger_core::EnrollmentId::parse(e)
                .map_err(|e| ApiError::from(e).on_field("enrollment"))
        })
        .transpose()?;
    let items = state
        .store
        .lessons(&i.id, enrollment.as_ref())
        .await?
        .iter()
        .map(LessonView::from)
        .collect();
    Ok(Json(LessonPage { items }))
}

/// The lesson record, for the caller to see (404 for a family's token on
/// another enrollment's lessons).
async fn lesson_in_scope(
    state: &AppState,
    caller: &Caller,
    id: &str,
    lesson: &str,
    action: Action,
) -> ApiResult<(Institution, Lesson)> {
    let i = guard::institution(state, caller, id, action).await?;
    let l = lessons::find(&state.store, &i, lesson).await?;
    if !caller.sees_enrollment(&l.record.enrollment) {
        return Err(ApiError::not_found(format!("lesson record {lesson:?}")));
    }
    Ok((i, l))
}

/// One lesson record with its trail.
#[utoipa::path(get, path = "/v1/institutions/{id}/lessons/{lesson}", tag = "lessons",
    params(("id" = String, Path, description = "Institution id"),
           ("lesson" = String, Path, description = "Lesson record id")),
    responses((status = 200, body = LessonView), (status = 404, body = Problem)))]
async fn get_lesson(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, lesson)): Path<(String, String)>,
) -> ApiResult<Json<LessonView>> {
    let (_, l) = lesson_in_scope(&state, &caller, &id, &lesson, Action::ReadEnrollment).await?;
    Ok(Json(LessonView::from(&l)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LessonAnswer {
    /// Why (required to dispute).
    pub reason: Option<String>,
}

async fn take_step(
    state: &AppState,
    caller: &Caller,
    id: &str,
    lesson: &str,
    step: LessonStep,
    action: Action,
    reason: Option<&str>,
) -> ApiResult<Json<AnsweredView>> {
    let (i, _) = lesson_in_scope(state, caller, id, lesson, action).await?;
    let answered = lessons::answer(
        &state.store,
        &i,
        lesson,
        step,
        &actor(caller),
        reason,
        jobs::today(&state.store),
    )
    .await?;
    Ok(Json(AnsweredView {
        lesson: LessonView::from(&answered.lesson),
        entry: answered.entry.as_ref().map(EntryView::from),
        not_posted: answered.not_posted,
    }))
}

/// The family confirms the lessons: they are earned (posted to the books).
#[utoipa::path(post, path = "/v1/institutions/{id}/lessons/{lesson}/confirm", tag = "lessons",
    request_body = LessonAnswer,
    params(("id" = String, Path, description = "Institution id"),
           ("lesson" = String, Path, description = "Lesson record id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = AnsweredView), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn confirm_lesson(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, lesson)): Path<(String, String)>,
    Json(body): Json<LessonAnswer>,
) -> ApiResult<Json<AnsweredView>> {
    take_step(
        &state,
        &caller,
        &id,
        &lesson,
        LessonStep::Confirm,
        Action::AnswerLessons,
        body.reason.as_deref(),
    )
    .await
}

/// The family disputes the lessons (with a reason): the enrollment's
/// release is held until an officer decides.
#[utoipa::path(post, path = "/v1/institutions/{id}/lessons/{lesson}/dispute", tag = "lessons",
    request_body = LessonAnswer,
    params(("id" = String, Path, description = "Institution id"),
           ("lesson" = String, Path, description = "Lesson record id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = AnsweredView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn dispute_lesson(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, lesson)): Path<(String, String)>,
    Json(body): Json<LessonAnswer>,
) -> ApiResult<Json<AnsweredView>> {
    take_step(
        &state,
        &caller,
        &id,
        &lesson,
        LessonStep::Dispute,
        Action::AnswerLessons,
        body.reason.as_deref(),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeDecision {
    /// `uphold` (the lessons are not earned) or `reject` (they are).
    pub outcome: String,
    pub reason: String,
}

/// An officer decides a disputed record: uphold (never earned) or reject
/// (earned, posted).
#[utoipa::path(post, path = "/v1/institutions/{id}/lessons/{lesson}/decision", tag = "lessons",
    request_body = DisputeDecision,
    params(("id" = String, Path, description = "Institution id"),
           ("lesson" = String, Path, description = "Lesson record id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = AnsweredView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn decide_dispute(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, lesson)): Path<(String, String)>,
    Json(body): Json<DisputeDecision>,
) -> ApiResult<Json<AnsweredView>> {
    let step = match body.outcome.as_str() {
        "uphold" => LessonStep::Uphold,
        "reject" => LessonStep::Reject,
        other => {
            return Err(ApiError::invalid(
                "outcome",
                format!("{other:?} is not uphold or reject"),
            ))
        }
    };
    take_step(
        &state,
        &caller,
        &id,
        &lesson,
        step,
        Action::ResolveDisputes,
        Some(&body.reason),
    )
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundSummary {
    pub id: String,
    pub amount: Option<String>,
    pub state: String,
    pub requested_on: NaiveDate,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentAccountView {
    pub enrollment: EnrollmentView,
    pub paid: String,
    /// Unearned tuition: what a refund could return now.
    pub refundable: String,
    /// Hours earned (in the books).
    pub hours_consumed: u32,
    /// Hours of records waiting for the family's answer.
    pub hours_pending: u32,
    /// Hours of records under dispute.
    pub hours_disputed: u32,
    /// Hours confirmed (by the family, by silence, or by an officer).
    pub hours_confirmed: u32,
    pub lessons: Vec<LessonView>,
    pub refunds: Vec<RefundSummary>,
    /// The enrollment's release is held (a dispute or a refund request).
    pub release_frozen: bool,
}

/// One enrollment's account: what was paid, lessons recorded, pending and
/// confirmed, what is refundable, refunds and their state.
#[utoipa::path(get, path = "/v1/institutions/{id}/enrollments/{enrollment}/account", tag = "lessons",
    params(("id" = String, Path, description = "Institution id"),
           ("enrollment" = String, Path, description = "Enrollment id")),
    responses((status = 200, body = EnrollmentAccountView), (status = 404, body = Problem)))]
async fn enrollment_account(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, enrollment)): Path<(String, String)>,
) -> ApiResult<Json<EnrollmentAccountView>> {
    let i = scoped(
        &state,
        &caller,
        &id,
        Some(&enrollment),
        Action::ReadEnrollment,
    )
    .await?;
    let a = lessons::account(&state.store, &i, &enrollment).await?;
    let money = |m: i64| format_minor(m, i.currency);
    let hours = |keep: fn(ledger_core::domain::lessons::LessonState) -> bool| {
        a.lessons
            .iter()
            .filter(|l| keep(l.state()))
            .map(|l| l.record.hours)
            .fold(0u32, u32::saturating_add)
    };
    use ledger_core::domain::lessons::LessonState as S;
    Ok(Json(EnrollmentAccountView {
        enrollment: EnrollmentView::from(&a.enrollment),
        paid: money(a.paid_minor),
        refundable: money(a.refundable_minor),
        hours_consumed: a.hours_consumed,
        hours_pending: hours(|s| s == S::Pending),
        hours_disputed: hours(|s| s == S::Disputed),
        hours_confirmed: hours(S::is_earned),
        lessons: a.lessons.iter().map(LessonView::from).collect(),
        refunds: a
            .refunds
            .iter()
            .map(|r| RefundSummary {
                id: r.id.to_string(),
                amount: r.amount_minor.map(money),
                state: r.state.code().to_string(),
                requested_on: r.requested_on,
            })
            .collect(),
        release_frozen: a.release_frozen,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeAsk {
    /// `freeze` (no release until lifted) or `lift`.
    pub action: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FreezeView {
    pub seq: i64,
    pub frozen: bool,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FreezeList {
    /// Frozen now.
    pub frozen: bool,
    /// Every freeze and lift, oldest first.
    pub items: Vec<FreezeView>,
}

fn freeze_list(records: Vec<FreezeRecord>) -> FreezeList {
    FreezeList {
        frozen: records.last().is_some_and(|f| f.frozen),
        items: records
            .into_iter()
            .map(|f| FreezeView {
                seq: f.seq,
                frozen: f.frozen,
                reason: f.reason,
                actor: f.actor,
                at: f.at,
            })
            .collect(),
    }
}

/// An officer freezes an institution's releases (rectification, a
/// blacklist), or lifts the freeze; each recorded with who and why.
#[utoipa::path(post, path = "/v1/institutions/{id}/freezes", tag = "lessons",
    request_body = FreezeAsk,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = FreezeList), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn freeze(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<FreezeAsk>,
) -> ApiResult<(StatusCode, Json<FreezeList>)> {
    let i = guard::institution(&state, &caller, &id, Action::FreezeReleases).await?;
    let frozen = match body.action.as_str() {
        "freeze" => true,
        "lift" => false,
        other => {
            return Err(ApiError::invalid(
                "action",
                format!("{other:?} is not freeze or lift"),
            ))
        }
    };
    let records = lessons::freeze(&state.store, &i, frozen, &body.reason, &actor(&caller)).await?;
    Ok((StatusCode::CREATED, Json(freeze_list(records))))
}

/// Every freeze and lift of the institution's releases.
#[utoipa::path(get, path = "/v1/institutions/{id}/freezes", tag = "lessons",
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = FreezeList), (status = 404, body = Problem)))]
async fn list_freezes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FreezeList>> {
    let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
    Ok(Json(freeze_list(state.store.freezes(&i.id).await?)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleasableView {
    pub currency: String,
    /// Earned and not yet released.
    pub unreleased: String,
    /// Held by disputes and refund requests of their enrollments.
    pub frozen: String,
    /// Kept in escrow by the rule pack's reserve.
    pub reserve: String,
    /// What an officer may release now.
    pub releasable: String,
    /// An officer froze the institution: nothing is released.
    pub institution_frozen: bool,
}

fn releasable_view(r: &Releasable, currency: Currency) -> ReleasableView {
    ReleasableView {
        currency: currency.code().to_string(),
        unreleased: format_minor(r.unreleased_minor, currency),
        frozen: format_minor(r.frozen_minor, currency),
        reserve: format_minor(r.reserve_minor, currency),
        releasable: format_minor(r.releasable_minor, currency),
        institution_frozen: r.institution_frozen,
    }
}

/// What may be released now: confirmed earnings not yet released, less
/// what freezes hold and the reserve keeps.
#[utoipa::path(get, path = "/v1/institutions/{id}/releasable", tag = "lessons",
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = ReleasableView), (status = 404, body = Problem)))]
async fn get_releasable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReleasableView>> {
    let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
    let today = jobs::today(&state.store);
    let r = lessons::releasable(
        &state.store,
        &i,
        &ledger_core::domain::lessons::CutOff::Day(today),
        today,
    )
    .await?;
    Ok(Json(releasable_view(&r, i.currency)))
}
