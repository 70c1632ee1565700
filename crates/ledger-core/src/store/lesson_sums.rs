//! The lessons consumed before the risk scan's windows, summed per
//! enrollment, both dialects: read for the scan ([`Store::lessons_summed_in`])
//! and kept by the daily job ([`Store::keep_lesson_sums`]) so that the read
//! does not scan every old lesson again each day.
//!
//! What is kept for an institution (migration 0035) is one set of lessons:
//! those that occurred before its mark's `before_at` and were booked by its
//! `through_seq`. The ledger is append-only and an institution's seqs are
//! committed in order (under its chain head), so that set never changes
//! once booked. A read before a later instant adds, on top of the kept
//! sums, the lessons outside that set: those that occurred from the mark on
//! (the days since the last keeping) and those booked after it
//! (`seq > through_seq`, a lesson recorded late). Both are ranges of an
//! index, so the read costs what happened since the mark, not the history.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::accounts::{AccountCode, Side};
use crate::domain::entry::EntryKind;
use crate::domain::ids::{EnrollmentId, InstitutionId};
use crate::domain::risk::snapshot::LessonsSummed;
use crate::store::bulk::within;
use crate::store::rows;
use crate::store::{DbTime, IdSpan, Result, Store};

/// Which institutions' lessons are summed afresh (no kept sums stand for
/// any of them).
#[derive(Clone, Copy)]
enum Unmarked {
    /// Those without a mark they can build on (none, or one after the
    /// instant read): a read sums them whole.
    Unusable,
    /// Those without any mark: keeping starts them; one whose mark is after
    /// the instant is left as it is.
    None,
}

/// `usable` (the marks at or before the instant `$1`) and `fresh` (the
/// lessons consumed before `$1` that no kept sum holds: from the mark on,
/// booked after it, or of an institution summed afresh), with the span's
/// ends at `$2`, `$3`. `bounded`: only what was booked by the institution's
/// chain head when the statement runs (what a keeping can stand for).
fn fresh_lessons(span: Option<IdSpan<'_>>, unmarked: Unmarked, bounded: bool) -> String {
    let lesson = EntryKind::LessonsConsumed.code();
    let columns = "e.institution_id, e.seq, e.enrollment_id, e.occurred_at, e.hours";
    let head = if bounded {
        "join chain_heads h on h.institution_id = e.institution_id and e.seq <= h.last_seq"
    } else {
        ""
    };
    let without = match unmarked {
        Unmarked::Unusable => "usable",
        Unmarked::None => "lesson_sum_marks",
    };
    // Each branch is one range of an index per institution: the dates
    // since the mark (by occurred_at), the seqs after it (by the primary
    // key: the date test is kept out of the index's reach by `case`), the
    // whole history of an institution summed afresh. The institutions to
    // sum afresh are found first (materialized), so that the entries of
    // the others are not walked to be turned away. `cross join` keeps
    // SQLite's planner to that order (the institutions outside); to
    // PostgreSQL it is an inner join like any other.
    format!(
        "with usable as materialized (select m.institution_id, m.before_at, m.through_seq \
           from lesson_sum_marks m where m.before_at <= $1{span_m}), \
         afresh as materialized (select i.institution_id from institutions i \
           where not exists (select 1 from {without} w \
             where w.institution_id = i.institution_id){span_i}), \
         fresh as (\
           select {columns} from usable m cross join entries e {head} \
           where e.institution_id = m.institution_id and e.occurred_at >= m.before_at \
             and e.occurred_at < $1 and e.kind = '{lesson}' \
           union all \
           select {columns} from usable m cross join entries e {head} \
           where e.institution_id = m.institution_id and e.seq > m.through_seq \
             and e.kind = '{lesson}' \
             and (case when e.occurred_at < m.before_at then 1 else 0 end) = 1 \
           union all \
           select {columns} from afresh a cross join entries e {head} \
           where e.institution_id = a.institution_id and e.occurred_at < $1 \
             and e.kind = '{lesson}')",
        span_m = within(span, "and", "m.institution_id", 2),
        span_i = within(span, "and", "i.institution_id", 2),
    )
}

/// One row of the read: an enrollment's head (`account_code` null) or its
/// postings on one account and side.
#[derive(sqlx::FromRow)]
struct SumRow {
    institution_id: String,
    enrollment_key: String,
    account_code: Option<String>,
    side: Option<String>,
    amount_minor: Option<i64>,
    first_at: Option<DbTime>,
    first_seq: Option<i64>,
    hours: Option<i64>,
}

