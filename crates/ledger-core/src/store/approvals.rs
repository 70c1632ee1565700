//! Maker–checker requests and their one decision, both dialects; and the
//! rule context (a jurisdiction's ancestry and their rule packs) the floor
//! rules read. Both tables are append-only: a request is written once (the
//! same request again changes nothing, another under its id is
//! `exists_with_different_fields`), a decision once, by whoever claimed it
//! (`approval_claims`: the first claim wins). Requests naming an
//! institution and their decisions are linked in its record chain in the
//! transaction that writes them.

use chrono::{DateTime, Utc};

use crate::domain::approvals::{Approval, ApprovalKind, Claim, Decision};
use crate::domain::chain::{approval_decision_digest, approval_digest};
use crate::domain::error::LedgerError;
use crate::domain::ids::{InstitutionId, JurisdictionCode};
use crate::domain::policy::RulePack;
use crate::store::bulk::within;
use crate::store::rows::corrupt;
use crate::store::{DbTime, IdSpan, Result, Store};

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    approval_id: String,
    kind: String,
    jurisdiction_code: String,
    institution_id: Option<String>,
    subject: String,
    payload: String,
    summary: String,
    requested_by: String,
    requested_token: String,
    requested_name: String,
    requested_at: DbTime,
    claimed: Option<String>,
    claimed_by: Option<String>,
    claimed_token: Option<String>,
    claimed_at: Option<DbTime>,
    decision: Option<String>,
    decided_by: Option<String>,
    decided_token: Option<String>,
    reason: Option<String>,
    decided_at: Option<DbTime>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = crate::store::StoreError;

    fn try_from(r: ApprovalRow) -> Result<Approval> {
        let approved = |d: &str| match d {
            "approved" => Ok(true),
            "rejected" => Ok(false),
            other => Err(corrupt("approval decision", other)),
        };
        let claim = match (r.claimed, r.claimed_by, r.claimed_token, r.claimed_at) {
            (Some(d), Some(by), Some(token), Some(at)) => Some(Claim {
                approved: approved(&d)?,
                by,
                token,
                at: at.utc(),
            }),
            (None, None, None, None) => None,
            _ => return Err(corrupt("approval claim", &r.approval_id)),
        };
        let decision = match (r.decision, r.decided_by, r.decided_token, r.decided_at) {
            (Some(d), Some(by), Some(token), Some(at)) => Some(Decision {
                approved: approved(&d)?,
                by,
                token,
                reason: r.reason,
                at: at.utc(),
            }),
            (None, None, None, None) => None,
            _ => return Err(corrupt("approval decision", &r.approval_id)),
        };
        Ok(Approval {
            kind: ApprovalKind::parse(&r.kind).ok_or_else(|| corrupt("approval kind", &r.kind))?,
            jurisdiction: JurisdictionCode::parse(r.jurisdiction_code)
                .map_err(|e| corrupt("approval jurisdiction", e))?,
            institution: r
                .institution_id
                .map(InstitutionId::parse)
                .transpose()
                .map_err(|e| corrupt("approval institution", e))?,
            id: r.approval_id,
            subject: r.subject,
            payload: r.payload,
            summary: r.summary,
            requested_by: r.requested_by,
            requested_token: r.requested_token,
            requested_name: r.requested_name,
            requested_at: r.requested_at.utc(),
            claim,
            decision,
        })
    }
}

const SELECT: &str = "select a.approval_id, a.kind, a.jurisdiction_code, a.institution_id, \
       a.subject, a.payload, a.summary, a.requested_by, a.requested_token, a.requested_name, \
       a.requested_at, c.decision as claimed, c.claimed_by, c.claimed_token, c.claimed_at, \
       d.decision, d.decided_by, d.decided_token, d.reason, d.decided_at \
     from approvals a left join approval_claims c on c.approval_id = a.approval_id \
       left join approval_decisions d on d.approval_id = a.approval_id";

/// A claim of a request not yet decided; the first one stands. Binds: the
/// request, the decision, who, their token, when (also the run's lease).
const CLAIM: &str = "insert into approval_claims \
       (approval_id, decision, claimed_by, claimed_token, claimed_at, lease_at) \
     select $1, $2, $3, $4, $5, $5 where not exists \
       (select 1 from approval_decisions where approval_id = $1) \
     on conflict do nothing";

