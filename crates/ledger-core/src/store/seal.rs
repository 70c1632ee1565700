//! The record chains in the store, both dialects: reading the records back
//! into their digests, walking an institution's record chain and the audit
//! log's chain from the rows (never trusting the stored heads), and linking
//! the records written before the chains existed (once, at migration).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use sqlx::Row;

use crate::domain::accounts::Totals;
use crate::domain::approvals::{Approval, ApprovalKind, Decision};
use crate::domain::chain::{
    approval_decision_digest, approval_digest, audit_digest, enrollment_digest, freeze_digest,
    lesson_digest, lesson_event_digest, lesson_event_key, link_hash, payee_digest, refund_digest,
    refund_event_digest, refund_event_key, statement_digest, statement_key, AuditFields,
    EnrollmentFields, AUDIT_SCOPE, GENESIS_HASH,
};
use crate::domain::checkpoint::ChainPosition;
use crate::domain::feeds::{FeedLine, FeedStatement, LineStatus};
use crate::domain::ids::{EnrollmentId, InstitutionId, JurisdictionCode, RefundId};
use crate::domain::money::Currency;
use crate::domain::refunds::{Payee, Refund, RefundState};
use crate::store::report::VerifyFailure;
use crate::store::{DbTime, Result, Store};

/// Runs a query on either dialect (written once, expanded per dialect)
/// and maps every row; `$at` is the named time column in microseconds.
macro_rules! load {
    ($store:expr, $sql:expr, [$($bind:expr),*], |$r:ident| $make:expr) => {
        match $store {
            Snap::Pg(tx) => sqlx::query($sql)$(.bind($bind))*.fetch_all(&mut **tx).await?
                .iter().map(|$r| -> Result<_> { Ok($make) }).collect::<Result<Vec<_>>>()?,
            Snap::Lite(tx) => sqlx::query($sql)$(.bind($bind))*.fetch_all(&mut **tx).await?
                .iter().map(|$r| -> Result<_> { Ok($make) }).collect::<Result<Vec<_>>>()?,
        }
    };
    ($store:expr, $sql:expr, [$($bind:expr),*], |$r:ident, $at:ident = $col:literal| $make:expr) => {
        load!($store, $sql, [$($bind),*], |$r| {
            let $at: i64 = $r.try_get::<DbTime, _>($col)?.micros();
            $make
        })
    };
}

/// One link of a record chain as stored.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub seq: i64,
    pub kind: String,
    pub key: String,
    pub digest: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A record as the rows say now: its digest and what to call it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub digest: String,
    /// Set when the record's own parts disagree (a statement whose lines no
    /// longer hash to the content hash it was stored with).
    pub inner_mismatch: Option<String>,
}

/// What walking a chain found: where it ends, and the hash recomputed at
/// the position a checkpoint asked about (if the chain reaches it).
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    pub end: ChainPosition,
    pub at_wanted: Option<String>,
    /// The walk stopped at a broken link.
    pub broken: bool,
    /// Links walked.
    pub links: u64,
}

/// Audit log seqs read at a time.
const AUDIT_PAGE: i64 = 10_000;

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Walks links in seq order from the rows, a page at a time: seq order
/// (consecutive, or for the audit log only increasing: its seqs may skip),
/// prev_hash and the recomputed hash. Stops at the first break.
struct Walker<'a> {
    scope: &'a str,
    consecutive: bool,
    wanted: Option<i64>,
    walk: Walk,
}

impl<'a> Walker<'a> {
    fn new(scope: &'a str, consecutive: bool, wanted: Option<i64>) -> Self {
        Walker {
            scope,
            consecutive,
            wanted,
            walk: Walk {
                end: ChainPosition::default(),
                at_wanted: (wanted == Some(0)).then(|| GENESIS_HASH.to_string()),
                broken: false,
                links: 0,
            },
        }
    }

    /// Takes the next links; false once the chain broke.
    fn feed(&mut self, links: &[Link], mut fail: impl FnMut(Option<i64>, String)) -> bool {
        let end = &mut self.walk.end;
        for link in links {
            if self.walk.broken {
                return false;
            }
            let in_order = if self.consecutive {
                link.seq == end.seq + 1
            } else {
                link.seq > end.seq
            };
            let problem = if !in_order {
                Some(format!("expected link {}, found {}", end.seq + 1, link.seq))
            } else if link.prev_hash != end.hash {
                Some(format!(
                    "link {} ({} {}) does not chain to link {}",
                    link.seq, link.kind, link.key, end.seq
                ))
            } else {
                None
            };
            if let Some(reason) = problem {
                fail(Some(link.seq), reason);
                self.walk.broken = true;
                return false;
            }
            let hash = link_hash(
                &end.hash,
                self.scope,
                link.seq,
                &link.kind,
                &link.key,
                &link.digest,
            );
            if hash != link.hash {
                fail(
                    Some(link.seq),
                    format!(
                        "link {} ({} {}) does not match its hash (stored {}, recomputed {})",
                        link.seq,
                        link.kind,
                        link.key,
                        short(&link.hash),
                        short(&hash)
                    ),
                );
                self.walk.broken = true;
                return false;
            }
            *end = ChainPosition {
                seq: link.seq,
                hash,
            };
            self.walk.links += 1;
            if self.wanted == Some(link.seq) {
                self.walk.at_wanted = Some(end.hash.clone());
            }
        }
        true
    }
}

