//! Reconciliation outcomes in the store, both dialects: matches and the
//! claims that keep every bank line and every entry matched at most once.
//! The database's primary keys enforce it; a conflicting claim is refused.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::domain::error::LedgerError;
use crate::domain::ids::InstitutionId;
use crate::domain::recon::days::{KeptFigures, SettledChain};
use crate::store::{Result, Store, StoreError};

/// One match to keep: automatic ones claim their lines and entries,
/// suggestions wait for an officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchRecord {
    /// Deterministic (from its bank lines), so a re-run finds it again.
    pub match_id: String,
    pub bank: String,
    pub account_no: String,
    pub pass: String,
    pub automatic: bool,
    pub explanation: String,
    /// (statement key, line number)
    pub lines: Vec<(String, i64)>,
    /// Entry seqs.
    pub entries: Vec<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordedMatches {
    pub stored: u32,
    pub already_held: u32,
}

/// What is already claimed on one account: lines (statement key, line
/// number) and, institution-wide, entry seqs.
pub type Claimed = (BTreeSet<(String, i64)>, BTreeSet<i64>);

fn claim_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("23505") | Some("1555") | Some("2067")))
}

/// Inserts a match's claims inside the transaction; a line or entry that
/// another match holds refuses it (`already_claimed`).
macro_rules! claim {
    ($tx:ident, $id:expr, $m:expr) => {{
        let m: &MatchRecord = $m;
        let refused = |what: String| -> StoreError {
            LedgerError::AlreadyClaimed {
                what,
                by: m.match_id.clone(),
            }
            .into()
        };
        for (key, line) in &m.lines {
            let r = sqlx::query(
                "insert into recon_line_claims (institution_id, bank_id, account_no, statement_key, line_no, match_id) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind($id)
            .bind(&m.bank)
            .bind(&m.account_no)
            .bind(key)
            .bind(*line as i32)
            .bind(&m.match_id)
            .execute(&mut *$tx)
            .await;
            match r {
                Err(e) if claim_conflict(&e) => return Err(refused(format!("bank line {key}#{line}"))),
                other => other?,
            };
        }
        for seq in &m.entries {
            let r = sqlx::query("insert into recon_entry_claims (institution_id, entry_seq, match_id) values ($1, $2, $3)")
                .bind($id)
                .bind(*seq)
                .bind(&m.match_id)
                .execute(&mut *$tx)
                .await;
            match r {
                Err(e) if claim_conflict(&e) => return Err(refused(format!("entry {seq}"))),
                other => other?,
            };
        }
    }};
}

/// One statement day's reconciliation: the three figures and the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconDay {
    pub statement_key: String,
    pub day: chrono::NaiveDate,
    pub bank_closing_minor: i64,
    pub ledger_balance_minor: i64,
    pub owed_minor: i64,
    /// `agrees`, `differs` or `quarantined`.
    pub status: String,
}

/// One kept version of a statement day's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedDay {
    pub bank: String,
    pub account_no: String,
    /// 1 when the day was first kept; each change of its figures adds one.
    pub version: i64,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    pub day: ReconDay,
}

/// How far a recording run has taken one account: `entry_seq`, an entry
/// seq every entry up to which its kept days were computed with (later
/// ones may have been too), and the part of its statement chain that is
/// settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    pub entry_seq: i64,
    pub chain: Option<SettledChain>,
}

