//! Rule packs: the supervision rules of a jurisdiction as data, effective
//! from a date, inherited down the jurisdiction tree (national defaults, then
//! province, city, county overrides), and the charge-cap checks they drive.

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::domain::error::LedgerError;
use crate::domain::ids::JurisdictionCode;
use crate::domain::registry::{Category, Enrollment};

/// What a breached cap does to the charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapAction {
    /// The charge is refused (`charge_exceeds_cap`).
    Reject,
    /// The charge is booked and the breach recorded on the entry.
    Flag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cap<T> {
    pub limit: T,
    pub action: CapAction,
}

/// The parameters one rule pack sets; `None` inherits from the parent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleParams {
    /// Months of teaching one charge may cover (course start to end).
    pub max_months_per_charge: Option<Cap<u32>>,
    /// Class hours one charge may cover, bonus hours included.
    pub max_hours_per_charge: Option<Cap<u32>>,
    /// Largest single charge in minor units.
    pub max_amount_per_charge_minor: Option<Cap<i64>>,
    /// Whether the amount cap also binds subject training (many places do).
    pub amount_cap_applies_to_subject: Option<bool>,
    /// Earliest charge: at most this many months before the course starts.
    pub earliest_charge_months_before_start: Option<Cap<u32>>,
    /// The risk deposit must cover this many months of fees.
    pub deposit_floor_months: Option<u32>,
}

impl RuleParams {
    /// The national floors (2021 rules), the root of every inheritance chain.
    pub fn national_defaults() -> Self {
        RuleParams {
            max_months_per_charge: Some(Cap {
                limit: 3,
                action: CapAction::Reject,
            }),
            max_hours_per_charge: Some(Cap {
                limit: 60,
                action: CapAction::Reject,
            }),
            max_amount_per_charge_minor: Some(Cap {
                limit: 500_000,
                action: CapAction::Reject,
            }),
            amount_cap_applies_to_subject: Some(false),
            earliest_charge_months_before_start: None,
            deposit_floor_months: Some(3),
        }
    }

    fn overlay(&mut self, child: &RuleParams) {
        macro_rules! take {
            ($($field:ident),+) => { $( if child.$field.is_some() { self.$field = child.$field; } )+ };
        }
        take!(
            max_months_per_charge,
            max_hours_per_charge,
            max_amount_per_charge_minor,
            amount_cap_applies_to_subject,
            earliest_charge_months_before_start,
            deposit_floor_months
        );
    }

    pub fn validate(&self) -> Result<(), LedgerError> {
        let bad = |reason: &str| LedgerError::InvalidRulePack {
            reason: reason.to_string(),
        };
        if matches!(self.max_months_per_charge, Some(c) if c.limit == 0) {
            return Err(bad("max_months_per_charge must be positive"));
        }
        if matches!(self.max_hours_per_charge, Some(c) if c.limit == 0) {
            return Err(bad("max_hours_per_charge must be positive"));
        }
        if matches!(self.max_amount_per_charge_minor, Some(c) if c.limit <= 0) {
            return Err(bad("max_amount_per_charge_minor must be positive"));
        }
        Ok(())
    }
}

/// One version of a jurisdiction's rule pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulePack {
    pub jurisdiction: JurisdictionCode,
    pub version: u32,
    pub effective_from: NaiveDate,
    pub params: RuleParams,
}

/// The rules in force for one institution on one day, and which rule pack
/// versions they came from (recorded on every decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedRules {
    pub params: RuleParams,
    /// E.g. `national@builtin>410000@2>410922@1`.
    pub version: String,
}

/// Resolves the rules in force on `day` for a jurisdiction whose ancestry
/// (root first, the jurisdiction itself last) is `chain`, from the rule packs
/// of those jurisdictions (any order, any effective dates).
pub fn resolve(chain: &[JurisdictionCode], packs: &[RulePack], day: NaiveDate) -> ResolvedRules {
    let mut params = RuleParams::national_defaults();
    let mut version = String::from("national@builtin");
    for code in chain {
        let in_force = packs
            .iter()
            .filter(|p| &p.jurisdiction == code && p.effective_from <= day)
            .max_by_key(|p| (p.effective_from, p.version));
        if let Some(pack) = in_force {
            params.overlay(&pack.params);
            version.push_str(&format!(">{}@{}", pack.jurisdiction, pack.version));
        }
    }
    ResolvedRules { params, version }
}

/// A cap the charge breaks but that the rule pack only flags.
pub type Flag = &'static str;

