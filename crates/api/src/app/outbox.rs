//! The outbox dispatcher: instructions the books queued (pending entries)
//! go to their bank under their idempotency key (as JSON or a pain.001
//! file over its API, or a pain.001 file in its drop folder), and the bank's answer
//! (executed, rejected, returned) is followed by the books, the refund and,
//! on a return, an alert. A resend is answered with the original receipt.

use bank_adapter::client::BankClient;
use bank_adapter::client::ClientError;
use bank_adapter::instruction::{
    Creditor, Instruction, InstructionId, InstructionKind, InstructionSpec, InstructionStatus,
};
use chrono::{Duration, NaiveDate};
use ledger_core::domain::alerts::{AlertKind, Finding, Severity};
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::domain::refunds::{retry_delay, OutboxItem, OutboxState, RefundState};
use ledger_core::{AccountCode, Amount, ClientId, Command, Currency, LedgerError, Request, Store};

use crate::app::banks::BankDirectory;
use crate::app::evidence::{self, Evidence};
use crate::app::jobs::Tick;
use crate::app::AppResult;

/// One pass of the outbox: due instructions sent, accepted ones asked
/// after. A bank that fails is noted on the item and retried later with
/// backoff; it does not stop the pass.
pub async fn dispatch(
    store: &Store,
    banks: &BankDirectory,
    today: NaiveDate,
    t: &mut Tick,
) -> AppResult<()> {
    // Instructions to send.
    let lease = Duration::seconds(60);
    for item in store.claim_outbox(OutboxState::Pending, 100, lease).await? {
        match send(store, banks, &item, today).await? {
            Ok(()) => t.sent += 1,
            Err(error) => {
                t.send_failures += 1;
                tracing::warn!(instruction = %item.instruction_id, %error, "instruction not sent");
                look_again(store, &item, OutboxState::Pending, Some(&error)).await?;
            }
        }
    }
    // Instructions the bank accepted: has it carried them out?
    for item in store
        .claim_outbox(OutboxState::Accepted, 100, lease)
        .await?
    {
        let status = match outcome(store, banks, &item).await? {
            Ok(s) => s,
            Err(error) => {
                look_again(store, &item, OutboxState::Accepted, Some(&error)).await?;
                continue;
            }
        };
        match status.0 {
            InstructionStatus::Executed => {
                settle(store, &item, true, None).await?;
                t.executed += 1;
            }
            InstructionStatus::Rejected => {
                settle(store, &item, false, status.1.as_deref()).await?;
                t.returned += 1;
            }
            InstructionStatus::Accepted => {
                // Not yet: look again shortly.
                look_again(store, &item, OutboxState::Accepted, None).await?;
            }
        }
    }
    Ok(())
}

/// Leaves an item in `state` to be taken up again: after a backoff that
/// grows with its attempts when it failed (`error`), shortly when the bank
/// has simply not finished.
async fn look_again(
    store: &Store,
    item: &OutboxItem,
    state: OutboxState,
    error: Option<&str>,
) -> AppResult<()> {
    let delay = match error {
        Some(_) => retry_delay(item.attempts + 1),
        None => Duration::seconds(30),
    };
    store
        .update_outbox(
            &item.institution,
            &item.instruction_id,
            state,
            None,
            error,
            Some(delay),
        )
        .await?;
    Ok(())
}

/// An outbox item the instruction rules refuse: the books queued something
/// no bank can be sent.
fn bad_instruction(item: &OutboxItem, e: impl std::fmt::Display) -> String {
    format!("{} {} cannot be sent: {e}", item.kind, item.instruction_id)
}

/// The supervised account an instruction is paid out of: the one its
/// pending entry credits (a refund goes out of the deposit account when an
/// officer decided to pay it from there).
async fn paying_account(store: &Store, item: &OutboxItem) -> AppResult<AccountKind> {
    let code = store
        .paying_account(&item.institution, &item.instruction_id)
        .await?;
    Ok(match code.as_deref().map(AccountCode::parse) {
        Some(Ok(AccountCode::DepositCash)) => AccountKind::Deposit,
        Some(_) => AccountKind::Escrow,
        None if item.kind == "deposit_return_instructed" => AccountKind::Deposit,
        None => AccountKind::Escrow,
    })
}

