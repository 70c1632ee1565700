//! Rectification notices (整改通知书) in the store, both dialects: each
//! numbered per jurisdiction and year in the transaction that writes it,
//! and the institution's answers. Append-only.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::alerts::{transition, AlertAction, AlertStatus};
use crate::domain::error::LedgerError;
use crate::store::rows::corrupt_as;
use crate::store::{DbTime, Result, Store};

/// A notice to write: the store gives it its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    pub jurisdiction: String,
    pub year: i32,
    pub institution_id: String,
    pub alert_key: Option<String>,
    pub finding: String,
    pub required_action: String,
    pub due_on: NaiveDate,
    pub issued_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    pub notice_no: String,
    pub jurisdiction: String,
    pub year: i32,
    pub seq: i32,
    pub institution_id: String,
    pub alert_key: Option<String>,
    pub finding: String,
    pub required_action: String,
    pub due_on: NaiveDate,
    pub issued_by: String,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeAnswer {
    pub notice_no: String,
    pub answer: String,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct NoticeRow {
    notice_no: String,
    jurisdiction: String,
    year: i32,
    seq: i32,
    institution_id: String,
    alert_key: Option<String>,
    finding: String,
    required_action: String,
    due_on: NaiveDate,
    issued_by: String,
    issued_at: DbTime,
}

impl From<NoticeRow> for NoticeRecord {
    fn from(r: NoticeRow) -> Self {
        NoticeRecord {
            notice_no: r.notice_no,
            jurisdiction: r.jurisdiction,
            year: r.year,
            seq: r.seq,
            institution_id: r.institution_id,
            alert_key: r.alert_key,
            finding: r.finding,
            required_action: r.required_action,
            due_on: r.due_on,
            issued_by: r.issued_by,
            issued_at: r.issued_at.utc(),
        }
    }
}

const NOTICE_COLUMNS: &str =
    "select notice_no, jurisdiction, year, seq, institution_id, alert_key, \
     finding, required_action, due_on, issued_by, issued_at from rectification_notices";

impl Store {
    /// Writes a notice with the next number of its jurisdiction and year
    /// (`{jurisdiction}-{year}-{seq:03}`): numbers are taken under a lock
    /// per jurisdiction and year, so concurrent issues neither collide nor
    /// skip.
    pub async fn issue_notice(&self, new: &NewNotice) -> Result<NoticeRecord> {
        let next = "select cast(coalesce(max(seq), 0) + 1 as integer) from rectification_notices \
                    where jurisdiction = $1 and year = $2";
        let insert = "insert into rectification_notices \
             (notice_no, jurisdiction, year, seq, institution_id, alert_key, finding, \
              required_action, due_on, issued_by, issued_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        let year = new.year.to_string();
        let (notice_no, seq, issued_at) = in_tx!(self, |tx, now, dialect| {
            // One issuer at a time per jurisdiction and year (PostgreSQL's
            // advisory lock; SQLite's one writer): two officers issuing at
            // once would otherwise read the same max and collide.
            dialect
                .lock_key(&mut tx, &format!("notices:{}", new.jurisdiction), &year)
                .await?;
            // The alert it answers moves to "rectification requested" in
            // the same transaction: both happen, or neither.
            if let Some(key) = &new.alert_key {
                act_on_alert_in!(
                    tx,
                    now,
                    new.institution_id.as_str(),
                    key.as_str(),
                    &AlertAction::RequestRectification { due: new.due_on },
                    new.issued_by.as_str(),
                    Some(new.required_action.as_str())
                );
            }
            let seq: i32 = sqlx::query_scalar(next)
                .bind(&new.jurisdiction)
                .bind(new.year)
                .fetch_one(&mut *tx)
                .await?;
            let notice_no = format!("{}-{}-{seq:03}", new.jurisdiction, new.year);
            sqlx::query(insert)
                .bind(&notice_no)
                .bind(&new.jurisdiction)
                .bind(new.year)
                .bind(seq)
                .bind(&new.institution_id)
                .bind(&new.alert_key)
                .bind(&new.finding)
                .bind(&new.required_action)
                .bind(new.due_on)
                .bind(&new.issued_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            (notice_no, seq, now.utc())
        });
        Ok(NoticeRecord {
            notice_no,
            jurisdiction: new.jurisdiction.clone(),
            year: new.year,
            seq,
            institution_id: new.institution_id.clone(),
            alert_key: new.alert_key.clone(),
            finding: new.finding.clone(),
            required_action: new.required_action.clone(),
            due_on: new.due_on,
            issued_by: new.issued_by.clone(),
            issued_at,
        })
    }

    /// Every notice, oldest first.
    pub async fn notices(&self) -> Result<Vec<NoticeRecord>> {
        let sql = format!("{NOTICE_COLUMNS} order by issued_at, notice_no");
        let rows: Vec<NoticeRow> =
            on_reader!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(rows.into_iter().map(NoticeRecord::from).collect())
    }

    pub async fn notice(&self, notice_no: &str) -> Result<Option<NoticeRecord>> {
        let sql = format!("{NOTICE_COLUMNS} where notice_no = $1");
        let row: Option<NoticeRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(notice_no)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(NoticeRecord::from))
    }

    /// Records an answer to a notice that exists.
    pub async fn answer_notice(
        &self,
        notice_no: &str,
        answer: &str,
        recorded_by: &str,
    ) -> Result<()> {
        let sql =
            "insert into rectification_answers (notice_no, answer, recorded_by, recorded_at) \
                   values ($1, $2, $3, $4)";
        let now = DbTime::from(self.now());
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(notice_no)
            .bind(answer)
            .bind(recorded_by)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Every answer, oldest first.
    pub async fn notice_answers(&self) -> Result<Vec<NoticeAnswer>> {
        let sql = "select notice_no, answer, recorded_by, recorded_at from rectification_answers \
                   order by seq";
        let rows: Vec<(String, String, String, DbTime)> =
            on_reader!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(notice_no, answer, recorded_by, at)| NoticeAnswer {
                notice_no,
                answer,
                recorded_by,
                recorded_at: at.utc(),
            })
            .collect())
    }
}

