//! The console's handlers: parse the request, check the session, the CSRF
//! token and the scope, call the application layer, render a view.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use ledger_core::domain::alerts::{AlertAction, Severity};
use ledger_core::domain::risk::coverage::Unconfirmed;
use ledger_core::{Institution, InstitutionId};
use maud::{html, Markup};
use serde::Deserialize;

use crate::access::{permits, Action};
use crate::app::oversight::coverage_bp;
use crate::app::{AppError, Kind};
use crate::console::format::{date, percent, yuan, yuan_text};
use crate::console::views::{self, line_anchor};
use crate::console::{
    cookie, lang, set_cookie, signed, ConsoleState, Lang, Signed, FORM_COOKIE, LANG_COOKIE,
    SESSION_COOKIE,
};

#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    pub lang: Option<String>,
}

/// A page, with the language cookie set when `?lang=` chose one.
fn render(
    headers: &HeaderMap,
    query_lang: Option<&str>,
    status: StatusCode,
    markup: Markup,
) -> Response {
    let mut response = (status, Html(markup.into_string())).into_response();
    if let Some(l @ ("en" | "zh")) = query_lang {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(headers, LANG_COOKIE, l, 365 * 24 * 3600),
        );
    }
    response
}

fn signed_page(lang: Lang, title: &str, s: &Signed, body: Markup) -> Markup {
    views::page(lang, title, Some((&s.officer.name, &s.csrf)), body)
}

/// A failed use case as a page: 404 for what the officer cannot see or
/// does not exist, the refusal's words for bad input, and a bare 500 (the
/// cause logged) for our own faults.
pub fn failure(lang: Lang, e: &AppError) -> Response {
    let (status, message) = match e.kind() {
        Kind::NotFound => (
            StatusCode::NOT_FOUND,
            lang.t("没有找到。", "Not found.").to_string(),
        ),
        Kind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Kind::Conflict => (StatusCode::CONFLICT, e.to_string()),
        Kind::Forbidden => (
            StatusCode::FORBIDDEN,
            lang.t("无权执行此操作。", "Not allowed.").to_string(),
        ),
        Kind::Unavailable | Kind::Busy | Kind::Internal => {
            tracing::error!(error = %e, "console: use case failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                lang.t(
                    "服务内部错误,请稍后再试。",
                    "Internal error; try again later.",
                )
                .to_string(),
            )
        }
    };
    let body = views::page(
        lang,
        lang.t("出错了", "Error"),
        None,
        views::error(lang, &message),
    );
    (status, Html(body.into_string())).into_response()
}

fn not_found(lang: Lang) -> Response {
    failure(lang, &AppError::not_found("page"))
}

fn forbidden_form(lang: Lang) -> Response {
    let body = views::page(
        lang,
        lang.t("请求被拒绝", "Refused"),
        None,
        views::error(
            lang,
            lang.t(
                "表单已失效(缺少或错误的安全令牌),请返回重新提交。",
                "The form is stale (its security token is missing or wrong); go back and submit it again.",
            ),
        ),
    );
    (StatusCode::FORBIDDEN, Html(body.into_string())).into_response()
}

/// Compares two tokens in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub async fn home(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    match signed(&state, &headers).await {
        Ok(_) => Redirect::to("/overview").into_response(),
        Err(r) => r,
    }
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

fn sign_in_page(
    headers: &HeaderMap,
    query_lang: Option<&str>,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let lang = lang(headers, query_lang);
    let token = crate::app::officers::form_token();
    let body = views::page(
        lang,
        lang.t("登录", "Sign in"),
        None,
        views::sign_in(lang, &token, error),
    );
    let mut response = render(headers, query_lang, status, body);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(headers, FORM_COOKIE, &token, 3600),
    );
    response
}

pub async fn sign_in_form(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    sign_in_page(&headers, q.lang.as_deref(), StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub login: String,
    #[serde(default)]
    pub password: String,
}

pub async fn sign_in(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let lang = lang(&headers, None);
    let expected = cookie(&headers, FORM_COOKIE).unwrap_or_default();
    if !same_token(&form.csrf, &expected) {
        return forbidden_form(lang);
    }
    match crate::app::officers::sign_in(&state.store, form.login.trim(), &form.password).await {
        Ok(s) => {
            let mut response = Redirect::to("/overview").into_response();
            let max_age = (s.expires_at - state.store.now()).num_seconds().max(0);
            let h = response.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&headers, SESSION_COOKIE, &s.session_id, max_age),
            );
            h.append(header::SET_COOKIE, set_cookie(&headers, FORM_COOKIE, "", 0));
            response
        }
        Err(e) if e.code() == "wrong_credentials" => sign_in_page(
            &headers,
            None,
            StatusCode::UNAUTHORIZED,
            Some(lang.t("账号或密码错误。", "The login or the password is wrong.")),
        ),
        Err(e) if e.code() == "account_locked" => sign_in_page(
            &headers,
            None,
            StatusCode::TOO_MANY_REQUESTS,
            Some(lang.t(
                "连续登录失败次数过多,账号已锁定15分钟。",
                "Too many failed sign-ins: the account is locked for 15 minutes.",
            )),
        ),
        Err(e) => failure(lang, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (lang, s) = match signed_form(&state, &headers, &form.csrf, None).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = crate::app::officers::sign_out(&state.store, &s.session_id).await {
        return failure(lang, &e);
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", 0),
    );
    response
}

#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    pub lang: Option<String>,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub level: String,
    /// 1-based; absent or unreadable is the first.
    pub page: Option<String>,
}

/// Institutions on one page of the console's overview.
pub const OVERVIEW_PAGE_SIZE: u64 = 50;

pub async fn overview(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    use ledger_core::store::{AlertLevel, FiguresSort};
    let lang = lang(&headers, q.lang.as_deref());
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !permits(s.officer.role, Action::Oversee) {
        return failure(lang, &AppError::not_found("page"));
    }
    let code = match s.officer.jurisdiction() {
        Some(c) => c.clone(),
        None => match ledger_core::JurisdictionCode::parse("000000") {
            Ok(c) => c,
            Err(e) => return failure(lang, &AppError::from(e)),
        },
    };
    // A form's choices: anything else shows the default, as before.
    let sort = FiguresSort::parse(&q.sort).unwrap_or_default();
    let page = q
        .page
        .as_deref()
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let query = crate::app::oversight::OverviewQuery {
        search: Some(q.q.clone()).filter(|n| !n.trim().is_empty()),
        level: AlertLevel::parse(&q.level),
        sort,
        offset: (page - 1).saturating_mul(OVERVIEW_PAGE_SIZE),
        limit: Some(OVERVIEW_PAGE_SIZE),
    };
    let kept = match state.overviews.page(&state.reads, &code, &query).await {
        Ok(o) => o,
        Err(e) => return failure(lang, &e),
    };
    // The table is the officer's own only through the page and the query:
    // kept once per language and search as typed, the officer's name and
    // form token are put around it per request.
    let key = format!("console/{lang:?}/{:?}/{}", q.lang, q.q);
    let table = kept.rendered(&key, |overview| {
        Ok::<_, std::convert::Infallible>(
            overview_table(lang, &q, sort, page, overview).into_string(),
        )
    });
    let body = match table {
        Ok(html) => maud::PreEscaped(html.to_string()),
        Err(never) => match never {},
    };
    render(
        &headers,
        q.lang.as_deref(),
        StatusCode::OK,
        signed_page(lang, lang.t("辖区总览", "Overview"), &s, body),
    )
}

