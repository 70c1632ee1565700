//! Alerts in the store, both dialects: a risk run's findings become alerts
//! (raised, updated in place, or reopened), officers act on them, and every
//! change leaves an event in the append-only trail.

use chrono::NaiveDate;

use crate::domain::alerts::{
    transition, Alert, AlertAction, AlertKind, AlertStatus, Finding, RecordReport, Severity,
};
use crate::domain::error::LedgerError;
use crate::domain::ids::InstitutionId;
use crate::store::rows::{corrupt, corrupt_as};
use crate::store::{Result, Store};

const SELECT: &str =
    "select institution_id, alert_key, kind, severity, summary, evidence, rule_pack, status, \
     rectification_due, first_seen_on, last_seen_on from alerts";

type AlertRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<NaiveDate>,
    NaiveDate,
    NaiveDate,
);

fn alert(r: AlertRow) -> Result<Alert> {
    Ok(Alert {
        institution: InstitutionId::parse(r.0).map_err(corrupt_as("alert"))?,
        key: r.1,
        kind: AlertKind::parse(&r.2).map_err(corrupt_as("alert kind"))?,
        severity: Severity::parse(&r.3).map_err(corrupt_as("alert severity"))?,
        summary: r.4,
        evidence: r.5,
        rule_pack: r.6,
        status: AlertStatus::parse(&r.7).map_err(corrupt_as("alert status"))?,
        rectification_due: r.8,
        first_seen_on: r.9,
        last_seen_on: r.10,
    })
}

