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
    for (field, value) in [
        ("name", &payee.name),
        ("account", &payee.account),
        ("bank", &payee.bank),
    ] {
        if value.trim().is_empty() || value.len() > 70 {
            return Err(AppError::invalid(
                "invalid_field",
                field,
                format!("{field} must be 1 to 70 characters"),
            ));
        }
    }
    if store.payee(&institution.id).await?.as_ref() != Some(&payee) {
        store.set_payee(&institution.id, &payee, by).await?;
    }
    Ok(payee)
}

/// Releases `amount` of earned tuition: a pending entry, and so an outbox
/// row the runner sends to the bank under `instruction_id`.
pub async fn release(
    store: &Store,
    institution: &Institution,
    instruction_id: ClientId,
    amount: &str,
    at: DateTime<Utc>,
) -> AppResult<Entry> {
    let k = instruction_id.as_str();
    if k.len() > 35
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
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
    let amount = Amount::parse(amount, institution.currency).map_err(|e| AppError::Invalid {
        code: e.code(),
        field: Some("amount".into()),
        detail: e.to_string(),
    })?;
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
