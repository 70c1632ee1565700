//! What became of a pending entry in the books, for instructions whose
//! bank has no status API (a drop folder): its statement confirms or
//! returns them through reconciliation, and the outbox reads the outcome
//! here.

use crate::domain::entry::{EntryKind, Phase};
use crate::domain::ids::InstitutionId;
use crate::store::rows::corrupt;
use crate::store::{Result, Store};

impl Store {
    /// `Some(true)` once the pending entry under `client_id` was posted
    /// (the bank executed it), `Some(false)` once voided, `None` while it
    /// waits (or when there is no such entry).
    pub async fn pending_outcome(
        &self,
        institution: &InstitutionId,
        client_id: &str,
    ) -> Result<Option<bool>> {
        let sql = "select r.kind from entries p join entries r \
                     on r.institution_id = p.institution_id and r.refers_to_seq = p.seq \
                   where p.institution_id = $1 and p.client_id = $2";
        let kinds: Vec<String> = on_reader!(self, |pool| sqlx::query_scalar(sql)
            .bind(institution.as_str())
            .bind(client_id)
            .fetch_all(pool)
            .await?);
        for kind in kinds {
            let parsed = EntryKind::parse(&kind).ok_or_else(|| corrupt("entry kind", &kind))?;
            match parsed.phase() {
                Phase::PostPending => return Ok(Some(true)),
                Phase::VoidPending => return Ok(Some(false)),
                Phase::Posted | Phase::Pending => {}
            }
        }
        Ok(None)
    }
}
