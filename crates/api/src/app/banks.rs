//! The bank directory: how to reach each supervising bank (instructions
//! out, statements pulled) and the secrets its pushed notifications are
//! signed with.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration as StdDuration;

use bank_adapter::client::{BankClient, BankConfig, RetryPolicy, Secret};
use serde::Deserialize;

use crate::app::{AppError, AppResult};

/// How to reach each supervising bank, from a JSON file:
/// `[{"bank": "PYB", "url": "https://…", "credential": "…"}]`.
/// A bank's `push_secret`, when given, is the HMAC key its pushed
/// notifications are signed with (see `bank_adapter::signature`). A bank
/// with a `drop_folder` takes its instructions as pain.001.001.09 files
/// written there (its statement confirms them); `url` and `credential` are
/// then optional. A bank with `"instructions": "pain001"` takes the same
/// files uploaded over its API (`POST /v1/payments/pain001`), and is asked
/// after each instruction as for JSON ones.
#[derive(Default)]
pub struct BankDirectory {
    clients: BTreeMap<String, BankClient>,
    push_secrets: BTreeMap<String, Secret>,
    /// Banks whose statements the runner pulls: the connection (its
    /// accounts filled in at each pull) and the checkpoint file.
    pub(crate) pulls: BTreeMap<String, (BankConfig, std::path::PathBuf)>,
    /// Banks that take instructions as pain.001 files in a folder.
    drops: BTreeMap<String, std::path::PathBuf>,
    /// Banks that take instructions as pain.001 files over their API.
    pain001_uploads: std::collections::BTreeSet<String>,
}

/// How a bank with an API takes instructions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum InstructionFormat {
    /// One JSON instruction per call (`POST /v1/instructions`).
    #[default]
    Json,
    /// A pain.001.001.09 file per instruction (`POST /v1/payments/pain001`).
    Pain001,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BankEntry {
    bank: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    credential: Option<String>,
    /// Instructions to this bank as pain.001.001.09 files in this folder.
    #[serde(default)]
    drop_folder: Option<std::path::PathBuf>,
    /// How instructions go over the API: `json` (default) or `pain001`.
    #[serde(default)]
    instructions: InstructionFormat,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    push_secret: Option<String>,
    /// Pull this bank's statements, remembering progress in this file.
    #[serde(default)]
    checkpoint: Option<std::path::PathBuf>,
}

