//! The flows of money and teaching: enrollments, tuition payments, lesson
//! consumption, one at a time or in an all-or-nothing batch. A request's
//! Idempotency-Key is its client id in the ledger, so a repeat, even one
//! that raced past the kept answer, is a replay there too.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::domain::wire::WireRequest;
use ledger_core::{Amount, ClientId, Command, Enrollment, EnrollmentId, Institution, Request};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller, Role, Scope};
use crate::app::books;
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
use crate::http::record::{Accepted, Keeping, KeptInBatch, ShownOnce};
use crate::http::views::{EnrollmentPage, EnrollmentView, EntryView, PageParams};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_enrollment, list_enrollments))
        .routes(routes!(reissue_family_token))
        .routes(routes!(record_payment))
        .routes(routes!(record_consumption))
        .routes(routes!(post_batch))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollment {
    #[schema(example = "ENR-0001")]
    pub id: String,
    /// A pseudonymous reference to the student; no personal data.
    pub student_ref: String,
    pub hours_bought: u32,
    #[serde(default)]
    pub bonus_hours: u32,
    /// The price actually paid for `hours_bought`, a decimal string.
    #[schema(example = "3000.00")]
    pub price: String,
    pub course_start: NaiveDate,
    pub course_end: NaiveDate,
}

/// Record an enrollment (a package of class hours sold).
#[utoipa::path(post, path = "/v1/institutions/{id}/enrollments", tag = "flows",
    request_body = NewEnrollment,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = NewEnrollmentView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_enrollment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<NewEnrollment>,
) -> ApiResult<Response> {
    let i = guard::institution(&state, &caller, &id, Action::RecordTeaching).await?;
    let price =
        Amount::parse(&body.price, i.currency).map_err(|e| ApiError::from(e).on_field("price"))?;
    let enrollment = Enrollment {
        institution: i.id.clone(),
        id: EnrollmentId::parse(body.id).map_err(|e| ApiError::from(e).on_field("id"))?,
        student_ref: body.student_ref,
        hours_bought: body.hours_bought,
        bonus_hours: body.bonus_hours,
        price,
        currency: i.currency,
        course_start: body.course_start,
        course_end: body.course_end,
    };
    if !books::enroll(&state.store, &enrollment).await? {
        // Sent again under a new key: the family's token was given with the
        // first answer, and another would be one more key to its money.
        return Err(ApiError::from(crate::app::AppError::Conflict {
            code: "enrollment_exists",
            detail: format!(
                "institution {} already has enrollment {} with these terms; its family token was shown once, when it was recorded (a repeat under that request's Idempotency-Key shows the first answer; POST …/enrollments/{}/family-token issues a new one and revokes the old)",
                i.id, enrollment.id, enrollment.id
            ),
        }));
    }
    // The family's own token, scoped to this enrollment: shown once, kept
    // only as a hash (a repeat of this request shows it redacted).
    let (token, _) = crate::token::create(
        &state.store,
        Role::Family,
        Scope::Enrollment(i.id.clone(), enrollment.id.clone()),
        Some(format!("family of {} at {}", enrollment.id, i.id)),
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "family token not created");
        ApiError::internal()
    })?;
    let mut response = (
        StatusCode::CREATED,
        Json(NewEnrollmentView {
            enrollment: EnrollmentView::from(&enrollment),
            family_token: token.clone(),
        }),
    )
        .into_response();
    response.extensions_mut().insert(ShownOnce(token));
    Ok(response)
}

/// An enrollment just recorded, with the token its family uses.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct NewEnrollmentView {
    #[serde(flatten)]
    pub enrollment: EnrollmentView,
    /// The family's bearer token (role `family`, this enrollment only): the
    /// institution hands it over. Shown once; a repeat of the request shows
    /// it redacted.
    pub family_token: String,
}

/// A family's new token for its enrollment, when the one it had is lost or
/// in the wrong hands.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct FamilyTokenView {
    pub institution: String,
    pub enrollment: String,
    /// The new bearer token (role `family`, this enrollment only): shown
    /// once; a repeat of the request shows it redacted.
    pub family_token: String,
    /// The ids of the family's earlier tokens, revoked (they stop working
    /// within `http.token_cache_ms`).
    pub revoked: Vec<String>,
}

