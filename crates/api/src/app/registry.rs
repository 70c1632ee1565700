//! Registering who is supervised and under which rules: institutions in a
//! jurisdiction, and the rule packs a jurisdiction publishes.

use ledger_core::{Institution, RulePack, Store};

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