/// What one keeping did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptLessonSums {
    /// Institutions whose mark now stands at the instant kept.
    pub marked: u64,
    /// Enrollments whose sums grew or began.
    pub enrollments: u64,
}

impl Store {
    /// Each enrollment's lessons consumed before `before` (of a span of
    /// institutions, or all), summed: their first instant and seq, their
    /// hours, their postings by account and side. What
    /// [`Store::entries_in`] leaves out with `lessons_from`. Kept sums
    /// ([`Store::keep_lesson_sums`]) are read with what they do not hold
    /// added on top; an institution without a mark at or before `before`
    /// is summed whole. One statement, so that the kept sums and what is
    /// added to them are read at one instant.
    pub async fn lessons_summed_in(
        &self,
        span: Option<IdSpan<'_>>,
        before: DateTime<Utc>,
    ) -> Result<Vec<(InstitutionId, LessonsSummed)>> {
        let sql = format!(
            "{fresh} \
             select institution_id, enrollment_key, null as account_code, null as side, \
               null as amount_minor, min(first_at) as first_at, min(first_seq) as first_seq, \
               cast(sum(hours) as bigint) as hours \
             from (select f.institution_id, coalesce(f.enrollment_id, '') as enrollment_key, \
                     f.occurred_at as first_at, f.seq as first_seq, \
                     coalesce(f.hours, 0) as hours from fresh f \
                   union all \
                   select k.institution_id, k.enrollment_key, k.first_at, k.first_seq, k.hours \
                   from usable m cross join lesson_sums k \
                   where k.institution_id = m.institution_id) h \
             group by institution_id, enrollment_key \
             union all \
             select institution_id, enrollment_key, account_code, side, \
               cast(sum(amount_minor) as bigint) as amount_minor, null as first_at, \
               null as first_seq, null as hours \
             from (select f.institution_id, coalesce(f.enrollment_id, '') as enrollment_key, \
                     p.account_code, cast(p.side as text) as side, p.amount_minor \
                   from fresh f cross join postings p \
                   where p.institution_id = f.institution_id and p.seq = f.seq \
                   union all \
                   select k.institution_id, k.enrollment_key, k.account_code, k.side, \
                     k.amount_minor \
                   from usable m cross join lesson_sum_postings k \
                   where k.institution_id = m.institution_id) p \
             group by institution_id, enrollment_key, account_code, side",
            fresh = fresh_lessons(span, Unmarked::Unusable, false)
        );
        let before = DbTime::from(before);
        // Planned afresh for its parameters (see `statement_lines_kept_in`).
        let found: Vec<SumRow> = on_reader!(self, |pool| bind_span!(
            sqlx::query_as(&sql).persistent(false).bind(before),
            span
        )
        .fetch_all(pool)
        .await?);
        let mut sums: BTreeMap<(String, String), LessonsSummed> = BTreeMap::new();
        let mut postings = Vec::new();
        for r in found {
            match (r.account_code, r.side, r.amount_minor) {
                (Some(account), Some(side), Some(minor)) => {
                    let account = AccountCode::parse(&account)
                        .map_err(|_| rows::corrupt("posting account", &account))?;
                    let side = Side::parse(side.trim())
                        .ok_or_else(|| rows::corrupt("posting side", &side))?;
                    postings.push(((r.institution_id, r.enrollment_key), account, side, minor));
                }
                _ => {
                    let first_at = r
                        .first_at
                        .ok_or_else(|| rows::corrupt("first lesson", ""))?;
                    let hours = r.hours.unwrap_or(0);
                    let enrollment = match r.enrollment_key.as_str() {
                        "" => None,
                        id => Some(
                            EnrollmentId::parse(id.to_string())
                                .map_err(|_| rows::corrupt("enrollment id", id))?,
                        ),
                    };
                    sums.insert(
                        (r.institution_id, r.enrollment_key),
                        LessonsSummed {
                            enrollment,
                            first_at: first_at.utc(),
                            first_seq: r.first_seq.unwrap_or(0),
                            hours: u32::try_from(hours)
                                .map_err(|_| rows::corrupt("lesson hours", hours))?,
                            postings: vec![],
                        },
                    );
                }
            }
        }
        for (key, account, side, minor) in postings {
            let sum = sums
                .get_mut(&key)
                .ok_or_else(|| rows::corrupt("summed postings without their lessons", &key.1))?;
            sum.postings.push((account, side, minor));
        }
        sums.into_iter()
            .map(|((institution, _), mut sum)| {
                sum.postings.sort();
                Ok((
                    InstitutionId::parse(institution.clone())
                        .map_err(|_| rows::corrupt("institution id", &institution))?,
                    sum,
                ))
            })
            .collect()
    }