/// Issue the family of an enrollment a new token and revoke every one it
/// had: the way back for a family that lost its token (an enrollment sent
/// again gets none).
#[utoipa::path(post, path = "/v1/institutions/{id}/enrollments/{enrollment}/family-token", tag = "flows",
    params(("id" = String, Path, description = "Institution id"),
           ("enrollment" = String, Path, description = "Enrollment id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = FamilyTokenView), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn reissue_family_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, enrollment)): Path<(String, String)>,
) -> ApiResult<Response> {
    let i = guard::institution(&state, &caller, &id, Action::RecordTeaching).await?;
    let not_found = || ApiError::not_found(format!("enrollment {enrollment:?}"));
    let e = EnrollmentId::parse(enrollment.clone()).map_err(|_| not_found())?;
    if state.store.enrollment_book(&i.id, &e).await?.is_none() {
        return Err(not_found());
    }
    let (token, revoked) = crate::token::reissue_family(&state.store, &i.id, &e)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "family token not reissued");
            ApiError::internal()
        })?;
    state.tokens.forget(&revoked);
    tracing::info!(institution = %i.id, enrollment = %e, revoked = revoked.len(), "family token reissued");
    let mut response = (
        StatusCode::CREATED,
        Json(FamilyTokenView {
            institution: i.id.to_string(),
            enrollment: e.to_string(),
            family_token: token.clone(),
            revoked,
        }),
    )
        .into_response();
    response.extensions_mut().insert(ShownOnce(token));
    Ok(response)
}