/// [`Store::record_matches`] in five statements whatever the number of
/// matches; `None` when a claim conflicts (nothing was kept).
async fn postgres_bulk(
    pool: &sqlx::PgPool,
    id: &str,
    matches: &[MatchRecord],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<RecordedMatches>> {
    let mut tx = pool.begin().await?;
    let col = |f: &dyn Fn(&MatchRecord) -> String| matches.iter().map(f).collect::<Vec<_>>();
    let inserted: Vec<String> = sqlx::query_scalar(
        "insert into recon_matches (institution_id, match_id, bank_id, account_no, pass, status, \
           explanation, created_at, members) \
         select $1, m.match_id, m.bank_id, m.account_no, m.pass, m.status, m.explanation, $8, m.members \
         from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $9::text[]) \
           as m(match_id, bank_id, account_no, pass, status, explanation, members) \
         on conflict do nothing returning match_id",
    )
    .bind(id)
    .bind(col(&|m| m.match_id.clone()))
    .bind(col(&|m| m.bank.clone()))
    .bind(col(&|m| m.account_no.clone()))
    .bind(col(&|m| m.pass.clone()))
    .bind(col(&|m| {
        if m.automatic { "automatic" } else { "suggested" }.to_string()
    }))
    .bind(col(&|m| m.explanation.clone()))
    .bind(now)
    .bind(col(&|m| {
        serde_json::json!({ "lines": m.lines, "entries": m.entries }).to_string()
    }))
    .fetch_all(&mut *tx)
    .await?;
    let fresh: BTreeSet<&str> = inserted.iter().map(String::as_str).collect();
    let claiming = matches
        .iter()
        .filter(|m| m.automatic && fresh.contains(m.match_id.as_str()));
    let (mut l_match, mut l_bank, mut l_account, mut l_key, mut l_no) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut e_match, mut e_seq) = (vec![], vec![]);
    for m in claiming {
        for (key, line) in &m.lines {
            l_match.push(m.match_id.as_str());
            l_bank.push(m.bank.as_str());
            l_account.push(m.account_no.as_str());
            l_key.push(key.as_str());
            l_no.push(i32::try_from(*line).unwrap_or(i32::MAX));
        }
        for seq in &m.entries {
            e_match.push(m.match_id.as_str());
            e_seq.push(*seq);
        }
    }
    let lines = sqlx::query(
        "insert into recon_line_claims (institution_id, bank_id, account_no, statement_key, line_no, match_id) \
         select $1, * from unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[])",
    )
    .bind(id)
    .bind(&l_bank)
    .bind(&l_account)
    .bind(&l_key)
    .bind(&l_no)
    .bind(&l_match)
    .execute(&mut *tx)
    .await;
    let entries = match lines {
        Err(e) if claim_conflict(&e) => return Ok(None),
        other => {
            other?;
            sqlx::query(
                "insert into recon_entry_claims (institution_id, entry_seq, match_id) \
                 select $1, * from unnest($2::bigint[], $3::text[])",
            )
            .bind(id)
            .bind(&e_seq)
            .bind(&e_match)
            .execute(&mut *tx)
            .await
        }
    };
    match entries {
        Err(e) if claim_conflict(&e) => return Ok(None),
        other => other?,
    };
    tx.commit().await?;
    let stored = u32::try_from(inserted.len()).unwrap_or(u32::MAX);
    Ok(Some(RecordedMatches {
        stored,
        already_held: u32::try_from(matches.len()).unwrap_or(u32::MAX) - stored,
    }))
}