/// The overview's table, filters and totals for one kept page.
fn overview_table(
    lang: Lang,
    q: &OverviewQuery,
    sort: ledger_core::store::FiguresSort,
    page: u64,
    overview: &crate::app::oversight::OverviewPage,
) -> Markup {
    use ledger_core::store::AlertLevel;
    let shown: Vec<views::Row> = overview
        .rows
        .iter()
        .map(|r| views::Row {
            id: r.institution.id.to_string(),
            name: r.institution.name.clone(),
            licence_no: r.institution.licence_no.clone(),
            owed: r.sheet.owed_to_families_minor(),
            escrow: r.sheet.escrow_minor(),
            deposit: r.sheet.deposit_minor(),
            coverage_bp: bp64(&r.coverage),
            red: r.red_alerts,
            yellow: r.yellow_alerts,
        })
        .collect();
    // Over every page the filters select, not only this one.
    let totals = overview
        .totals
        .iter()
        .fold(views::Totals::default(), |t, (_, c)| views::Totals {
            institutions: t.institutions + c.institutions,
            owed: t.owed.saturating_add(c.owed_minor),
            escrow: t.escrow.saturating_add(c.escrow_minor),
            deposit: t.deposit.saturating_add(c.deposit_minor),
            red: t.red + c.red_alerts,
            yellow: t.yellow + c.yellow_alerts,
        });
    let title = format!(
        "{} {}",
        overview.jurisdiction.name, overview.jurisdiction.code
    );
    let pages = overview.matched.div_ceil(OVERVIEW_PAGE_SIZE).max(1);
    let filters = views::Filters {
        q: &q.q,
        sort: sort.code(),
        level: AlertLevel::parse(&q.level).map_or("", |_| q.level.as_str()),
        lang: q.lang.as_deref(),
        page: page.min(pages),
        pages,
    };
    views::overview(lang, &title, &shown, &totals, &filters)
}

/// The start of every console form: a signed-in officer (else the sign-in
/// page), the form's CSRF token (else 403), and, when `action` is given,
/// that action allowed to the officer's role (else 404, as a page out of
/// scope).
async fn signed_form(
    state: &ConsoleState,
    headers: &HeaderMap,
    csrf: &str,
    action: Option<Action>,
) -> Result<(Lang, Signed), Response> {
    let lang = lang(headers, None);
    let s = signed(state, headers).await?;
    if !same_token(csrf, &s.csrf) {
        return Err(forbidden_form(lang));
    }
    if action.is_some_and(|a| !permits(s.officer.role, a)) {
        return Err(not_found(lang));
    }
    Ok((lang, s))
}

/// The start of every form posted about one institution: [`signed_form`]
/// and the institution in the officer's scope (else 404).
async fn institution_form(
    state: &ConsoleState,
    headers: &HeaderMap,
    csrf: &str,
    id: &str,
    action: Action,
) -> Result<(Lang, Signed, Institution), Response> {
    let (lang, s) = signed_form(state, headers, csrf, Some(action)).await?;
    let institution = visible(state, &s, id)
        .await
        .map_err(|e| failure(lang, &e))?;
    Ok((lang, s, institution))
}

/// Whose a record is, for the officer's scope.
enum Owner {
    Institution(String),
    Jurisdiction(ledger_core::JurisdictionCode),
}

/// The twin of [`institution_form`] for a form about a record (a refund,
/// an approval awaiting a second officer): [`signed_form`], then the record
/// `find` loads, 404 unless its owner is in the officer's scope.
async fn record_form<T>(
    state: &ConsoleState,
    headers: &HeaderMap,
    csrf: &str,
    action: Action,
    find: impl std::future::Future<Output = Result<T, AppError>>,
    owner: impl FnOnce(&T) -> Owner,
) -> Result<(Lang, Signed, T), Response> {
    let (lang, s) = signed_form(state, headers, csrf, Some(action)).await?;
    let record = find.await.map_err(|e| failure(lang, &e))?;
    match owner(&record) {
        Owner::Institution(id) => {
            visible(state, &s, &id)
                .await
                .map_err(|e| failure(lang, &e))?;
        }
        Owner::Jurisdiction(code) if !s.officer.caller().sees_jurisdiction(&code) => {
            return Err(not_found(lang));
        }
        Owner::Jurisdiction(_) => {}
    }
    Ok((lang, s, record))
}

/// The institution if the officer may see it; 404 otherwise (whether it
/// exists elsewhere is not told).
async fn visible(state: &ConsoleState, s: &Signed, id: &str) -> Result<Institution, AppError> {
    let id = InstitutionId::parse(id).map_err(|_| AppError::not_found("page"))?;
    let institution = match state.store.institution(&id).await {
        Ok(i) => i,
        Err(e) => {
            let e = AppError::from(e);
            return Err(if e.kind() == Kind::NotFound {
                AppError::not_found("page")
            } else {
                e
            });
        }
    };
    if !s.officer.caller().sees_institution(&institution, false)
        || !permits(s.officer.role, Action::Oversee)
    {
        return Err(AppError::not_found("page"));
    }
    Ok(institution)
}

fn kind_words(lang: Lang, kind: &str) -> String {
    let zh = match kind {
        "shortfall" => "资金缺口",
        "deposit_below_floor" => "保证金不足",
        "unauthorized_outflow" => "未经指令的资金流出",
        "balance_mismatch" => "银行余额与账簿不符",
        "diverted_collection" => "学费未进入监管账户",
        "collection_spike" => "预收费激增",
        "release_ahead_of_delivery" => "拨付超前于课消",
        "delivery_stall" => "课消停滞",
        "refund_backlog" => "退费积压",
        "cap_breach" => "超出收费上限",
        "outflow_warning" => "资金流出预警",
        "feed_silence" => "银行流水中断",
        "institution_event" => "机构重大事项",
        "liability_months" => "预收费相对课消过高",
        "instruction_unexecuted" => "指令未被银行执行",
        "families_leaving" => "家长集中申请退费",
        "escalation" => "多项风险信号叠加",
        _ => "",
    };
    match (lang, zh) {
        (Lang::Zh, zh) if !zh.is_empty() => format!("{zh}({kind})"),
        _ => kind.to_string(),
    }
}