impl BankDirectory {
    pub fn load(path: &Path) -> AppResult<BankDirectory> {
        let invalid = |detail: String| AppError::Invalid {
            code: "invalid_bank_directory",
            field: None,
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(format!(
                "cannot read the bank directory {}: {e}",
                path.display()
            ))
        })?;
        let entries: Vec<BankEntry> = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("{}: not a bank directory: {e}", path.display())))?;
        let mut dir = BankDirectory::default();
        for e in entries {
            if let Some(folder) = &e.drop_folder {
                dir.drop_to(&e.bank, folder.clone());
            }
            let api = match (&e.url, &e.credential) {
                (Some(url), Some(credential)) => Some((url, credential)),
                (None, None) if e.drop_folder.is_some() => None,
                _ => {
                    return Err(invalid(format!(
                        "{}: bank {}: give both url and credential (or a drop_folder)",
                        path.display(),
                        e.bank
                    )))
                }
            };
            if e.instructions == InstructionFormat::Pain001 && api.is_none() {
                return Err(invalid(format!(
                    "{}: bank {}: pain001 instructions are uploaded over the bank's API: give url and credential",
                    path.display(),
                    e.bank
                )));
            }
            if let Some((url, credential)) = api {
                dir.add(&e.bank, url, credential, e.timeout_ms)?;
                if e.instructions == InstructionFormat::Pain001 {
                    dir.upload_pain001_to(&e.bank);
                }
                if let Some(checkpoint) = e.checkpoint {
                    dir.pull_from(&e.bank, url, credential, e.timeout_ms, checkpoint);
                }
            }
            if let Some(secret) = e.push_secret {
                dir.set_push_secret(&e.bank, &secret);
            }
        }
        Ok(dir)
    }

    pub fn add(
        &mut self,
        bank: &str,
        url: &str,
        credential: &str,
        timeout_ms: Option<u64>,
    ) -> AppResult<()> {
        let mut config = BankConfig::new(bank, url, Secret::new(credential.to_string()));
        config.timeout = StdDuration::from_millis(timeout_ms.unwrap_or(10_000));
        // The job runner retries on its own schedule (outbox backoff), so a
        // bank that is down does not hold the runner up.
        config.retry = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        let client = BankClient::new(config).map_err(|e| AppError::Invalid {
            code: e.code(),
            field: None,
            detail: format!("bank {bank}: {e}"),
        })?;
        self.clients.insert(bank.to_string(), client);
        Ok(())
    }

    /// Pulls this bank's statements on every pass of the `pull` job.
    pub fn pull_from(
        &mut self,
        bank: &str,
        url: &str,
        credential: &str,
        timeout_ms: Option<u64>,
        checkpoint: std::path::PathBuf,
    ) {
        let mut config = BankConfig::new(bank, url, Secret::new(credential.to_string()));
        config.timeout = StdDuration::from_millis(timeout_ms.unwrap_or(10_000));
        config.retry = RetryPolicy {
            max_retries: 1,
            ..RetryPolicy::default()
        };
        self.pulls.insert(bank.to_string(), (config, checkpoint));
    }

    /// Sends this bank's instructions as pain.001.001.09 files written to
    /// `folder` (instead of its JSON API); its statement confirms them.
    pub fn drop_to(&mut self, bank: &str, folder: std::path::PathBuf) {
        self.drops.insert(bank.to_string(), folder);
    }

    /// Sends this bank's instructions as pain.001.001.09 files uploaded to
    /// its API (`add` it too) instead of JSON.
    pub fn upload_pain001_to(&mut self, bank: &str) {
        self.pain001_uploads.insert(bank.to_string());
    }

    pub(crate) fn uploads_pain001(&self, bank: &str) -> bool {
        self.pain001_uploads.contains(bank)
    }

    pub(crate) fn drop_folder(&self, bank: &str) -> Option<&Path> {
        self.drops.get(bank).map(std::path::PathBuf::as_path)
    }

    pub fn set_push_secret(&mut self, bank: &str, secret: &str) {
        self.push_secrets
            .insert(bank.to_string(), Secret::new(secret.to_string()));
    }

    /// The banks named, in order (nothing secret).
    pub fn banks(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self
            .clients
            .keys()
            .chain(self.push_secrets.keys())
            .chain(self.drops.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter()
    }

    pub fn push_secret(&self, bank: &str) -> Option<&Secret> {
        self.push_secrets.get(bank)
    }

    pub(crate) fn get(&self, bank: &str) -> Option<&BankClient> {
        self.clients.get(bank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> AppResult<BankDirectory> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banks.json");
        std::fs::write(&path, json).unwrap();
        BankDirectory::load(&path)
    }

    #[test]
    fn a_drop_folder_bank_needs_no_api_and_an_api_bank_needs_both_url_and_credential() {
        let dir = load(r#"[{"bank": "PYB", "drop_folder": "/var/spool/pyb"}]"#).unwrap();
        assert_eq!(dir.drop_folder("PYB"), Some(Path::new("/var/spool/pyb")));
        assert!(dir.get("PYB").is_none());
        assert_eq!(dir.banks().collect::<Vec<_>>(), ["PYB"]);
        for bad in [
            r#"[{"bank": "PYB", "url": "http://127.0.0.1:9"}]"#,
            r#"[{"bank": "PYB", "credential": "c"}]"#,
            r#"[{"bank": "PYB"}]"#,
        ] {
            let e = load(bad).err().expect(bad);
            assert_eq!(e.code(), "invalid_bank_directory", "{bad}");
            assert!(e.to_string().contains("bank PYB"), "{e}");
        }
    }

    #[test]
    fn a_bank_takes_pain001_files_over_its_api_only_when_it_has_one() {
        let dir = load(
            r#"[{"bank": "PYB", "url": "http://127.0.0.1:9", "credential": "c", "instructions": "pain001"},
                {"bank": "ICBC", "url": "http://127.0.0.1:9", "credential": "c"}]"#,
        )
        .unwrap();
        assert!(dir.uploads_pain001("PYB") && dir.get("PYB").is_some());
        assert!(!dir.uploads_pain001("ICBC"));
        let e = load(r#"[{"bank": "PYB", "drop_folder": "/x", "instructions": "pain001"}]"#)
            .err()
            .unwrap();
        assert_eq!(e.code(), "invalid_bank_directory");
        assert!(e.to_string().contains("give url and credential"), "{e}");
        let e = load(r#"[{"bank": "PYB", "url": "http://127.0.0.1:9", "credential": "c", "instructions": "xml"}]"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }
}
