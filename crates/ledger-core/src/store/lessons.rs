//! Lesson records and their trails, and officers' freezes of an
//! institution's releases, both dialects. Append-only: a step is a new row
//! of the trail, numbered after the last one the caller saw, so of two
//! racing answers exactly one is written (the other meets the primary key).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::chain::{freeze_digest, lesson_digest, lesson_event_digest, lesson_event_key};
use crate::domain::error::LedgerError;
use crate::domain::ids::{EnrollmentId, InstitutionId};
use crate::domain::lessons::{lesson_client_id, Lesson, LessonEvent, LessonRecord, LessonState};
use crate::domain::risk::confirmations::RecordsAtRest;
use crate::store::bulk::within;
use crate::store::rows::corrupt_as;
use crate::store::{DbTime, IdSpan, Result, Store, StoreError};

const LESSON_COLUMNS: &str = "select institution_id, lesson_id, enrollment_id, \
    cast(hours as bigint) as hours, occurred_on, recorded_by, recorded_at, answer_by from lessons";

#[derive(sqlx::FromRow)]
struct LessonRow {
    institution_id: String,
    lesson_id: String,
    enrollment_id: String,
    hours: i64,
    occurred_on: NaiveDate,
    recorded_by: String,
    recorded_at: DbTime,
    answer_by: NaiveDate,
}

impl TryFrom<LessonRow> for LessonRecord {
    type Error = StoreError;
    fn try_from(r: LessonRow) -> Result<Self> {
        Ok(LessonRecord {
            institution: InstitutionId::parse(r.institution_id).map_err(corrupt_as("lesson"))?,
            id: r.lesson_id,
            enrollment: EnrollmentId::parse(r.enrollment_id).map_err(corrupt_as("lesson"))?,
            hours: u32::try_from(r.hours).map_err(corrupt_as("lesson hours"))?,
            occurred_on: r.occurred_on,
            recorded_by: r.recorded_by,
            recorded_at: r.recorded_at.utc(),
            answer_by: r.answer_by,
        })
    }
}

/// A row with the institution it belongs to, for reads across many.
#[derive(sqlx::FromRow)]
struct OfInstitution<T> {
    institution_id: String,
    #[sqlx(flatten)]
    row: T,
}

/// Which trails [`Store::with_trails`] reads.
#[derive(Clone, Copy)]
enum Trails<'a> {
    /// One record's.
    Of(&'a str),
    /// The records of one enrollment.
    OfEnrollment(&'a EnrollmentId),
    /// Every record of the institution.
    All,
}

/// One institution's lesson records as the risk scan reads them
/// ([`Store::lessons_in`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LessonsRead {
    /// The records read one by one, each with its trail, in the order
    /// recorded.
    pub listed: Vec<Lesson>,
    /// The records at rest, summed per enrollment (in enrollment order):
    /// none when every record is listed.
    pub at_rest: Vec<RecordsAtRest>,
}

/// A listed record with one step of its trail (none: no step yet).
#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    record: LessonRow,
    event_seq: Option<i64>,
    event_at: Option<DbTime>,
    event_on_day: Option<NaiveDate>,
    event_actor: Option<String>,
    event_state: Option<String>,
    event_reason: Option<String>,
}

impl ListedRow {
    fn event(&self) -> Result<Option<LessonEvent>> {
        let (Some(seq), Some(at), Some(on_day), Some(actor), Some(state)) = (
            self.event_seq,
            self.event_at,
            self.event_on_day,
            self.event_actor.clone(),
            self.event_state.as_deref(),
        ) else {
            return Ok(None);
        };
        Ok(Some(LessonEvent {
            seq,
            at: at.utc(),
            on_day,
            actor,
            state: LessonState::parse(state).map_err(corrupt_as("lesson state"))?,
            reason: self.event_reason.clone(),
        }))
    }
}

