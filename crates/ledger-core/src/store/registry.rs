//! The registry in the store, both dialects: jurisdictions, rule packs,
//! institutions (with their chart of accounts and chain head) and
//! enrollments (with their `prepaid/{enrollment}` account), each created
//! idempotently: the same fields again change nothing, other fields are
//! `exists_with_different_fields`.

use sqlx::error::ErrorKind;

use crate::domain::accounts::{AccountCode, AccountType};
use crate::domain::books::EnrollmentBook;
use crate::domain::chain::{enrollment_record_digest, GENESIS_HASH};
use crate::domain::error::LedgerError;
use crate::domain::ids::{EnrollmentId, InstitutionId};
use crate::domain::policy::RulePack;
use crate::domain::registry::{Enrollment, Institution, Jurisdiction};
use crate::store::bulk::within;
use crate::store::rows::{self, EnrollmentRow, InstitutionRow, RulePackRow};
use crate::store::{DbTime, IdSpan, Result, Store, StoreError};

/// Whether `e` is the database refusing a row for breaking a constraint of
/// `kind` (the same on both dialects).
pub(crate) fn violates(e: &sqlx::Error, kind: ErrorKind) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == kind)
}

/// The database refusing a row that names a jurisdiction it does not have
/// (`code`) is `unknown_jurisdiction`; any other error is itself.
fn unknown_jurisdiction(e: sqlx::Error, code: &str) -> StoreError {
    if violates(&e, ErrorKind::ForeignKeyViolation) {
        LedgerError::UnknownJurisdiction {
            code: code.to_string(),
        }
        .into()
    } else {
        e.into()
    }
}

