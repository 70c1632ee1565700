//! The one error type of the application layer. A use case fails because
//! the caller asked for something the rules refuse (with the rule's stable
//! code), because what it names is not there, because it clashes with what
//! is recorded, or because a part underneath failed (the database, a bank).
//! The edges branch on [`AppError::kind`], never on message text.

use ledger_core::domain::error::ErrorKind;
use ledger_core::{LedgerError, StoreError};

/// How an edge should answer a failed use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Invalid,
    NotFound,
    Conflict,
    Forbidden,
    /// A part outside the service (a bank) did not answer as it must; a
    /// retry later may succeed.
    Unavailable,
    /// The service is at capacity (a full write queue) or stopping: the
    /// same request later will be taken.
    Busy,
    /// Our own fault (the database, data this version cannot read): logged,
    /// never shown in detail.
    Internal,
}

impl From<ErrorKind> for Kind {
    fn from(kind: ErrorKind) -> Kind {
        match kind {
            ErrorKind::Invalid => Kind::Invalid,
            ErrorKind::NotFound => Kind::NotFound,
            ErrorKind::Conflict => Kind::Conflict,
            ErrorKind::Forbidden => Kind::Forbidden,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule of the ledger refused; `index` is the item of a batch.
    #[error("{}{error}", index.map(|i| format!("item {i} of the batch: ")).unwrap_or_default())]
    Refused {
        index: Option<usize>,
        error: LedgerError,
    },
    /// A rule refused a part of a larger input (a statement of a file):
    /// `at` names the part, `consequence` what was therefore not done.
    #[error("{at}{error}; {consequence}")]
    RefusedWithin {
        at: String,
        error: LedgerError,
        consequence: &'static str,
    },
    /// Input the use case cannot take, with a stable code and the field
    /// (or the place in a file) at fault.
    #[error("{detail}")]
    Invalid {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    /// A state that forbids the step (a refund already decided, a payee
    /// missing), with a stable code.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The caller may not take this step (maker–checker: the person who
    /// asked approving; a pack loosening a floor set above it), with a
    /// stable code.
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// What the request names does not exist.
    #[error("{what} does not exist")]
    NotFound { what: String },
    /// A bank failed to answer as it must.
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    /// The service cannot take the request now (its write queue is full,
    /// or it is stopping); nothing was done: retry after `retry_after_secs`.
    #[error("{detail}")]
    Busy {
        detail: String,
        retry_after_secs: u64,
    },
    /// The store failed (not a refusal: those are `Refused`).
    #[error(transparent)]
    Store(StoreError),
}

impl AppError {
    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        AppError::Invalid {
            code,
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        AppError::NotFound {
            what: what.to_string(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            AppError::Refused { error, .. } | AppError::RefusedWithin { error, .. } => {
                error.kind().into()
            }
            AppError::Invalid { .. } => Kind::Invalid,
            AppError::Conflict { .. } => Kind::Conflict,
            AppError::Forbidden { .. } => Kind::Forbidden,
            AppError::NotFound { .. } => Kind::NotFound,
            AppError::Unavailable { .. } => Kind::Unavailable,
            AppError::Busy { .. } => Kind::Busy,
            AppError::Store(_) => Kind::Internal,
        }
    }

    /// Stable snake_case code: the ledger rule's, or the use case's own.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Refused { error, .. } | AppError::RefusedWithin { error, .. } => error.code(),
            AppError::Invalid { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::Unavailable { code, .. } => code,
            AppError::NotFound { .. } => "not_found",
            AppError::Busy { .. } => "service_busy",
            AppError::Store(e) => e.code(),
        }
    }

    /// The request field at fault, where there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            AppError::Invalid { field, .. } => field.clone(),
            AppError::Refused { index, error } => {
                let own = match error {
                    LedgerError::MissingField { field, .. }
                    | LedgerError::InvalidField { field, .. } => Some(field.to_string()),
                    LedgerError::InvalidId {
                        what: "external reference",
                        ..
                    } => Some("external_ref".to_string()),
                    _ => None,
                };
                match (index, own) {
                    (Some(i), Some(f)) => Some(format!("items[{i}].{f}")),
                    (Some(i), None) => Some(format!("items[{i}]")),
                    (None, own) => own,
                }
            }
            _ => None,
        }
    }
}

impl From<LedgerError> for AppError {
    fn from(error: LedgerError) -> AppError {
        AppError::Refused { index: None, error }
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        match error {
            StoreError::Rejected { index, error } => AppError::Refused { index, error },
            StoreError::Busy {
                detail,
                retry_after_secs,
            } => AppError::Busy {
                detail,
                retry_after_secs,
            },
            other => AppError::Store(other),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// A free text given to a use case (a reason, a comment, an answer),
/// trimmed, `None` when empty; refused, naming `field`, when it cannot be
/// kept (`bounds::note_refusal`: NUL, control characters, over-long). The
/// JSON API refuses the same before a handler runs; the console's forms
/// and the CLI meet it here.
pub fn note(field: &str, value: &str) -> AppResult<Option<String>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if let Some(why) = ledger_core::domain::bounds::note_refusal(value) {
        return Err(AppError::invalid(
            "invalid_text",
            field.to_string(),
            format!("{field}: {why}"),
        ));
    }
    Ok(Some(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_rule_code_kind_and_place_in_the_batch() {
        let e = AppError::from(StoreError::Rejected {
            index: Some(2),
            error: LedgerError::MissingField {
                op: "pay".into(),
                field: "enrollment_id",
            },
        });
        assert_eq!(e.kind(), Kind::Invalid);
        assert_eq!(e.code(), "missing_field");
        assert_eq!(e.field().as_deref(), Some("items[2].enrollment_id"));
        assert!(e.to_string().starts_with("item 2 of the batch: "), "{e}");

        let e = AppError::from(LedgerError::UnknownInstitution {
            institution: "X".into(),
        });
        assert_eq!(e.kind(), Kind::NotFound);
        let e = AppError::from(StoreError::Corrupt("bad row".into()));
        assert_eq!(e.kind(), Kind::Internal);
        assert_eq!(e.code(), "corrupt_data");
    }
}