fn walk(
    scope: &str,
    links: &[Link],
    wanted: Option<i64>,
    fail: impl FnMut(Option<i64>, String),
) -> Walk {
    let mut walker = Walker::new(scope, true, wanted);
    walker.feed(links, fail);
    walker.walk
}

fn describe(kind: &str) -> &'static str {
    match kind {
        "enrollment" => "enrollment",
        "statement" => "bank statement",
        "refund" => "refund",
        "refund_event" => "refund event",
        "payee" => "payee version",
        "lesson" => "lesson record",
        "lesson_event" => "lesson record step",
        "freeze" => "freeze",
        "approval" => "approval request",
        "approval_decision" => "approval decision",
        _ => "record",
    }
}

fn changed_hint(kind: &str) -> &'static str {
    match kind {
        "enrollment" => "its contract (hours, price, dates) was changed",
        "statement" => "its row was edited",
        "refund" => "its terms (payee, amount, enrollment) were changed",
        "refund_event" => "the event was edited",
        "payee" => "the payee was changed",
        "lesson" => "its hours, enrollment or dates were changed",
        "lesson_event" => "the family's or officer's answer was edited",
        "freeze" => "the freeze was edited",
        "approval" => "its terms (what, how much, to whom, who asked) were changed",
        "approval_decision" => "the decision (approved or rejected, by whom, when, why) was edited",
        _ => "it was edited",
    }
}