/// One piece of evidence as the officer reads it: figures in yuan, bank
/// lines linked to the line on the bank lines page.
fn evidence_item(lang: Lang, institution: &str, e: &serde_json::Value) -> Markup {
    let name = e.get("name").and_then(|v| v.as_str()).unwrap_or("");
    match e.get("type").and_then(|v| v.as_str()).unwrap_or("") {
        "amount" => {
            let minor = e.get("minor").and_then(|v| v.as_i64()).unwrap_or(0);
            html! { (name) ": " (yuan(minor)) }
        }
        "ratio" => {
            let bp = e.get("bp").and_then(|v| v.as_i64()).unwrap_or(0);
            html! { (name) ": " (percent(bp)) }
        }
        "date" => {
            let d = e
                .get("date")
                .and_then(|v| v.as_str())
                .and_then(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok());
            html! { (name) ": " @if let Some(d) = d { (date(lang, d)) } }
        }
        "count" | "rule" => {
            let v = e.get("value").map(|v| v.to_string()).unwrap_or_default();
            html! { (name) ": " (v) }
        }
        "bank_line" => {
            let line = e.get("line").cloned().unwrap_or_default();
            let id = line.get("line_id").and_then(|v| v.as_str()).unwrap_or("");
            let amount = line
                .get("amount_minor")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let day = line.get("date").and_then(|v| v.as_str()).unwrap_or("");
            html! {
                (lang.t("银行流水", "Bank line")) " "
                a.evidence-line href={ "/institutions/" (institution) "/bank-lines#" (line_anchor(id)) } { (id) }
                " " (day) " " (yuan(amount))
            }
        }
        "entry" => {
            let entry = e.get("entry").cloned().unwrap_or_default();
            let seq = entry.get("seq").and_then(|v| v.as_i64()).unwrap_or(0);
            let client = entry
                .get("client_id")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            html! {
                (lang.t("账簿分录", "Ledger entry")) " "
                a.evidence-entry href={ "/institutions/" (institution) "/entries#entry-" (seq) } { "#" (seq) }
                " (" (client) ")"
            }
        }
        "account" => {
            let kind = e.get("kind").and_then(|v| v.as_str()).unwrap_or("");
            let no = e.get("account_no").and_then(|v| v.as_str()).unwrap_or("");
            let words = match kind {
                "escrow" => lang.t("监管账户", "escrow account"),
                "deposit" => lang.t("保证金账户", "deposit account"),
                _ => lang.t("账户", "account"),
            };
            html! { (words) " " (no) }
        }
        "mismatch" => {
            let m = e.get("mismatch").cloned().unwrap_or_default();
            let bank = m
                .get("bank_closing_minor")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let books = m
                .get("ledger_balance_minor")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let day = m.get("date").and_then(|v| v.as_str()).unwrap_or("");
            html! {
                (day) " " (lang.t("银行日终余额", "bank closing")) " " (yuan(bank)) ", "
                (lang.t("账簿余额", "books")) " " (yuan(books))
            }
        }
        _ => views::raw(&e.to_string()),
    }
}

pub async fn institution(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, q.lang.as_deref());
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let institution = match visible(&state, &s, &id).await {
        Ok(i) => i,
        Err(e) => return failure(lang, &e),
    };
    let loaded = async {
        let sheets = state
            .store
            .balance_sheets(std::slice::from_ref(&institution))
            .await?;
        let alerts = state.store.alerts(Some(&institution.id), None).await?;
        let today = crate::app::jobs::today(&state.store);
        let coverage =
            crate::app::oversight::coverage_of(&state.store, &institution, today).await?;
        Ok::<_, AppError>((sheets, alerts, coverage))
    }
    .await;
    let (sheets, mut alerts, coverage) = match loaded {
        Ok(x) => x,
        Err(e) => return failure(lang, &e),
    };
    let Some(sheet) = sheets.get(&institution.id) else {
        return not_found(lang);
    };
    alerts.sort_by(|a, b| {
        crate::app::oversight::is_open(b)
            .cmp(&crate::app::oversight::is_open(a))
            .then((b.severity == Severity::Red).cmp(&(a.severity == Severity::Red)))
            .then(b.last_seen_on.cmp(&a.last_seen_on))
    });
    let figures = views::Figures {
        owed: sheet.owed_to_families_minor(),
        prepaid: sheet.prepaid_minor(),
        refund_payable: sheet.balance("refund_payable"),
        escrow: sheet.escrow_minor(),
        deposit: sheet.deposit_minor(),
        held_by_institution: sheet.balance("held_by_institution"),
        releasable: sheet.balance("releasable"),
        coverage_bp: bp64(&coverage),
        coverage_basis: coverage_basis(lang, &coverage),
    };
    let items: Vec<views::AlertItem> = alerts
        .iter()
        .map(|a| {
            let evidence: Vec<serde_json::Value> =
                serde_json::from_str(&a.evidence).unwrap_or_default();
            views::AlertItem {
                key: a.key.clone(),
                severity: if a.severity == Severity::Red {
                    "red"
                } else {
                    "yellow"
                },
                kind: kind_words(lang, a.kind.code()),
                summary: a.summary.clone(),
                status: status_words(lang, a.status.code()).to_string(),
                first_seen: date(lang, a.first_seen_on),
                last_seen: date(lang, a.last_seen_on),
                evidence: evidence
                    .iter()
                    .map(|e| evidence_item(lang, institution.id.as_str(), e))
                    .collect(),
                open: crate::app::oversight::is_open(a),
            }
        })
        .collect();
    let open_alerts: Vec<(String, String)> = alerts
        .iter()
        .filter(|a| crate::app::oversight::is_open(a))
        .map(|a| (a.key.clone(), a.summary.clone()))
        .collect();
    let today = crate::app::jobs::today(&state.store);
    let on_list = match crate::app::lists::published(&state.store).await {
        Ok(p) => p
            .iter()
            .flat_map(|j| j.current.iter())
            .find(|c| c.institution_id == institution.id.as_str())
            .map(|c| c.list.clone())
            .unwrap_or_else(|| "none".into()),
        Err(e) => return failure(lang, &e),
    };
    let history = match institution_history(&state, lang, &institution, today).await {
        Ok(h) => h,
        Err(e) => return failure(lang, &e),
    };
    let body = html! {
        (views::institution(
            lang,
            institution.id.as_str(),
            &institution.name,
            &institution.licence_no,
            &figures,
            &items,
            &s.csrf,
        ))
        (history)
        (views::notice_form(
            lang,
            institution.id.as_str(),
            &open_alerts,
            &s.csrf,
            &today.format("%Y-%m-%d").to_string(),
        ))
        (views::list_form(lang, institution.id.as_str(), &on_list, &s.csrf))
    };
    render(
        &headers,
        q.lang.as_deref(),
        StatusCode::OK,
        signed_page(lang, &institution.name, &s, body),
    )
}

fn status_words(lang: Lang, code: &str) -> &'static str {
    match code {
        "open" => lang.t("待处理", "open"),
        "acknowledged" => lang.t("已知悉", "acknowledged"),
        "rectification_requested" => lang.t("已责令整改", "rectification requested"),
        "resolved" => lang.t("已解除", "resolved"),
        _ => lang.t("未知", "unknown"),
    }
}

pub async fn bank_lines(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, q.lang.as_deref());
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let institution = match visible(&state, &s, &id).await {
        Ok(i) => i,
        Err(e) => return failure(lang, &e),
    };
    let loaded = async {
        let mut rows = Vec::new();
        for account in state.store.supervised_accounts(&institution.id).await? {
            let stored = state.store.statement_lines(&account).await?;
            for l in stored.lines {
                rows.push(views::LineRow {
                    line_id: format!("{}/{}#{}", account.account_no, l.statement_key, l.line_no),
                    account_no: account.account_no.clone(),
                    date: l
                        .booking_date
                        .or(l.value_date)
                        .map(|d| date(lang, d))
                        .unwrap_or_default(),
                    amount: l.amount_minor,
                    bank_ref: l.bank_ref.unwrap_or_default(),
                    counterparty: l.counterparty_name.unwrap_or_default(),
                    remittance: l.remittance.unwrap_or_default(),
                });
            }
        }
        Ok::<_, AppError>(rows)
    }
    .await;
    let rows = match loaded {
        Ok(r) => r,
        Err(e) => return failure(lang, &e),
    };
    let body = views::bank_lines(lang, institution.id.as_str(), &institution.name, &rows);
    render(
        &headers,
        q.lang.as_deref(),
        StatusCode::OK,
        signed_page(lang, lang.t("银行流水", "Bank lines"), &s, body),
    )
}

