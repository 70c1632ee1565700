//! The reference data the books hang on: jurisdictions, institutions and
//! enrollments, each validated at construction.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::bounds;
use crate::domain::error::LedgerError;
use crate::domain::ids::{EnrollmentId, InstitutionId, JurisdictionCode};
use crate::domain::money::{Amount, Currency};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jurisdiction {
    pub code: JurisdictionCode,
    pub name: String,
    /// `None` only for the national root.
    pub parent: Option<JurisdictionCode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionMode {
    /// 银行托管: fees go into the supervised account.
    Custody,
    /// 风险保证金: fees are collected by the institution, backed by a deposit.
    Deposit,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Subject,
    NonSubject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstitutionStatus {
    Active,
    Suspended,
    Closed,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:path => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn code(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
            pub fn parse(text: &str) -> Result<Self, LedgerError> {
                match text {
                    $($text => Ok($variant),)+
                    other => Err(LedgerError::InvalidInstitution {
                        reason: format!(
                            "{} {other:?} is not one of {}",
                            stringify!($ty),
                            [$($text),+].join(", ")
                        ),
                    }),
                }
            }
        }
    };
}

text_enum!(SupervisionMode { SupervisionMode::Custody => "custody", SupervisionMode::Deposit => "deposit", SupervisionMode::Both => "both" });
text_enum!(Category { Category::Subject => "subject", Category::NonSubject => "non_subject" });
text_enum!(InstitutionStatus { InstitutionStatus::Active => "active", InstitutionStatus::Suspended => "suspended", InstitutionStatus::Closed => "closed" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Institution {
    pub id: InstitutionId,
    pub name: String,
    pub licence_no: String,
    pub jurisdiction: JurisdictionCode,
    pub mode: SupervisionMode,
    pub category: Category,
    pub status: InstitutionStatus,
    pub currency: Currency,
}

impl Institution {
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.name.trim().is_empty() {
            return Err(LedgerError::InvalidInstitution {
                reason: "name is empty".into(),
            });
        }
        if self.licence_no.trim().is_empty() {
            return Err(LedgerError::InvalidInstitution {
                reason: "licence number is empty".into(),
            });
        }
        for (what, value, max) in [
            ("name", &self.name, 200),
            ("licence number", &self.licence_no, 64),
        ] {
            if let Some(why) = bounds::text_refusal(value, max) {
                return Err(LedgerError::InvalidInstitution {
                    reason: format!("{what} {why}"),
                });
            }
        }
        Ok(())
    }
}

/// One contract of one student: what was bought and what was actually paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub institution: InstitutionId,
    pub id: EnrollmentId,
    /// A pseudonymous reference to the student; no personal data is kept.
    pub student_ref: String,
    /// Class hours paid for (bonus hours excluded).
    pub hours_bought: u32,
    /// Class hours given for free: consumed after the paid ones, never money.
    pub bonus_hours: u32,
    /// The price actually paid for `hours_bought` (discounts included).
    pub price: Amount,
    pub currency: Currency,
    pub course_start: NaiveDate,
    pub course_end: NaiveDate,
}

impl Enrollment {
    pub fn validate(&self) -> Result<(), LedgerError> {
        let invalid = |reason: &str| LedgerError::InvalidEnrollment {
            reason: format!("{}: {reason}", self.id),
        };
        if self.hours_bought == 0 {
            return Err(invalid("hours_bought must be positive"));
        }
        bounds::check_hours("hours_bought", self.hours_bought)?;
        bounds::check_hours("bonus_hours", self.bonus_hours)?;
        bounds::check_day("course_start", self.course_start)?;
        bounds::check_day("course_end", self.course_end)?;
        if self.course_end < self.course_start {
            return Err(invalid("course_end is before course_start"));
        }
        if self.student_ref.trim().is_empty() {
            return Err(invalid("student_ref is empty"));
        }
        if let Some(why) = bounds::text_refusal(&self.student_ref, 128) {
            return Err(invalid(&format!("student_ref {why}")));
        }
        Ok(())
    }

    pub fn total_hours(&self) -> u32 {
        self.hours_bought.saturating_add(self.bonus_hours)
    }

    /// The tuition earned once `hours` class hours have been consumed.
    ///
    /// Rounding rule (cumulative floor): value(h) = ⌊price × min(h, bought) /
    /// bought⌋. Each consumption releases value(after) − value(before), so the
    /// fen lost to rounding on early hours is released with later ones, the
    /// whole price is released exactly when the paid hours are used up, and
    /// rounding always favours the family (never released early). Bonus hours
    /// (past `hours_bought`) are worth nothing.
    pub fn earned_after(&self, hours: u32) -> i64 {
        let counted = i128::from(hours.min(self.hours_bought));
        let price = i128::from(self.price.minor());
        let value = price * counted / i128::from(self.hours_bought);
        i64::try_from(value).expect("value is at most the price, which is an i64")
    }
}

/// The part of an enrollment that changes as lessons are consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentState {
    pub enrollment: Enrollment,
    pub hours_consumed: u32,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrollment(price_minor: i64, bought: u32, bonus: u32) -> Enrollment {
        Enrollment {
            institution: InstitutionId::parse("I").unwrap(),
            id: EnrollmentId::parse("E").unwrap(),
            student_ref: "S".into(),
            hours_bought: bought,
            bonus_hours: bonus,
            price: Amount::from_minor(price_minor).unwrap(),
            currency: Currency::Cny,
            course_start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            course_end: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        }
    }

    #[track_caller]
    fn check(price_minor: i64, bought: u32, hours: u32, earned: i64) {
        assert_eq!(
            enrollment(price_minor, bought, 5).earned_after(hours),
            earned
        );
    }

    #[test]
    fn earned_tuition_rounds_down_cumulatively_and_reaches_the_price_exactly() {
        check(100_000, 3, 0, 0);
        check(100_000, 3, 1, 33_333); // 333.333… → 333.33, never 333.34
        check(100_000, 3, 2, 66_666);
        check(100_000, 3, 3, 100_000); // the last hour carries the remainder
        check(100_000, 3, 8, 100_000); // bonus hours are worth nothing
        check(1, 60, 59, 0);
        check(1, 60, 60, 1);
        check(i64::MAX, 7, 7, i64::MAX);
    }

    #[test]
    fn per_hour_releases_sum_to_the_price() {
        let e = enrollment(500_000, 7, 3);
        let released: i64 = (1..=e.total_hours())
            .map(|h| e.earned_after(h) - e.earned_after(h - 1))
            .sum();
        assert_eq!(released, 500_000);
    }

    #[test]
    fn enrollments_with_no_hours_or_reversed_dates_are_invalid() {
        assert_eq!(
            enrollment(1, 0, 0).validate().map_err(|e| e.code()),
            Err("invalid_enrollment")
        );
        let mut e = enrollment(1, 1, 0);
        e.course_end = NaiveDate::from_ymd_opt(2026, 8, 1).unwrap();
        assert_eq!(
            e.validate().map_err(|e| e.code()),
            Err("invalid_enrollment")
        );
    }
}