impl Store {
    /// Keeps each statement day's figures: a day seen for the first time is
    /// version 1; a day whose figures changed since its latest version gets
    /// the next one; an unchanged day adds nothing. Returns the versions
    /// added. With them, in the same transaction, the account's watermark
    /// when given; without it the watermark stays as it is.
    pub async fn record_days(
        &self,
        institution: &InstitutionId,
        bank: &str,
        account_no: &str,
        days: &[ReconDay],
        watermark: Option<Watermark>,
    ) -> Result<u32> {
        let id = institution.as_str();
        let mut added = 0;
        in_tx!(self, |tx, now| {
            if let Some(mark) = watermark {
                sqlx::query(
                    "insert into recon_watermarks (institution_id, bank_id, account_no, entry_seq, \
                       updated_at, chain_through, statements_through) \
                     values ($1, $2, $3, $4, $5, $6, $7) \
                     on conflict (institution_id, bank_id, account_no) \
                     do update set entry_seq = excluded.entry_seq, updated_at = excluded.updated_at, \
                       chain_through = excluded.chain_through, \
                       statements_through = excluded.statements_through",
                )
                .bind(id)
                .bind(bank)
                .bind(account_no)
                .bind(mark.entry_seq)
                .bind(now)
                .bind(mark.chain.map(|c| c.through))
                .bind(mark.chain.map(|c| c.statements))
                .execute(&mut *tx)
                .await?;
            }
            // The latest version of every day given, in one read of the
            // account's days from the earliest of them on.
            type Held = (String, i64, i64, i64, i64, String);
            let mut latest: std::collections::HashMap<String, Held> =
                std::collections::HashMap::new();
            let from = days.iter().map(|d| d.day).min();
            let held: Vec<Held> = match from {
                Some(from) => {
                    sqlx::query_as(
                        "select statement_key, cast(version as bigint), bank_closing_minor, \
                           ledger_balance_minor, owed_minor, status from recon_days \
                         where institution_id = $1 and bank_id = $2 and account_no = $3 \
                           and day >= $4",
                    )
                    .bind(id)
                    .bind(bank)
                    .bind(account_no)
                    .bind(from)
                    .fetch_all(&mut *tx)
                    .await?
                }
                None => Vec::new(),
            };
            for row in held {
                if latest.get(&row.0).is_none_or(|held| held.1 < row.1) {
                    latest.insert(row.0.clone(), row);
                }
            }
            for d in days {
                let version = match latest.get(&d.statement_key) {
                    Some((_, _, b, l, o, status))
                        if (*b, *l, *o)
                            == (d.bank_closing_minor, d.ledger_balance_minor, d.owed_minor)
                            && *status == d.status =>
                    {
                        continue
                    }
                    Some((_, v, ..)) => v + 1,
                    None => 1,
                };
                sqlx::query(
                    "insert into recon_days (institution_id, bank_id, account_no, statement_key, version, day, \
                       bank_closing_minor, ledger_balance_minor, owed_minor, status, recorded_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(id)
                .bind(bank)
                .bind(account_no)
                .bind(&d.statement_key)
                .bind(i32::try_from(version).unwrap_or(i32::MAX))
                .bind(d.day)
                .bind(d.bank_closing_minor)
                .bind(d.ledger_balance_minor)
                .bind(d.owed_minor)
                .bind(&d.status)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                added += 1;
            }
        });
        Ok(added)
    }

    /// How far the recording runs have taken an account (see
    /// [`Store::record_days`]); `None` before any run kept its days.
    pub async fn recon_watermark(
        &self,
        institution: &InstitutionId,
        bank: &str,
        account_no: &str,
    ) -> Result<Option<Watermark>> {
        type Row = (i64, Option<chrono::NaiveDate>, Option<i64>);
        let row: Option<Row> = on_reader!(self, |pool| sqlx::query_as(
            "select entry_seq, chain_through, statements_through from recon_watermarks \
             where institution_id = $1 and bank_id = $2 and account_no = $3"
        )
        .bind(institution.as_str())
        .bind(bank)
        .bind(account_no)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(entry_seq, through, statements)| Watermark {
            entry_seq,
            chain: through
                .zip(statements)
                .map(|(through, statements)| SettledChain {
                    through,
                    statements,
                }),
        }))
    }

    /// The ledger figures of the latest version of each kept day of one
    /// account, by statement key: the days on or after `from`, or every
    /// one without it.
    pub async fn recon_kept_figures(
        &self,
        institution: &InstitutionId,
        bank: &str,
        account_no: &str,
        from: Option<chrono::NaiveDate>,
    ) -> Result<BTreeMap<String, KeptFigures>> {
        type Row = (String, i64, chrono::NaiveDate, i64, i64);
        let from_day = if from.is_some() { " and day >= $4" } else { "" };
        let sql = format!(
            "select statement_key, cast(version as bigint), day, ledger_balance_minor, owed_minor \
             from recon_days where institution_id = $1 and bank_id = $2 and account_no = $3{from_day} \
             order by statement_key, version"
        );
        let rows: Vec<Row> = on_reader!(self, |pool| {
            let mut query = sqlx::query_as(&sql)
                .bind(institution.as_str())
                .bind(bank)
                .bind(account_no);
            if let Some(day) = from {
                query = query.bind(day);
            }
            query.fetch_all(pool).await?
        });
        // Versions ascend within a key: the last one read stays.
        Ok(rows
            .into_iter()
            .map(|(key, _, day, ledger_balance_minor, owed_minor)| {
                let figures = KeptFigures {
                    day,
                    ledger_balance_minor,
                    owed_minor,
                };
                (key, figures)
            })
            .collect())
    }

