//! Bearer tokens: `el_<id>_<secret>`, shown once when created, kept only as
//! the SHA-256 of the whole token, revocable.

use std::process::ExitCode;

use clap::Subcommand;
use ledger_core::store::TokenRecord;
use ledger_core::{EnrollmentId, InstitutionId, JurisdictionCode, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::access::{check_grant, Role, Scope};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (the only time it is shown).
    Create {
        /// The token's role: what it may do.
        #[arg(long, value_enum)]
        role: crate::access::Role,
        /// Officers and platforms: the jurisdiction (a city covers its counties).
        #[arg(long, conflicts_with_all = ["institution", "bank"])]
        jurisdiction: Option<String>,
        /// Institution tokens: the institution (and family tokens: the
        /// enrollment's institution).
        #[arg(long, conflicts_with = "bank")]
        institution: Option<String>,
        /// Family tokens: the enrollment (with --institution).
        #[arg(long, requires = "institution")]
        enrollment: Option<String>,
        /// Bank tokens: the supervising bank's id.
        #[arg(long)]
        bank: Option<String>,
        /// Who holds it (shown in the audit log).
        #[arg(long)]
        name: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (the part after `el_`, before the second `_`).
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh token and the record to keep of it.
pub fn mint(
    store: &Store,
    role: Role,
    scope: Scope,
    name: Option<String>,
) -> anyhow::Result<(String, TokenRecord)> {
    check_grant(role, &scope).map_err(anyhow::Error::msg)?;
    let mut id = [0u8; 6];
    let mut secret = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut id);
    rand::thread_rng().fill_bytes(&mut secret);
    let id = hex::encode(id);
    let token = format!("el_{id}_{}", hex::encode(secret));
    let name = name.unwrap_or_else(|| match scope.id() {
        Some(s) => format!("{} {s}", role.as_str()),
        None => role.as_str().to_string(),
    });
    let record = TokenRecord {
        id,
        name,
        role: role.as_str().to_string(),
        scope_kind: scope.kind().to_string(),
        scope_id: scope.id(),
        created_at: store.now(),
        revoked_at: None,
    };
    Ok((token, record))
}

/// A family's new token for its enrollment, in place of every one it had
/// (lost, or in the wrong hands): the new one is kept first, then the
/// others are revoked, so that the family is never left without one.
/// Returns the new token and the ids of those revoked.
pub async fn reissue_family(
    store: &Store,
    institution: &ledger_core::InstitutionId,
    enrollment: &ledger_core::EnrollmentId,
) -> anyhow::Result<(String, Vec<String>)> {
    let scope = Scope::Enrollment(institution.clone(), enrollment.clone());
    let (kind, id) = (scope.kind(), scope.id().unwrap_or_default());
    let before = store.live_tokens_of(kind, &id).await?;
    let (token, record) = create(
        store,
        Role::Family,
        scope,
        Some(format!("family of {enrollment} at {institution}")),
    )
    .await?;
    let mut revoked = Vec::new();
    for old in before
        .iter()
        .filter(|t| t.role == Role::Family.as_str() && t.id != record.id)
    {
        if store.revoke_token(&old.id).await? {
            revoked.push(old.id.clone());
        }
    }
    Ok((token, revoked))
}

/// Creates and keeps a token; returns the token itself.
pub async fn create(
    store: &Store,
    role: Role,
    scope: Scope,
    name: Option<String>,
) -> anyhow::Result<(String, TokenRecord)> {
    match &scope {
        Scope::Jurisdiction(code) => {
            if !store.jurisdictions().await?.iter().any(|j| j.code == *code) {
                anyhow::bail!("jurisdiction {code} does not exist");
            }
        }
        Scope::Institution(id) => {
            store.institution(id).await?;
        }
        Scope::Enrollment(id, enrollment) => {
            if store.enrollment_book(id, enrollment).await?.is_none() {
                anyhow::bail!("institution {id} has no enrollment {enrollment}");
            }
        }
        Scope::Bank(bank) => {
            if !store.banks().await?.iter().any(|b| b == bank) {
                anyhow::bail!("bank {bank:?} is not registered (escrow-ledger bank add)");
            }
        }
        Scope::All => {}
    }
    let (token, record) = mint(store, role, scope, name)?;
    store.create_token(&record, &hash(&token)).await?;
    Ok((token, record))
}

pub async fn run(store: &Store, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create {
            role,
            jurisdiction,
            institution,
            enrollment,
            bank,
            name,
            json,
        } => {
            let scope = match (jurisdiction, institution, bank, enrollment) {
                (Some(j), _, _, _) => Scope::Jurisdiction(JurisdictionCode::parse(j)?),
                (_, Some(i), _, Some(e)) => {
                    Scope::Enrollment(InstitutionId::parse(i)?, EnrollmentId::parse(e)?)
                }
                (_, Some(i), _, None) => Scope::Institution(InstitutionId::parse(i)?),
                (_, _, Some(b), _) => Scope::Bank(b),
                _ => Scope::All,
            };
            let (token, record) = create(store, role, scope, name).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "token": token, "id": record.id, "role": record.role,
                        "scope": record.scope_kind, "scope_id": record.scope_id, "name": record.name })
                );
            } else {
                println!("{token}");
                eprintln!(
                    "token {} ({}, {}) created; it is not shown again. Use it as `Authorization: Bearer <token>`.",
                    record.id, record.role, record.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if store.revoke_token(&id).await? {
                println!("token {id} revoked");
            } else {
                eprintln!("error: no live token with id {id:?}");
                return Ok(ExitCode::FAILURE);
            }
        }
        TokenCommand::List { json } => {
            let tokens = store.tokens().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                for t in tokens {
                    println!(
                        "{}  {:<11} {:<12} {:<16} {}{}",
                        t.id,
                        t.role,
                        t.scope_kind,
                        t.scope_id.as_deref().unwrap_or("-"),
                        t.name,
                        if t.revoked_at.is_some() {
                            "  (revoked)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
