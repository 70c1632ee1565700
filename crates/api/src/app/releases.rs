//! Releases (拨付): earned tuition paid out of escrow to the institution,
//! through the outbox, to the account an officer put on file.

use chrono::{DateTime, Utc};
use ledger_core::domain::refunds::Payee;
use ledger_core::{Amount, ClientId, Command, Entry, Institution, Request, Store};

use crate::app::{AppError, AppResult};

/// The institution's payee account on file.
pub async fn payee(store: &Store, institution: &Institution) -> AppResult<Payee> {
    store
        .payee(&institution.id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("a payee account of {}", institution.id)))
}

/// Puts a payee account on file. The account already on file, put again,
/// makes no new version (a repeated PUT is no change).
pub async fn set_payee(
    store: &Store,
    institution: &Institution,
    payee: Payee,
    by: &str,
) -> AppResult<Payee> {
    crate::app::refunds::check_payee(&payee, "")?;
    if store.payee(&institution.id).await?.as_ref() != Some(&payee) {
        store.set_payee(&institution.id, &payee, by).await?;
    }
    Ok(payee)
}

/// Checks a release before it is asked for or made: the instruction id's
/// shape, a payee on file, the amount.
pub async fn check_release(
    store: &Store,
    institution: &Institution,
    instruction_id: &ClientId,
    amount: &str,
) -> AppResult<Amount> {
    if !is_instruction_id(instruction_id.as_str()) {
        return Err(AppError::invalid(
            "invalid_field",
            "Idempotency-Key",
            "a release's Idempotency-Key is its bank instruction id: at most 35 letters, digits, '-' or '.'",
        ));
    }
    if store.payee(&institution.id).await?.is_none() {
        return Err(AppError::conflict(
            "no_payee_on_file",
            format!(
                "{} has no payee account on file: PUT /v1/institutions/{}/payee first",
                institution.name, institution.id
            ),
        ));
    }
    Amount::parse(amount, institution.currency).map_err(|e| AppError::Invalid {
        code: e.code(),
        field: Some("amount".into()),
        detail: e.to_string(),
    })
}

/// An officer's release of `amount` of earned tuition, capped by what may
/// be released now (confirmed, unreleased, not held by a freeze, beyond the
/// reserve): a pending entry, and so an outbox row the runner sends to the
/// bank under `instruction_id`. It reaches here only through a second
/// officer's approval (`app::approvals`), which checked the cap when it was
/// asked for too.
pub async fn release(
    store: &Store,
    institution: &Institution,
    instruction_id: ClientId,
    amount: &str,
    at: DateTime<Utc>,
) -> AppResult<Entry> {
    // A repeat of a release already made is its replay, whatever was
    // released since.
    let made = store
        .entries(&institution.id, 0, i64::MAX)
        .await?
        .into_iter()
        .any(|e| e.client_id == instruction_id);
    if !made {
        let asked = check_release(store, institution, &instruction_id, amount).await?;
        crate::app::lessons::check_manual_release(
            store,
            institution,
            asked.minor(),
            at.date_naive(),
        )
        .await?;
    }
    instruct(store, institution, instruction_id, amount, at).await
}

/// Instructs a release of `amount` (the release job's cycle, or an
/// officer's release once checked and approved).
pub async fn instruct(
    store: &Store,
    institution: &Institution,
    instruction_id: ClientId,
    amount: &str,
    at: DateTime<Utc>,
) -> AppResult<Entry> {
    let amount = check_release(store, institution, &instruction_id, amount).await?;
    let request = Request {
        institution: institution.id.clone(),
        client_id: instruction_id,
        currency: institution.currency,
        occurred_at: at,
        external_ref: None,
        command: Command::InstructRelease { amount },
    }
    .validated()?;
    Ok(store.execute(request).await?)
}

/// A bank instruction id as pain.001 carries it (end-to-end id): at most 35
/// letters, digits, '-' or '.'.
pub fn is_instruction_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 35
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_key_is_a_bank_instruction_id() {
        assert!(is_instruction_id("REL-2026-11.07"));
        assert!(is_instruction_id(&"A".repeat(35)));
        for bad in ["", "REL 1", "REL_1", "发放1", &"A".repeat(36)] {
            assert!(!is_instruction_id(bad), "{bad:?}");
        }
    }
}