impl Store {
    pub async fn create_jurisdiction(&self, j: &Jurisdiction) -> Result<()> {
        let now = DbTime::from(self.now());
        let parent = j.parent.as_ref().map(|p| p.as_str());
        on_pool!(self, |pool| sqlx::query(
            "insert into jurisdictions (code, name, parent_code, created_at) \
             values ($1, $2, $3, $4) on conflict (code) do nothing",
        )
        .bind(j.code.as_str())
        .bind(&j.name)
        .bind(parent)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| if violates(&e, ErrorKind::CheckViolation) {
            LedgerError::InvalidInstitution {
                reason: format!("jurisdiction {}: only 000000 is the root", j.code),
            }
            .into()
        } else {
            unknown_jurisdiction(e, parent.unwrap_or_default())
        }))?;
        let (name, parent_code): (String, Option<String>) = on_pool!(self, |pool| {
            sqlx::query_as("select name, parent_code from jurisdictions where code = $1")
                .bind(j.code.as_str())
                .fetch_one(pool)
                .await?
        });
        if name != j.name || parent_code.as_deref() != parent {
            return Err(LedgerError::ExistsWithDifferentFields {
                what: "jurisdiction",
                id: j.code.to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Adds a rule pack version (idempotent); never rewrites an earlier one.
    pub async fn put_rule_pack(&self, pack: &RulePack) -> Result<()> {
        pack.params.validate()?;
        let params =
            serde_json::to_string(&pack.params).map_err(rows::corrupt_as("rule pack params"))?;
        let version = i32::try_from(pack.version).map_err(rows::corrupt_as("rule pack"))?;
        let now = DbTime::from(self.now());
        on_pool!(self, |pool| sqlx::query(
            "insert into rule_packs (jurisdiction_code, version, effective_from, params, \
               created_at) values ($1, $2, $3, $4, $5) on conflict do nothing",
        )
        .bind(pack.jurisdiction.as_str())
        .bind(version)
        .bind(pack.effective_from)
        .bind(&params)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| unknown_jurisdiction(e, pack.jurisdiction.as_str())))?;
        let row: RulePackRow = on_pool!(self, |pool| sqlx::query_as(
            "select jurisdiction_code, version, effective_from, params from rule_packs \
             where jurisdiction_code = $1 and version = $2",
        )
        .bind(pack.jurisdiction.as_str())
        .bind(version)
        .fetch_one(pool)
        .await?);
        if &RulePack::try_from(row)? != pack {
            return Err(LedgerError::ExistsWithDifferentFields {
                what: "rule pack",
                id: format!("{}@{}", pack.jurisdiction, pack.version),
            }
            .into());
        }
        Ok(())
    }

    /// Registers an institution with its chart of accounts (idempotent).
    pub async fn create_institution(&self, institution: &Institution) -> Result<()> {
        institution.validate()?;
        let i = institution;
        let created = in_tx!(self, |tx, now, dialect| {
            let inserted = sqlx::query(
                "insert into institutions (institution_id, name, licence_no, jurisdiction_code, mode, \
                   category, status, currency, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 on conflict (institution_id) do nothing",
            )
            .bind(i.id.as_str())
            .bind(&i.name)
            .bind(&i.licence_no)
            .bind(i.jurisdiction.as_str())
            .bind(i.mode.code())
            .bind(i.category.code())
            .bind(i.status.code())
            .bind(i.currency.code())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| unknown_jurisdiction(e, i.jurisdiction.as_str()))?;
            let created = inserted.rows_affected() == 1;
            if created {
                for code in AccountCode::FIXED {
                    sqlx::query(
                        "insert into accounts (institution_id, account_code, account_type, currency, \
                           created_at) values ($1, $2, $3, $4, $5)",
                    )
                    .bind(i.id.as_str())
                    .bind(code.to_string())
                    .bind(match code.account_type() {
                        AccountType::Asset => "asset",
                        AccountType::Liability => "liability",
                    })
                    .bind(i.currency.code())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "insert into chain_heads (institution_id, last_seq, last_hash, last_recorded_at) \
                     values ($1, 0, $2, null)",
                )
                .bind(i.id.as_str())
                .bind(GENESIS_HASH)
                .execute(&mut *tx)
                .await?;
                refresh_figures!(tx, dialect, now, std::slice::from_ref(&i.id));
            }
            created
        });
        if !created && &self.institution(&i.id).await? != i {
            return Err(LedgerError::ExistsWithDifferentFields {
                what: "institution",
                id: i.id.to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Registers an enrollment and opens its `prepaid/{enrollment}` account
    /// (idempotent): whether it is new (`false`: the same enrollment was
    /// registered before, with the same terms).
    pub async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<bool> {
        enrollment.validate()?;
        let e = enrollment;
        let institution = self.institution(&e.institution).await?;
        if institution.currency != e.currency {
            return Err(LedgerError::CurrencyMismatch {
                expected: institution.currency,
                found: e.currency,
            }
            .into());
        }
        let hours = |h: u32| i32::try_from(h).map_err(rows::corrupt_as("enrollment hours"));
        let (hours_bought, bonus_hours) = (hours(e.hours_bought)?, hours(e.bonus_hours)?);
        in_tx!(self, |tx, now| {
            let inserted = sqlx::query(
                "insert into enrollments (institution_id, enrollment_id, student_ref, hours_bought, \
                   bonus_hours, price_minor, currency, course_start, course_end, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict do nothing",
            )
            .bind(e.institution.as_str())
            .bind(e.id.as_str())
            .bind(&e.student_ref)
            .bind(hours_bought)
            .bind(bonus_hours)
            .bind(e.price.minor())
            .bind(e.currency.code())
            .bind(e.course_start)
            .bind(e.course_end)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                let row: EnrollmentRow = sqlx::query_as(
                    "select * from enrollments where institution_id = $1 and enrollment_id = $2",
                )
                .bind(e.institution.as_str())
                .bind(e.id.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if &Enrollment::try_from(row)? != e {
                    return Err(LedgerError::ExistsWithDifferentFields {
                        what: "enrollment",
                        id: e.id.to_string(),
                    }
                    .into());
                }
                return Ok(false);
            }
            sqlx::query(
                "insert into accounts (institution_id, account_code, account_type, currency, created_at) \
                 values ($1, $2, 'liability', $3, $4)",
            )
            .bind(e.institution.as_str())
            .bind(AccountCode::Prepaid(e.id.clone()).to_string())
            .bind(e.currency.code())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let digest = enrollment_record_digest(e, now.micros());
            seal_record!(
                tx,
                e.institution.as_str(),
                "enrollment",
                e.id.to_string(),
                digest
            );
        });
        Ok(true)
    }

    pub async fn institution(&self, id: &InstitutionId) -> Result<Institution> {
        let row: Option<InstitutionRow> = on_reader!(self, |pool| {
            sqlx::query_as("select * from institutions where institution_id = $1")
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| LedgerError::UnknownInstitution {
            institution: id.to_string(),
        })?
        .try_into()
    }

    pub async fn institutions(&self) -> Result<Vec<Institution>> {
        let found: Vec<InstitutionRow> = on_reader!(self, |pool| {
            sqlx::query_as("select * from institutions order by institution_id")
                .fetch_all(pool)
                .await?
        });
        rows::convert(found)
    }

    /// A page of an institution's enrollments: at most `limit` after the id
    /// `after` names, by byte order of the id (the order a cursor compares
    /// in, whatever the database's collation).
    pub async fn enrollments_page(
        &self,
        id: &InstitutionId,
        after: Option<&EnrollmentId>,
        limit: usize,
    ) -> Result<Vec<Enrollment>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found: Vec<EnrollmentRow> = on_reader!(self, |pool, d| {
            let sql = format!(
                "select * from enrollments where institution_id = $1 \
                   and ($2 is null or enrollment_id{c} > $2) \
                 order by enrollment_id{c} limit $3",
                c = d.bytewise()
            );
            sqlx::query_as(&sql)
                .bind(id.as_str())
                .bind(after.map(EnrollmentId::as_str))
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows::convert(found)
    }

    /// One enrollment with the counters the books keep beside it (hours
    /// consumed, tuition paid net of reversals): one row, however long the
    /// institution's history.
    pub async fn enrollment_book(
        &self,
        institution: &InstitutionId,
        enrollment: &EnrollmentId,
    ) -> Result<Option<EnrollmentBook>> {
        let row: Option<EnrollmentRow> = on_reader!(self, |pool| sqlx::query_as(
            "select * from enrollments where institution_id = $1 and enrollment_id = $2",
        )
        .bind(institution.as_str())
        .bind(enrollment.as_str())
        .fetch_optional(pool)
        .await?);
        row.map(EnrollmentBook::try_from).transpose()
    }

    /// Every institution's enrollments (of a span, or all), by institution
    /// and id.
    pub async fn enrollments_in(&self, span: Option<IdSpan<'_>>) -> Result<Vec<Enrollment>> {
        let sql = format!(
            "select * from enrollments{} order by institution_id, enrollment_id",
            within(span, "where", "institution_id", 1)
        );
        let found: Vec<EnrollmentRow> =
            on_reader!(self, |pool| bind_span!(sqlx::query_as(&sql), span)
                .fetch_all(pool)
                .await?);
        rows::convert(found)
    }
}
