//! Officers act on alerts: acknowledge, request rectification by a due
//! date, resolve; each step kept with who and why.

use ledger_core::domain::alerts::{Alert, AlertAction};
use ledger_core::{InstitutionId, Store};

use crate::app::{AppError, AppResult};

/// Moves an alert along its lifecycle; a move the lifecycle does not allow
/// is refused and changes nothing. A rectification falls due on a business
/// date, today or later: a day already past would make it overdue the
/// moment it is asked for.
pub async fn act(
    store: &Store,
    institution: &InstitutionId,
    key: &str,
    action: &AlertAction,
    actor: &str,
    comment: Option<&str>,
) -> AppResult<Alert> {
    if let AlertAction::RequestRectification { due } = action {
        ledger_core::domain::bounds::check_day("due", *due)?;
        let today = store.now().date_naive();
        if *due < today {
            return Err(AppError::invalid(
                "due_in_the_past",
                "due",
                format!(
                    "a rectification cannot fall due on {due}: that day is past (today is {today})"
                ),
            ));
        }
    }
    Ok(store
        .act_on_alert(institution, key, action, actor, comment)
        .await?)
}
