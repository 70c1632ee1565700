//! Registering who is supervised and under which rules: institutions in a
//! jurisdiction, and the rule packs a jurisdiction publishes.

use std::collections::HashMap;
use std::sync::RwLock;

use ledger_core::{Institution, InstitutionId, RulePack, Store, StoreError};

use crate::app::AppResult;

/// Registers an institution (idempotent: the same one again is a no-op; a
/// different one under its id is refused). Its chart of accounts opens with
/// it.
pub async fn register_institution(store: &Store, institution: &Institution) -> AppResult<()> {
    institution.validate()?;
    Ok(store.create_institution(institution).await?)
}

/// Publishes a version of a jurisdiction's rule pack (idempotent by
/// jurisdiction and version; a different pack under a version is refused).
/// No pack loosens a limit set above its jurisdiction (`loosens_floor`);
/// an officer's pack that loosens one of its own goes through
/// `app::approvals::publish_rule_pack`.
pub async fn publish_rule_pack(store: &Store, pack: &RulePack) -> AppResult<()> {
    pack.params.validate()?;
    crate::app::approvals::check_floors(store, pack).await?;
    Ok(store.put_rule_pack(pack).await?)
}

/// Institutions as read once. An institution is registered and never
/// changed or removed (no statement updates or deletes a row of
/// `institutions`, and a trigger refuses deletes:
/// `jurisdictions_and_institutions_are_never_changed_once_registered` holds the migrations
/// and the store to that), so a row read once stays true; an id not known
/// yet is read each time it is asked, so a new registration is seen at
/// once. Every request about an institution asks (`http::guard`), and the
/// batch that writes for it reads it again under its lock.
#[derive(Debug, Default)]
pub struct KnownInstitutions {
    known: RwLock<HashMap<InstitutionId, Institution>>,
}

impl KnownInstitutions {
    /// The institution, or the store's refusal (unknown institution).
    pub async fn get(&self, store: &Store, id: &InstitutionId) -> Result<Institution, StoreError> {
        let cached = self
            .known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .cloned();
        if let Some(i) = cached {
            return Ok(i);
        }
        let read = store.institution(id).await?;
        self.known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.clone(), read.clone());
        Ok(read)
    }
}