/// A read-only snapshot: a chain and its records are read in one
/// transaction (repeatable read on PostgreSQL; one read transaction on
/// SQLite), so a record written while `verify` runs is seen with its link or
/// not at all.
pub(crate) enum Snap {
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    Lite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Store {
    pub(crate) async fn snapshot(&self) -> Result<Snap> {
        Ok(match self {
            Store::Postgres(s) => {
                let mut tx = s.pool().begin().await?;
                sqlx::query("set transaction isolation level repeatable read, read only")
                    .execute(&mut *tx)
                    .await?;
                Snap::Pg(tx)
            }
            Store::Sqlite(s) => Snap::Lite(s.pool().begin().await?),
        })
    }
}

impl Snap {
    /// Ends the snapshot (it wrote nothing).
    pub(crate) async fn close(self) -> Result<()> {
        match self {
            Snap::Pg(tx) => tx.rollback().await?,
            Snap::Lite(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    async fn record_links(&mut self, id: &str) -> Result<Vec<Link>> {
        Ok(load!(
            self,
            "select cast(seq as bigint) as seq, kind, record_key, digest, prev_hash, hash \
             from record_links where institution_id = $1 order by seq",
            [id],
            |r| Link {
                seq: r.try_get("seq")?,
                kind: r.try_get("kind")?,
                key: r.try_get("record_key")?,
                digest: r.try_get("digest")?,
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
            }
        ))
    }

    /// The audit log's links with seq in `(after, upto]`.
    async fn audit_links(&mut self, after: i64, upto: i64) -> Result<Vec<Link>> {
        Ok(load!(
            self,
            "select cast(seq as bigint) as seq, digest, prev_hash, hash from audit_links \
             where seq > $1 and seq <= $2 order by seq",
            [after, upto],
            |r| {
                let seq: i64 = r.try_get("seq")?;
                Link {
                    seq,
                    kind: "audit".into(),
                    key: seq.to_string(),
                    digest: r.try_get("digest")?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                }
            }
        ))
    }

    /// The highest seq in the audit log or its links.
    async fn audit_max_seq(&mut self) -> Result<i64> {
        Ok(self
            .stored_head(
                "select cast(coalesce(max(seq), 0) as bigint), '' from \
                 (select seq from audit_links union all select seq from audit_log) t",
                None,
            )
            .await?
            .map_or(0, |(n, _)| n))
    }

    /// The stored tip of a chain (`None`: no row).
    async fn stored_head(
        &mut self,
        sql: &str,
        bind: Option<&str>,
    ) -> Result<Option<(i64, String)>> {
        Ok(load!(self, sql, [bind], |r| (
            r.try_get::<i64, _>(0)?,
            r.try_get::<String, _>(1)?
        ))
        .into_iter()
        .next())
    }

    /// Every statement of an institution with its lines, as stored.
    async fn stored_statements(
        &mut self,
        id: &str,
    ) -> Result<Vec<(String, String, String, Record)>> {
        type LineKey = (String, String, String);
        let lines: Vec<(LineKey, FeedLine)> = load!(self,
            "select bank_id, account_no, statement_key, amount_minor, booking_date, value_date, \
               status, bank_ref, end_to_end_id, remittance, counterparty_name, counterparty_account, \
               bank_tx_code, reversal, return_reason, details \
             from bank_lines where institution_id = $1 \
             order by bank_id, account_no, statement_key, line_no",
            [id],
            |r| (
                (r.try_get("bank_id")?, r.try_get("account_no")?, r.try_get("statement_key")?),
                FeedLine {
                    amount_minor: r.try_get("amount_minor")?,
                    booking_date: r.try_get("booking_date")?,
                    value_date: r.try_get("value_date")?,
                    status: LineStatus::parse(r.try_get("status")?)
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                    bank_ref: r.try_get("bank_ref")?,
                    end_to_end_id: r.try_get("end_to_end_id")?,
                    remittance: r.try_get("remittance")?,
                    counterparty_name: r.try_get("counterparty_name")?,
                    counterparty_account: r.try_get("counterparty_account")?,
                    bank_tx_code: r.try_get("bank_tx_code")?,
                    reversal: r.try_get("reversal")?,
                    return_reason: r.try_get("return_reason")?,
                    details: r.try_get("details")?,
                    source_line: None,
                    source_path: None,
                }
            )
        );
        let mut by_statement: BTreeMap<LineKey, Vec<FeedLine>> = BTreeMap::new();
        for (key, line) in lines {
            by_statement.entry(key).or_default().push(line);
        }
        type StatementRow = (LineKey, String, i64, String, FeedStatement);
        let statements: Vec<StatementRow> = load!(self,
            "select bank_id, account_no, statement_key, statement_id, sequence, format, currency, \
               provisional, opening_minor, opening_date, closing_minor, closing_date, \
               content_hash, file_sha256, cast(message as bigint) as message, received_at \
             from bank_statements where institution_id = $1 \
             order by bank_id, account_no, statement_key",
            [id],
            |r, at = "received_at"| {
                let currency: String = r.try_get("currency")?;
                let opening: (Option<i64>, Option<NaiveDate>) =
                    (r.try_get("opening_minor")?, r.try_get("opening_date")?);
                let closing: (Option<i64>, Option<NaiveDate>) =
                    (r.try_get("closing_minor")?, r.try_get("closing_date")?);
                let bank: String = r.try_get("bank_id")?;
                let account_no: String = r.try_get("account_no")?;
                (
                    (bank.clone(), account_no.clone(), r.try_get("statement_key")?),
                    currency.clone(),
                    at,
                    r.try_get::<String, _>("content_hash")?,
                    FeedStatement {
                        bank,
                        account_no,
                        format: r.try_get("format")?,
                        statement_id: r.try_get("statement_id")?,
                        sequence: r.try_get("sequence")?,
                        currency: currency.parse::<Currency>().unwrap_or(Currency::Cny),
                        provisional: r.try_get("provisional")?,
                        opening: opening.0.zip(opening.1),
                        closing: closing.0.zip(closing.1),
                        lines: vec![],
                        file_sha256: r.try_get("file_sha256")?,
                        message: u32::try_from(r.try_get::<i64, _>("message")?).unwrap_or(u32::MAX),
                    },
                )
            }
        );
        let mut out = Vec::with_capacity(statements.len());
        for (key, currency, at, stored_content, mut s) in statements {
            s.lines = by_statement.remove(&key).unwrap_or_default();
            let (bank, account_no, statement) = key;
            let content = s.content_hash();
            let inner_mismatch = if content != stored_content {
                Some(format!(
                    "its {} stored lines hash to {}, it was stored with {}: a line was edited, added or removed",
                    s.lines.len(),
                    short(&content),
                    short(&stored_content)
                ))
            } else if currency.parse::<Currency>().is_err() {
                Some(format!("its currency {currency:?} is not one"))
            } else {
                None
            };
            out.push((
                bank.clone(),
                account_no.clone(),
                statement.clone(),
                Record {
                    digest: statement_digest(id, &bank, &s, at),
                    inner_mismatch,
                },
            ));
        }
        // Lines whose statement is gone.
        for ((bank, account_no, statement), lines) in by_statement {
            out.push((
                bank,
                account_no,
                statement,
                Record {
                    digest: String::new(),
                    inner_mismatch: Some(format!(
                        "{} lines remain of a statement that is not stored",
                        lines.len()
                    )),
                },
            ));
        }
        Ok(out)
    }

    /// Every record of an institution's record chain as the rows say now,
    /// by (kind, key); and each refund's state with its trail's last state.
    async fn stored_records(
        &mut self,
        id: &str,
    ) -> Result<(
        BTreeMap<(String, String), Record>,
        Vec<(String, String, Option<String>)>,
    )> {
        let mut records = BTreeMap::new();
        let plain = |digest: String| Record {
            digest,
            inner_mismatch: None,
        };
        let enrollments: Vec<(String, String)> = load!(self,
            "select enrollment_id, student_ref, cast(hours_bought as bigint) as hours_bought, \
               cast(bonus_hours as bigint) as bonus_hours, price_minor, currency, course_start, \
               course_end, created_at \
             from enrollments where institution_id = $1 order by enrollment_id",
            [id],
            |r, at = "created_at"| {
                let enrollment: String = r.try_get("enrollment_id")?;
                let student_ref: String = r.try_get("student_ref")?;
                let currency: String = r.try_get("currency")?;
                let digest = enrollment_digest(&EnrollmentFields {
                    institution: id,
                    enrollment: &enrollment,
                    student_ref: &student_ref,
                    hours_bought: r.try_get("hours_bought")?,
                    bonus_hours: r.try_get("bonus_hours")?,
                    price_minor: r.try_get("price_minor")?,
                    currency: &currency,
                    course_start: r.try_get("course_start")?,
                    course_end: r.try_get("course_end")?,
                    created_at_micros: at,
                });
                (enrollment, digest)
            }
        );
        for (enrollment, digest) in enrollments {
            records.insert(("enrollment".to_string(), enrollment), plain(digest));
        }
        for (bank, account_no, key, record) in self.stored_statements(id).await? {
            records.insert(
                (
                    "statement".to_string(),
                    statement_key(&bank, &account_no, &key),
                ),
                record,
            );
        }
        let refunds: Vec<(String, String, String)> = load!(self,
            "select refund_id, enrollment_id, amount_minor, payee_name, payee_account, payee_bank, \
               reason, requested_by, requested_on, answer_by, state \
             from refunds where institution_id = $1 order by refund_id",
            [id],
            |r| {
                let refund_id: String = r.try_get("refund_id")?;
                let enrollment: String = r.try_get("enrollment_id")?;
                let digest = match (
                    InstitutionId::parse(id),
                    EnrollmentId::parse(enrollment),
                    RefundId::parse(refund_id.clone()),
                ) {
                    (Ok(institution), Ok(enrollment), Ok(refund)) => refund_digest(&Refund {
                        institution,
                        id: refund,
                        enrollment,
                        amount_minor: r.try_get("amount_minor")?,
                        payee: Payee {
                            name: r.try_get("payee_name")?,
                            account: r.try_get("payee_account")?,
                            bank: r.try_get("payee_bank")?,
                        },
                        reason: r.try_get("reason")?,
                        requested_by: r.try_get("requested_by")?,
                        requested_on: r.try_get("requested_on")?,
                        answer_by: r.try_get("answer_by")?,
                        state: RefundState::Requested,
                        pay_by: None,
                        instruction_id: None,
                    }),
                    _ => String::new(),
                };
                (refund_id, digest, r.try_get::<String, _>("state")?)
            }
        );
        let events: Vec<(String, i64, String, String)> = load!(self,
            "select refund_id, cast(seq as bigint) as seq, at, actor, state, detail \
             from refund_events where institution_id = $1 order by refund_id, seq",
            [id],
            |r, at = "at"| {
                let refund_id: String = r.try_get("refund_id")?;
                let seq: i64 = r.try_get("seq")?;
                let state: String = r.try_get("state")?;
                let detail: Option<String> = r.try_get("detail")?;
                let actor: String = r.try_get("actor")?;
                let digest =
                    refund_event_digest(id, &refund_id, seq, at, &actor, &state, detail.as_deref());
                (refund_id, seq, state, digest)
            }
        );
        let mut last_state: BTreeMap<String, String> = BTreeMap::new();
        for (refund_id, seq, state, digest) in events {
            records.insert(
                (
                    "refund_event".to_string(),
                    refund_event_key(&refund_id, seq),
                ),
                plain(digest),
            );
            last_state.insert(refund_id, state);
        }
        let mut states = Vec::with_capacity(refunds.len());
        for (refund_id, digest, state) in refunds {
            records.insert(("refund".to_string(), refund_id.clone()), plain(digest));
            let trail = last_state.get(&refund_id).cloned();
            states.push((refund_id, state, trail));
        }
        let payees: Vec<(i64, String)> = load!(self,
            "select cast(version as bigint) as version, name, account, bank, set_by, set_at \
             from institution_payees where institution_id = $1 order by version",
            [id],
            |r, at = "set_at"| {
                let version: i64 = r.try_get("version")?;
                let payee = Payee {
                    name: r.try_get("name")?,
                    account: r.try_get("account")?,
                    bank: r.try_get("bank")?,
                };
                let set_by: String = r.try_get("set_by")?;
                (version, payee_digest(id, version, &payee, &set_by, at))
            }
        );
        for (version, digest) in payees {
            records.insert(("payee".to_string(), version.to_string()), plain(digest));
        }
        for (kind, key, digest) in self.stored_lesson_records(id).await? {
            records.insert((kind.to_string(), key), plain(digest));
        }
        for (kind, key, digest) in self.stored_approval_records(id).await? {
            records.insert((kind.to_string(), key), plain(digest));
        }
        Ok((records, states))
    }

    /// The maker–checker requests naming the institution and their
    /// decisions, as the rows say now: (kind, key, digest).
    async fn stored_approval_records(
        &mut self,
        id: &str,
    ) -> Result<Vec<(&'static str, String, String)>> {
        let mut out: Vec<(&'static str, String, String)> = load!(self,
            "select approval_id, kind, jurisdiction_code, subject, payload, summary, requested_by, \
               requested_token, requested_name, requested_at \
             from approvals where institution_id = $1",
            [id],
            |r| {
                let approval: String = r.try_get("approval_id")?;
                let kind: String = r.try_get("kind")?;
                let jurisdiction: String = r.try_get("jurisdiction_code")?;
                // A kind or code no version wrote cannot match its digest.
                let digest = match (
                    ApprovalKind::parse(&kind),
                    JurisdictionCode::parse(jurisdiction),
                ) {
                    (Some(kind), Ok(jurisdiction)) => approval_digest(
                        id,
                        &Approval {
                            id: approval.clone(),
                            kind,
                            jurisdiction,
                            institution: None,
                            subject: r.try_get("subject")?,
                            payload: r.try_get("payload")?,
                            summary: r.try_get("summary")?,
                            requested_by: r.try_get("requested_by")?,
                            requested_token: r.try_get("requested_token")?,
                            requested_name: r.try_get("requested_name")?,
                            requested_at: r.try_get::<DbTime, _>("requested_at")?.utc(),
                            claim: None,
                            decision: None,
                        },
                    ),
                    _ => String::new(),
                };
                ("approval", approval, digest)
            }
        );
        let decisions: Vec<(&'static str, String, String)> = load!(self,
            "select d.approval_id, d.decision, d.decided_by, d.decided_token, d.reason, d.decided_at \
             from approval_decisions d join approvals a on a.approval_id = d.approval_id \
             where a.institution_id = $1",
            [id],
            |r| {
                let approval: String = r.try_get("approval_id")?;
                let decision: String = r.try_get("decision")?;
                let digest = approval_decision_digest(
                    id,
                    &approval,
                    &Decision {
                        // Anything but "approved" as written is no approval.
                        approved: decision == "approved",
                        by: r.try_get("decided_by")?,
                        token: r.try_get("decided_token")?,
                        reason: r.try_get("reason")?,
                        at: r.try_get::<DbTime, _>("decided_at")?.utc(),
                    },
                );
                ("approval_decision", approval, digest)
            }
        );
        out.extend(decisions);
        Ok(out)
    }

    /// Lesson records, their steps and freezes, as the rows say now:
    /// (kind, key, digest).
    async fn stored_lesson_records(
        &mut self,
        id: &str,
    ) -> Result<Vec<(&'static str, String, String)>> {
        let mut out: Vec<(&'static str, String, String)> = load!(self,
            "select lesson_id, enrollment_id, cast(hours as bigint) as hours, occurred_on, \
               recorded_by, recorded_at, answer_by from lessons where institution_id = $1",
            [id],
            |r, at = "recorded_at"| {
                let lesson: String = r.try_get("lesson_id")?;
                let enrollment: String = r.try_get("enrollment_id")?;
                let recorded_by: String = r.try_get("recorded_by")?;
                let digest = lesson_digest(
                    id,
                    &lesson,
                    &enrollment,
                    r.try_get("hours")?,
                    r.try_get("occurred_on")?,
                    &recorded_by,
                    at,
                    r.try_get("answer_by")?,
                );
                ("lesson", lesson, digest)
            }
        );
        let steps: Vec<(&'static str, String, String)> = load!(self,
            "select lesson_id, cast(seq as bigint) as seq, at, on_day, actor, state, reason \
             from lesson_events where institution_id = $1",
            [id],
            |r, at = "at"| {
                let lesson: String = r.try_get("lesson_id")?;
                let seq: i64 = r.try_get("seq")?;
                let actor: String = r.try_get("actor")?;
                let state: String = r.try_get("state")?;
                let reason: Option<String> = r.try_get("reason")?;
                let digest = lesson_event_digest(
                    id,
                    &lesson,
                    seq,
                    at,
                    r.try_get("on_day")?,
                    &actor,
                    &state,
                    reason.as_deref(),
                );
                ("lesson_event", lesson_event_key(&lesson, seq), digest)
            }
        );
        out.extend(steps);
        let freezes: Vec<(&'static str, String, String)> = load!(self,
            "select cast(seq as bigint) as seq, frozen, reason, actor, at \
             from institution_freezes where institution_id = $1",
            [id],
            |r, at = "at"| {
                let seq: i64 = r.try_get("seq")?;
                let reason: String = r.try_get("reason")?;
                let actor: String = r.try_get("actor")?;
                let digest = freeze_digest(id, seq, r.try_get("frozen")?, &reason, &actor, at);
                ("freeze", seq.to_string(), digest)
            }
        );
        out.extend(freezes);
        Ok(out)
    }

    /// The audit log's records with seq in `(after, upto]`, as digests.
    async fn audit_records(&mut self, after: i64, upto: i64) -> Result<Vec<(i64, String)>> {
        Ok(load!(self,
            "select cast(seq as bigint) as seq, at, request_id, token_id, role, method, path, \
               cast(status as bigint) as status, outcome from audit_log \
             where seq > $1 and seq <= $2 order by seq",
            [after, upto],
            |r, at = "at"| {
                let seq: i64 = r.try_get("seq")?;
                let request_id: String = r.try_get("request_id")?;
                let token_id: Option<String> = r.try_get("token_id")?;
                let role: Option<String> = r.try_get("role")?;
                let method: String = r.try_get("method")?;
                let path: String = r.try_get("path")?;
                let outcome: String = r.try_get("outcome")?;
                let digest = audit_digest(&AuditFields {
                    seq,
                    at_micros: at,
                    request_id: &request_id,
                    token_id: token_id.as_deref(),
                    role: role.as_deref(),
                    method: &method,
                    path: &path,
                    status: r.try_get("status")?,
                    outcome: &outcome,
                });
                (seq, digest)
            }
        ))
    }
}

impl Store {
    /// Walks one institution's record chain from the rows and checks every
    /// record against its link (and every record has one).
    pub(crate) async fn verify_records(
        &self,
        id: &InstitutionId,
        wanted: Option<i64>,
        failures: &mut Vec<VerifyFailure>,
    ) -> Result<Walk> {
        let scope = id.as_str();
        let fail = |failures: &mut Vec<VerifyFailure>, seq: Option<i64>, reason: String| {
            failures.push(VerifyFailure::new(
                Some(scope),
                "records",
                seq,
                None,
                reason,
            ));
        };
        let mut snap = self.snapshot().await?;
        let links = snap.record_links(scope).await?;
        let walked = walk(scope, &links, wanted, |seq, reason| {
            fail(failures, seq, reason)
        });
        let (mut records, states) = snap.stored_records(scope).await?;
        let head = snap
            .stored_head(
                "select cast(last_seq as bigint), last_hash from record_heads where institution_id = $1",
                Some(scope),
            )
            .await?
            .unwrap_or((0, GENESIS_HASH.to_string()));
        snap.close().await?;
        for link in &links {
            let what = format!("{} {}", describe(&link.kind), link.key);
            match records.remove(&(link.kind.clone(), link.key.clone())) {
                None => fail(
                    failures,
                    Some(link.seq),
                    format!(
                        "{what} (record link {}) is missing from the database",
                        link.seq
                    ),
                ),
                Some(Record {
                    inner_mismatch: Some(why),
                    ..
                }) => fail(failures, Some(link.seq), format!("{what}: {why}")),
                Some(record) if record.digest != link.digest => fail(
                    failures,
                    Some(link.seq),
                    format!(
                        "{what} no longer matches the digest linked at record {}: {}",
                        link.seq,
                        changed_hint(&link.kind)
                    ),
                ),
                Some(_) => {}
            }
        }
        for ((kind, key), record) in records {
            let why = record
                .inner_mismatch
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            fail(
                failures,
                None,
                format!(
                    "{} {key} has no record link: it was written outside the application{why}",
                    describe(&kind)
                ),
            );
        }
        for (refund, state, trail) in states {
            if trail.as_deref() != Some(state.as_str()) {
                fail(
                    failures,
                    None,
                    format!(
                        "refund {refund} is {state}, its trail ends at {}",
                        trail.as_deref().unwrap_or("nothing")
                    ),
                );
            }
        }
        if !walked.broken && head != (walked.end.seq, walked.end.hash.clone()) {
            fail(
                failures,
                None,
                format!(
                    "record head says link {}, the links end at {}",
                    head.0, walked.end.seq
                ),
            );
        }
        Ok(walked)
    }

    /// Walks the audit log's chain from the rows and checks every audit
    /// record against its link.
    pub(crate) async fn verify_audit(
        &self,
        wanted: Option<i64>,
        failures: &mut Vec<VerifyFailure>,
    ) -> Result<Walk> {
        let fail = |failures: &mut Vec<VerifyFailure>, seq: Option<i64>, reason: String| {
            failures.push(VerifyFailure::new(None, "audit", seq, None, reason));
        };
        let mut snap = self.snapshot().await?;
        let head = snap
            .stored_head(
                "select cast(last_seq as bigint), last_hash from audit_head where id = 1",
                None,
            )
            .await?
            .unwrap_or((0, GENESIS_HASH.to_string()));
        let max_seq = snap.audit_max_seq().await?;
        let mut walker = Walker::new(AUDIT_SCOPE, false, wanted);
        let (mut reported, mut unlinked, mut first_unlinked) = (0u64, 0u64, None);
        let mut after: i64 = 0;
        // A page at a time by seq range: the log grows with every request.
        while after < max_seq {
            let upto = after.saturating_add(AUDIT_PAGE);
            let links = snap.audit_links(after, upto).await?;
            walker.feed(&links, |seq, reason| fail(failures, seq, reason));
            let mut records: BTreeMap<i64, String> =
                snap.audit_records(after, upto).await?.into_iter().collect();
            for link in &links {
                let problem = match records.remove(&link.seq) {
                    None => Some(format!(
                        "audit log entry {} is missing (its link remains)",
                        link.seq
                    )),
                    Some(digest) if digest != link.digest => Some(format!(
                        "audit log entry {} no longer matches its link: it was edited",
                        link.seq
                    )),
                    Some(_) => None,
                };
                if let Some(reason) = problem {
                    reported += 1;
                    if reported <= 10 {
                        fail(failures, Some(link.seq), reason);
                    }
                }
            }
            unlinked += records.len() as u64;
            first_unlinked = first_unlinked.or(records.keys().next().copied());
            after = upto;
        }
        snap.close().await?;
        let walked = walker.walk;
        if reported > 10 {
            fail(
                failures,
                None,
                format!("and {} more audit log entries", reported - 10),
            );
        }
        if let Some(seq) = first_unlinked {
            fail(
                failures,
                Some(seq),
                format!(
                    "{unlinked} audit log entries have no link (the first is {seq}): written outside the application"
                ),
            );
        }
        if !walked.broken && head != (walked.end.seq, walked.end.hash.clone()) {
            fail(
                failures,
                None,
                format!(
                    "audit head says entry {}, the links end at {}",
                    head.0, walked.end.seq
                ),
            );
        }
        Ok(walked)
    }

    /// Each account's totals with the seq and after-totals of its last
    /// posting, in one statement.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn account_totals_and_last_postings(
        &self,
        id: &str,
    ) -> Result<Vec<(String, Totals, Option<(i64, Totals)>)>> {
        let mut snap = self.snapshot().await?;
        let rows = load!(
            &mut snap,
            // The last posting's key is found once per account, each part
            // by an index's maximum (materialized, so that no planner
            // re-evaluates it for every posting of the account: a join
            // condition holding the subquery made this quadratic in an
            // account's postings, 43 s for one of 26,000).
            "with a as materialized ( \
               select a.account_code, \
                 a.posted_debits_minor as a_pd, a.posted_credits_minor as a_pc, \
                 a.pending_debits_minor as a_nd, a.pending_credits_minor as a_nc, \
                 (select max(q.seq) from postings q where q.institution_id = a.institution_id \
                    and q.account_code = a.account_code) as last_seq \
               from accounts a where a.institution_id = $1), \
             l as materialized ( \
               select a.*, (select max(r.leg) from postings r where r.institution_id = $1 \
                   and r.seq = a.last_seq and r.account_code = a.account_code) as last_leg \
               from a) \
             select l.account_code, l.a_pd, l.a_pc, l.a_nd, l.a_nc, \
               cast(p.seq as bigint) as p_seq, \
               p.posted_debits_after_minor as p_pd, p.posted_credits_after_minor as p_pc, \
               p.pending_debits_after_minor as p_nd, p.pending_credits_after_minor as p_nc \
             from l left join postings p \
               on p.institution_id = $1 and p.seq = l.last_seq and p.leg = l.last_leg \
             order by l.account_code",
            [id],
            |r| {
                let stored = Totals {
                    posted_debits_minor: r.try_get("a_pd")?,
                    posted_credits_minor: r.try_get("a_pc")?,
                    pending_debits_minor: r.try_get("a_nd")?,
                    pending_credits_minor: r.try_get("a_nc")?,
                };
                let seq: Option<i64> = r.try_get("p_seq")?;
                let last = match seq {
                    Some(seq) => Some((
                        seq,
                        Totals {
                            posted_debits_minor: r.try_get("p_pd")?,
                            posted_credits_minor: r.try_get("p_pc")?,
                            pending_debits_minor: r.try_get("p_nd")?,
                            pending_credits_minor: r.try_get("p_nc")?,
                        },
                    )),
                    None => None,
                };
                (r.try_get::<String, _>("account_code")?, stored, last)
            }
        );
        snap.close().await?;
        Ok(rows)
    }

    /// Postings whose entry is gone (a superuser's delete with foreign keys off).
    pub(crate) async fn postings_without_entries(&self, id: &str) -> Result<i64> {
        let mut snap = self.snapshot().await?;
        let n = snap
            .stored_head(
                "select cast(count(*) as bigint), '' from postings p where p.institution_id = $1 \
                 and not exists (select 1 from entries e \
                   where e.institution_id = p.institution_id and e.seq = p.seq)",
                Some(id),
            )
            .await?
            .map_or(0, |(n, _)| n);
        snap.close().await?;
        Ok(n)
    }

    /// Each enrollment's stored counters: (enrollment, hours consumed, paid).
    pub(crate) async fn enrollment_counters(&self, id: &str) -> Result<Vec<(String, i64, i64)>> {
        let mut snap = self.snapshot().await?;
        let counters = load!(
            &mut snap,
            "select enrollment_id, cast(hours_consumed as bigint) as hours, paid_minor \
             from enrollments where institution_id = $1 order by enrollment_id",
            [id],
            |r| (
                r.try_get("enrollment_id")?,
                r.try_get("hours")?,
                r.try_get("paid_minor")?
            )
        );
        snap.close().await?;
        Ok(counters)
    }

    /// Links the records written before their kinds joined the record
    /// chains, once per backfill (see [`BACKFILLS`]), in order.
    pub(crate) async fn link_records_written_before_chains(&self) -> Result<()> {
        for backfill in &BACKFILLS {
            self.link_records_written_before(backfill).await?;
        }
        Ok(())
    }

    /// One backfill: the first `migrate` after its migration claims its
    /// table and links every record that has no link yet, per institution
    /// in the order they were most likely written in (and with the first,
    /// the audit log in seq order). Later ones find nothing left to link,
    /// and claim theirs; a record added behind the application's back
    /// after that stays unlinked, and is named by `verify`.
    async fn link_records_written_before(&self, backfill: &Backfill) -> Result<()> {
        let institutions = self.institutions().await?;
        let mut snap = self.snapshot().await?;
        let claimed = snap
            .stored_head(
                &format!(
                    "select cast(count(*) as bigint), '' from {}",
                    backfill.table
                ),
                None,
            )
            .await?
            .is_some_and(|(n, _)| n > 0);
        if claimed {
            snap.close().await?;
            return Ok(());
        }
        let mut per_institution = Vec::new();
        for institution in institutions {
            let id = institution.id.to_string();
            let linked: BTreeSet<(String, String)> = snap
                .record_links(&id)
                .await?
                .into_iter()
                .map(|l| (l.kind, l.key))
                .collect();
            let (records, _) = snap.stored_records(&id).await?;
            let mut todo: Vec<((String, String), String)> = records
                .into_iter()
                .filter(|(k, _)| !linked.contains(k))
                .map(|(k, r)| (k, r.digest))
                .collect();
            // By kind as below, then by key as numbered (shorter first).
            todo.sort_by(|((ka, a), _), ((kb, b), _)| {
                (written_rank(ka), a.len(), a).cmp(&(written_rank(kb), b.len(), b))
            });
            per_institution.push((id, todo));
        }
        let audit: Vec<(i64, String)> = if backfill.audit {
            let linked_audit: BTreeSet<i64> = snap
                .audit_links(0, i64::MAX)
                .await?
                .iter()
                .map(|l| l.seq)
                .collect();
            snap.audit_records(0, i64::MAX)
                .await?
                .into_iter()
                .filter(|(seq, _)| !linked_audit.contains(seq))
                .collect()
        } else {
            vec![]
        };
        snap.close().await?;
        let claim = format!(
            "insert into {} (id, linked_at) values (1, $1) on conflict (id) do nothing",
            backfill.table
        );
        in_tx!(self, |tx, now| {
            let first = sqlx::query(&claim)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if first {
                for (id, todo) in per_institution {
                    for ((kind, key), digest) in todo {
                        seal_record!(tx, &id, &kind, key, digest);
                    }
                }
                for (seq, digest) in audit {
                    let prev: String = sqlx::query_scalar(
                        "update audit_head set last_seq = last_seq where id = 1 returning last_hash",
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    let hash =
                        link_hash(&prev, AUDIT_SCOPE, seq, "audit", &seq.to_string(), &digest);
                    sqlx::query(
                        "insert into audit_links (seq, digest, prev_hash, hash) values ($1, $2, $3, $4)",
                    )
                    .bind(seq)
                    .bind(&digest)
                    .bind(&prev)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("update audit_head set last_seq = $1, last_hash = $2 where id = 1")
                        .bind(seq)
                        .bind(&hash)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        });
        Ok(())
    }
}

/// A one-time linking of the records written before their kinds joined
/// the record chains: the table the first `migrate` after its migration
/// claims, and whether the audit log's chain comes with it.
pub(crate) struct Backfill {
    table: &'static str,
    audit: bool,
}

/// Every backfill, oldest first: the record chains and the audit log
/// (migration 0012), lesson records, their steps and freezes (0026),
/// approval requests and their decisions (0027).
const BACKFILLS: [Backfill; 3] = [
    Backfill {
        table: "record_backfill",
        audit: true,
    },
    Backfill {
        table: "record_backfill_lessons",
        audit: false,
    },
    Backfill {
        table: "record_backfill_approvals",
        audit: false,
    },
];

/// Records before what refers to them: enrollments, statements, refunds
/// before their events, payees, lessons before their steps, freezes,
/// requests before their decisions.
fn written_rank(kind: &str) -> u8 {
    match kind {
        "enrollment" => 0,
        "statement" => 1,
        "refund" => 2,
        "refund_event" => 3,
        "payee" => 4,
        "lesson" => 5,
        "lesson_event" => 6,
        "freeze" => 7,
        "approval" => 8,
        "approval_decision" => 9,
        _ => 10,
    }
}
