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
        (name = "approvals", description = "Maker–checker: requests waiting for a second officer"),
        (name = "webhooks", description = "Signed outbound webhooks: subscriptions, the delivery log, replays"),
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

/// The answers every `/v1` operation can give besides its own: a missing
/// or revoked token, a role that may not, malformed input, and for POSTs a
/// missing Idempotency-Key, a body too large or of the wrong type.
pub fn common_answers(doc: &mut OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let problem = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    let reads = [
        ("400", "Malformed query"),
        ("401", "No token, or a revoked one"),
        ("403", "The token's role may not do this"),
        ("404", "Absent, or out of the token's scope"),
        ("408", "The request took too long"),
        ("422", "Invalid field"),
    ];
    let writes = [
        (
            "409",
            "Conflicts with what exists (or the Idempotency-Key was used for another request)",
        ),
        ("413", "Body too large"),
        ("415", "Body of the wrong media type"),
    ];
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (is_write, op) in [
            (false, item.get.as_mut()),
            (true, item.post.as_mut()),
            (true, item.put.as_mut()),
        ]
        .into_iter()
        .filter_map(|(w, op)| op.map(|op| (w, op)))
        {
            // Errors are problem documents, whatever the handler declared.
            for (status, response) in op.responses.responses.iter_mut() {
                if let (false, utoipa::openapi::RefOr::T(r)) = (status.starts_with('2'), response) {
                    if let Some(content) = r.content.shift_remove("application/json") {
                        r.content
                            .insert("application/problem+json".to_string(), content);
                    }
                }
            }
            let extra = reads
                .iter()
                .chain(if is_write { writes.iter() } else { [].iter() });
            for (status, what) in extra {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| problem(what).into());
            }
        }
    }
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