fn decision_code(approved: bool) -> &'static str {
    if approved {
        "approved"
    } else {
        "rejected"
    }
}

impl Store {
    /// Records a request for a second officer (idempotent: the same request
    /// again returns the one recorded; different terms under its id are
    /// `exists_with_different_fields`).
    pub async fn create_approval(&self, a: &Approval) -> Result<Approval> {
        let at = DbTime::from(a.requested_at);
        in_tx!(self, |tx, _now| {
            let inserted = sqlx::query(
                "insert into approvals (approval_id, kind, jurisdiction_code, institution_id, subject, \
                   payload, summary, requested_by, requested_token, requested_name, requested_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict do nothing",
            )
            .bind(&a.id)
            .bind(a.kind.code())
            .bind(a.jurisdiction.as_str())
            .bind(a.institution.as_ref().map(|i| i.as_str()))
            .bind(&a.subject)
            .bind(&a.payload)
            .bind(&a.summary)
            .bind(&a.requested_by)
            .bind(&a.requested_token)
            .bind(&a.requested_name)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            // A rule pack's request names no institution: it is a
            // jurisdiction's, and no institution's chain holds it.
            if let (true, Some(institution)) = (inserted, a.institution.as_ref()) {
                let digest = approval_digest(institution.as_str(), a);
                seal_record!(tx, institution.as_str(), "approval", a.id.clone(), digest);
            }
        });
        let kept = self
            .approval(&a.id)
            .await?
            .ok_or_else(|| corrupt("approval", "written, then not found"))?;
        let same = (
            kept.kind,
            &kept.jurisdiction,
            &kept.subject,
            &kept.payload,
            &kept.requested_token,
        ) == (
            a.kind,
            &a.jurisdiction,
            &a.subject,
            &a.payload,
            &a.requested_token,
        );
        if !same {
            return Err(LedgerError::ExistsWithDifferentFields {
                what: "approval",
                id: a.id.clone(),
            }
            .into());
        }
        Ok(kept)
    }

    pub async fn approval(&self, id: &str) -> Result<Option<Approval>> {
        let sql = format!("{SELECT} where a.approval_id = $1");
        let row: Option<ApprovalRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(Approval::try_from).transpose()
    }

