//! Writing the books: enrollments sold, and requests (payments, lessons,
//! releases, deposits…) recorded as entries, one at a time or as a batch
//! that is all or nothing. The rules are the core's (`Books::execute`);
//! this is the one door every adapter goes through.

use ledger_core::store::KeepWith;
use ledger_core::{Enrollment, Entry, Request, Store};

use crate::app::group_commit::GroupCommit;
use crate::app::AppResult;

/// Records one request (checked first: hours, times, references); a
/// replay returns the original entry.
pub async fn record(store: &Store, request: Request) -> AppResult<Entry> {
    Ok(store.execute(request).await?)
}

/// Records one request through the group committer: written in one
/// transaction with other callers' requests, with its own outcome, and
/// `keep` (the answer kept under its Idempotency-Key, its audit record)
/// in the same transaction. Answers after the commit.
pub async fn record_grouped(
    group: &GroupCommit,
    request: Request,
    keep: Option<KeepWith>,
) -> AppResult<Entry> {
    group.record(request, keep).await
}

/// Records a batch in one transaction: every request or none; a refusal
/// names the item.
pub async fn record_batch(store: &Store, requests: Vec<Request>) -> AppResult<Vec<Entry>> {
    Ok(store.execute_batch(requests).await?)
}

/// Records an enrollment (a package of class hours sold); the same one
/// again is a no-op (`false`: not new), a different one under its id is
/// refused.
pub async fn enroll(store: &Store, enrollment: &Enrollment) -> AppResult<bool> {
    Ok(store.create_enrollment(enrollment).await?)
}

/// An institution's books as an hledger journal (`domain::journal`):
/// every entry in chain order; `hledger bal --cleared` gives its posted
/// balances.
pub async fn journal(store: &Store, institution: &ledger_core::Institution) -> AppResult<String> {
    let entries = crate::app::reconcile::all_entries(store, &institution.id).await?;
    Ok(ledger_core::domain::journal::hledger(
        &format!(
            "{} {} ({})",
            institution.id, institution.name, institution.jurisdiction
        ),
        institution.currency,
        &entries,
    ))
}
