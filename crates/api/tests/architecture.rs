//! The arrows of ARCHITECTURE.md for the binary's library, checked on the
//! source: the application layer knows no adapter, the adapters leave to
//! it what it offers, and no two modules lean on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc comments name modules in
/// prose, which is no dependency).
fn code(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file belongs to: `src/http/routes/feeds.rs` →
/// `http`, `src/cli.rs` → `cli`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The top-level modules a file's code refers to through `crate::`,
/// including grouped imports (`use crate::{a, b::c}`).
fn refers_to(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn the_application_layer_knows_no_adapter() {
    let mut files = vec![src().join("app.rs")];
    rust_files(&src().join("app"), &mut files);
    assert!(files.len() > 5, "{files:?}");
    let banned = [
        "clap",
        "axum",
        "serde_json::Value",
        "json!",
        "anyhow",
        "println!",
        "eprintln!",
        "indicatif",
    ];
    let adapters = [
        "cli", "http", "console", "serve", "feed", "demo", "bench", "report",
    ];
    for file in files {
        let code = code(&file);
        for word in banned {
            assert!(
                !code.contains(word),
                "{} uses {word}: the application layer returns typed results and AppError",
                file.display()
            );
        }
        for module in refers_to(&code) {
            assert!(
                !adapters.contains(&module.as_str()),
                "{} reaches up into the adapter `{module}`",
                file.display()
            );
        }
    }
}

#[test]
fn the_adapters_leave_the_use_cases_to_the_application_layer() {
    // What only a use case does to the store: an adapter that calls one of
    // these has written a use case of its own.
    let use_case_only = [
        ".ingest_file(",
        ".create_refund(",
        ".move_refund(",
        ".claim_outbox(",
        ".update_outbox(",
        ".register_bank(",
        ".register_bank_account(",
        ".create_jurisdiction(",
        ".claim_job_run(",
        ".execute(",
        ".execute_batch(",
        ".execute_each(",
        ".create_enrollment(",
        ".create_institution(",
        ".put_rule_pack(",
        ".set_payee(",
        ".act_on_alert(",
        // Reconciliation and the risk scan keep what they decide.
        ".record_matches(",
        ".record_days(",
        ".recon_day_history(",
        ".decide_suggestion(",
        ".record_findings(",
        ".resolve_cleared(",
    ];
    let mut files = vec![];
    rust_files(&src(), &mut files);
    for file in files {
        if module_of(&file) == "app" {
            continue;
        }
        // sqlx's `execute(&mut conn)` takes an executor by reference; the
        // store's `execute(request)` takes the request by value.
        let code = code(&file).replace(".execute(&", ".sqlx_execute(&");
        for call in use_case_only {
            assert!(
                !code.contains(call),
                "{} calls the store's {call}…): that is a use case, call it in `app`",
                file.display()
            );
        }
    }
}

#[test]
fn no_two_modules_lean_on_each_other() {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    for file in &files {
        let from = module_of(file);
        for to in refers_to(&code(file)) {
            if to != from && modules.contains(&to) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(graph.contains_key("http"), "{graph:?}");
    // Depth-first search for a cycle, reported as the path that closes it.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            panic!(
                "modules lean on each other: {} -> {node}",
                path[at..].join(" -> ")
            );
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_cycle_finder_sees_grouped_imports() {
    let found = refers_to("use crate::{app::feeds, http::AppState};\nlet x = crate::cli::open;");
    assert_eq!(
        found,
        ["app", "cli", "http"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn every_schema_in_the_api_document_has_a_name_of_its_own() {
    // utoipa names a schema by its type's name: two types of one name are
    // one schema in /openapi.json, and one of them is described wrongly.
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let code = code(&file);
        let lines: Vec<&str> = code.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let derives_schema = line.contains("derive(") && line.contains("ToSchema");
            if !derives_schema {
                continue;
            }
            let Some(decl) = lines[n + 1..]
                .iter()
                .find(|l| l.contains("struct ") || l.contains("enum "))
            else {
                continue;
            };
            let name: String = decl
                .split_whitespace()
                .skip_while(|w| *w != "struct" && *w != "enum")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if let Some(other) = seen.insert(name.clone(), file.clone()) {
                panic!(
                    "two API schemas are named {name}: {} and {}",
                    other.display(),
                    file.display()
                );
            }
        }
    }
    assert!(seen.contains_key("Problem"), "{seen:?}");
}

/// `app::jurisdictions::KnownJurisdictions` keeps a jurisdiction once read,
/// and `app::registry::KnownInstitutions` an institution: true only while
/// nothing updates or deletes one (a registration that finds its code
/// taken does nothing).
#[test]
fn jurisdictions_and_institutions_are_never_changed_once_registered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root.join("crates/ledger-core/src"), &mut files);
    rust_files(&src(), &mut files);
    for dialect in ["postgres", "sqlite"] {
        for entry in fs::read_dir(root.join("migrations").join(dialect)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    assert!(files.len() > 50, "{} files", files.len());
    let mut registrations = 0;
    for file in &files {
        // Whitespace and line continuations folded, any case.
        let text = fs::read_to_string(file)
            .unwrap()
            .to_lowercase()
            .replace("\\\n", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for changes in [
            "update jurisdictions",
            "delete from jurisdictions",
            "alter table jurisdictions",
            "update institutions",
            "delete from institutions",
            "alter table institutions",
        ] {
            assert!(
                !text.contains(changes),
                "{} changes registered jurisdictions or institutions ({changes:?}): KnownJurisdictions and KnownInstitutions would keep them stale",
                file.display()
            );
        }
        if text.contains("insert into jurisdictions") {
            registrations += 1;
            assert!(
                text.contains("on conflict (code) do nothing"),
                "{}: a registration over a taken code must do nothing",
                file.display()
            );
        }
    }
    assert!(
        registrations >= 1,
        "no registration found: is the scan looking in the right place?"
    );
}
