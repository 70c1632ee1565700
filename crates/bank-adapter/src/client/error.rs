//! The client layer's one error type: what went wrong talking to which bank,
//! on which call, without credentials or statement contents in the message.

/// Errors of the bank client. `code()` is stable for API clients and alerts.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bank {bank}: invalid configuration: {reason}")]
    InvalidConfig { bank: String, reason: String },

    /// Retries exhausted on timeouts, connection errors, 5xx or unreadable bodies.
    #[error("bank {bank}: {call} failed after {attempts} attempts; last cause: {cause}")]
    GaveUp {
        bank: String,
        call: String,
        attempts: u32,
        cause: String,
    },

    /// 401 or 403: retrying cannot help, someone must fix the credential.
    #[error("bank {bank}: {call} refused our credential (http {status})")]
    CredentialRejected {
        bank: String,
        call: String,
        status: u16,
    },

    /// Any other 4xx: the bank says the request itself is wrong.
    #[error("bank {bank}: {call} was rejected (http {status}): {detail}")]
    Rejected {
        bank: String,
        call: String,
        status: u16,
        detail: String,
    },

    /// The bank already holds a different instruction under this idempotency key.
    #[error("bank {bank}: instruction {instruction_id} was already sent with different content (http 409)")]
    InstructionConflict {
        bank: String,
        instruction_id: String,
    },

    #[error("bank {bank}: instruction {instruction_id} is unknown to the bank (http 404)")]
    UnknownInstruction {
        bank: String,
        instruction_id: String,
    },

    #[error("checkpoint {at}: {reason}")]
    Checkpoint { at: String, reason: String },

    /// The caller's sink refused a page; the checkpoint was not advanced.
    #[error("bank {bank}: storing fetched statements failed: {source}")]
    Sink {
        bank: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ClientError {
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::InvalidConfig { .. } => "invalid_bank_config",
            ClientError::GaveUp { .. } => "bank_unavailable",
            ClientError::CredentialRejected { .. } => "bank_credential_rejected",
            ClientError::Rejected { .. } => "bank_rejected_request",
            ClientError::InstructionConflict { .. } => "instruction_conflict",
            ClientError::UnknownInstruction { .. } => "unknown_instruction",
            ClientError::Checkpoint { .. } => "checkpoint_failed",
            ClientError::Sink { .. } => "feed_sink_failed",
        }
    }

    pub(crate) fn checkpoint(at: impl Into<String>, reason: impl Into<String>) -> Self {
        ClientError::Checkpoint {
            at: at.into(),
            reason: reason.into(),
        }
    }
}
