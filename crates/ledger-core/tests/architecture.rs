//! The checkable invariants of ARCHITECTURE.md: the domain does no I/O and
//! no float comes near money, anywhere in the workspace.

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

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_domain_imports_no_database_runtime_or_http_crate() {
    let mut files = vec![];
    rust_files(
        &workspace().join("crates/ledger-core/src/domain"),
        &mut files,
    );
    files.push(workspace().join("crates/ledger-core/src/domain.rs"));
    assert!(files.len() > 5);
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for banned in ["sqlx", "tokio", "reqwest", "axum", "Utc::now", "std::env"] {
            assert!(
                !text.contains(banned),
                "{} mentions {banned}",
                file.display()
            );
        }
    }
}

#[test]
fn no_float_type_appears_in_any_crate() {
    let mut files = vec![];
    rust_files(&workspace().join("crates"), &mut files);
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for float in [concat!("f", "32"), concat!("f", "64")] {
                let found = code.match_indices(float).any(|(i, _)| {
                    let before = code[..i].chars().last();
                    let after = code[i + 3..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                assert!(
                    !found,
                    "{}:{}: {float} near money: {line}",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}