#[derive(Debug, Deserialize)]
pub struct AlertForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub action: String,
}

pub async fn act_on_alert(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    Form(form): Form<AlertForm>,
) -> Response {
    let (lang, s, institution) =
        match institution_form(&state, &headers, &form.csrf, &id, Action::WorkAlerts).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let action = match form.action.as_str() {
        "acknowledge" => AlertAction::Acknowledge,
        "resolve" => AlertAction::Resolve,
        other => {
            return failure(
                lang,
                &AppError::invalid(
                    "invalid_action",
                    "action",
                    format!("{other:?} is not acknowledge or resolve"),
                ),
            )
        }
    };
    let actor = format!("console:{}", s.officer.login);
    match crate::app::alerts::act(&state.store, &institution.id, &key, &action, &actor, None).await
    {
        Ok(_) => Redirect::to(&format!("/institutions/{}#alerts", institution.id)).into_response(),
        Err(e) => failure(lang, &e),
    }
}

pub async fn decisions(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, q.lang.as_deref());
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !permits(s.officer.role, Action::ApproveRefund) {
        return not_found(lang);
    }
    let caller = s.officer.caller();
    let loaded = async {
        let institutions = state.store.institutions().await?;
        let waiting = state
            .store
            .refunds(
                None,
                Some(ledger_core::domain::refunds::RefundState::Requested),
            )
            .await?;
        Ok::<_, AppError>((institutions, waiting))
    }
    .await;
    let (institutions, waiting) = match loaded {
        Ok(x) => x,
        Err(e) => return failure(lang, &e),
    };
    let items: Vec<views::RefundItem> = waiting
        .iter()
        .filter_map(|r| {
            let i = institutions.iter().find(|i| i.id == r.institution)?;
            caller
                .sees_institution(i, false)
                .then(|| views::RefundItem {
                    id: r.id.to_string(),
                    institution_id: i.id.to_string(),
                    institution: i.name.clone(),
                    enrollment: r.enrollment.to_string(),
                    amount: r.amount_minor,
                    payee: r.payee.name.clone(),
                    reason: r.reason.clone().unwrap_or_default(),
                    requested_by: r.requested_by.clone(),
                    requested_on: date(lang, r.requested_on),
                    answer_by: date(lang, r.answer_by),
                })
        })
        .collect();
    let more = async {
        let mut suggestions = Vec::new();
        if permits(s.officer.role, Action::WorkAlerts) {
            for i in institutions
                .iter()
                .filter(|i| caller.sees_institution(i, false))
            {
                for m in crate::app::reconcile::suggestions(&state.store, &i.id).await? {
                    suggestions.push(views::SuggestionItem {
                        institution_id: i.id.to_string(),
                        institution: i.name.clone(),
                        id: m.id,
                        pass: m.pass,
                        explanation: m.explanation,
                    });
                }
            }
        }
        let mut waiting = Vec::new();
        if permits(s.officer.role, Action::Approve) {
            let (list, _) = crate::app::approvals::list(
                &state.store,
                |j| caller.sees_jurisdiction(j),
                true,
                None,
                500,
            )
            .await?;
            for a in list {
                use ledger_core::domain::approvals::ApprovalKind;
                let kind = match a.kind {
                    ApprovalKind::Release => lang.t("拨付", "Release"),
                    ApprovalKind::PayeeChange => lang.t("收款账户变更", "Payee change"),
                    ApprovalKind::Refund => lang.t("大额退费", "Refund above the threshold"),
                    ApprovalKind::RulePack => lang.t("规则包", "Rule pack"),
                };
                waiting.push(views::ApprovalItem {
                    id: a.id.clone(),
                    kind,
                    institution_id: a.institution.as_ref().map(|i| i.to_string()),
                    summary: a.summary.clone(),
                    requested_by: a.requested_name.clone(),
                    requested_on: date(lang, a.requested_at.date_naive()),
                });
            }
        }
        Ok::<_, AppError>((suggestions, waiting))
    }
    .await;
    let (suggestions, approvals) = match more {
        Ok(x) => x,
        Err(e) => return failure(lang, &e),
    };
    let body = views::decisions(lang, &items, &suggestions, &approvals, &s.csrf);
    render(
        &headers,
        q.lang.as_deref(),
        StatusCode::OK,
        signed_page(lang, lang.t("待审批退费", "Decisions"), &s, body),
    )
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub decision: String,
    /// Why a refund is declined (the family reads it).
    #[serde(default)]
    pub reason: String,
}