#[derive(sqlx::FromRow)]
struct SummedRow {
    institution_id: String,
    enrollment_id: String,
    records: i64,
    hours: i64,
}

/// Lesson records `l` meeting `filter`, one row per step of each (one row
/// with no step for a record without), in the order [`with_steps`] reads.
fn with_steps_sql(filter: &str) -> String {
    format!(
        "select l.institution_id, l.lesson_id, l.enrollment_id, cast(l.hours as bigint) as hours, \
           l.occurred_on, l.recorded_by, l.recorded_at, l.answer_by, \
           cast(e.seq as bigint) as event_seq, e.at as event_at, e.on_day as event_on_day, \
           e.actor as event_actor, e.state as event_state, e.reason as event_reason \
         from lessons l left join lesson_events e \
           on e.institution_id = l.institution_id and e.lesson_id = l.lesson_id \
         where {filter} \
         order by l.institution_id, l.recorded_at, l.lesson_id, e.seq"
    )
}

/// The records of [`with_steps_sql`]'s rows, each with its trail, by
/// institution, in the order recorded.
fn with_steps(rows: Vec<ListedRow>) -> Result<HashMap<String, Vec<Lesson>>> {
    let mut all: HashMap<String, Vec<Lesson>> = HashMap::new();
    for row in rows {
        let listed = all.entry(row.record.institution_id.clone()).or_default();
        let event = row.event()?;
        match listed.last_mut() {
            Some(l) if l.record.id == row.record.lesson_id => l.trail.extend(event),
            _ => listed.push(Lesson {
                record: LessonRecord::try_from(row.record)?,
                trail: event.into_iter().collect(),
            }),
        }
    }
    Ok(all)
}

/// The state of the last step of the record `l` (null: none yet).
fn last_state_sql() -> &'static str {
    "select e.state from lesson_events e \
     where e.institution_id = l.institution_id and e.lesson_id = l.lesson_id \
     order by e.seq desc limit 1"
}

/// [`at_rest`](crate::domain::risk::confirmations::at_rest) of the record
/// `l` in SQL, the day bound at `$n` as its first instant and at `$n + 1`
/// as a date; never null, so that `not` of it is exactly the rest. The
/// cheap tests come first: a record recorded or due from the day on is
/// listed without a look at its trail.
fn at_rest_sql(n: usize) -> String {
    format!(
        "(l.recorded_at < ${n} and l.answer_by < ${m} \
          and not exists (select 1 from lesson_events e \
                          where e.institution_id = l.institution_id and e.lesson_id = l.lesson_id \
                            and e.on_day >= ${m}))",
        m = n + 1
    )
}

#[derive(sqlx::FromRow)]
struct LessonEventRow {
    lesson_id: String,
    seq: i64,
    at: DbTime,
    on_day: NaiveDate,
    actor: String,
    state: String,
    reason: Option<String>,
}

impl TryFrom<LessonEventRow> for (String, LessonEvent) {
    type Error = StoreError;
    fn try_from(r: LessonEventRow) -> Result<Self> {
        Ok((
            r.lesson_id,
            LessonEvent {
                seq: r.seq,
                at: r.at.utc(),
                on_day: r.on_day,
                actor: r.actor,
                state: LessonState::parse(&r.state).map_err(corrupt_as("lesson state"))?,
                reason: r.reason,
            },
        ))
    }
}

/// What an institution recorded, before the store numbers it.
#[derive(Debug, Clone)]
pub struct NewLesson {
    pub institution: InstitutionId,
    pub enrollment: EnrollmentId,
    pub hours: u32,
    pub occurred_on: NaiveDate,
    pub recorded_by: String,
    pub answer_by: NaiveDate,
}

/// An officer's freeze of an institution's releases, or its lift.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FreezeRecord {
    pub seq: i64,
    /// `true`: frozen from then on; `false`: lifted.
    pub frozen: bool,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct FreezeRow {
    seq: i64,
    frozen: bool,
    reason: String,
    actor: String,
    at: DbTime,
}

