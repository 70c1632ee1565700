//! White and black lists (黑白名单): an officer puts an institution on
//! the white list (licensed, in good standing) or the black list, or takes
//! it off, with a reason; each change is a publication numbered per
//! jurisdiction. The current lists and their history are public.

use ledger_core::store::ListChange;
use ledger_core::{Institution, Store};

use crate::app::{AppError, AppResult};

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    White,
    Black,
    /// On neither.
    None,
}

impl List {
    pub fn code(self) -> &'static str {
        match self {
            List::White => "white",
            List::Black => "black",
            List::None => "none",
        }
    }

    pub fn parse(text: &str) -> AppResult<List> {
        match text {
            "white" => Ok(List::White),
            "black" => Ok(List::Black),
            "none" => Ok(List::None),
            other => Err(AppError::invalid(
                "invalid_list",
                "list",
                format!("{other:?} is not white, black or none"),
            )),
        }
    }
}

/// Publishes a change of one institution's membership.
pub async fn publish(
    store: &Store,
    institution: &Institution,
    list: List,
    reason: &str,
    published_by: &str,
) -> AppResult<ListChange> {
    crate::app::error::note("reason", reason)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::invalid(
            "invalid_field",
            "reason",
            "reason must be 1 to 500 characters",
        ));
    }
    Ok(store
        .publish_list_change(
            institution.jurisdiction.as_str(),
            institution.id.as_str(),
            list.code(),
            reason,
            published_by,
        )
        .await?)
}

/// The lists as published: per jurisdiction, the current members of each
/// list (the latest change of each institution) and every change.
#[derive(Debug, Clone)]
pub struct Published {
    pub jurisdiction: String,
    /// (institution id, list code, the change that put it there).
    pub current: Vec<ListChange>,
    pub history: Vec<ListChange>,
}

pub async fn published(store: &Store) -> AppResult<Vec<Published>> {
    let changes = store.list_changes().await?;
    let mut out: Vec<Published> = Vec::new();
    for c in changes {
        if out.last().is_none_or(|p| p.jurisdiction != c.jurisdiction) {
            out.push(Published {
                jurisdiction: c.jurisdiction.clone(),
                current: vec![],
                history: vec![],
            });
        }
        if let Some(p) = out.last_mut() {
            p.current.retain(|m| m.institution_id != c.institution_id);
            if c.list != "none" {
                p.current.push(c.clone());
            }
            p.history.push(c);
        }
    }
    Ok(out)
}