/// Approves a requested refund through maker–checker
/// (`app::approvals::approve_refund`: above the rule pack's threshold it
/// waits for a second officer) or declines it (`app::refunds::decide`), as
/// the API's officers do.
pub async fn decide_refund(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let (lang, s, refund) = match record_form(
        &state,
        &headers,
        &form.csrf,
        Action::ApproveRefund,
        crate::app::refunds::find(&state.store, &id),
        |r| Owner::Institution(r.institution.to_string()),
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let decision = match form.decision.as_str() {
        "approve" => crate::app::refunds::Decision::Approve,
        "decline" => crate::app::refunds::Decision::Decline,
        other => {
            return failure(
                lang,
                &AppError::invalid(
                    "invalid_decision",
                    "decision",
                    format!("{other:?} is not approve or decline"),
                ),
            )
        }
    };
    let today = crate::app::jobs::today(&state.store);
    let done = match decision {
        // Maker–checker, as for the API's officers: not the one who asked,
        // and above the rule pack's threshold a second officer too.
        crate::app::refunds::Decision::Approve => {
            let by = crate::app::approvals::party(&s.officer.caller());
            // One approval per officer and refund, whatever the clicks.
            let key = format!("console\0{}", refund.id);
            crate::app::approvals::approve_refund(&state.store, &refund, &by, None, &key, today)
                .await
                .map(|_| ())
        }
        crate::app::refunds::Decision::Decline => {
            let actor = format!("console:{}", s.officer.login);
            crate::app::refunds::decide(
                &state.store,
                &refund,
                decision,
                &actor,
                Some(&form.reason),
                today,
            )
            .await
            .map(|_| ())
        }
    };
    match done {
        Ok(()) => Redirect::to("/decisions").into_response(),
        Err(e) => failure(lang, &e),
    }
}

fn title_no(lang: Lang, n: &crate::app::rectification::Notice) -> String {
    match lang {
        Lang::Zh => format!(
            "{}教整〔{}〕{}号",
            n.record.jurisdiction, n.record.year, n.record.seq
        ),
        Lang::En => format!(
            "No. {}/{}/{}",
            n.record.jurisdiction, n.record.year, n.record.seq
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct NoticeForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub alert_key: String,
    #[serde(default)]
    pub finding: String,
    #[serde(default)]
    pub required_action: String,
    #[serde(default)]
    pub due_on: String,
}

pub async fn issue_notice(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<NoticeForm>,
) -> Response {
    let (lang, s, institution) =
        match institution_form(&state, &headers, &form.csrf, &id, Action::WorkAlerts).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let Ok(due_on) = chrono::NaiveDate::parse_from_str(form.due_on.trim(), "%Y-%m-%d") else {
        return failure(
            lang,
            &AppError::invalid(
                "invalid_date",
                "due_on",
                format!("due date {:?} is not a date (YYYY-MM-DD)", form.due_on),
            ),
        );
    };
    let draft = crate::app::rectification::NoticeDraft {
        alert_key: Some(form.alert_key),
        finding: form.finding,
        required_action: form.required_action,
        due_on,
    };
    let actor = format!("console:{}", s.officer.login);
    let today = crate::app::jobs::today(&state.store);
    match crate::app::rectification::issue(&state.store, &institution, draft, &actor, today).await {
        Ok(n) => Redirect::to(&format!("/notices/{}", n.record.notice_no)).into_response(),
        Err(e) => failure(lang, &e),
    }
}

pub async fn notices(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, q.lang.as_deref());
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let caller = s.officer.caller();
    let today = crate::app::jobs::today(&state.store);
    let loaded = async {
        let institutions = state.store.institutions().await?;
        let all = crate::app::rectification::all(&state.store, today).await?;
        Ok::<_, AppError>((institutions, all))
    }
    .await;
    let (institutions, all) = match loaded {
        Ok(x) => x,
        Err(e) => return failure(lang, &e),
    };
    let rows: Vec<views::NoticeRow> = all
        .iter()
        .filter_map(|n| {
            let i = institutions
                .iter()
                .find(|i| i.id.as_str() == n.record.institution_id)?;
            caller.sees_institution(i, false).then(|| views::NoticeRow {
                no: n.record.notice_no.clone(),
                title_no: title_no(lang, n),
                institution_id: i.id.to_string(),
                institution: i.name.clone(),
                finding: n.record.finding.clone(),
                due: date(lang, n.record.due_on),
                overdue: n.overdue,
                answered: !n.answers.is_empty(),
            })
        })
        .collect();
    let body = views::notices(lang, &rows);
    render(
        &headers,
        q.lang.as_deref(),
        StatusCode::OK,
        signed_page(lang, lang.t("整改通知书", "Notices"), &s, body),
    )
}

/// The notice if the officer may see its institution; 404 otherwise.
async fn visible_notice(
    state: &ConsoleState,
    s: &Signed,
    no: &str,
) -> Result<(crate::app::rectification::Notice, Institution), AppError> {
    let today = crate::app::jobs::today(&state.store);
    let n = crate::app::rectification::find(&state.store, no, today)
        .await
        .map_err(|e| {
            if e.kind() == Kind::NotFound {
                AppError::not_found("page")
            } else {
                e
            }
        })?;
    let i = visible(state, s, &n.record.institution_id).await?;
    Ok((n, i))
}

pub async fn notice(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(no): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, q.lang.as_deref());
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (n, i) = match visible_notice(&state, &s, &no).await {
        Ok(x) => x,
        Err(e) => return failure(lang, &e),
    };
    let bureau = match state.store.jurisdictions().await {
        Ok(js) => js
            .into_iter()
            .find(|j| j.code == i.jurisdiction)
            .map(|j| format!("{}{}", j.name, lang.t("教育局", " Education Bureau")))
            .unwrap_or_default(),
        Err(e) => return failure(lang, &AppError::from(e)),
    };
    let doc = views::NoticeDoc {
        no: n.record.notice_no.clone(),
        title_no: title_no(lang, &n),
        bureau,
        institution: i.name.clone(),
        licence_no: i.licence_no.clone(),
        finding: n.record.finding.clone(),
        required_action: n.record.required_action.clone(),
        due: date(lang, n.record.due_on),
        issued_on: date(lang, n.record.issued_at.date_naive()),
        issued_by: n.record.issued_by.clone(),
        overdue: n.overdue,
        answers: n
            .answers
            .iter()
            .map(|a| {
                (
                    date(lang, a.recorded_at.date_naive()),
                    a.recorded_by.clone(),
                    a.answer.clone(),
                )
            })
            .collect(),
    };
    let body = views::notice(lang, &doc, &s.csrf);
    render(
        &headers,
        q.lang.as_deref(),
        StatusCode::OK,
        signed_page(lang, lang.t("整改通知书", "Rectification notice"), &s, body),
    )
}

#[derive(Debug, Deserialize)]
pub struct AnswerForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub answer: String,
}

pub async fn answer_notice(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(no): Path<String>,
    Form(form): Form<AnswerForm>,
) -> Response {
    let (lang, s) = match signed_form(&state, &headers, &form.csrf, None).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = visible_notice(&state, &s, &no).await {
        return failure(lang, &e);
    }
    let actor = format!("console:{}", s.officer.login);
    match crate::app::rectification::answer(&state.store, &no, &form.answer, &actor).await {
        Ok(()) => Redirect::to(&format!("/notices/{no}")).into_response(),
        Err(e) => failure(lang, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub list: String,
    #[serde(default)]
    pub reason: String,
}

pub async fn publish_list(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ListForm>,
) -> Response {
    let (lang, s, institution) =
        match institution_form(&state, &headers, &form.csrf, &id, Action::Register).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let list = match crate::app::lists::List::parse(&form.list) {
        Ok(l) => l,
        Err(e) => return failure(lang, &e),
    };
    let actor = format!("console:{}", s.officer.login);
    match crate::app::lists::publish(&state.store, &institution, list, &form.reason, &actor).await {
        Ok(_) => Redirect::to("/lists").into_response(),
        Err(e) => failure(lang, &e),
    }
}

/// The lists as published, with names: (jurisdiction label, current,
/// history), each change with its institution.
async fn lists_data(
    state: &ConsoleState,
) -> Result<
    Vec<(
        String,
        Vec<(ledger_core::store::ListChange, Institution)>,
        Vec<(ledger_core::store::ListChange, Institution)>,
    )>,
    AppError,
> {
    // Published lists are read-only here: from the read replica if any.
    let published = crate::app::lists::published(&state.reads).await?;
    let institutions = state.reads.institutions().await?;
    let jurisdictions = state.reads.jurisdictions().await?;
    let named = |changes: Vec<ledger_core::store::ListChange>| {
        changes
            .into_iter()
            .filter_map(|c| {
                let i = institutions
                    .iter()
                    .find(|i| i.id.as_str() == c.institution_id)?
                    .clone();
                Some((c, i))
            })
            .collect::<Vec<_>>()
    };
    Ok(published
        .into_iter()
        .map(|p| {
            let label = jurisdictions
                .iter()
                .find(|j| j.code.as_str() == p.jurisdiction)
                .map(|j| format!("{} {}", j.code, j.name))
                .unwrap_or_else(|| p.jurisdiction.clone());
            (label, named(p.current), named(p.history))
        })
        .collect())
}

fn list_words(lang: Lang, code: &str) -> &'static str {
    match code {
        "white" => lang.t("白名单", "white"),
        "black" => lang.t("黑名单", "black"),
        _ => lang.t("移出名单", "off the lists"),
    }
}

/// The public page: no sign-in.
pub async fn public_lists(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, q.lang.as_deref());
    let data = match lists_data(&state).await {
        Ok(d) => d,
        Err(e) => return failure(lang, &e),
    };
    let row = |(c, i): &(ledger_core::store::ListChange, Institution)| views::ListRow {
        version: c.version,
        institution: i.name.clone(),
        licence_no: i.licence_no.clone(),
        list: list_words(lang, &c.list),
        reason: c.reason.clone(),
        date: date(lang, c.published_at.date_naive()),
    };
    let lists: Vec<views::PublicLists> = data
        .iter()
        .map(|(label, current, history)| views::PublicLists {
            jurisdiction: label.clone(),
            black: current
                .iter()
                .filter(|(c, _)| c.list == "black")
                .map(row)
                .collect(),
            white: current
                .iter()
                .filter(|(c, _)| c.list == "white")
                .map(row)
                .collect(),
            history: history.iter().rev().map(row).collect(),
        })
        .collect();
    let signed_in = signed(&state, &headers).await.ok();
    let body = views::public_lists(lang, &lists);
    let page = views::page(
        lang,
        lang.t("黑白名单", "Lists"),
        signed_in
            .as_ref()
            .map(|s| (s.officer.name.as_str(), s.csrf.as_str())),
        body,
    );
    render(&headers, q.lang.as_deref(), StatusCode::OK, page)
}

