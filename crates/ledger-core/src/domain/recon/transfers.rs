//! The matcher's inputs from what the ledger holds: stored bank lines of a
//! supervised account, and the entries that move money through that account
//! (receipts in, releases, refunds and deposit returns out).

use std::collections::BTreeSet;

use crate::domain::accounts::Side;
use crate::domain::entry::{Entry, EntryKind};
use crate::domain::feeds::AccountKind;
use crate::domain::recon::account::StatementLine;
use crate::domain::recon::{BankLine, LedgerTransfer, TransferKind};

/// Bank lines with ids 0.. in the order given (the caller keeps the order
/// to map ids back). Lines without a booking date fall back to the value
/// date; a line with neither is left out and returned by index.
pub fn bank_lines(stored: &[StatementLine]) -> (Vec<BankLine>, Vec<usize>) {
    let mut lines = Vec::with_capacity(stored.len());
    let mut undated = Vec::new();
    for (i, l) in stored.iter().enumerate() {
        let Some(date) = l.day() else {
            undated.push(i);
            continue;
        };
        lines.push(BankLine {
            id: i as u64,
            amount_minor: l.amount_minor,
            booking_date: date,
            value_date: l.value_date,
            status: l.status,
            end_to_end_id: l.end_to_end_id.clone(),
            bank_ref: l.bank_ref.clone(),
            remittance: l.remittance.clone(),
            counterparty_name: l.counterparty_name.clone(),
            counterparty_account: l.counterparty_account.clone(),
            reversal: l.reversal,
        });
    }
    (lines, undated)
}

/// The cash account of the books a supervised account mirrors.
pub fn cash_account(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::Escrow => "escrow_cash",
        AccountKind::Deposit => "deposit_cash",
    }
}

/// What an entry of a kind moves through a supervised account, if anything.
fn transfer_kind(kind: EntryKind) -> Option<TransferKind> {
    match kind {
        EntryKind::TuitionPaid | EntryKind::UnidentifiedReceipt | EntryKind::DepositPaidIn => {
            Some(TransferKind::Receipt)
        }
        EntryKind::ReleaseInstructed => Some(TransferKind::Release),
        EntryKind::RefundPaymentInstructed => Some(TransferKind::Refund),
        EntryKind::DepositReturnInstructed => Some(TransferKind::DepositReturn),
        _ => None,
    }
}

/// The kinds of entry that can be a transfer: the only entries (with
/// those of [`SETTLING_KINDS`] that refer to them) the matcher and a
/// recording run read, so the store can load just those.
pub fn transfer_kinds() -> Vec<EntryKind> {
    EntryKind::ALL
        .into_iter()
        .filter(|k| transfer_kind(*k).is_some())
        .collect()
}

/// The kinds of entry that settle a transfer by referring to it: a
/// confirmed or voided instruction, a reversed receipt.
pub const SETTLING_KINDS: [EntryKind; 3] = [
    EntryKind::PendingConfirmed,
    EntryKind::PendingVoided,
    EntryKind::Reversal,
];

/// The ledger transfers through one supervised account: entries that post
/// to its cash account (`escrow_cash` or `deposit_cash`), less what was
/// voided or reversed; transfer ids are entry seqs.
pub fn transfers<'a>(
    entries: impl IntoIterator<Item = &'a Entry> + Clone,
    kind: AccountKind,
) -> Vec<LedgerTransfer> {
    let cash = cash_account(kind);
    // Entries whose movement was undone: voided instructions, reversed receipts.
    let undone: BTreeSet<i64> = entries
        .clone()
        .into_iter()
        .filter(|e| matches!(e.kind, EntryKind::PendingVoided | EntryKind::Reversal))
        .filter_map(|e| e.refers_to_seq)
        .collect();
    let mut out = Vec::new();
    for e in entries {
        if undone.contains(&e.seq) {
            continue;
        }
        let Some(transfer_kind) = transfer_kind(e.kind) else {
            continue;
        };
        let Some(posting) = e.postings.iter().find(|p| p.account == cash) else {
            continue;
        };
        let amount_minor = match posting.side {
            Side::Debit => posting.amount.minor(),
            Side::Credit => -posting.amount.minor(),
        };
        let mut references = vec![e.client_id.to_string()];
        references.extend(e.external_ref.clone());
        out.push(LedgerTransfer {
            id: e.seq as u64,
            amount_minor,
            date: e.occurred_at.date_naive(),
            references,
            counterparty: None,
            kind: transfer_kind,
        });
    }
    out
}