macro_rules! event {
    ($tx:ident, $now:ident, $institution:expr, $key:expr, $actor:expr, $action:expr, $comment:expr) => {{
        let seq: i64 = sqlx::query_scalar(
            "select cast(coalesce(max(seq), 0) + 1 as bigint) from alert_events where institution_id = $1 and alert_key = $2",
        )
        .bind($institution)
        .bind($key)
        .fetch_one(&mut *$tx)
        .await?;
        sqlx::query(
            "insert into alert_events (institution_id, alert_key, seq, at, actor, action, comment) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($institution)
        .bind($key)
        .bind(seq as i32)
        .bind($now)
        .bind($actor)
        .bind($action)
        .bind($comment)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// An officer's action on one alert inside the caller's transaction: the
/// transition its lifecycle allows, and the event. Written once for
/// `act_on_alert` and for a rectification notice, which moves the alert it
/// answers in the same transaction as it is issued.
macro_rules! act_on_alert_in {
    ($tx:ident, $now:ident, $id:expr, $key:expr, $action:expr, $actor:expr, $comment:expr) => {{
        let (id, key, action, actor, comment): (&str, &str, &AlertAction, &str, Option<&str>) =
            ($id, $key, $action, $actor, $comment);
        let status: Option<String> = sqlx::query_scalar(
            "select status from alerts where institution_id = $1 and alert_key = $2",
        )
        .bind(id)
        .bind(key)
        .fetch_optional(&mut *$tx)
        .await?;
        let Some(status) = status else {
            return Err(LedgerError::UnknownAlert {
                institution: id.to_string(),
                key: key.to_string(),
            }
            .into());
        };
        let to = transition(
            AlertStatus::parse(&status).map_err(corrupt_as("alert status"))?,
            action,
        )?;
        let due = match action {
            AlertAction::RequestRectification { due } => Some(*due),
            _ => None,
        };
        sqlx::query(
            "update alerts set status = $3, rectification_due = coalesce($4, rectification_due), updated_at = $5 \
             where institution_id = $1 and alert_key = $2",
        )
        .bind(id).bind(key).bind(to.code()).bind(due).bind($now)
        .execute(&mut *$tx)
        .await?;
        event!($tx, $now, id, key, actor, action.code(), comment);
        recount_alerts!($tx, $now, id);
    }};
}

/// Recounts the open alerts of institution `$id` on its overview row, in
/// the alerts' transaction `$tx` (either dialect).
macro_rules! recount_alerts {
    ($tx:ident, $now:expr, $id:expr) => {{
        sqlx::query(
            "update institution_figures set \
               red_alerts = (select count(*) from alerts a where a.institution_id = $1 \
                 and a.status <> 'resolved' and a.severity = 'red'), \
               yellow_alerts = (select count(*) from alerts a where a.institution_id = $1 \
                 and a.status <> 'resolved' and a.severity = 'yellow'), \
               updated_at = $2, revision = revision + 1 \
             where institution_id = $1",
        )
        .bind($id)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Store {
    /// Records a risk run's findings for one institution on `as_of`.
    pub async fn record_findings(
        &self,
        institution: &InstitutionId,
        as_of: NaiveDate,
        findings: &[Finding],
    ) -> Result<RecordReport> {
        self.institution(institution).await?;
        let id = institution.as_str();
        let mut report = RecordReport::default();
        in_tx!(self, |tx, now| {
            for f in findings {
                let held: Option<(String, String, String)> = sqlx::query_as(
                    "select status, severity, summary from alerts where institution_id = $1 and alert_key = $2",
                )
                .bind(id)
                .bind(&f.key)
                .fetch_optional(&mut *tx)
                .await?;
                let action = match &held {
                    None => {
                        sqlx::query(
                            "insert into alerts (institution_id, alert_key, kind, severity, summary, evidence, \
                               rule_pack, status, rectification_due, first_seen_on, last_seen_on, updated_at) \
                             values ($1, $2, $3, $4, $5, $6, $7, 'open', null, $8, $8, $9)",
                        )
                        .bind(id).bind(&f.key).bind(f.kind.code()).bind(f.severity.code()).bind(&f.summary)
                        .bind(&f.evidence).bind(&f.rule_pack).bind(as_of).bind(now)
                        .execute(&mut *tx)
                        .await?;
                        report.raised += 1;
                        Some("raised")
                    }
                    Some((status, severity, summary)) => {
                        let reopen = status == "resolved";
                        let changed = severity != f.severity.code() || summary != &f.summary;
                        sqlx::query(
                            "update alerts set severity = $3, summary = $4, evidence = $5, rule_pack = $6, \
                               status = case when status = 'resolved' then 'open' else status end, \
                               last_seen_on = $7, updated_at = $8 \
                             where institution_id = $1 and alert_key = $2",
                        )
                        .bind(id).bind(&f.key).bind(f.severity.code()).bind(&f.summary).bind(&f.evidence)
                        .bind(&f.rule_pack).bind(as_of).bind(now)
                        .execute(&mut *tx)
                        .await?;
                        if reopen {
                            report.reopened += 1;
                            Some("reopened")
                        } else if changed {
                            report.updated += 1;
                            Some("updated")
                        } else {
                            report.unchanged += 1;
                            None
                        }
                    }
                };
                if let Some(action) = action {
                    event!(
                        tx,
                        now,
                        id,
                        &f.key,
                        "risk-engine",
                        action,
                        Some(f.summary.as_str())
                    );
                }
            }
            recount_alerts!(tx, now, id);
        });
        Ok(report)
    }

    /// Resolves every unresolved alert of one of `kinds` whose condition no
    /// longer holds (`holds(institution, key)` is false), each with a trail
    /// entry by `actor` saying when and why. A condition that returns later
    /// reopens its alert, as ever. Returns how many were resolved.
    pub async fn resolve_cleared(
        &self,
        kinds: &[AlertKind],
        as_of: NaiveDate,
        actor: &str,
        why: &str,
        holds: impl Fn(&InstitutionId, &str) -> bool,
    ) -> Result<u32> {
        // Only the unresolved alerts of these kinds: the jobs call this on
        // every pass, and resolved alerts pile up over the years.
        let placeholders: Vec<String> = (1..=kinds.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "{SELECT} where status <> 'resolved' and kind in ({}) order by institution_id, alert_key",
            placeholders.join(", ")
        );
        macro_rules! unresolved {
            ($pool:expr) => {{
                let mut q = sqlx::query_as::<_, AlertRow>(&sql);
                for k in kinds {
                    q = q.bind(k.code());
                }
                q.fetch_all($pool).await?
            }};
        }
        let rows: Vec<AlertRow> = if kinds.is_empty() {
            Vec::new()
        } else {
            on_pool!(self, |pool| unresolved!(pool))
        };
        let open: Vec<Alert> = rows
            .into_iter()
            .map(alert)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|a| !holds(&a.institution, &a.key))
            .collect();
        if open.is_empty() {
            return Ok(0);
        }
        let comment = format!("{why} (as of {as_of})");
        let mut resolved = 0;
        in_tx!(self, |tx, now| {
            for a in &open {
                let id = a.institution.as_str();
                // Only if nobody changed it meanwhile (an officer resolving
                // it, a run reopening it): compare and set.
                let changed = sqlx::query(
                    "update alerts set status = 'resolved', updated_at = $4 \
                     where institution_id = $1 and alert_key = $2 and status = $3",
                )
                .bind(id)
                .bind(&a.key)
                .bind(a.status.code())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 1 {
                    event!(
                        tx,
                        now,
                        id,
                        &a.key,
                        actor,
                        "resolved",
                        Some(comment.as_str())
                    );
                    resolved += 1;
                }
            }
            let mut touched: Vec<&str> = open.iter().map(|a| a.institution.as_str()).collect();
            touched.sort_unstable();
            touched.dedup();
            for id in touched {
                recount_alerts!(tx, now, id);
            }
        });
        Ok(resolved)
    }

    /// An officer acts on an alert; the transition is checked and recorded.
    pub async fn act_on_alert(
        &self,
        institution: &InstitutionId,
        key: &str,
        action: &AlertAction,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<Alert> {
        if actor.trim().is_empty() {
            return Err(LedgerError::InvalidField {
                field: "actor",
                reason: "who acts must be named".into(),
            }
            .into());
        }
        let id = institution.as_str();
        in_tx!(self, |tx, now| {
            act_on_alert_in!(tx, now, id, key, action, actor, comment);
        });
        self.alerts(Some(institution), None)
            .await?
            .into_iter()
            .find(|a| a.key == key)
            .ok_or_else(|| corrupt("alert", format!("{key} vanished")))
    }

    /// Alerts, of one institution or all, optionally of one status.
    pub async fn alerts(
        &self,
        institution: Option<&InstitutionId>,
        status: Option<AlertStatus>,
    ) -> Result<Vec<Alert>> {
        let sql = format!(
            "{SELECT} where (cast($1 as text) is null or institution_id = $1) \
               and (cast($2 as text) is null or status = $2) order by institution_id, alert_key"
        );
        let i = institution.map(|i| i.as_str().to_string());
        let st = status.map(|s| s.code().to_string());
        let rows: Vec<AlertRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(i)
            .bind(st)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(alert).collect()
    }

    /// An alert's trail: (seq, actor, action, comment), oldest first.
    pub async fn alert_trail(
        &self,
        institution: &InstitutionId,
        key: &str,
    ) -> Result<Vec<(i64, String, String, Option<String>)>> {
        let sql = "select seq, actor, action, comment from alert_events \
                   where institution_id = $1 and alert_key = $2 order by seq";
        let rows: Vec<(i32, String, String, Option<String>)> =
            on_reader!(self, |pool| sqlx::query_as(sql)
                .bind(institution.as_str())
                .bind(key)
                .fetch_all(pool)
                .await?);
        let rows = rows
            .into_iter()
            .map(|(seq, actor, action, comment)| (i64::from(seq), actor, action, comment))
            .collect();
        Ok(rows)
    }
}
