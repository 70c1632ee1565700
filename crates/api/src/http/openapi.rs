//! The OpenAPI document (collected from the handlers' annotations by
//! utoipa) and a browsable page rendered from it, self-contained so that it
//! works on a machine without internet access.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi, PathItem};
use utoipa::{Modify, OpenApi as _};

use crate::http::problem::Problem;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "escrow-ledger",
        description = "Supervised prepaid-tuition escrow: books, bank feeds, reconciliation and run-off risk. \
                       Amounts are decimal strings in major units (\"1234.50\"). Errors are application/problem+json \
                       with a stable `code`. Every POST needs an `Idempotency-Key` header. Lists are paged with \
                       `cursor` and `limit`; follow `next_cursor` until it is null."
    ),
    components(schemas(Problem)),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "registry", description = "Jurisdictions and institutions"),
        (name = "books", description = "Balances and journal entries"),
        (name = "flows", description = "Enrollments, payments, lesson consumption"),
        (name = "oversight", description = "Overviews, risk and alerts"),
        (name = "feeds", description = "Bank statement files"),
        (name = "refunds", description = "The refund workflow"),
    )
)]
struct Base;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn base() -> OpenApi {
    Base::openapi()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A plain HTML index of every operation with its parameters and answers.
pub fn page(doc: &OpenApi) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>escrow-ledger API</title>\
         <style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}\
         code{background:#f3f3f3;padding:0 .2em}h3{margin-bottom:.2em}.m{font-weight:bold;color:#06c}</style>\
         </head><body><h1>escrow-ledger API</h1>",
    );
    if let Some(d) = &doc.info.description {
        html.push_str(&format!("<p>{}</p>", escape(d)));
    }
    html.push_str("<p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a>. Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> (<code>escrow-ledger token create</code>).</p>");
    for (path, item) in doc.paths.paths.iter() {
        for (method, op) in operations(item) {
            html.push_str(&format!(
                "<h3><span class=\"m\">{method}</span> <code>{}</code></h3>",
                escape(path)
            ));
            if let Some(s) = &op.summary {
                html.push_str(&format!("<p>{}</p>", escape(s)));
            }
            if let Some(d) = &op.description {
                html.push_str(&format!("<p>{}</p>", escape(d)));
            }
            if let Some(params) = &op.parameters {
                html.push_str("<ul>");
                for p in params {
                    html.push_str(&format!(
                        "<li><code>{}</code> ({}){}</li>",
                        escape(&p.name),
                        serde_json::to_value(&p.parameter_in)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        p.description
                            .as_deref()
                            .map(|d| format!(": {}", escape(d)))
                            .unwrap_or_default()
                    ));
                }
                html.push_str("</ul>");
            }
            let answers: Vec<String> = op.responses.responses.keys().cloned().collect();
            html.push_str(&format!("<p>Answers: {}</p>", answers.join(", ")));
        }
    }
    html.push_str("</body></html>");
    html
}

fn operations(item: &PathItem) -> Vec<(&'static str, &utoipa::openapi::path::Operation)> {
    [
        ("GET", &item.get),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("PATCH", &item.patch),
        ("DELETE", &item.delete),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
    .collect()
}