/// The same as JSON: per jurisdiction, the current lists and every change.
pub async fn public_lists_json(State(state): State<ConsoleState>) -> Response {
    let data = match lists_data(&state).await {
        Ok(d) => d,
        Err(e) => return failure(Lang::En, &e),
    };
    let change = |(c, i): &(ledger_core::store::ListChange, Institution)| {
        serde_json::json!({
            "version": c.version,
            "institution": i.id.as_str(),
            "name": i.name,
            "licence_no": i.licence_no,
            "list": c.list,
            "reason": c.reason,
            "published_on": c.published_at.date_naive(),
        })
    };
    let body: Vec<serde_json::Value> = data
        .iter()
        .map(|(label, current, history)| {
            serde_json::json!({
                "jurisdiction": label.split(' ').next().unwrap_or(""),
                "name": label.split_once(' ').map(|x| x.1).unwrap_or(""),
                "black": current.iter().filter(|(c, _)| c.list == "black").map(change).collect::<Vec<_>>(),
                "white": current.iter().filter(|(c, _)| c.list == "white").map(change).collect::<Vec<_>>(),
                "history": history.iter().map(change).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(body).into_response()
}

/// Every change as CSV (UTF-8 with a BOM, so that Excel on Chinese Windows
/// reads it right): the history; the current lists follow from it.
pub async fn public_lists_csv(State(state): State<ConsoleState>) -> Response {
    let data = match lists_data(&state).await {
        Ok(d) => d,
        Err(e) => return failure(Lang::En, &e),
    };
    let mut out = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    let mut rows = vec![vec![
        "jurisdiction".to_string(),
        "version".into(),
        "institution".into(),
        "name".into(),
        "licence_no".into(),
        "list".into(),
        "reason".into(),
        "published_on".into(),
        "current".into(),
    ]];
    for (label, current, history) in &data {
        for (c, i) in history {
            let now = current.iter().any(|(m, _)| m.version == c.version);
            rows.push(vec![
                label.split(' ').next().unwrap_or("").to_string(),
                c.version.to_string(),
                i.id.to_string(),
                i.name.clone(),
                i.licence_no.clone(),
                c.list.clone(),
                c.reason.clone(),
                c.published_at.date_naive().to_string(),
                now.to_string(),
            ]);
        }
    }
    for r in rows {
        if let Err(e) = out.write_record(&r) {
            tracing::error!(error = %e, "lists.csv");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    match out.into_inner() {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"lists.csv\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A CSV download: UTF-8 with a BOM, so that Excel on Chinese Windows
/// reads the names right.
fn csv_download(name: &str, rows: Vec<Vec<String>>) -> Response {
    let mut out = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    for r in rows {
        if let Err(e) = out.write_record(&r) {
            tracing::error!(error = %e, "console csv");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    match out.into_inner() {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Fen as a plain decimal (no separators: a spreadsheet reads a number).
fn plain(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The overview of the officer's jurisdiction, riskiest first, as CSV.
pub async fn overview_csv(state: State<ConsoleState>, headers: HeaderMap) -> Response {
    overview_export(state, headers, Sheet::Csv).await
}

pub async fn overview_xlsx(state: State<ConsoleState>, headers: HeaderMap) -> Response {
    overview_export(state, headers, Sheet::Xlsx).await
}

pub async fn alerts_csv(state: State<ConsoleState>, headers: HeaderMap) -> Response {
    alerts_export(state, headers, Sheet::Csv).await
}

pub async fn alerts_xlsx(state: State<ConsoleState>, headers: HeaderMap) -> Response {
    alerts_export(state, headers, Sheet::Xlsx).await
}

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sheet {
    /// CSV with a UTF-8 BOM (Excel on Chinese Windows reads it right).
    Csv,
    /// An Excel workbook of one sheet.
    Xlsx,
}

/// Rows (the first one the header) as the file asked for, `name` without
/// its extension.
fn download(sheet: Sheet, name: &str, rows: Vec<Vec<String>>) -> Response {
    match sheet {
        Sheet::Csv => csv_download(&format!("{name}.csv"), rows),
        Sheet::Xlsx => xlsx_download(name, rows),
    }
}

/// One sheet: the header bold and frozen, every cell text (figures stay
/// exact decimal strings, never binary floats), columns sized to fit.
fn xlsx_download(name: &str, rows: Vec<Vec<String>>) -> Response {
    use rust_xlsxwriter::{Format, Workbook};
    let written = (|| {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        // Excel refuses a sheet name over 31 characters; the file keeps
        // the whole name.
        sheet.set_name(name.chars().take(31).collect::<String>())?;
        let bold = Format::new().set_bold();
        for (r, row) in rows.iter().enumerate() {
            let r = u32::try_from(r).unwrap_or(u32::MAX);
            for (c, cell) in row.iter().enumerate() {
                let c = u16::try_from(c).unwrap_or(u16::MAX);
                if r == 0 {
                    sheet.write_string_with_format(r, c, cell, &bold)?;
                } else {
                    sheet.write_string(r, c, cell)?;
                }
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofit();
        book.save_to_buffer()
    })();
    match written {
        Ok(bytes) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.xlsx\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console xlsx");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn overview_export(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    sheet: Sheet,
) -> Response {
    let lang = lang(&headers, None);
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !permits(s.officer.role, Action::Oversee) {
        return not_found(lang);
    }
    let code = match s.officer.jurisdiction() {
        Some(c) => c.clone(),
        None => match ledger_core::JurisdictionCode::parse("000000") {
            Ok(c) => c,
            Err(e) => return failure(lang, &AppError::from(e)),
        },
    };
    let overview = match crate::app::oversight::overview(&state.reads, &code).await {
        Ok(o) => o,
        Err(e) => return failure(lang, &e),
    };
    let mut rows = overview.rows;
    rows.sort_by(crate::app::oversight::OverviewRow::risk_order);
    let mut out = vec![[
        "institution",
        "name",
        "licence_no",
        "jurisdiction",
        "owed_to_families",
        "escrow",
        "deposit",
        "coverage_percent",
        "red_alerts",
        "yellow_alerts",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows {
        out.push(vec![
            r.institution.id.to_string(),
            r.institution.name.clone(),
            r.institution.licence_no.clone(),
            r.institution.jurisdiction.to_string(),
            plain(r.sheet.owed_to_families_minor()),
            plain(r.sheet.escrow_minor()),
            plain(r.sheet.deposit_minor()),
            bp64(&r.coverage).map(plain).unwrap_or_default(),
            r.red_alerts.to_string(),
            r.yellow_alerts.to_string(),
        ]);
    }
    download(sheet, &format!("overview-{code}"), out)
}

/// Every alert of the institutions the officer sees, as CSV.
async fn alerts_export(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    sheet: Sheet,
) -> Response {
    let lang = lang(&headers, None);
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !permits(s.officer.role, Action::Oversee) {
        return not_found(lang);
    }
    let caller = s.officer.caller();
    let loaded = async {
        let institutions = state.store.institutions().await?;
        let alerts = state.store.alerts(None, None).await?;
        Ok::<_, AppError>((institutions, alerts))
    }
    .await;
    let (institutions, alerts) = match loaded {
        Ok(x) => x,
        Err(e) => return failure(lang, &e),
    };
    let mut out = vec![[
        "institution",
        "name",
        "alert",
        "kind",
        "severity",
        "status",
        "summary",
        "rectification_due",
        "first_seen_on",
        "last_seen_on",
    ]
    .map(String::from)
    .to_vec()];
    for a in &alerts {
        let Some(i) = institutions.iter().find(|i| i.id == a.institution) else {
            continue;
        };
        if !caller.sees_institution(i, false) {
            continue;
        }
        out.push(vec![
            i.id.to_string(),
            i.name.clone(),
            a.key.clone(),
            a.kind.code().to_string(),
            a.severity.code().to_string(),
            a.status.code().to_string(),
            a.summary.clone(),
            a.rectification_due
                .map(|d| d.to_string())
                .unwrap_or_default(),
            a.first_seen_on.to_string(),
            a.last_seen_on.to_string(),
        ]);
    }
    download(sheet, "alerts", out)
}

/// One institution's entries (a row per posting), balances or rectification
/// notices, as `/institutions/{id}/export/{what}.{csv|xlsx}`. Entries and
/// balances are the API's own tables (the same rows as its `format=csv`
/// answers), so a spreadsheet and the API never disagree.
pub async fn institution_export(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let lang = lang(&headers, None);
    let sheet = match file.rsplit_once('.') {
        Some((_, "csv")) => Sheet::Csv,
        Some((_, "xlsx")) => Sheet::Xlsx,
        _ => return not_found(lang),
    };
    let what = file.rsplit_once('.').map_or("", |(w, _)| w);
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let institution = match visible(&state, &s, &id).await {
        Ok(i) => i,
        Err(e) => return failure(lang, &e),
    };
    let rows = match what {
        "entries" => crate::app::reconcile::all_entries(&state.store, &institution.id)
            .await
            .map(|entries| crate::app::tables::entries(&entries)),
        "balances" => state
            .store
            .balance_sheets(std::slice::from_ref(&institution))
            .await
            .map_err(AppError::from)
            .and_then(|sheets| {
                sheets
                    .get(&institution.id)
                    .map(crate::app::tables::balances)
                    .ok_or_else(|| AppError::not_found("page"))
            }),
        "notices" => {
            let today = crate::app::jobs::today(&state.store);
            crate::app::rectification::all(&state.store, today)
                .await
                .map(|all| notices_table(&institution, &all))
        }
        _ => return not_found(lang),
    };
    match rows {
        Ok(rows) => download(sheet, &format!("{}-{what}", institution.id), rows),
        Err(e) => failure(lang, &e),
    }
}

/// An institution's rectification notices, oldest first, with their latest
/// answer.
fn notices_table(
    institution: &Institution,
    all: &[crate::app::rectification::Notice],
) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "notice_no",
        "institution",
        "name",
        "alert",
        "finding",
        "required_action",
        "due_on",
        "issued_by",
        "issued_at",
        "overdue",
        "answers",
        "last_answer",
        "last_answered_at",
    ]
    .map(String::from)
    .to_vec()];
    for n in all
        .iter()
        .filter(|n| n.record.institution_id == institution.id.as_str())
    {
        let r = &n.record;
        let last = n.answers.last();
        rows.push(vec![
            r.notice_no.clone(),
            institution.id.to_string(),
            institution.name.clone(),
            r.alert_key.clone().unwrap_or_default(),
            r.finding.clone(),
            r.required_action.clone(),
            r.due_on.to_string(),
            r.issued_by.clone(),
            r.issued_at.to_rfc3339(),
            n.overdue.to_string(),
            n.answers.len().to_string(),
            last.map(|a| a.answer.clone()).unwrap_or_default(),
            last.map(|a| a.recorded_at.to_rfc3339()).unwrap_or_default(),
        ]);
    }
    rows
}

/// Coverage in basis points for display (`None`: unconfirmed, nothing owed).
fn bp64(c: &crate::app::oversight::CoverageOf) -> Option<i64> {
    coverage_bp(c).and_then(|bp| i64::try_from(bp).ok())
}

/// The figures behind an institution's coverage, in words: what the banks
/// closed at and on which day, releases in flight, what is owed; or why the
/// banks have not confirmed it.
fn coverage_basis(lang: Lang, c: &crate::app::oversight::CoverageOf) -> String {
    let wide = |v: i128| i64::try_from(v).map(yuan).unwrap_or_else(|_| v.to_string());
    match c {
        Ok(c) => {
            let closed = c
                .closings
                .iter()
                .map(|(_, no, cl)| {
                    format!("{no} {} ({})", yuan(cl.balance_minor), date(lang, cl.date))
                })
                .collect::<Vec<_>>()
                .join(", ");
            match lang {
                Lang::Zh => format!(
                    "银行日终余额 {closed},减在途拨付 {},共 {};截至{}应退家长 {}",
                    wide(c.in_flight_minor),
                    wide(c.held_minor()),
                    date(lang, c.owed_on),
                    wide(c.owed_minor())
                ),
                Lang::En => format!(
                    "bank closings {closed}, less releases in flight {}: {} held; owed to families on {}: {}",
                    wide(c.in_flight_minor),
                    wide(c.held_minor()),
                    date(lang, c.owed_on),
                    wide(c.owed_minor())
                ),
            }
        }
        Err(why) => match (lang, why) {
            (Lang::Zh, Unconfirmed::NoAccount(_)) => "未登记监管账户,银行尚未确认".into(),
            (Lang::Zh, Unconfirmed::NoStatement(no)) => {
                format!("账户 {no} 尚无银行对账单,银行尚未确认")
            }
            (Lang::En, why) => format!("not confirmed by the bank: {}", why.reason()),
        },
    }
}

/// The institution page's chart, reconciliation days, and refunds and
/// releases with their states.
async fn institution_history(
    state: &ConsoleState,
    lang: Lang,
    institution: &Institution,
    today: chrono::NaiveDate,
) -> Result<Markup, AppError> {
    use ledger_core::domain::entry::EntryKind;
    let store = &state.store;
    let points = crate::app::oversight::history(store, institution, today).await?;
    let mut days: Vec<views::ReconDay> = Vec::new();
    for account in crate::app::reconcile::report(store, Some(&institution.id), None).await? {
        let kind = match account.kind.as_str() {
            "escrow" => lang.t("监管账户", "escrow"),
            _ => lang.t("风险保证金", "deposit"),
        };
        for d in account.days.iter().rev() {
            days.push(views::ReconDay {
                date: date(lang, d.date),
                account: account.account.clone(),
                kind: kind.to_string(),
                bank_closing: yuan_text(&d.bank_closing),
                ledger_balance: yuan_text(&d.ledger_balance),
                difference: yuan_text(&d.bank_minus_ledger),
                agrees: d.status == "agrees",
                status: match d.status.as_str() {
                    "agrees" => lang.t("一致", "agrees"),
                    "differs" => lang.t("不一致", "differs"),
                    _ => lang.t("隔离待查", "quarantined"),
                }
                .to_string(),
            });
        }
    }
    let mut moves = Vec::new();
    for r in store.refunds(Some(&institution.id), None).await? {
        let st = r.state.code();
        moves.push(views::MoneyMove {
            what: lang.t("退费", "Refund").to_string(),
            id: r.id.to_string(),
            amount: r
                .amount_minor
                .map(yuan)
                .unwrap_or_else(|| lang.t("未消课全额", "all unconsumed").to_string()),
            date: date(lang, r.requested_on),
            state: refund_state_words(lang, st).to_string(),
            waiting: matches!(st, "requested" | "approved" | "instructed"),
        });
    }
    let entries = crate::app::reconcile::all_entries(store, &institution.id).await?;
    for e in entries
        .iter()
        .filter(|e| e.kind == EntryKind::ReleaseInstructed)
    {
        let answer = entries
            .iter()
            .find(|a| a.refers_to_seq == Some(e.seq))
            .map(|a| a.kind);
        let (state, waiting) = match answer {
            Some(EntryKind::PendingConfirmed) => {
                (lang.t("银行已确认", "confirmed by the bank"), false)
            }
            Some(EntryKind::PendingVoided) => (lang.t("银行退回", "returned by the bank"), false),
            _ => (
                lang.t("已发指令,待银行确认", "instructed, awaiting the bank"),
                true,
            ),
        };
        moves.push(views::MoneyMove {
            what: lang.t("拨付", "Release").to_string(),
            id: e.client_id.to_string(),
            amount: yuan(e.postings.first().map_or(0, |p| p.amount.minor())),
            date: date(lang, e.occurred_at.date_naive()),
            state: state.to_string(),
            waiting,
        });
    }
    let (approvals, _) = crate::app::approvals::list(store, |_| true, true, None, 200).await?;
    for a in approvals
        .iter()
        .filter(|a| a.institution.as_ref() == Some(&institution.id))
        .filter(|a| a.kind == ledger_core::domain::approvals::ApprovalKind::Release)
    {
        moves.push(views::MoneyMove {
            what: lang.t("拨付申请", "Release requested").to_string(),
            id: a.id.clone(),
            amount: a.summary.clone(),
            date: date(lang, a.requested_at.date_naive()),
            state: lang
                .t("待第二位审批人", "awaiting the second officer")
                .to_string(),
            waiting: true,
        });
    }
    Ok(views::institution_history(
        lang,
        crate::console::chart::chart(lang, &points),
        &days,
        &moves,
    ))
}

fn refund_state_words(lang: Lang, code: &str) -> &'static str {
    match code {
        "requested" => lang.t("待审批", "awaiting a decision"),
        "approved" => lang.t("已批准", "approved"),
        "instructed" => lang.t("已发指令", "instructed"),
        "paid" => lang.t("已支付", "paid"),
        "returned" => lang.t("银行退回", "returned"),
        "declined" => lang.t("已驳回", "declined"),
        _ => lang.t("其他", "other"),
    }
}

/// Every ledger entry of an institution, each with its postings, anchored
/// by its seq (`#entry-12`) so evidence links reach it.
pub async fn entries(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, q.lang.as_deref());
    let s = match signed(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let institution = match visible(&state, &s, &id).await {
        Ok(i) => i,
        Err(e) => return failure(lang, &e),
    };
    let entries = match crate::app::reconcile::all_entries(&state.store, &institution.id).await {
        Ok(e) => e,
        Err(e) => return failure(lang, &e),
    };
    let rows: Vec<views::EntryRow> = entries
        .iter()
        .rev()
        .map(|e| views::EntryRow {
            seq: e.seq,
            client_id: e.client_id.to_string(),
            kind: e.kind.code().to_string(),
            date: date(lang, e.occurred_at.date_naive()),
            postings: e
                .postings
                .iter()
                .map(|p| {
                    let side = match p.side {
                        ledger_core::Side::Debit => lang.t("借", "Dr"),
                        ledger_core::Side::Credit => lang.t("贷", "Cr"),
                    };
                    format!("{side} {} {}", p.account, yuan(p.amount.minor()))
                })
                .collect(),
        })
        .collect();
    let body = views::entries(lang, institution.id.as_str(), &institution.name, &rows);
    render(
        &headers,
        q.lang.as_deref(),
        StatusCode::OK,
        signed_page(lang, lang.t("账簿分录", "Ledger entries"), &s, body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_in_the_evidence_links_to_it_on_the_entries_page() {
        let e = serde_json::json!({
            "type": "entry",
            "entry": {"seq": 12, "client_id": "pay-1"}
        });
        let html = evidence_item(Lang::En, "INS-1", &e).into_string();
        assert!(
            html.contains(r##"href="/institutions/INS-1/entries#entry-12""##),
            "{html}"
        );
    }
}

#[derive(Debug, Deserialize)]
pub struct SuggestionForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub decision: String,
}

/// Confirms or rejects a suggested match (kept with who and when; a
/// confirmed match claims its line and entry in reconciliation).
pub async fn decide_suggestion(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path((id, match_id)): Path<(String, String)>,
    Form(form): Form<SuggestionForm>,
) -> Response {
    let (lang, s, institution) =
        match institution_form(&state, &headers, &form.csrf, &id, Action::WorkAlerts).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let decision = match crate::app::reconcile::Decision::parse(&form.decision) {
        Ok(d) => d,
        Err(e) => return failure(lang, &e),
    };
    let actor = format!("console:{} ({})", s.officer.login, s.officer.name);
    match crate::app::reconcile::decide(
        &state.store,
        &institution.id,
        &match_id,
        decision,
        &actor,
        None,
    )
    .await
    {
        Ok(()) => Redirect::to("/decisions#suggestions").into_response(),
        Err(e) => failure(lang, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ApprovalForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub decision: String,
    #[serde(default)]
    pub reason: String,
}

/// A second officer approves (the release or payee change happens, once)
/// or rejects with a reason (nothing happens); the officer who asked
/// cannot answer their own request.
pub async fn decide_approval(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ApprovalForm>,
) -> Response {
    let (lang, s, approval) = match record_form(
        &state,
        &headers,
        &form.csrf,
        Action::Approve,
        crate::app::approvals::find(&state.store, &id),
        |a| Owner::Jurisdiction(a.jurisdiction.clone()),
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let by = crate::app::approvals::party(&s.officer.caller());
    let done = match form.decision.as_str() {
        "approve" => crate::app::approvals::approve(&state.store, &approval, &by).await,
        "reject" => crate::app::approvals::reject(&state.store, &approval, &by, &form.reason).await,
        other => Err(AppError::invalid(
            "invalid_decision",
            "decision",
            format!("{other:?} is not approve or reject"),
        )),
    };
    match done {
        Ok(_) => Redirect::to("/decisions#approvals").into_response(),
        Err(e) => failure(lang, &e),
    }
}
