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
                       `cursor` and `limit`; follow `next_cursor` until it is null. \
                       Try a call at /docs (Authorize with a bearer token from `escrow-ledger token create`); \
                       every operation with its request body on one page: /docs/reference."
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
         code{background:#f3f3f3;padding:0 .2em}h3{margin-bottom:.2em}.m{font-weight:bold;color:#06c}\
         table{border-collapse:collapse;margin:.3em 0 1em}td,th{border:1px solid #ccc;padding:.15em .4em;text-align:left;vertical-align:top}\
         .body{margin-left:1em}</style>\
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
            if let Some(body) = &op.request_body {
                html.push_str(&request_body(body, doc));
            }
            let answers: Vec<String> = op.responses.responses.keys().cloned().collect();
            html.push_str(&format!("<p>Answers: {}</p>", answers.join(", ")));
        }
    }
    html.push_str(&schemas(doc));
    html.push_str("</body></html>");
    html
}

/// A schema's type in a few words, a `$ref` linked to its schema below.
fn type_words(schema: &serde_json::Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", escape(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema.get(key).and_then(|l| l.as_array()) {
            let words: Vec<String> = list.iter().map(type_words).collect();
            return words.join(" or ");
        }
    }
    let ty = match schema.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(serde_json::Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_string(),
    };
    let mut words = escape(&ty);
    if ty.starts_with("array") {
        if let Some(items) = schema.get("items") {
            words = format!("array of {}", type_words(items));
        }
    }
    if let Some(f) = schema.get("format").and_then(|f| f.as_str()) {
        words.push_str(&format!(" ({})", escape(f)));
    }
    if let Some(e) = schema.get("enum").and_then(|e| e.as_array()) {
        let values: Vec<String> = e.iter().map(|v| escape(&v.to_string())).collect();
        words.push_str(&format!(": one of {}", values.join(", ")));
    }
    words
}

/// An object schema's fields as a table: name, type, required, description.
fn fields(schema: &serde_json::Value) -> String {
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return format!("<p>{}</p>", type_words(schema));
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut out = String::from(
        "<table><thead><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr></thead><tbody>",
    );
    for (name, p) in props {
        let example = p
            .get("example")
            .map(|e| format!(" (e.g. <code>{}</code>)", escape(&e.to_string())))
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            escape(name),
            type_words(p),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            escape(p.get("description").and_then(|d| d.as_str()).unwrap_or("")),
            example
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// An operation's request body: each media type and its schema.
fn request_body(body: &utoipa::openapi::request_body::RequestBody, doc: &OpenApi) -> String {
    let Ok(v) = serde_json::to_value(body) else {
        return String::new();
    };
    let mut out = String::from("<div class=\"body\"><p><b>Request body</b>");
    if v.get("required").and_then(|r| r.as_bool()) == Some(true) {
        out.push_str(" (required)");
    }
    out.push_str("</p>");
    if let Some(content) = v.get("content").and_then(|c| c.as_object()) {
        for (media, c) in content {
            out.push_str(&format!("<p><code>{}</code>: ", escape(media)));
            match c.get("schema") {
                Some(schema) => {
                    out.push_str(&type_words(schema));
                    out.push_str("</p>");
                    // A named schema's fields are shown here too: the body
                    // is what a caller writes.
                    let named = schema
                        .get("$ref")
                        .and_then(|r| r.as_str())
                        .and_then(|r| r.rsplit('/').next())
                        .and_then(|name| doc.components.as_ref()?.schemas.get(name))
                        .and_then(|s| serde_json::to_value(s).ok());
                    out.push_str(&fields(named.as_ref().unwrap_or(schema)));
                }
                None => out.push_str("any</p>"),
            }
        }
    }
    out.push_str("</div>");
    out
}

/// Every named schema with its fields, anchored for the links above.
fn schemas(doc: &OpenApi) -> String {
    let Some(components) = &doc.components else {
        return String::new();
    };
    let mut out = String::from("<h2 id=\"schemas\">Schemas</h2>");
    for (name, schema) in &components.schemas {
        let Ok(v) = serde_json::to_value(schema) else {
            continue;
        };
        out.push_str(&format!(
            "<h3 id=\"schema-{0}\"><code>{0}</code></h3>",
            escape(name)
        ));
        if let Some(d) = v.get("description").and_then(|d| d.as_str()) {
            out.push_str(&format!("<p>{}</p>", escape(d)));
        }
        out.push_str(&fields(&v));
    }
    out
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