impl Store {
    /// Records lessons as pending confirmation, numbered `L<n>` in the
    /// institution's order. With a `request_key`, the record already kept
    /// under it is returned instead of a second one.
    pub async fn record_lesson(
        &self,
        new: &NewLesson,
        request_key: Option<&str>,
    ) -> Result<LessonRecord> {
        let institution = new.institution.as_str();
        let hours = i32::try_from(new.hours).map_err(|_| LedgerError::InvalidField {
            field: "hours",
            reason: format!("{} class hours is more than any package holds", new.hours),
        })?;
        let id: String = in_tx!(self, |tx, now, dialect| {
            // Records are numbered in the institution's order: one writer
            // at a time (SQLite's one writer is the lock there).
            dialect.lock_key(&mut tx, "lessons", institution).await?;
            let kept: Option<String> = match request_key {
                Some(k) => sqlx::query_scalar(
                    "select lesson_id from lessons where institution_id = $1 and request_key = $2",
                )
                .bind(institution)
                .bind(k)
                .fetch_optional(&mut *tx)
                .await?,
                None => None,
            };
            if let Some(id) = kept {
                id
            } else {
                // The institution's kept count, not a count of its records;
                // a record refused below rolls the count back with it.
                let n: i64 = sqlx::query_scalar(
                    "insert into lesson_numbers (institution_id, recorded) values ($1, 1) \
                     on conflict (institution_id) do update \
                       set recorded = lesson_numbers.recorded + 1 \
                     returning cast(recorded as bigint)",
                )
                .bind(institution)
                .fetch_one(&mut *tx)
                .await?;
                let id = format!("L{n}");
                let inserted = sqlx::query(
                    "insert into lessons (institution_id, lesson_id, enrollment_id, hours, occurred_on, \
                       recorded_by, recorded_at, answer_by, request_key) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(institution)
                .bind(&id)
                .bind(new.enrollment.as_str())
                .bind(hours)
                .bind(new.occurred_on)
                .bind(&new.recorded_by)
                .bind(now)
                .bind(new.answer_by)
                .bind(request_key)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                        return Err(LedgerError::UnknownEnrollment {
                            institution: institution.to_string(),
                            enrollment: new.enrollment.to_string(),
                        }
                        .into())
                    }
                    other => other?,
                };
                let digest = lesson_digest(
                    institution,
                    &id,
                    new.enrollment.as_str(),
                    i64::from(hours),
                    new.occurred_on,
                    &new.recorded_by,
                    now.micros(),
                    new.answer_by,
                );
                seal_record!(tx, institution, "lesson", id.clone(), digest);
                sqlx::query(
                    "insert into lessons_unanswered (institution_id, lesson_id, answer_by) \
                     values ($1, $2, $3)",
                )
                .bind(institution)
                .bind(&id)
                .bind(new.answer_by)
                .execute(&mut *tx)
                .await?;
                id
            }
        });
        self.lesson_record(&new.institution, &id).await
    }

    /// The lesson record kept under a request key, if any.
    pub async fn lesson_by_request_key(
        &self,
        institution: &InstitutionId,
        key: &str,
    ) -> Result<Option<String>> {
        Ok(on_reader!(self, |pool| sqlx::query_scalar(
            "select lesson_id from lessons where institution_id = $1 and request_key = $2"
        )
        .bind(institution.as_str())
        .bind(key)
        .fetch_optional(pool)
        .await?))
    }

    async fn lesson_record(&self, institution: &InstitutionId, id: &str) -> Result<LessonRecord> {
        let row: Option<LessonRow> = on_reader!(self, |pool| sqlx::query_as(&format!(
            "{LESSON_COLUMNS} where institution_id = $1 and lesson_id = $2"
        ))
        .bind(institution.as_str())
        .bind(id)
        .fetch_optional(pool)
        .await?);
        row.map(LessonRecord::try_from).transpose()?.ok_or_else(|| {
            LedgerError::UnknownLesson {
                institution: institution.to_string(),
                lesson: id.to_string(),
            }
            .into()
        })
    }

    /// One lesson record with its trail.
    pub async fn lesson(&self, institution: &InstitutionId, id: &str) -> Result<Option<Lesson>> {
        let row: Option<LessonRow> = on_reader!(self, |pool| sqlx::query_as(&format!(
            "{LESSON_COLUMNS} where institution_id = $1 and lesson_id = $2"
        ))
        .bind(institution.as_str())
        .bind(id)
        .fetch_optional(pool)
        .await?);
        let Some(row) = row else { return Ok(None) };
        let mut lessons = self.with_trails(vec![row], Trails::Of(id)).await?;
        Ok(lessons.pop())
    }

    /// An institution's lesson records (of one enrollment, or all), in the
    /// order recorded, each with its trail.
    pub async fn lessons(
        &self,
        institution: &InstitutionId,
        enrollment: Option<&EnrollmentId>,
    ) -> Result<Vec<Lesson>> {
        let e = enrollment.map(|e| e.as_str().to_string());
        let rows: Vec<LessonRow> = on_reader!(self, |pool| sqlx::query_as(&format!(
            "{LESSON_COLUMNS} where institution_id = $1 and ($2 is null or enrollment_id = $2) \
             order by recorded_at, lesson_id"
        ))
        .bind(institution.as_str())
        .bind(e)
        .fetch_all(pool)
        .await?);
        let trails = enrollment.map_or(Trails::All, Trails::OfEnrollment);
        self.with_trails(rows, trails).await
    }

    /// The hours of an enrollment's lesson records not upheld (pending,
    /// disputed or earned): what they count against its package.
    pub async fn lesson_hours_recorded(
        &self,
        institution: &InstitutionId,
        enrollment: &EnrollmentId,
    ) -> Result<u32> {
        let sql = format!(
            "select cast(coalesce(sum(l.hours), 0) as bigint) from lessons l \
             where l.institution_id = $1 and l.enrollment_id = $2 \
               and coalesce(({}), '') <> '{}'",
            last_state_sql(),
            LessonState::Upheld.code()
        );
        self.hours_of(&sql, institution, enrollment).await
    }

    /// The hours of an enrollment's lessons posted straight into the books
    /// (imported history), not through a lesson record (whose entries
    /// carry the record's `lesson-` client id).
    pub async fn lesson_hours_posted_directly(
        &self,
        institution: &InstitutionId,
        enrollment: &EnrollmentId,
    ) -> Result<u32> {
        let sql = format!(
            "select cast(coalesce(sum(hours), 0) as bigint) from entries \
             where institution_id = $1 and enrollment_id = $2 and kind = '{kind}' \
               and client_id not like '{prefix}%'",
            kind = crate::domain::entry::EntryKind::LessonsConsumed.code(),
            prefix = lesson_client_id("")
        );
        self.hours_of(&sql, institution, enrollment).await
    }

    /// An enrollment's hours as `sql` sums them (`$1` the institution, `$2`
    /// the enrollment).
    async fn hours_of(
        &self,
        sql: &str,
        institution: &InstitutionId,
        enrollment: &EnrollmentId,
    ) -> Result<u32> {
        let hours: i64 = on_reader!(self, |pool| sqlx::query_scalar(sql)
            .bind(institution.as_str())
            .bind(enrollment.as_str())
            .fetch_one(pool)
            .await?);
        u32::try_from(hours).map_err(corrupt_as("lesson hours"))
    }

    /// Every institution's lesson records (of a span, or all), each with
    /// its trail, by institution, in the order recorded: [`Store::lessons`]
    /// of many institutions, read at one instant.
    ///
    /// With `at_rest_from`, the records at rest from that day on
    /// ([`at_rest`](crate::domain::risk::confirmations::at_rest):
    /// recorded, due and answered before it) are not listed but summed per
    /// enrollment by the database, so that the risk scan's read of the
    /// families' answers does not bring every record ever kept across.
    /// The database still judges each older record (a probe of its
    /// trail's key, and one more to sum it).
    pub async fn lessons_in(
        &self,
        span: Option<IdSpan<'_>>,
        at_rest_from: Option<NaiveDate>,
    ) -> Result<HashMap<String, LessonsRead>> {
        let Some(from) = at_rest_from else {
            return self.every_lesson_in(span).await;
        };
        let at_rest = at_rest_sql(1);
        let span_sql = within(span, "and", "l.institution_id", 3);
        let listed_sql = with_steps_sql(&format!("not {at_rest}{span_sql}"));
        let summed_sql = format!(
            "select l.institution_id, l.enrollment_id, cast(count(*) as bigint) as records, \
               cast(coalesce(sum(case when ({}) = '{}' then 0 else l.hours end), 0) as bigint) as hours \
             from lessons l where {at_rest}{span_sql} \
             group by l.institution_id, l.enrollment_id order by l.institution_id, l.enrollment_id",
            last_state_sql(),
            LessonState::Upheld.code()
        );
        let since = DbTime::from(from.and_time(chrono::NaiveTime::MIN).and_utc());
        // One instant for both: a step taken between them would otherwise
        // leave its record listed and summed, or neither.
        let (listed, summed): (Vec<ListedRow>, Vec<SummedRow>) =
            on_reader!(self, |pool, dialect| {
                let mut tx = pool.begin_with(dialect.read_snapshot()).await?;
                let listed = bind_span!(sqlx::query_as(&listed_sql).bind(since).bind(from), span)
                    .fetch_all(&mut *tx)
                    .await?;
                let summed = bind_span!(sqlx::query_as(&summed_sql).bind(since).bind(from), span)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.rollback().await?;
                (listed, summed)
            });
        let mut all: HashMap<String, LessonsRead> = HashMap::new();
        for (institution, listed) in with_steps(listed)? {
            all.entry(institution).or_default().listed = listed;
        }
        for row in summed {
            all.entry(row.institution_id)
                .or_default()
                .at_rest
                .push(RecordsAtRest {
                    enrollment: EnrollmentId::parse(row.enrollment_id)
                        .map_err(corrupt_as("lesson"))?,
                    records: u64::try_from(row.records).map_err(corrupt_as("lesson count"))?,
                    hours: u64::try_from(row.hours).map_err(corrupt_as("lesson hours"))?,
                });
        }
        Ok(all)
    }

    /// [`Store::lessons_in`] without records at rest: every record.
    async fn every_lesson_in(
        &self,
        span: Option<IdSpan<'_>>,
    ) -> Result<HashMap<String, LessonsRead>> {
        let records_sql = format!(
            "{LESSON_COLUMNS}{} order by institution_id, recorded_at, lesson_id",
            within(span, "where", "institution_id", 1)
        );
        let events_sql = format!(
            "select institution_id, lesson_id, cast(seq as bigint) as seq, at, on_day, actor, \
               state, reason from lesson_events{} order by institution_id, lesson_id, seq",
            within(span, "where", "institution_id", 1)
        );
        let (rows, events): (Vec<LessonRow>, Vec<OfInstitution<LessonEventRow>>) =
            on_reader!(self, |pool, dialect| {
                let mut tx = pool.begin_with(dialect.read_snapshot()).await?;
                let rows = bind_span!(sqlx::query_as(&records_sql), span)
                    .fetch_all(&mut *tx)
                    .await?;
                let events = bind_span!(sqlx::query_as(&events_sql), span)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.rollback().await?;
                (rows, events)
            });
        let mut trails: BTreeMap<(String, String), Vec<LessonEvent>> = BTreeMap::new();
        for e in events {
            let (id, event) = <(String, LessonEvent)>::try_from(e.row)?;
            trails
                .entry((e.institution_id, id))
                .or_default()
                .push(event);
        }
        let mut all: HashMap<String, LessonsRead> = HashMap::new();
        for r in rows {
            let institution = r.institution_id.clone();
            let record = LessonRecord::try_from(r)?;
            let trail = trails
                .remove(&(institution.clone(), record.id.clone()))
                .unwrap_or_default();
            all.entry(institution)
                .or_default()
                .listed
                .push(Lesson { record, trail });
        }
        Ok(all)
    }

    /// Earned records (confirmed, deemed confirmed, dispute rejected) whose
    /// lessons are not in the books yet (no entry under the record's
    /// `lesson-` client id), of every institution, with their trails: what
    /// the lessons job posts. The database judges each record (a probe of
    /// its trail and one of the entries' client ids); only those found
    /// cross, where the job read every record and entry of every
    /// institution on each pass.
    pub async fn earned_lessons_unposted(&self) -> Result<HashMap<String, Vec<Lesson>>> {
        let earned: Vec<String> = LessonState::ALL
            .iter()
            .filter(|s| s.is_earned())
            .map(|s| format!("'{}'", s.code()))
            .collect();
        let sql = with_steps_sql(&format!(
            "({last}) in ({earned}) and not exists (select 1 from entries p \
               where p.institution_id = l.institution_id and p.client_id = '{prefix}' || l.lesson_id)",
            last = last_state_sql(),
            earned = earned.join(", "),
            prefix = lesson_client_id(""),
        ));
        let rows: Vec<ListedRow> =
            on_reader!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        with_steps(rows)
    }

    /// Records nobody has answered whose answer-by day is before `today`
    /// (past their day), of every institution: what the lessons job deems
    /// confirmed. Read from the queue the records enter when recorded and
    /// leave at their first step (migration 0040), so a pass reads what is
    /// due, not every record.
    pub async fn unanswered_lessons(&self, today: NaiveDate) -> Result<Vec<LessonRecord>> {
        // Driven from the queue: each waiting record is one key lookup.
        let rows: Vec<LessonRow> = on_reader!(self, |pool| sqlx::query_as(
            "select l.institution_id, l.lesson_id, l.enrollment_id, \
               cast(l.hours as bigint) as hours, l.occurred_on, l.recorded_by, l.recorded_at, \
               l.answer_by \
             from lessons_unanswered u join lessons l \
               on l.institution_id = u.institution_id and l.lesson_id = u.lesson_id \
             where u.answer_by < $1 \
             order by l.institution_id, l.recorded_at, l.lesson_id"
        )
        .bind(today)
        .fetch_all(pool)
        .await?);
        crate::store::rows::convert(rows)
    }

    /// The records `rows` (of one institution) with their trails, read for
    /// what `of` names only: a record's trail, an enrollment's or all.
    async fn with_trails(&self, rows: Vec<LessonRow>, of: Trails<'_>) -> Result<Vec<Lesson>> {
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let institution = first.institution_id.clone();
        let (filter, key) = match of {
            Trails::Of(id) => ("e.lesson_id = $2", Some(id)),
            Trails::OfEnrollment(e) => (
                "e.lesson_id in (select l.lesson_id from lessons l \
                   where l.institution_id = $1 and l.enrollment_id = $2)",
                Some(e.as_str()),
            ),
            Trails::All => ("$2 is null", None),
        };
        let sql = format!(
            "select e.lesson_id, cast(e.seq as bigint) as seq, e.at, e.on_day, e.actor, e.state, \
               e.reason from lesson_events e where e.institution_id = $1 and {filter} \
             order by e.lesson_id, e.seq"
        );
        let events: Vec<LessonEventRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(&institution)
            .bind(key)
            .fetch_all(pool)
            .await?);
        let mut trails: BTreeMap<String, Vec<LessonEvent>> = BTreeMap::new();
        for e in events {
            let (id, event) = <(String, LessonEvent)>::try_from(e)?;
            trails.entry(id).or_default().push(event);
        }
        rows.into_iter()
            .map(|r| {
                let record = LessonRecord::try_from(r)?;
                let trail = trails.remove(&record.id).unwrap_or_default();
                Ok(Lesson { record, trail })
            })
            .collect()
    }

    /// Appends a step to a lesson record's trail, numbered `after_seq + 1`;
    /// `false` when someone else wrote that step first.
    #[allow(clippy::too_many_arguments)]
    pub async fn append_lesson_event(
        &self,
        institution: &InstitutionId,
        lesson: &str,
        after_seq: i64,
        state: LessonState,
        actor: &str,
        reason: Option<&str>,
        on_day: NaiveDate,
    ) -> Result<bool> {
        // Of two racing steps the first insert wins; the other finds the
        // row (no error, so no aborted transaction) and writes nothing.
        let sql = "insert into lesson_events \
                   (institution_id, lesson_id, seq, at, on_day, actor, state, reason) \
                   values ($1, $2, $3, $4, $5, $6, $7, $8) \
                   on conflict (institution_id, lesson_id, seq) do nothing";
        let seq = i32::try_from(after_seq + 1).map_err(corrupt_as("lesson event seq"))?;
        let id = institution.as_str();
        Ok(in_tx!(self, |tx, now| {
            let written = sqlx::query(sql)
                .bind(id)
                .bind(lesson)
                .bind(seq)
                .bind(now)
                .bind(on_day)
                .bind(actor)
                .bind(state.code())
                .bind(reason)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if written {
                // Answered (or deemed so): out of the lessons job's queue.
                sqlx::query(
                    "delete from lessons_unanswered where institution_id = $1 and lesson_id = $2",
                )
                .bind(id)
                .bind(lesson)
                .execute(&mut *tx)
                .await?;
                let digest = lesson_event_digest(
                    id,
                    lesson,
                    i64::from(seq),
                    now.micros(),
                    on_day,
                    actor,
                    state.code(),
                    reason,
                );
                seal_record!(
                    tx,
                    id,
                    "lesson_event",
                    lesson_event_key(lesson, i64::from(seq)),
                    digest
                );
            }
            written
        }))
    }

    /// Records an officer's freeze of the institution's releases (or its
    /// lift); returns its number.
    pub async fn record_freeze(
        &self,
        institution: &InstitutionId,
        frozen: bool,
        reason: &str,
        actor: &str,
    ) -> Result<i64> {
        self.institution(institution).await?;
        let id = institution.as_str();
        Ok(in_tx!(self, |tx, now, dialect| {
            dialect.lock_key(&mut tx, "freezes", id).await?;
            let seq: i64 = sqlx::query_scalar(
                "select cast(coalesce(max(seq), 0) + 1 as bigint) from institution_freezes \
                 where institution_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "insert into institution_freezes (institution_id, seq, frozen, reason, actor, at) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(seq as i32)
            .bind(frozen)
            .bind(reason)
            .bind(actor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let digest = freeze_digest(id, seq, frozen, reason, actor, now.micros());
            seal_record!(tx, id, "freeze", seq.to_string(), digest);
            seq
        }))
    }

    /// Every freeze and lift of the institution, in order.
    pub async fn freezes(&self, institution: &InstitutionId) -> Result<Vec<FreezeRecord>> {
        let rows: Vec<FreezeRow> = on_reader!(self, |pool| sqlx::query_as(
            "select cast(seq as bigint) as seq, frozen, reason, actor, at \
             from institution_freezes where institution_id = $1 order by seq",
        )
        .bind(institution.as_str())
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|r| FreezeRecord {
                seq: r.seq,
                frozen: r.frozen,
                reason: r.reason,
                actor: r.actor,
                at: r.at.utc(),
            })
            .collect())
    }
}
