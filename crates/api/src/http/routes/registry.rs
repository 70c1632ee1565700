//! Jurisdictions and institutions: register, list, look up, and the
//! jurisdiction overview officers start their day with.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Extension;
use ledger_core::{
    Category, Currency, Institution, InstitutionId, InstitutionStatus, Jurisdiction,
    JurisdictionCode, SupervisionMode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
use crate::http::views::{CoverageView, Figures, InstitutionPage, InstitutionView, PageParams};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jurisdictions, create_jurisdiction))
        .routes(routes!(overview))
        .routes(routes!(list_institutions, create_institution))
        .routes(routes!(get_institution))
        .routes(routes!(put_rule_pack))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRulePack {
    /// The next version of this jurisdiction's pack (1, 2, …); a version
    /// once set never changes.
    pub version: u32,
    pub effective_from: chrono::NaiveDate,
    /// The parameters this pack sets; any left out inherit from the pack
    /// above (up to the national defaults). See RuleParams in the docs.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RulePackView {
    pub jurisdiction: String,
    pub version: u32,
    pub effective_from: chrono::NaiveDate,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

/// Set a version of the jurisdiction's rule pack (officers of it or
/// above). A pack that tightens (or sets no limit) is in force at once
/// (201); one that loosens a limit its own jurisdiction set waits for a
/// second officer (202, with the approval); one that loosens a limit set
/// above it is refused (403 `loosens_floor`, naming the parameter, the
/// floor and who set it).
#[utoipa::path(post, path = "/v1/jurisdictions/{code}/rule-packs", tag = "registry",
    request_body = NewRulePack,
    params(("code" = String, Path, description = "Jurisdiction code"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = RulePackView),
              (status = 202, body = crate::http::routes::approvals::ApprovalView),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn put_rule_pack(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ledger_core::ClientId>,
    Path(code): Path<String>,
    Json(body): Json<NewRulePack>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let j = guard::jurisdiction(&state, &caller, &code, Action::Register).await?;
    if body.version == 0 {
        return Err(ApiError::invalid("version", "versions start at 1"));
    }
    ledger_core::domain::bounds::check_day("effective_from", body.effective_from)?;
    let params: ledger_core::RuleParams = serde_json::from_value(body.params.clone())
        .map_err(|e| ApiError::invalid("params", format!("params: {e}")))?;
    params
        .validate()
        .map_err(|e| ApiError::from(e).on_field("params"))?;
    let pack = ledger_core::RulePack {
        jurisdiction: j.code.clone(),
        version: body.version,
        effective_from: body.effective_from,
        params,
    };
    let by = crate::http::routes::approvals::party(&caller);
    if let crate::app::approvals::Published::Waiting(a) =
        crate::app::approvals::publish_rule_pack(&state.store, &pack, &by, key.as_str()).await?
    {
        return Ok(crate::http::routes::approvals::waiting(&a).into_response());
    }
    Ok((
        StatusCode::CREATED,
        Json(RulePackView {
            jurisdiction: j.code.to_string(),
            version: pack.version,
            effective_from: pack.effective_from,
            params: serde_json::to_value(&pack.params).unwrap_or_default(),
        }),
    )
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JurisdictionView {
    #[schema(example = "410922")]
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
}

impl From<&Jurisdiction> for JurisdictionView {
    fn from(j: &Jurisdiction) -> Self {
        JurisdictionView {
            code: j.code.to_string(),
            name: j.name.clone(),
            parent: j.parent.as_ref().map(|p| p.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJurisdiction {
    /// Six digits (GB/T 2260 administrative division code).
    #[schema(example = "410922")]
    pub code: String,
    pub name: String,
    /// The division directly above it (`000000` is the nation); by default
    /// the one its code names. The nation itself (`000000`) has none and is
    /// registered by an admin.
    #[schema(example = "410900")]
    pub parent: Option<String>,
}

/// The jurisdictions the caller can see.
#[utoipa::path(get, path = "/v1/jurisdictions", tag = "registry",
    responses((status = 200, body = Vec<JurisdictionView>), (status = 401, body = Problem)))]
async fn list_jurisdictions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<JurisdictionView>>> {
    guard::may(&caller, Action::ReadBooks).or_else(|_| guard::may(&caller, Action::Oversee))?;
    let all = state.store.jurisdictions().await?;
    Ok(Json(
        all.iter()
            .filter(|j| caller.sees_jurisdiction(&j.code))
            .map(JurisdictionView::from)
            .collect(),
    ))
}

/// Register a jurisdiction below one the caller oversees.
#[utoipa::path(post, path = "/v1/jurisdictions", tag = "registry", request_body = NewJurisdiction,
    params(("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = JurisdictionView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_jurisdiction(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewJurisdiction>,
) -> ApiResult<(StatusCode, Json<JurisdictionView>)> {
    let code =
        JurisdictionCode::parse(&body.code).map_err(|e| ApiError::from(e).on_field("code"))?;
    code.check_division()
        .map_err(|e| ApiError::from(e).on_field("code"))?;
    let parent = body
        .parent
        .as_deref()
        .map(JurisdictionCode::parse)
        .transpose()
        .map_err(|e| ApiError::from(e).on_field("parent"))?;
    // Whoever may register below the parent may register this; the nation
    // itself, only a caller who oversees everything.
    match parent.clone().or_else(|| code.structural_parent()) {
        Some(above) => {
            guard::jurisdiction(&state, &caller, above.as_str(), Action::Register).await?;
        }
        None => {
            if caller.scope != crate::access::Scope::All {
                return Err(ApiError::not_found("jurisdiction \"000000\""));
            }
            guard::permitted(&caller, Action::Register)?;
        }
    }
    let j = crate::app::jurisdictions::register(
        &state.store,
        crate::app::jurisdictions::NewJurisdiction {
            code,
            name: body.name,
            parent,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(JurisdictionView::from(&j))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewRow {
    pub institution: InstitutionView,
    pub figures: Figures,
    pub coverage: CoverageView,
    pub open_alerts: u32,
    pub red_alerts: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    pub jurisdiction: JurisdictionView,
    /// Totals per currency, over every institution the query selects (all
    /// pages), not only this page's.
    pub totals: Vec<CurrencyTotals>,
    /// How many institutions the query selects, over all pages.
    pub matched: u64,
    /// This page, in the order asked for.
    pub institutions: Vec<OverviewRow>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyTotals {
    pub currency: String,
    pub owed_to_families: String,
    pub escrow: String,
    pub deposit: String,
    pub open_alerts: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewParams {
    /// `risk` (the default: most open red alerts first, then yellow, then
    /// the lowest coverage), `coverage` (lowest first; none counts as fully
    /// covered), `owed` (most owed to families first) or `name`; ties by
    /// institution id.
    pub sort: Option<String>,
    /// Only institutions whose name or licence number contains this, any
    /// case (searched over the whole jurisdiction, not the page).
    pub q: Option<String>,
    /// Only `red` (an open red alert), `yellow` (open yellow, no red) or
    /// `green` (none open).
    pub level: Option<String>,
    /// Opaque: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500; default 50.
    pub limit: Option<u32>,
}

impl OverviewParams {
    fn query(&self) -> Result<crate::app::oversight::OverviewQuery, ApiError> {
        use ledger_core::store::{AlertLevel, FiguresSort};
        let sort = match self.sort.as_deref() {
            None | Some("") => FiguresSort::Risk,
            Some(s) => FiguresSort::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "sort",
                    format!("sort {s:?} is not risk, coverage, owed or name"),
                )
            })?,
        };
        let level = match self.level.as_deref() {
            None | Some("") => None,
            Some(l) => Some(AlertLevel::parse(l).ok_or_else(|| {
                ApiError::invalid("level", format!("level {l:?} is not red, yellow or green"))
            })?),
        };
        let offset = match self.cursor.as_deref() {
            None | Some("") => 0,
            Some(c) => c.parse::<u64>().map_err(|_| {
                ApiError::invalid(
                    "cursor",
                    format!("cursor {c:?} is not a next_cursor this list gave"),
                )
            })?,
        };
        let limit = PageParams {
            cursor: None,
            limit: self.limit,
        }
        .limit()?;
        Ok(crate::app::oversight::OverviewQuery {
            search: self.q.clone().filter(|q| !q.trim().is_empty()),
            level,
            sort,
            offset,
            limit: Some(limit as u64),
        })
    }
}

/// A page of the institutions of a jurisdiction and everything below it,
/// each with owed / escrow / deposit / coverage / open alerts, sorted and
/// filtered over the whole jurisdiction, with the totals of all pages.
/// Read from figures kept up to date as entries, statements and alerts
/// arrive, not recomputed per request.
#[utoipa::path(get, path = "/v1/jurisdictions/{code}/overview", tag = "oversight",
    params(("code" = String, Path, description = "Jurisdiction code"), OverviewParams),
    responses((status = 200, body = Overview), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn overview(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Query(params): Query<OverviewParams>,
) -> ApiResult<axum::response::Response> {
    let j = guard::jurisdiction(&state, &caller, &code, Action::Oversee).await?;
    let query = params.query()?;
    let kept = state.overviews.page(&state.reads, &j.code, &query).await?;
    // A page asked for again is sent as it was rendered the first time.
    let body = kept.rendered("api/json", |page| {
        serde_json::to_string(&overview_view(page, &j, &query)).map_err(|e| {
            tracing::error!(error = %e, "the overview as JSON");
            ApiError::internal()
        })
    })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response())
}

fn overview_view(
    page: &crate::app::oversight::OverviewPage,
    j: &ledger_core::Jurisdiction,
    query: &crate::app::oversight::OverviewQuery,
) -> Overview {
    let rows = page
        .rows
        .iter()
        .map(|row| {
            let i = &row.institution;
            OverviewRow {
                institution: InstitutionView::from(i),
                figures: Figures::from(&row.sheet),
                coverage: CoverageView::of(&row.coverage, page.as_of, i.currency),
                open_alerts: row.open_alerts,
                red_alerts: row.red_alerts,
            }
        })
        .collect::<Vec<_>>();
    let next = query.offset + rows.len() as u64;
    let money = crate::http::views::money;
    Overview {
        jurisdiction: JurisdictionView::from(j),
        totals: page
            .totals
            .iter()
            .map(|(c, t)| CurrencyTotals {
                currency: c.code().to_string(),
                owed_to_families: money(t.owed_minor, *c),
                escrow: money(t.escrow_minor, *c),
                deposit: money(t.deposit_minor, *c),
                open_alerts: t.red_alerts + t.yellow_alerts,
            })
            .collect(),
        matched: page.matched,
        institutions: rows,
        next_cursor: (next < page.matched).then(|| next.to_string()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstitutionFilter {
    /// Only this jurisdiction and below.
    pub jurisdiction: Option<String>,
    /// active, suspended or closed.
    pub status: Option<String>,
    /// custody, deposit or both.
    pub mode: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 500; default 50.
    pub limit: Option<u32>,
}

/// The institutions the caller can see, by id.
#[utoipa::path(get, path = "/v1/institutions", tag = "registry", params(InstitutionFilter),
    responses((status = 200, body = InstitutionPage), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn list_institutions(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<InstitutionFilter>,
) -> ApiResult<Json<InstitutionPage>> {
    guard::may(&caller, Action::ReadBooks)?;
    let limit = PageParams {
        cursor: None,
        limit: filter.limit,
    }
    .limit()?;
    let jurisdiction = filter
        .jurisdiction
        .as_deref()
        .map(|c| JurisdictionCode::parse(c).map_err(|e| ApiError::from(e).on_field("jurisdiction")))
        .transpose()?;
    let status = filter
        .status
        .as_deref()
        .map(|s| parse_text::<InstitutionStatus>("status", s, "active, suspended or closed"))
        .transpose()?;
    let mode = filter
        .mode
        .as_deref()
        .map(|s| parse_text::<SupervisionMode>("mode", s, "custody, deposit or both"))
        .transpose()?;
    // The cursor is the last institution id of the previous page.
    if let Some(c) = filter.cursor.as_deref() {
        InstitutionId::parse(c).map_err(|_| {
            ApiError::invalid(
                "cursor",
                format!("cursor {c:?} is not one this API gave out"),
            )
        })?;
    }
    let mut visible: Vec<Institution> = guard::visible_institutions(&state, &caller)
        .await?
        .into_iter()
        .filter(|i| {
            jurisdiction
                .as_ref()
                .is_none_or(|j| j.covers(&i.jurisdiction))
        })
        .filter(|i| status.is_none_or(|s| i.status == s))
        .filter(|i| mode.is_none_or(|m| i.mode == m))
        .filter(|i| filter.cursor.as_deref().is_none_or(|c| i.id.as_str() > c))
        .collect();
    visible.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let next_cursor = (visible.len() > limit).then(|| visible[limit - 1].id.to_string());
    visible.truncate(limit);
    Ok(Json(InstitutionPage {
        items: visible.iter().map(InstitutionView::from).collect(),
        next_cursor,
    }))
}

pub fn parse_text<T: serde::de::DeserializeOwned>(
    field: &str,
    value: &str,
    expected: &str,
) -> ApiResult<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| ApiError::invalid(field, format!("{value:?} is not one of: {expected}")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstitution {
    #[schema(example = "INS-410922-009")]
    pub id: String,
    pub name: String,
    pub licence_no: String,
    #[schema(example = "410922")]
    pub jurisdiction: String,
    /// custody, deposit or both.
    pub mode: String,
    /// subject or non_subject.
    pub category: String,
    /// Default CNY.
    pub currency: Option<String>,
}

/// Register an institution in a jurisdiction the caller oversees.
#[utoipa::path(post, path = "/v1/institutions", tag = "registry", request_body = NewInstitution,
    params(("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = InstitutionView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_institution(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewInstitution>,
) -> ApiResult<(StatusCode, Json<InstitutionView>)> {
    guard::jurisdiction(&state, &caller, &body.jurisdiction, Action::Register).await?;
    let institution = Institution {
        id: InstitutionId::parse(body.id).map_err(|e| ApiError::from(e).on_field("id"))?,
        name: body.name,
        licence_no: body.licence_no,
        jurisdiction: JurisdictionCode::parse(body.jurisdiction)
            .map_err(|e| ApiError::from(e).on_field("jurisdiction"))?,
        mode: parse_text("mode", &body.mode, "custody, deposit or both")?,
        category: parse_text::<Category>("category", &body.category, "subject or non_subject")?,
        status: InstitutionStatus::Active,
        currency: body
            .currency
            .as_deref()
            .unwrap_or("CNY")
            .parse::<Currency>()
            .map_err(|e| ApiError::from(e).on_field("currency"))?,
    };
    crate::app::registry::register_institution(&state.store, &institution).await?;
    Ok((
        StatusCode::CREATED,
        Json(InstitutionView::from(&institution)),
    ))
}

/// One institution.
#[utoipa::path(get, path = "/v1/institutions/{id}", tag = "registry",
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = InstitutionView), (status = 404, body = Problem)))]
async fn get_institution(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<InstitutionView>> {
    let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
    Ok(Json(InstitutionView::from(&i)))
}