/// How an instruction reaches its bank.
enum Channel<'b> {
    /// The bank's JSON API (status asked after).
    Api(&'b BankClient),
    /// A pain.001.001.09 file in the bank's drop folder; the bank's
    /// statement confirms it (through reconciliation).
    Drop(&'b std::path::Path),
    /// A pain.001.001.09 file uploaded to the bank's API (status asked
    /// after, by EndToEndId, as for JSON).
    Pain001Api(&'b BankClient),
}

/// The supervised account an item is paid out of and the connection to its
/// bank, or why there is none (the item waits and says so).
async fn paying_bank<'b>(
    store: &Store,
    banks: &'b BankDirectory,
    item: &OutboxItem,
) -> AppResult<Result<(BankAccount, Channel<'b>), String>> {
    let kind = paying_account(store, item).await?;
    let Some(account) = store
        .supervised_accounts(&item.institution)
        .await?
        .into_iter()
        .find(|a| a.kind == kind)
    else {
        return Ok(Err(format!(
            "{} has no supervised {kind:?} account on file",
            item.institution
        )));
    };
    if let Some(folder) = banks.drop_folder(&account.bank) {
        return Ok(Ok((account, Channel::Drop(folder))));
    }
    let Some(client) = banks.get(&account.bank) else {
        return Ok(Err(format!(
            "no connection is configured for bank {:?} (--banks)",
            account.bank
        )));
    };
    if banks.uploads_pain001(&account.bank) {
        return Ok(Ok((account, Channel::Pain001Api(client))));
    }
    Ok(Ok((account, Channel::Api(client))))
}

/// Uploads `instruction` as a pain.001.001.09 file of its own (its id is
/// the message id and the EndToEndId) and returns the bank's receipt for
/// it. The file is dated the day it is sent (midnight UTC), so a resend
/// the same day is the same file, which the bank answers from its
/// idempotency record.
async fn upload_pain001(
    client: &BankClient,
    instruction: &Instruction,
    today: NaiveDate,
) -> Result<bank_adapter::instruction::InstructionReceipt, String> {
    let id = instruction.id().as_str();
    let created = today.and_time(chrono::NaiveTime::MIN).and_utc();
    let xml = bank_adapter::instruction::pain001(std::slice::from_ref(instruction), id, created)
        .map_err(|e| format!("[{}] {e}", e.code()))?;
    let receipt = match client.upload_pain001(id, &xml).await {
        Ok(r) => r,
        Err(e @ ClientError::InstructionConflict { .. }) => {
            return Err(format!(
                "[{}] {e}: the bank holds a different file under this id; nothing was paid twice, a person must look",
                e.code()
            ))
        }
        Err(e) => return Err(format!("[{}] {e}", e.code())),
    };
    receipt
        .instructions
        .into_iter()
        .find(|r| r.instruction_id == id)
        .ok_or_else(|| {
            format!(
                "the bank's receipt for pain.001 {} does not name instruction {id}",
                receipt.bank_ref
            )
        })
}

/// Writes `instruction` as a pain.001.001.09 file into a bank's drop
/// folder, named by the instruction id (also the message id): whole or not
/// at all (written aside, then renamed). A file already there is the
/// instruction delivered before (a runner that died before noting it):
/// never written twice. Returns the file's name, our reference of it.
fn drop_file(
    folder: &std::path::Path,
    instruction: &Instruction,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    let name = format!("{}.xml", instruction.id());
    let path = folder.join(&name);
    if path.exists() {
        return Ok(name);
    }
    let xml = bank_adapter::instruction::pain001(
        std::slice::from_ref(instruction),
        instruction.id().as_str(),
        at,
    )
    .map_err(|e| format!("[{}] {e}", e.code()))?;
    let part = folder.join(format!(".{name}.part"));
    std::fs::write(&part, xml)
        .and_then(|()| std::fs::rename(&part, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(name)
}

/// Sends one due instruction to its bank.
async fn send(
    store: &Store,
    banks: &BankDirectory,
    item: &OutboxItem,
    today: NaiveDate,
) -> AppResult<Result<(), String>> {
    let institution = store.institution(&item.institution).await?;
    let (account, channel) = match paying_bank(store, banks, item).await? {
        Ok(found) => found,
        Err(why) => return Ok(Err(why)),
    };
    let (instruction_kind, creditor) = match item.kind.as_str() {
        "refund_payment_instructed" => {
            let refund = store
                .refunds(Some(&item.institution), None)
                .await?
                .into_iter()
                .find(|r| r.instruction_id.as_deref() == Some(item.instruction_id.as_str()));
            match refund {
                Some(r) => (
                    InstructionKind::Refund,
                    Creditor {
                        name: r.payee.name,
                        account: r.payee.account,
                        bank: r.payee.bank,
                    },
                ),
                None => {
                    return Ok(Err(format!(
                    "refund payment {} was not made through the refund workflow: no payee on file",
                    item.instruction_id
                )))
                }
            }
        }
        // Released tuition and a returned deposit both go to the
        // institution's own account on file.
        "release_instructed" | "deposit_return_instructed" => {
            match store.payee(&item.institution).await? {
                Some(p) => (
                    InstructionKind::Release,
                    Creditor {
                        name: p.name,
                        account: p.account,
                        bank: p.bank,
                    },
                ),
                None => {
                    return Ok(Err(format!(
                        "{} {}: no payee account is on file for {} (PUT /v1/institutions/{}/payee)",
                        item.kind, item.instruction_id, institution.name, item.institution
                    )))
                }
            }
        }
        other => {
            return Ok(Err(format!(
                "{other} {}: not an instruction kind the runner sends",
                item.instruction_id
            )))
        }
    };
    let currency: Currency = item.currency.parse()?;
    let id = match InstructionId::parse(item.instruction_id.clone()) {
        Ok(id) => id,
        Err(e) => return Ok(Err(bad_instruction(item, e))),
    };
    // An instruction the bank's format cannot carry (a payee kept before
    // payees were checked as strictly) is noted on its item and looked at
    // again later, like a bank that fails: it must not stop the pass for
    // every other instruction behind it.
    let instruction = match Instruction::new(InstructionSpec {
        id,
        kind: instruction_kind,
        institution: item.institution.clone(),
        debtor_account: account.account_no.clone(),
        creditor,
        amount: Amount::from_minor(item.amount_minor)?,
        currency,
        requested_date: today,
        remittance: Some(format!("{} {}", item.kind, item.instruction_id)),
    }) {
        Ok(instruction) => instruction,
        Err(e) => return Ok(Err(bad_instruction(item, e))),
    };
    let sent = match channel {
        Channel::Api(client) => client.send_instruction(&instruction).await,
        Channel::Pain001Api(client) => match upload_pain001(client, &instruction, today).await {
            Ok(receipt) => Ok(receipt),
            Err(why) => return Ok(Err(why)),
        },
        Channel::Drop(folder) => {
            return match drop_file(folder, &instruction, store.now()) {
                Ok(file) => {
                    store
                        .update_outbox(
                            &item.institution,
                            &item.instruction_id,
                            OutboxState::Accepted,
                            Some(&file),
                            None,
                            None,
                        )
                        .await?;
                    Ok(Ok(()))
                }
                Err(why) => Ok(Err(why)),
            };
        }
    };
    match sent {
        Ok(receipt) => {
            let state = match receipt.status {
                InstructionStatus::Rejected => {
                    settle(store, item, false, receipt.reason.as_deref()).await?;
                    return Ok(Ok(()));
                }
                _ => OutboxState::Accepted,
            };
            store
                .update_outbox(&item.institution, &item.instruction_id, state, Some(&receipt.bank_ref), None, None)
                .await?;
            Ok(Ok(()))
        }
        Err(e @ ClientError::InstructionConflict { .. }) => Ok(Err(format!(
            "[{}] {e}: the bank holds different content under this id; nothing was paid twice, a person must look",
            e.code()
        ))),
        Err(e) => Ok(Err(format!("[{}] {e}", e.code()))),
    }
}

/// The bank executed (`true`) or rejected/returned (`false`) an instruction:
/// the books follow, then the refund, then (on a return) an alert.
async fn settle(
    store: &Store,
    item: &OutboxItem,
    executed: bool,
    reason: Option<&str>,
) -> AppResult<()> {
    let institution = store.institution(&item.institution).await?;
    let pending = ClientId::parse(item.instruction_id.clone())?;
    let (suffix, command) = if executed {
        ("C", Command::ConfirmPending { pending })
    } else {
        ("V", Command::VoidPending { pending })
    };
    let result = store
        .execute(Request {
            institution: item.institution.clone(),
            client_id: ClientId::parse(format!("{}-{suffix}", item.instruction_id))?,
            currency: institution.currency,
            occurred_at: store.now(),
            external_ref: item.bank_ref.clone(),
            command,
        })
        .await;
    match result {
        Ok(_) => {}
        // Reconciliation of the bank's statement got there first, or a
        // runner that died after this entry (at another time) did.
        Err(e)
            if matches!(
                e.rejection(),
                Some(
                    LedgerError::AlreadyResolved { .. }
                        | LedgerError::ExistsWithDifferentFields { .. }
                )
            ) => {}
        Err(e) => return Err(e.into()),
    }
    let state = if executed {
        OutboxState::Executed
    } else {
        OutboxState::Rejected
    };
    store
        .update_outbox(
            &item.institution,
            &item.instruction_id,
            state,
            None,
            reason,
            None,
        )
        .await?;
    let refund = store
        .refunds(Some(&item.institution), Some(RefundState::Instructed))
        .await?
        .into_iter()
        .find(|r| r.instruction_id.as_deref() == Some(item.instruction_id.as_str()));
    if let Some(r) = refund {
        let (to, detail) = if executed {
            (
                RefundState::Paid,
                format!(
                    "the bank paid it (ref {})",
                    item.bank_ref.as_deref().unwrap_or("-")
                ),
            )
        } else {
            (
                RefundState::Returned,
                format!(
                    "the bank rejected or returned it: {}",
                    reason.unwrap_or("no reason given")
                ),
            )
        };
        store
            .move_refund(
                &r.institution,
                r.id.as_str(),
                RefundState::Instructed,
                to,
                "bank",
                Some(&detail),
                None,
                None,
            )
            .await?;
    }
    if !executed {
        let finding = Finding {
            key: format!("instruction_returned:{}", item.instruction_id),
            kind: AlertKind::InstructionReturned,
            severity: Severity::Red,
            summary: format!(
                "the bank rejected or returned {} {} ({} {}): {}; the pending entry was voided, the money is still owed",
                item.kind,
                item.instruction_id,
                ledger_core::domain::money::format_minor(item.amount_minor, institution.currency),
                item.currency,
                reason.unwrap_or("no reason given")
            ),
            evidence: evidence::text(&[Evidence::Instruction {
                id: &item.instruction_id,
                bank_ref: item.bank_ref.as_deref(),
            }]),
            rule_pack: "workflow".into(),
        };
        store
            .record_findings(&item.institution, store.now().date_naive(), &[finding])
            .await?;
    }
    Ok(())
}

async fn outcome(
    store: &Store,
    banks: &BankDirectory,
    item: &OutboxItem,
) -> AppResult<Result<(InstructionStatus, Option<String>), String>> {
    let client = match paying_bank(store, banks, item).await? {
        Ok((_, Channel::Api(client) | Channel::Pain001Api(client))) => client,
        // A file has no status to ask: the bank's statement, reconciled,
        // posts or voids the pending entry.
        Ok((_, Channel::Drop(_))) => {
            return Ok(Ok(
                match store
                    .pending_outcome(&item.institution, &item.instruction_id)
                    .await?
                {
                    Some(true) => (InstructionStatus::Executed, None),
                    Some(false) => (
                        InstructionStatus::Rejected,
                        Some("returned on the bank's statement".to_string()),
                    ),
                    None => (InstructionStatus::Accepted, None),
                },
            ))
        }
        Err(why) => return Ok(Err(why)),
    };
    let id = match InstructionId::parse(item.instruction_id.clone()) {
        Ok(id) => id,
        Err(e) => return Ok(Err(bad_instruction(item, e))),
    };
    Ok(match client.instruction_status(&id).await {
        Ok(r) => Ok((r.status, r.reason)),
        Err(e) => Err(format!("[{}] {e}", e.code())),
    })
}
