//! The arrows of ARCHITECTURE.md that point at this crate: bank-adapter
//! speaks the bank's language (parsing, rendering, the client,
//! instructions, signatures) and depends on ledger-core's domain types at
//! most, never on its store; reconciliation is a domain rule and lives in
//! ledger-core.

use std::fs;
use std::path::{Path, PathBuf};

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

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = vec![];
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 10, "the crate's sources were not found");
    files
        .into_iter()
        .map(|f| {
            let text = fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

#[test]
fn bank_adapter_imports_nothing_of_the_store() {
    for (file, text) in sources() {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for banned in ["ledger_core::store", "ledger_core::Store", "sqlx"] {
                assert!(
                    !code.contains(banned),
                    "{}:{}: bank-adapter names {banned}: {line}",
                    file.display(),
                    n + 1
                );
            }
        }
        // `use ledger_core::{.., store, ..}` names the store too, over
        // however many lines the list takes.
        let mut rest = text.as_str();
        while let Some(start) = rest.find("ledger_core::{") {
            let list = &rest[start..];
            let end = list.find('}').unwrap_or(list.len());
            let names = &list[..end];
            assert!(
                !names
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|name| name == "store" || name == "Store" || name == "StoreError"),
                "{}: bank-adapter names the store: {names}",
                file.display()
            );
            rest = &list[end..];
        }
    }
}

#[test]
fn reconciliation_is_not_the_bank_adapters() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (file, _) in sources() {
        let inside = file.strip_prefix(&src).unwrap_or(&file);
        assert!(
            !inside.starts_with("reconcile.rs") && !inside.starts_with("reconcile"),
            "{}: the matcher lives in ledger-core's domain (domain/recon)",
            file.display()
        );
    }
    for (file, text) in sources() {
        assert!(
            !text.contains("mod reconcile"),
            "{} declares a reconcile module",
            file.display()
        );
    }
}