/// Checks one charge (a payment towards `enrollment` on `day`) against the
/// caps. Returns the flags to record, or the first rejecting breach (in the
/// order months, hours, amount, earliest charge).
pub fn check_charge(
    rules: &ResolvedRules,
    enrollment: &Enrollment,
    category: Category,
    day: NaiveDate,
) -> Result<Vec<Flag>, LedgerError> {
    let p = &rules.params;
    let mut flags = Vec::new();
    let mut breach = |rule: Flag, action: CapAction, detail: String| match action {
        CapAction::Reject => Err(LedgerError::ChargeExceedsCap {
            rule,
            rule_pack: rules.version.clone(),
            detail,
        }),
        CapAction::Flag => {
            flags.push(rule);
            Ok(())
        }
    };
    if let Some(cap) = p.max_months_per_charge {
        let limit_end = enrollment
            .course_start
            .checked_add_months(Months::new(cap.limit));
        if limit_end.is_some_and(|end| enrollment.course_end > end) {
            breach(
                "max_months_per_charge",
                cap.action,
                format!(
                    "course runs {} to {}, more than {} months",
                    enrollment.course_start, enrollment.course_end, cap.limit
                ),
            )?;
        }
    }
    if let Some(cap) = p.max_hours_per_charge {
        if enrollment.total_hours() > cap.limit {
            breach(
                "max_hours_per_charge",
                cap.action,
                format!(
                    "{} class hours (bonus included), more than {}",
                    enrollment.total_hours(),
                    cap.limit
                ),
            )?;
        }
    }
    if let Some(cap) = p.max_amount_per_charge_minor {
        let applies =
            category == Category::NonSubject || p.amount_cap_applies_to_subject.unwrap_or(false);
        if applies && enrollment.price.minor() > cap.limit {
            breach(
                "max_amount_per_charge",
                cap.action,
                format!(
                    "price {} minor units, more than {}",
                    enrollment.price.minor(),
                    cap.limit
                ),
            )?;
        }
    }
    if let Some(cap) = p.earliest_charge_months_before_start {
        let earliest = enrollment
            .course_start
            .checked_sub_months(Months::new(cap.limit));
        if earliest.is_some_and(|earliest| day < earliest) {
            breach(
                "earliest_charge",
                cap.action,
                format!(
                    "charged on {day}, more than {} months before the course starts on {}",
                    cap.limit, enrollment.course_start
                ),
            )?;
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{EnrollmentId, InstitutionId};
    use crate::domain::money::{Amount, Currency};

    fn code(c: &str) -> JurisdictionCode {
        JurisdictionCode::parse(c).unwrap()
    }
    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn enrollment(price: i64, hours: u32, start: &str, end: &str) -> Enrollment {
        Enrollment {
            institution: InstitutionId::parse("I").unwrap(),
            id: EnrollmentId::parse("E").unwrap(),
            student_ref: "S".into(),
            hours_bought: hours,
            bonus_hours: 0,
            price: Amount::from_minor(price).unwrap(),
            currency: Currency::Cny,
            course_start: day(start),
            course_end: day(end),
        }
    }

    #[track_caller]
    fn check(
        rules: &ResolvedRules,
        e: &Enrollment,
        category: Category,
        on: &str,
        expected: Result<Vec<Flag>, &str>,
    ) {
        let got = check_charge(rules, e, category, day(on));
        match expected {
            Ok(flags) => assert_eq!(got, Ok(flags)),
            Err(rule) => match got {
                Err(LedgerError::ChargeExceedsCap { rule: r, .. }) => assert_eq!(r, rule),
                other => panic!("expected {rule} breach, got {other:?}"),
            },
        }
    }

    #[test]
    fn national_caps_reject_long_large_and_heavy_charges() {
        let rules = resolve(&[code("000000")], &[], day("2026-09-01"));
        let ok = enrollment(500_000, 60, "2026-09-01", "2026-12-01");
        check(&rules, &ok, Category::NonSubject, "2026-08-01", Ok(vec![]));
        let long = enrollment(100_000, 10, "2026-09-01", "2026-12-02");
        check(
            &rules,
            &long,
            Category::Subject,
            "2026-08-01",
            Err("max_months_per_charge"),
        );
        let heavy = enrollment(100_000, 61, "2026-09-01", "2026-10-01");
        check(
            &rules,
            &heavy,
            Category::Subject,
            "2026-08-01",
            Err("max_hours_per_charge"),
        );
        let dear = enrollment(500_001, 10, "2026-09-01", "2026-10-01");
        check(
            &rules,
            &dear,
            Category::NonSubject,
            "2026-08-01",
            Err("max_amount_per_charge"),
        );
        // the amount cap binds only non-subject training nationally
        check(&rules, &dear, Category::Subject, "2026-08-01", Ok(vec![]));
    }

    #[test]
    fn local_packs_override_down_the_tree_from_their_effective_date() {
        let packs = vec![
            RulePack {
                jurisdiction: code("410000"),
                version: 1,
                effective_from: day("2026-01-01"),
                params: RuleParams {
                    amount_cap_applies_to_subject: Some(true),
                    ..Default::default()
                },
            },
            RulePack {
                jurisdiction: code("410922"),
                version: 2,
                effective_from: day("2026-10-01"),
                params: RuleParams {
                    max_amount_per_charge_minor: Some(Cap {
                        limit: 300_000,
                        action: CapAction::Flag,
                    }),
                    earliest_charge_months_before_start: Some(Cap {
                        limit: 1,
                        action: CapAction::Reject,
                    }),
                    ..Default::default()
                },
            },
        ];
        let chain = [
            code("000000"),
            code("410000"),
            code("410900"),
            code("410922"),
        ];
        let before = resolve(&chain, &packs, day("2026-09-30"));
        assert_eq!(before.version, "national@builtin>410000@1");
        let after = resolve(&chain, &packs, day("2026-10-01"));
        assert_eq!(after.version, "national@builtin>410000@1>410922@2");

        let e = enrollment(400_000, 10, "2026-11-01", "2026-12-01");
        check(&before, &e, Category::Subject, "2026-10-15", Ok(vec![]));
        check(
            &after,
            &e,
            Category::Subject,
            "2026-10-15",
            Ok(vec!["max_amount_per_charge"]),
        );
        check(
            &after,
            &e,
            Category::Subject,
            "2026-09-30",
            Err("earliest_charge"),
        );
    }

    #[test]
    fn rule_packs_with_zero_limits_are_invalid() {
        let params = RuleParams {
            max_hours_per_charge: Some(Cap {
                limit: 0,
                action: CapAction::Reject,
            }),
            ..Default::default()
        };
        assert_eq!(
            params.validate().map_err(|e| e.code()),
            Err("invalid_rule_pack")
        );
    }
}
