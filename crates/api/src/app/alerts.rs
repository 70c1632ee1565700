//! Officers act on alerts: acknowledge, request rectification by a due
//! date, resolve; each step kept with who and why.

use ledger_core::domain::alerts::{Alert, AlertAction};
use ledger_core::{InstitutionId, Store};

use crate::app::AppResult;

/// Moves an alert along its lifecycle; a move the lifecycle does not allow
/// is refused and changes nothing.
pub async fn act(
    store: &Store,
    institution: &InstitutionId,
    key: &str,
    action: &AlertAction,
    actor: &str,
    comment: Option<&str>,
) -> AppResult<Alert> {
    Ok(store
        .act_on_alert(institution, key, action, actor, comment)
        .await?)
}
