//! What the release job reads to say what may be released, from the
//! institution's unreleased earnings only. Earnings are released oldest
//! first (`domain::lessons::releasable`), so everything released so far
//! paid for the oldest ones and what the `releasable` account still holds
//! is the newest: the job reads earnings newest first until they cover it
//! ([`Store::earnings_newest_first`]), then what it needs of just those
//! (the days their records were earned, whether a dispute holds their
//! enrollment). Before, each pass of a release day read every lesson
//! record and every entry of the institution.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use crate::domain::entry::EntryKind;
use crate::domain::ids::{EnrollmentId, InstitutionId};
use crate::domain::lessons::LessonState;
use crate::store::rows::corrupt_as;
use crate::store::{DbTime, Result, Store};

/// One lessons-consumed entry that earned money: its seq, enrollment,
/// client id, day and the amount it made releasable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarningRow {
    pub seq: i64,
    pub enrollment: EnrollmentId,
    pub client_id: String,
    pub occurred_on: NaiveDate,
    pub amount_minor: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    enrollment_id: String,
    client_id: String,
    occurred_at: DbTime,
    amount_minor: i64,
}

impl Store {
    /// Up to `limit` of the institution's lessons-consumed entries that
    /// moved money (bonus hours earn nothing and post nothing), newest
    /// first, before `before_seq` when given: one backward range of the
    /// entries' key.
    pub async fn earnings_newest_first(
        &self,
        institution: &InstitutionId,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<EarningRow>> {
        let sql = format!(
            "select cast(e.seq as bigint) as seq, e.enrollment_id, e.client_id, e.occurred_at, \
               cast(p.amount_minor as bigint) as amount_minor \
             from entries e join postings p \
               on p.institution_id = e.institution_id and p.seq = e.seq and p.leg = 0 \
             where e.institution_id = $1 and e.seq < $2 and e.kind = '{}' \
               and e.enrollment_id is not null \
             order by e.seq desc limit $3",
            EntryKind::LessonsConsumed.code()
        );
        let rows: Vec<Row> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(institution.as_str())
            .bind(before_seq.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|r| {
                Ok(EarningRow {
                    seq: r.seq,
                    enrollment: EnrollmentId::parse(r.enrollment_id)
                        .map_err(corrupt_as("entry enrollment"))?,
                    client_id: r.client_id,
                    occurred_on: r.occurred_at.utc().date_naive(),
                    amount_minor: r.amount_minor,
                })
            })
            .collect()
    }

    /// The day each of the given lesson records was earned (its first
    /// earning step), for those that were.
    pub async fn lessons_earned_on(
        &self,
        institution: &InstitutionId,
        lessons: &[&str],
    ) -> Result<BTreeMap<String, NaiveDate>> {
        if lessons.is_empty() {
            return Ok(BTreeMap::new());
        }
        let earned: Vec<String> = LessonState::ALL
            .into_iter()
            .filter(|s| s.is_earned())
            .map(|s| format!("'{}'", s.code()))
            .collect();
        let rows: Vec<(String, NaiveDate)> = on_reader!(self, |pool, dialect| {
            sqlx::query_as(&format!(
                "select e.lesson_id, e.on_day from lesson_events e \
                 where e.institution_id = $1 and e.lesson_id {} and e.state in ({}) \
                 order by e.lesson_id, e.seq",
                dialect.in_list(2),
                earned.join(", ")
            ))
            .bind(institution.as_str())
            .bind(dialect.list(lessons.iter().copied()))
            .fetch_all(pool)
            .await?
        });
        let mut first = BTreeMap::new();
        for (lesson, day) in rows {
            first.entry(lesson).or_insert(day);
        }
        Ok(first)
    }

    /// Of the given enrollments, those with a lesson record whose last step
    /// is a dispute not yet decided (which holds the enrollment's release).
    pub async fn enrollments_held_by_disputes(
        &self,
        institution: &InstitutionId,
        enrollments: &[&str],
    ) -> Result<BTreeSet<EnrollmentId>> {
        if enrollments.is_empty() {
            return Ok(BTreeSet::new());
        }
        let ids: Vec<String> = on_reader!(self, |pool, dialect| {
            sqlx::query_scalar(&format!(
                "select distinct l.enrollment_id from lessons l \
                 where l.institution_id = $1 and l.enrollment_id {} \
                   and (select e.state from lesson_events e \
                        where e.institution_id = l.institution_id and e.lesson_id = l.lesson_id \
                        order by e.seq desc limit 1) = '{}'",
                dialect.in_list(2),
                LessonState::Disputed.code()
            ))
            .bind(institution.as_str())
            .bind(dialect.list(enrollments.iter().copied()))
            .fetch_all(pool)
            .await?
        });
        ids.into_iter()
            .map(|id| EnrollmentId::parse(id).map_err(corrupt_as("lesson enrollment")))
            .collect()
    }

    /// Unearned tuition of one institution: the sum of its `prepaid/`
    /// accounts' posted balances, summed by the database.
    pub async fn prepaid_total(&self, institution: &InstitutionId) -> Result<i64> {
        let total: i64 = on_reader!(self, |pool| {
            sqlx::query_scalar(
            "select cast(coalesce(sum(posted_credits_minor - posted_debits_minor), 0) as bigint) \
             from accounts where institution_id = $1 and account_code like 'prepaid/%'"
        )
        .bind(institution.as_str())
        .fetch_one(pool)
        .await?
        });
        Ok(total)
    }
}
