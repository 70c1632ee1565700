//! The bureau's console: server-rendered pages for officers at `/`, in
//! Simplified Chinese by default (English with `?lang=en` or the switch,
//! kept in a cookie). A thin adapter over the application layer: it signs
//! people in (`app::officers`), reads the overview (`app::oversight`) and
//! acts through the use cases (`app::alerts`, `app::refunds`, `app::rectification`, `app::lists`), like the CLI and the API.
//! Every asset is in the binary; nothing is fetched from elsewhere.
//!
//! Sessions: an `el_session` cookie (HttpOnly, SameSite=Strict, Secure
//! behind TLS) names a server-side session; every form carries the
//! session's CSRF token and a POST without it is refused (403). The
//! sign-in form has a token of its own, in an `el_form` cookie.

pub mod chart;
pub mod format;
pub mod pages;
pub mod views;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger_core::Store;
use std::sync::Arc;

use crate::app::officers::Officer;
use crate::app::oversight::OverviewPages;

/// The console's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// The Chinese or the English text.
    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

#[derive(Clone)]
pub struct ConsoleState {
    pub store: Store,
    /// The overview's source: a read replica when one is configured.
    pub reads: Store,
    /// The overview pages answered lately (shared with the API).
    pub overviews: Arc<OverviewPages>,
}

pub const SESSION_COOKIE: &str = "el_session";
pub const FORM_COOKIE: &str = "el_form";
pub const LANG_COOKIE: &str = "el_lang";

/// The console's routes (the API's router merges them; they need no token).
pub fn router<S: Clone + Send + Sync + 'static>(
    store: Store,
    reads: Store,
    overviews: Arc<OverviewPages>,
) -> Router<S> {
    Router::new()
        .route("/", get(pages::home))
        .route("/console.css", get(pages::stylesheet))
        .route("/sign-in", get(pages::sign_in_form).post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/overview", get(pages::overview))
        .route("/overview.csv", get(pages::overview_csv))
        .route("/alerts.csv", get(pages::alerts_csv))
        .route("/overview.xlsx", get(pages::overview_xlsx))
        .route("/alerts.xlsx", get(pages::alerts_xlsx))
        .route("/institutions/{id}", get(pages::institution))
        .route("/institutions/{id}/bank-lines", get(pages::bank_lines))
        .route("/institutions/{id}/entries", get(pages::entries))
        .route(
            "/institutions/{id}/export/{file}",
            get(pages::institution_export),
        )
        .route(
            "/suggestions/{id}/{match_id}/decide",
            post(pages::decide_suggestion),
        )
        .route("/approvals/{id}/decide", post(pages::decide_approval))
        .route("/decisions", get(pages::decisions))
        .route("/institutions/{id}/notices", post(pages::issue_notice))
        .route("/notices", get(pages::notices))
        .route("/institutions/{id}/list", post(pages::publish_list))
        .route("/lists", get(pages::public_lists))
        .route("/lists.json", get(pages::public_lists_json))
        .route("/lists.csv", get(pages::public_lists_csv))
        .route("/notices/{no}", get(pages::notice))
        .route("/notices/{no}/answer", post(pages::answer_notice))
        .route("/refunds/{id}/decide", post(pages::decide_refund))
        .route("/institutions/{id}/alerts/{key}", post(pages::act_on_alert))
        .with_state(ConsoleState {
            store,
            reads,
            overviews,
        })
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The language asked for: `?lang=` first, then the cookie, then Chinese.
pub fn lang(headers: &HeaderMap, query: Option<&str>) -> Lang {
    match query.or(cookie(headers, LANG_COOKIE).as_deref()) {
        Some("en") => Lang::En,
        _ => Lang::Zh,
    }
}

/// Whether the browser reached us over TLS (directly or through a proxy
/// that says so): then cookies are `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path /, Secure over TLS;
/// `max_age` 0 removes it.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The signed-in officer of this request: (officer, CSRF token, session id).
pub struct Signed {
    pub officer: Officer,
    pub csrf: String,
    pub session_id: String,
}

/// The request's live session, or a redirect to the sign-in page.
pub async fn signed(state: &ConsoleState, headers: &HeaderMap) -> Result<Signed, Response> {
    let to_sign_in = || Redirect::to("/sign-in").into_response();
    let Some(session_id) = cookie(headers, SESSION_COOKIE) else {
        return Err(to_sign_in());
    };
    match crate::app::officers::session(&state.store, &session_id).await {
        Ok(Some((officer, csrf))) => Ok(Signed {
            officer,
            csrf,
            session_id,
        }),
        Ok(None) => Err(to_sign_in()),
        Err(e) => Err(pages::failure(lang(headers, None), &e)),
    }
}