/// One published change of the white and black lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListChange {
    pub jurisdiction: String,
    pub version: i32,
    pub institution_id: String,
    /// `white`, `black` or `none`.
    pub list: String,
    pub reason: String,
    pub published_by: String,
    pub published_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ListChangeRow {
    jurisdiction: String,
    version: i32,
    institution_id: String,
    list: String,
    reason: String,
    published_by: String,
    published_at: DbTime,
}

impl Store {
    /// Publishes a change with the jurisdiction's next version number.
    pub async fn publish_list_change(
        &self,
        jurisdiction: &str,
        institution_id: &str,
        list: &str,
        reason: &str,
        published_by: &str,
    ) -> Result<ListChange> {
        let next = "select cast(coalesce(max(version), 0) + 1 as integer) from list_changes \
                    where jurisdiction = $1";
        let insert = "insert into list_changes \
             (jurisdiction, version, institution_id, list, reason, published_by, published_at) \
             values ($1, $2, $3, $4, $5, $6, $7)";
        let (version, at) = in_tx!(self, |tx, now| {
            let version: i32 = sqlx::query_scalar(next)
                .bind(jurisdiction)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(insert)
                .bind(jurisdiction)
                .bind(version)
                .bind(institution_id)
                .bind(list)
                .bind(reason)
                .bind(published_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            (version, now.utc())
        });
        Ok(ListChange {
            jurisdiction: jurisdiction.to_string(),
            version,
            institution_id: institution_id.to_string(),
            list: list.to_string(),
            reason: reason.to_string(),
            published_by: published_by.to_string(),
            published_at: at,
        })
    }

    /// Every published change, by jurisdiction then version.
    pub async fn list_changes(&self) -> Result<Vec<ListChange>> {
        let sql = "select jurisdiction, version, institution_id, list, reason, published_by, \
                   published_at from list_changes order by jurisdiction, version";
        let rows: Vec<ListChangeRow> =
            on_reader!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|r| ListChange {
                jurisdiction: r.jurisdiction,
                version: r.version,
                institution_id: r.institution_id,
                list: r.list,
                reason: r.reason,
                published_by: r.published_by,
                published_at: r.published_at.utc(),
            })
            .collect())
    }
}
