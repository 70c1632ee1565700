//! Maker–checker requests and their one decision, both dialects; and the
//! rule context (a jurisdiction's ancestry and their rule packs) the floor
//! rules read. Both tables are append-only: a request is written once (the
//! same request again changes nothing, another under its id is
//! `exists_with_different_fields`), a decision once (the first wins).

use crate::domain::approvals::{Approval, ApprovalKind, Decision};
use crate::domain::error::LedgerError;
use crate::domain::ids::{InstitutionId, JurisdictionCode};
use crate::domain::policy::RulePack;
use crate::store::rows::corrupt;
use crate::store::{BatchOn, BatchTx};
use crate::store::{DbTime, Result, Store};

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
    decision: Option<String>,
    decided_by: Option<String>,
    decided_token: Option<String>,
    reason: Option<String>,
    decided_at: Option<DbTime>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = crate::store::StoreError;

    fn try_from(r: ApprovalRow) -> Result<Approval> {
        let decision = match (r.decision, r.decided_by, r.decided_token, r.decided_at) {
            (Some(d), Some(by), Some(token), Some(at)) => Some(Decision {
                approved: match d.as_str() {
                    "approved" => true,
                    "rejected" => false,
                    other => return Err(corrupt("approval decision", other)),
                },
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
            decision,
        })
    }
}

const SELECT: &str = "select a.approval_id, a.kind, a.jurisdiction_code, a.institution_id, \
       a.subject, a.payload, a.summary, a.requested_by, a.requested_token, a.requested_name, \
       a.requested_at, d.decision, d.decided_by, d.decided_token, d.reason, d.decided_at \
     from approvals a left join approval_decisions d on d.approval_id = a.approval_id";

impl Store {
    /// Records a request for a second officer (idempotent: the same request
    /// again returns the one recorded; different terms under its id are
    /// `exists_with_different_fields`).
    pub async fn create_approval(&self, a: &Approval) -> Result<Approval> {
        let at = DbTime::from(a.requested_at);
        on_pool!(self, |pool| {
            sqlx::query(
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
        .execute(pool)
        .await
        .map(|_| ())?
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
        let row: Option<ApprovalRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
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
        let rows: Vec<ApprovalRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(after)
            .bind(i32::from(pending_only))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// Records the one decision of a request; the first decision wins and
    /// is returned whoever asked second.
    pub async fn decide_approval(&self, id: &str, d: &Decision) -> Result<Approval> {
        let at = DbTime::from(d.at);
        on_pool!(self, |pool| sqlx::query(
            "insert into approval_decisions (approval_id, decision, decided_by, decided_token, \
               reason, decided_at) values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
        )
        .bind(id)
        .bind(if d.approved { "approved" } else { "rejected" })
        .bind(&d.by)
        .bind(&d.token)
        .bind(&d.reason)
        .bind(at)
        .execute(pool)
        .await
        .map(|_| ())?);
        self.approval(id)
            .await?
            .ok_or_else(|| corrupt("approval", "decided, then not found"))
    }

    /// A jurisdiction's ancestry (root first, itself last) and every rule
    /// pack of those jurisdictions: what the floor rules compare a new
    /// pack with.
    pub async fn rule_context(
        &self,
        code: &JurisdictionCode,
    ) -> Result<(Vec<JurisdictionCode>, Vec<RulePack>)> {
        let jurisdictions = vec![code.clone()];
        let (chains, packs) = on_pool!(self, |pool| {
            let mut read = BatchOn {
                tx: pool.begin().await?,
            };
            read.load_rules(&jurisdictions).await?
        });
        let chain = chains.get(code).cloned().unwrap_or_default();
        Ok((chain, packs))
    }
}