    /// Every recorded version of every statement day of an institution's
    /// accounts, oldest version first within a day: the history an auditor
    /// reads when a day's figures changed after they were first kept.
    pub async fn recon_day_history(&self, institution: &InstitutionId) -> Result<Vec<RecordedDay>> {
        let sql = "select bank_id, account_no, cast(version as bigint), recorded_at, statement_key, day, \
               bank_closing_minor, ledger_balance_minor, owed_minor, status from recon_days \
             where institution_id = $1 \
             order by bank_id, account_no, day, statement_key, version";
        type Row = (
            String,
            String,
            i64,
            crate::store::DbTime,
            String,
            chrono::NaiveDate,
            i64,
            i64,
            i64,
            String,
        );
        let rows: Vec<Row> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(institution.as_str())
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|r| RecordedDay {
                bank: r.0,
                account_no: r.1,
                version: r.2,
                recorded_at: r.3.utc(),
                day: ReconDay {
                    statement_key: r.4,
                    day: r.5,
                    bank_closing_minor: r.6,
                    ledger_balance_minor: r.7,
                    owed_minor: r.8,
                    status: r.9,
                },
            })
            .collect())
    }

    /// The latest recorded version of each statement day of an
    /// institution's accounts, in the order of [`Store::recon_day_history`].
    pub async fn recon_days(&self, institution: &InstitutionId) -> Result<Vec<RecordedDay>> {
        let mut days = self.recon_day_history(institution).await?;
        // Versions of one day are adjacent and ascending: keep the last.
        let same_day = |a: &RecordedDay, b: &RecordedDay| {
            (&a.bank, &a.account_no, &a.day.statement_key)
                == (&b.bank, &b.account_no, &b.day.statement_key)
        };
        let mut latest: Vec<RecordedDay> = Vec::with_capacity(days.len());
        for d in days.drain(..) {
            match latest.last_mut() {
                Some(last) if same_day(last, &d) => *last = d,
                _ => latest.push(d),
            }
        }
        Ok(latest)
    }

    pub async fn claimed(
        &self,
        institution: &InstitutionId,
        bank: &str,
        account_no: &str,
    ) -> Result<Claimed> {
        let id = institution.as_str();
        let lines_sql = "select statement_key, cast(line_no as bigint) from recon_line_claims \
                         where institution_id = $1 and bank_id = $2 and account_no = $3";
        let entries_sql = "select entry_seq from recon_entry_claims where institution_id = $1";
        let (lines, entries): (Vec<(String, i64)>, Vec<i64>) = on_reader!(self, |pool| (
            sqlx::query_as(lines_sql)
                .bind(id)
                .bind(bank)
                .bind(account_no)
                .fetch_all(pool)
                .await?,
            sqlx::query_scalar(entries_sql)
                .bind(id)
                .fetch_all(pool)
                .await?,
        ));
        Ok((lines.into_iter().collect(), entries.into_iter().collect()))
    }

    /// Keeps a reconciliation run's matches in one transaction: a match
    /// already held is skipped; an automatic match whose line or entry
    /// another match holds is refused (`already_claimed`), whole run.
    pub async fn record_matches(
        &self,
        institution: &InstitutionId,
        matches: &[MatchRecord],
    ) -> Result<RecordedMatches> {
        self.institution(institution).await?;
        let id = institution.as_str();
        if let Store::Postgres(s) = self {
            // A run keeps up to a million matches: set-wise on PostgreSQL.
            // A conflicting claim rolls it back and the row-by-row path
            // below names the line or entry refused.
            if let Some(report) = postgres_bulk(s.pool(), id, matches, self.now()).await? {
                return Ok(report);
            }
        }
        let mut report = RecordedMatches::default();
        in_tx!(self, |tx, now| {
            for m in matches {
                let members =
                    serde_json::json!({ "lines": m.lines, "entries": m.entries }).to_string();
                let inserted = sqlx::query(
                    "insert into recon_matches (institution_id, match_id, bank_id, account_no, pass, status, \
                       explanation, created_at, members) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict do nothing",
                )
                .bind(id)
                .bind(&m.match_id)
                .bind(&m.bank)
                .bind(&m.account_no)
                .bind(&m.pass)
                .bind(if m.automatic { "automatic" } else { "suggested" })
                .bind(&m.explanation)
                .bind(now)
                .bind(members)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    report.already_held += 1;
                    continue;
                }
                report.stored += 1;
                if m.automatic {
                    claim!(tx, id, m);
                }
            }
        });
        Ok(report)
    }

    /// An officer confirms a suggestion (it then claims its lines and
    /// entries, refused if another match holds one) or rejects it. Each
    /// decision is kept with who and when; a decided suggestion is final.
    pub async fn decide_suggestion(
        &self,
        institution: &InstitutionId,
        match_id: &str,
        confirm: bool,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<()> {
        if actor.trim().is_empty() {
            return Err(LedgerError::InvalidField {
                field: "actor",
                reason: "who decides must be named".into(),
            }
            .into());
        }
        let id = institution.as_str();
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("match members: {e}"));
        in_tx!(self, |tx, now| {
            let row: Option<(String, String, String, String)> = sqlx::query_as(
                "select status, bank_id, account_no, members from recon_matches \
                 where institution_id = $1 and match_id = $2",
            )
            .bind(id)
            .bind(match_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((status, bank, account_no, members)) = row else {
                return Err(LedgerError::UnknownSuggestion {
                    institution: id.to_string(),
                    match_id: match_id.to_string(),
                }
                .into());
            };
            if status != "suggested" {
                return Err(LedgerError::SuggestionDecided {
                    match_id: match_id.to_string(),
                    status,
                }
                .into());
            }
            let members: serde_json::Value = serde_json::from_str(&members).map_err(corrupt)?;
            let m = MatchRecord {
                match_id: match_id.to_string(),
                bank,
                account_no,
                pass: String::new(),
                automatic: true,
                explanation: String::new(),
                lines: serde_json::from_value(members["lines"].clone()).map_err(corrupt)?,
                entries: serde_json::from_value(members["entries"].clone()).map_err(corrupt)?,
            };
            let decision = if confirm { "confirmed" } else { "rejected" };
            if confirm {
                claim!(tx, id, &m);
            }
            sqlx::query(
                "update recon_matches set status = $3 where institution_id = $1 and match_id = $2",
            )
            .bind(id)
            .bind(match_id)
            .bind(decision)
            .execute(&mut *tx)
            .await?;
            let seq: i64 = sqlx::query_scalar(
                "select cast(coalesce(max(seq), 0) + 1 as bigint) from recon_decisions \
                 where institution_id = $1 and match_id = $2",
            )
            .bind(id)
            .bind(match_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "insert into recon_decisions (institution_id, match_id, seq, decision, decided_by, comment, decided_at) \
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(match_id)
            .bind(seq as i32)
            .bind(decision)
            .bind(actor)
            .bind(comment)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Suggestions waiting for an officer: (match id, pass, explanation).
    pub async fn suggestions(
        &self,
        institution: &InstitutionId,
    ) -> Result<Vec<(String, String, String)>> {
        let sql = "select match_id, pass, explanation from recon_matches \
                   where institution_id = $1 and status = 'suggested' order by match_id";
        Ok(on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(institution.as_str())
            .fetch_all(pool)
            .await?))
    }
}