    /// Every request, oldest first, after the one `after` names (paging).
    pub async fn approvals(
        &self,
        after: Option<&str>,
        pending_only: bool,
    ) -> Result<Vec<Approval>> {
        let sql = format!(
            "{SELECT} where ($1 is null or a.approval_id > $1) \
               and ($2 = 0 or d.approval_id is null) order by a.approval_id"
        );
        let rows: Vec<ApprovalRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(after)
            .bind(i32::from(pending_only))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// Every request naming an institution (of a span, or any), oldest
    /// first.
    pub async fn approvals_in(&self, span: Option<IdSpan<'_>>) -> Result<Vec<Approval>> {
        let sql = format!(
            "{SELECT} where a.institution_id is not null{} order by a.approval_id",
            within(span, "and", "a.institution_id", 1)
        );
        let rows: Vec<ApprovalRow> =
            on_reader!(self, |pool| bind_span!(sqlx::query_as(&sql), span)
                .fetch_all(pool)
                .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// Takes the decision `c` for a request before its effect runs: the
    /// first claim wins (its primary key is the compare-and-set), so of
    /// concurrent deciders exactly one goes on. Returns the request as it
    /// stands (the caller's claim, or the one that won) and, when the run
    /// of its effect is the caller's, the lease that names that run: a new
    /// claim's, or one taken over from a run begun before `stale_before`
    /// (see [`Store::take_over_approval_claim`]).
    pub async fn claim_approval(
        &self,
        id: &str,
        c: &Claim,
        stale_before: DateTime<Utc>,
    ) -> Result<(Approval, Option<DateTime<Utc>>)> {
        let at = DbTime::from(c.at);
        let inserted = on_pool!(self, |pool| sqlx::query(CLAIM,)
            .bind(id)
            .bind(decision_code(c.approved))
            .bind(&c.by)
            .bind(&c.token)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected())
            == 1;
        let lease = if inserted {
            Some(at.utc())
        } else {
            self.take_over_approval_claim(id, &c.token, stale_before)
                .await?
        };
        let approval = self
            .approval(id)
            .await?
            .ok_or_else(|| corrupt("approval", "claimed, then not found"))?;
        Ok((approval, lease))
    }

    /// Takes over the run of a claimed approval's effect from `token`'s
    /// run begun before `stale_before` (cut short, or far too slow): a
    /// compare-and-set on the claim's lease, so one run at a time. The new
    /// lease, when taken.
    pub async fn take_over_approval_claim(
        &self,
        id: &str,
        token: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let now = DbTime::from(self.now());
        let taken = on_pool!(self, |pool| sqlx::query(
            "update approval_claims set lease_at = $3 \
             where approval_id = $1 and claimed_token = $2 and decision = 'approved' \
               and lease_at < $4 \
               and not exists (select 1 from approval_decisions where approval_id = $1)",
        )
        .bind(id)
        .bind(token)
        .bind(now)
        .bind(DbTime::from(stale_before))
        .execute(pool)
        .await?
        .rows_affected())
            == 1;
        Ok(taken.then(|| now.utc()))
    }

    /// Withdraws an approval's claim whose effect the books refused, by the
    /// run that holds `lease`: the request is pending again. Never a
    /// decided one's. Whether it was.
    pub async fn withdraw_approval_claim(
        &self,
        id: &str,
        token: &str,
        lease: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(on_pool!(self, |pool| sqlx::query(
            "delete from approval_claims where approval_id = $1 and claimed_token = $2 \
               and decision = 'approved' and lease_at = $3 \
               and not exists (select 1 from approval_decisions where approval_id = $1)",
        )
        .bind(id)
        .bind(token)
        .bind(DbTime::from(lease))
        .execute(pool)
        .await?
        .rows_affected())
            == 1)
    }

    /// Records the one decision of a request, in one transaction with its
    /// claim (a rejection's is taken here; an approval's was taken before
    /// its effect ran) and its record link. Only the claim's holder, for
    /// the claimed decision, records it; the request as it stands is
    /// returned whoever asked.
    pub async fn decide_approval(&self, id: &str, d: &Decision) -> Result<Approval> {
        let at = DbTime::from(d.at);
        let code = decision_code(d.approved);
        in_tx!(self, |tx, _now| {
            // An approval was claimed before its effect ran; a rejection,
            // which has none, is claimed here.
            if !d.approved {
                sqlx::query(CLAIM)
                    .bind(id)
                    .bind(code)
                    .bind(&d.by)
                    .bind(&d.token)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            let inserted = sqlx::query(
                "insert into approval_decisions (approval_id, decision, decided_by, decided_token, \
                   reason, decided_at) \
                 select $1, $2, $3, $4, $5, $6 where exists (select 1 from approval_claims \
                   where approval_id = $1 and decision = $2 and claimed_token = $4) \
                 on conflict do nothing",
            )
            .bind(id)
            .bind(code)
            .bind(&d.by)
            .bind(&d.token)
            .bind(&d.reason)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                let institution: Option<String> = sqlx::query_scalar(
                    "select institution_id from approvals where approval_id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if let Some(institution) = institution {
                    let digest = approval_decision_digest(
                        &institution,
                        id,
                        &Decision {
                            at: at.utc(),
                            ..d.clone()
                        },
                    );
                    seal_record!(tx, &institution, "approval_decision", id, digest);
                }
            }
        });
        self.approval(id)
            .await?
            .ok_or_else(|| corrupt("approval", "decided, then not found"))
    }

    /// Approvals claimed and not yet recorded whose effect's run began
    /// before `before`: cut short (a crash, a lost connection), or still
    /// running far too long.
    pub async fn approvals_claimed_before(&self, before: DateTime<Utc>) -> Result<Vec<Approval>> {
        let sql = format!(
            "{SELECT} where d.approval_id is null and c.approval_id is not null \
               and c.decision = 'approved' and c.lease_at < $1 order by a.approval_id"
        );
        let rows: Vec<ApprovalRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(DbTime::from(before))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// A jurisdiction's ancestry (root first, itself last) and every rule
    /// pack of those jurisdictions: what the floor rules compare a new
    /// pack with.
    pub async fn rule_context(
        &self,
        code: &JurisdictionCode,
    ) -> Result<(Vec<JurisdictionCode>, Vec<RulePack>)> {
        let jurisdictions = vec![code.clone()];
        let (chains, packs) = self.rule_context_of(&jurisdictions).await?;
        let chain = chains.get(code).cloned().unwrap_or_default();
        Ok((chain, packs))
    }
}