    /// Keeps the lessons consumed before `before` summed per enrollment
    /// for the institutions of a span (or all), as far as each is booked
    /// now: the daily job's step, so that tomorrow's
    /// [`Store::lessons_summed_in`] adds a day to the kept sums instead of
    /// summing the history. Set-wise in one transaction: the sums grow by
    /// what no kept sum holds yet and the marks move to `before` and to
    /// each institution's chain head. An institution whose mark is already
    /// after `before` is left as it is (a scan of an earlier day).
    pub async fn keep_lesson_sums(
        &self,
        span: Option<IdSpan<'_>>,
        before: DateTime<Utc>,
    ) -> Result<KeptLessonSums> {
        let before = DbTime::from(before);
        let fresh = fresh_lessons(span, Unmarked::None, true);
        // An institution without a mark starts from nothing kept (a mark
        // dropped by hand must not leave sums to be counted twice).
        let unmarked = |table: &str| {
            format!(
                "delete from {table} where not exists (select 1 from lesson_sum_marks m \
                   where m.institution_id = {table}.institution_id){}",
                within(span, "and", &format!("{table}.institution_id"), 1)
            )
        };
        let heads = format!(
            "{fresh} insert into lesson_sums \
               (institution_id, enrollment_key, first_at, first_seq, hours) \
             select f.institution_id, coalesce(f.enrollment_id, ''), min(f.occurred_at), \
               min(f.seq), cast(sum(coalesce(f.hours, 0)) as bigint) \
             from fresh f where true group by f.institution_id, coalesce(f.enrollment_id, '') \
             on conflict (institution_id, enrollment_key) do update set \
               first_at = case when excluded.first_at < lesson_sums.first_at \
                 then excluded.first_at else lesson_sums.first_at end, \
               first_seq = case when excluded.first_seq < lesson_sums.first_seq \
                 then excluded.first_seq else lesson_sums.first_seq end, \
               hours = lesson_sums.hours + excluded.hours"
        );
        let postings = format!(
            "{fresh} insert into lesson_sum_postings \
               (institution_id, enrollment_key, account_code, side, amount_minor) \
             select f.institution_id, coalesce(f.enrollment_id, ''), p.account_code, \
               cast(p.side as text), cast(sum(p.amount_minor) as bigint) \
             from fresh f cross join postings p \
             where p.institution_id = f.institution_id and p.seq = f.seq \
             group by f.institution_id, coalesce(f.enrollment_id, ''), p.account_code, \
               cast(p.side as text) \
             on conflict (institution_id, enrollment_key, account_code, side) do update set \
               amount_minor = lesson_sum_postings.amount_minor + excluded.amount_minor"
        );
        let marks = format!(
            "insert into lesson_sum_marks (institution_id, before_at, through_seq) \
             select h.institution_id, $1, h.last_seq from chain_heads h \
             where not exists (select 1 from lesson_sum_marks m \
               where m.institution_id = h.institution_id and m.before_at > $1){} \
             on conflict (institution_id) do update set \
               before_at = excluded.before_at, through_seq = excluded.through_seq",
            within(span, "and", "h.institution_id", 2)
        );
        let kept = in_tx!(self, |tx, _now, dialect| {
            // One keeper at a time, each reading one instant: the sums
            // written must be exactly those the marks then say.
            dialect.hold_keeping(&mut tx, "lesson_sum_marks").await?;
            for table in ["lesson_sum_postings", "lesson_sums"] {
                let sql = unmarked(table);
                bind_span!(sqlx::query(&sql).persistent(false), span)
                    .execute(&mut *tx)
                    .await?;
            }
            // The postings before the heads: both read the marks as they
            // stood, which move last.
            bind_span!(sqlx::query(&postings).persistent(false).bind(before), span)
                .execute(&mut *tx)
                .await?;
            let enrollments = bind_span!(sqlx::query(&heads).persistent(false).bind(before), span)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let marked = bind_span!(sqlx::query(&marks).persistent(false).bind(before), span)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            KeptLessonSums {
                marked,
                enrollments,
            }
        });
        Ok(kept)
    }
}
