//! Sending instructions to the bank and asking after them. The instruction
//! id is the `Idempotency-Key`, so a retry after a timeout finds the payment
//! the bank already made instead of making a second one.

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use tracing::instrument;

use crate::client::{header, BankClient, ClientError};
use crate::instruction::{Instruction, InstructionId, InstructionReceipt, Pain001Receipt};

impl BankClient {
    /// Sends a release or refund. Safe to call again with the same
    /// instruction (after a crash, a timeout): the bank answers with the
    /// original receipt. The same id with different content is refused
    /// with [`ClientError::InstructionConflict`], never paid.
    #[instrument(skip_all, fields(bank = %self.config.bank_id, instruction = %instruction.id(), kind = ?instruction.kind()))]
    pub async fn send_instruction(
        &self,
        instruction: &Instruction,
    ) -> Result<InstructionReceipt, ClientError> {
        let id = instruction.id().as_str();
        let body = instruction
            .wire_body()
            .map_err(|error| ClientError::InvalidConfig {
                bank: self.bank_id().to_string(),
                reason: format!("instruction {id} cannot be serialized: {error}"),
            })?;
        // Cannot fail: instruction ids are ASCII letters, digits, '-' and '.'.
        let headers =
            header("idempotency-key", id).map_err(|reason| ClientError::InvalidConfig {
                bank: self.bank_id().to_string(),
                reason,
            })?;
        let call = self.call(Method::POST, &["v1", "instructions"]);
        self.execute(
            &call,
            &[],
            &headers,
            Some(&body),
            |status, bytes| decode_receipt(id, status, bytes),
            |status| {
                (status == StatusCode::CONFLICT).then(|| ClientError::InstructionConflict {
                    bank: self.bank_id().to_string(),
                    instruction_id: id.to_string(),
                })
            },
        )
        .await
    }

    /// Uploads a pain.001.001.09 file holding instructions, keyed by its
    /// message id (`GrpHdr/MsgId`): safe to call again with the same file,
    /// the bank answers with its first answer; the same message id with a
    /// different file is [`ClientError::InstructionConflict`], never paid.
    #[instrument(skip_all, fields(bank = %self.config.bank_id, message = %message_id))]
    pub async fn upload_pain001(
        &self,
        message_id: &str,
        xml: &str,
    ) -> Result<Pain001Receipt, ClientError> {
        let invalid = |reason: String| ClientError::InvalidConfig {
            bank: self.bank_id().to_string(),
            reason,
        };
        let mut headers = header("idempotency-key", message_id).map_err(invalid)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        let call = self.call(Method::POST, &["v1", "payments", "pain001"]);
        self.execute(
            &call,
            &[],
            &headers,
            Some(xml.as_bytes()),
            |status, bytes| {
                let mut receipt: Pain001Receipt = serde_json::from_slice(bytes)
                    .map_err(|error| format!("invalid pain.001 receipt: {error}"))?;
                if receipt.message_id != message_id {
                    return Err(format!(
                        "receipt is for message {}, not {message_id}",
                        receipt.message_id
                    ));
                }
                receipt.replayed = status == StatusCode::OK;
                Ok(receipt)
            },
            |status| {
                (status == StatusCode::CONFLICT).then(|| ClientError::InstructionConflict {
                    bank: self.bank_id().to_string(),
                    instruction_id: message_id.to_string(),
                })
            },
        )
        .await
    }

    /// The bank's current view of an instruction we sent.
    #[instrument(skip_all, fields(bank = %self.config.bank_id, instruction = %id))]
    pub async fn instruction_status(
        &self,
        id: &InstructionId,
    ) -> Result<InstructionReceipt, ClientError> {
        let call = self.call(Method::GET, &["v1", "instructions", id.as_str()]);
        self.execute(
            &call,
            &[],
            &HeaderMap::new(),
            None,
            // `replayed` only means something for a POST.
            |status, bytes| {
                decode_receipt(id.as_str(), status, bytes).map(|receipt| InstructionReceipt {
                    replayed: false,
                    ..receipt
                })
            },
            |status| {
                (status == StatusCode::NOT_FOUND).then(|| ClientError::UnknownInstruction {
                    bank: self.bank_id().to_string(),
                    instruction_id: id.to_string(),
                })
            },
        )
        .await
    }
}

fn decode_receipt(
    id: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<InstructionReceipt, String> {
    let mut receipt: InstructionReceipt = serde_json::from_slice(bytes)
        .map_err(|error| format!("invalid instruction receipt: {error}"))?;
    if receipt.instruction_id != id {
        return Err(format!(
            "receipt is for instruction {}, not {id}",
            receipt.instruction_id
        ));
    }
    receipt.replayed = status == StatusCode::OK;
    Ok(receipt)
}