/// The institution's enrollments (packages of class hours sold), by id, a
/// page at a time: the ids that payments, lessons and refunds name.
#[utoipa::path(get, path = "/v1/institutions/{id}/enrollments", tag = "flows",
    params(("id" = String, Path, description = "Institution id"), PageParams),
    responses((status = 200, body = EnrollmentPage), (status = 400, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_enrollments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<EnrollmentPage>> {
    let limit = page.limit()?;
    // The cursor is the last enrollment id of the previous page.
    let after = page
        .cursor
        .map(|c| {
            EnrollmentId::parse(c.clone()).map_err(|_| {
                ApiError::invalid(
                    "cursor",
                    format!("cursor {c:?} is not one this API gave out"),
                )
            })
        })
        .transpose()?;
    let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
    // One more than the page: whether there is a next one.
    let mut found = state
        .store
        .enrollments_page(&i.id, after.as_ref(), limit.saturating_add(1))
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let items: Vec<EnrollmentView> = found.iter().map(EnrollmentView::from).collect();
    let next_cursor = more.then(|| items.last().map(|e| e.id.clone())).flatten();
    Ok(Json(EnrollmentPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    #[schema(example = "ENR-0001")]
    pub enrollment: String,
    /// Decimal string in the institution's currency.
    #[schema(example = "1500.00")]
    pub amount: String,
    /// When the family paid; default now.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The platform's order number or the bank's reference.
    pub external_ref: Option<String>,
}

/// Records one request through the group committer; the answer kept under
/// its Idempotency-Key and its audit record commit with its entry.
async fn execute(
    state: &AppState,
    request: Request,
    keeping: Option<Extension<Keeping>>,
) -> ApiResult<Response> {
    let keep = keeping.map(|Extension(k)| {
        k.keep_with(
            StatusCode::CREATED,
            Box::new(|entry| {
                // The body `Json` answers with, byte for byte.
                serde_json::to_string(&EntryView::from(entry)).unwrap_or_default()
            }),
        )
    });
    let kept = keep.is_some();
    let entry = books::record_grouped(&state.group, request, keep).await?;
    state.metrics.entries_posted(1);
    let mut response = (StatusCode::CREATED, Json(EntryView::from(&entry))).into_response();
    if kept {
        response.extensions_mut().insert(KeptInBatch);
    }
    Ok(response)
}

fn request(
    accepted: Accepted,
    i: &Institution,
    key: ClientId,
    occurred_at: Option<DateTime<Utc>>,
    external_ref: Option<String>,
    command: Command,
) -> Request {
    Request {
        institution: i.id.clone(),
        client_id: key,
        currency: i.currency,
        occurred_at: occurred_at.unwrap_or(accepted.at),
        external_ref,
        command,
    }
}

/// Record tuition paid into the supervised account.
#[utoipa::path(post, path = "/v1/institutions/{id}/payments", tag = "flows",
    request_body = NewPayment,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Also the entry's client id")),
    responses((status = 201, body = EntryView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn record_payment(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ClientId>,
    Extension(accepted): Extension<Accepted>,
    keeping: Option<Extension<Keeping>>,
    Path(id): Path<String>,
    Json(body): Json<NewPayment>,
) -> ApiResult<Response> {
    let i = guard::institution(&state, &caller, &id, Action::RecordPayments).await?;
    let command = Command::PayTuition {
        enrollment: EnrollmentId::parse(body.enrollment)
            .map_err(|e| ApiError::from(e).on_field("enrollment"))?,
        amount: Amount::parse(&body.amount, i.currency)
            .map_err(|e| ApiError::from(e).on_field("amount"))?,
    };
    let r = request(
        accepted,
        &i,
        key,
        body.occurred_at,
        body.external_ref,
        command,
    );
    execute(&state, r, keeping).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConsumption {
    #[schema(example = "ENR-0001")]
    pub enrollment: String,
    /// Class hours delivered (positive).
    pub hours: u32,
    /// When the lessons were delivered; default now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub external_ref: Option<String>,
}

/// Post lessons already confirmed elsewhere (imported history: the
/// platform) straight into the books: earns tuition at the price paid. An
/// institution records lessons for the family to confirm instead
/// (`POST /v1/institutions/{id}/lessons`).
#[utoipa::path(post, path = "/v1/institutions/{id}/consumptions", tag = "flows",
    request_body = NewConsumption,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Also the entry's client id")),
    responses((status = 201, body = EntryView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn record_consumption(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ClientId>,
    Extension(accepted): Extension<Accepted>,
    keeping: Option<Extension<Keeping>>,
    Path(id): Path<String>,
    Json(body): Json<NewConsumption>,
) -> ApiResult<Response> {
    let i = guard::institution(&state, &caller, &id, Action::PostConfirmedLessons).await?;
    if body.hours == 0 {
        return Err(ApiError::invalid("hours", "hours must be positive"));
    }
    let command = Command::ConsumeLessons {
        enrollment: EnrollmentId::parse(body.enrollment)
            .map_err(|e| ApiError::from(e).on_field("enrollment"))?,
        hours: body.hours,
    };
    let r = request(
        accepted,
        &i,
        key,
        body.occurred_at,
        body.external_ref,
        command,
    );
    execute(&state, r, keeping).await
}

/// One item of a batch: the ledger's wire form, restricted to payments and
/// consumptions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    pub institution: String,
    /// Unique per institution: a repeat is a replay.
    pub client_id: String,
    /// `pay_tuition` or `consume_lessons`.
    pub op: String,
    pub enrollment: String,
    /// For pay_tuition: a decimal string.
    pub amount: Option<String>,
    /// For consume_lessons.
    pub hours: Option<i64>,
    pub occurred_at: DateTime<Utc>,
    pub external_ref: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Up to 10,000 items, all recorded or none.
    pub items: Vec<BatchItem>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct BatchResult {
    pub entries: Vec<EntryView>,
}

pub const MAX_BATCH: usize = 10_000;

/// Record many payments and consumptions across institutions at once, all
/// or nothing; a refusal names the item.
#[utoipa::path(post, path = "/v1/batches", tag = "flows", request_body = Batch,
    params(("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = BatchResult), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn post_batch(
    State(state): State<AppState>,
    caller: Caller,
    Json(batch): Json<Batch>,
) -> ApiResult<(StatusCode, Json<BatchResult>)> {
    if batch.items.is_empty() || batch.items.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "items",
            format!(
                "a batch holds 1 to {MAX_BATCH} items, not {}",
                batch.items.len()
            ),
        ));
    }
    let mut institutions: std::collections::BTreeMap<String, Institution> = Default::default();
    let mut requests = Vec::with_capacity(batch.items.len());
    for (n, item) in batch.items.into_iter().enumerate() {
        let at = |e: ApiError| {
            let field = match &e.field {
                Some(f) => format!("items[{n}].{f}"),
                None => format!("items[{n}]"),
            };
            ApiError {
                detail: format!("item {n}: {}", e.detail),
                field: Some(field),
                ..e
            }
        };
        let action = match item.op.as_str() {
            "pay_tuition" => Action::RecordPayments,
            "consume_lessons" => Action::PostConfirmedLessons,
            other => {
                return Err(at(ApiError::invalid(
                    "op",
                    format!("{other:?} is not pay_tuition or consume_lessons"),
                )))
            }
        };
        let i = match institutions.get(&item.institution) {
            Some(i) => i.clone(),
            None => {
                let i = guard::institution(&state, &caller, &item.institution, action)
                    .await
                    .map_err(at)?;
                institutions.insert(item.institution.clone(), i.clone());
                i
            }
        };
        // The guard ran for this institution with one action; check the
        // role for this item's action too.
        guard::may(&caller, action).map_err(at)?;
        let wire = WireRequest {
            institution: item.institution,
            client_id: item.client_id,
            currency: i.currency.code().to_string(),
            occurred_at: item.occurred_at,
            external_ref: item.external_ref,
            op: item.op,
            enrollment: Some(item.enrollment),
            amount: item.amount,
            hours: item.hours,
            source: None,
            pending: None,
            entry: None,
        };
        requests.push(wire.parse().map_err(|e| at(ApiError::from(e)))?);
    }
    let entries = books::record_batch(&state.store, requests).await?;
    state.metrics.entries_posted(entries.len());
    Ok((
        StatusCode::CREATED,
        Json(BatchResult {
            entries: entries.iter().map(EntryView::from).collect(),
        }),
    ))
}
