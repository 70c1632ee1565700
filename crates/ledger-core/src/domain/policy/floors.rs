//! Limits and who may loosen them. A limit (a charge cap, the deposit
//! floor, coverage and minimum-balance requirements, the refund threshold
//! for a second officer) set by a jurisdiction binds everything below it:
//! only that jurisdiction, or one above it, may loosen it. A pack may
//! always tighten; a pack that loosens what is in force for its own
//! jurisdiction (within the floors above it) waits for a second officer.

use chrono::NaiveDate;

use crate::domain::ids::JurisdictionCode;
use crate::domain::policy::{Cap, CapAction, RulePack, RuleParams};

/// One limit's value, as people read it.
fn cap_text<T: std::fmt::Display>(cap: &Cap<T>) -> String {
    match cap.action {
        CapAction::Reject => format!("{} (reject)", cap.limit),
        CapAction::Flag => format!("{} (flag)", cap.limit),
    }
}

/// Whether `new` is looser than `old` for a cap: a higher limit, or a
/// rejection turned into a flag. No cap at all is the loosest.
fn cap_looser<T: PartialOrd>(old: &Option<Cap<T>>, new: &Option<Cap<T>>) -> bool {
    match (old, new) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(o), Some(n)) => {
            n.limit > o.limit || (o.action == CapAction::Reject && n.action == CapAction::Flag)
        }
    }
}

/// A minimum: lower is looser; none is the loosest.
fn min_looser<T: PartialOrd>(old: &Option<T>, new: &Option<T>) -> bool {
    match (old, new) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(o), Some(n)) => n < o,
    }
}

/// A maximum: higher is looser; none is the loosest.
fn max_looser<T: PartialOrd>(old: &Option<T>, new: &Option<T>) -> bool {
    match (old, new) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(o), Some(n)) => n > o,
    }
}

fn text<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "none".to_string(), T::to_string)
}

fn cap_opt_text<T: std::fmt::Display>(v: &Option<Cap<T>>) -> String {
    v.as_ref().map_or_else(|| "none".to_string(), cap_text)
}

/// The limits, each with: whether `pack` sets it, whether `new` is looser
/// than `old`, and both values as text.
type Check = fn(&RuleParams, &RuleParams, &RuleParams) -> Option<(String, String)>;

macro_rules! limit {
    ($field:ident, $looser:ident, $text:ident) => {
        (
            stringify!($field),
            |pack: &RuleParams, old: &RuleParams, new: &RuleParams| {
                (pack.$field.is_some() && $looser(&old.$field, &new.$field))
                    .then(|| ($text(&old.$field), $text(&new.$field)))
            },
        )
    };
}

fn subject_looser(old: &Option<bool>, new: &Option<bool>) -> bool {
    old == &Some(true) && new != &Some(true)
}

/// Every limit, by parameter name.
const LIMITS: [(&str, Check); 11] = [
    limit!(max_months_per_charge, cap_looser, cap_opt_text),
    limit!(max_hours_per_charge, cap_looser, cap_opt_text),
    limit!(max_amount_per_charge_minor, cap_looser, cap_opt_text),
    limit!(amount_cap_applies_to_subject, subject_looser, text),
    limit!(
        earliest_charge_months_before_start,
        cap_looser,
        cap_opt_text
    ),
    limit!(deposit_floor_months, min_looser, text),
    limit!(coverage_min_bp, min_looser, text),
    limit!(min_balance_share_bp, min_looser, text),
    limit!(refund_two_officers_above_minor, max_looser, text),
    // Less kept in escrow beyond what families are owed is looser.
    limit!(release_reserve_bp, min_looser, text),
    // Fewer working days for a family to answer is looser: earnings are
    // deemed confirmed (and released) sooner.
    limit!(lesson_confirm_working_days, min_looser, text),
];

/// Limits whose built-in national value is a practice, not a floor: a
/// locality may shorten the families' window (7 working days in places)
/// unless a jurisdiction above it published one; its own loosening still
/// waits for a second officer.
const PRACTICE_NOT_FLOOR: [&str; 1] = ["lesson_confirm_working_days"];

/// A limit a pack would loosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loosening {
    pub param: &'static str,
    /// The value in force before (or the floor), as text.
    pub from: String,
    pub to: String,
    /// Who set the value loosened: `national defaults` or `code@version`.
    pub set_by: String,
}

/// The rules a chain of jurisdictions gives on `day`, and for each limit
/// who set the value in force.
fn resolve_with_setters(
    chain: &[JurisdictionCode],
    packs: &[RulePack],
    day: NaiveDate,
) -> (RuleParams, Vec<(&'static str, String)>) {
    let mut params = RuleParams::national_defaults();
    let mut setters: Vec<(&'static str, String)> = LIMITS
        .iter()
        .map(|(name, _)| (*name, "national defaults".to_string()))
        .collect();
    for code in chain {
        let in_force = packs
            .iter()
            .filter(|p| &p.jurisdiction == code && p.effective_from <= day)
            .max_by_key(|p| (p.effective_from, p.version));
        if let Some(pack) = in_force {
            params.overlay(&pack.params);
            for ((name, _), setter) in LIMITS.iter().zip(setters.iter_mut()) {
                // Any value the pack sets for a limit makes it the setter.
                let sets = sets_field(name, &pack.params);
                if sets {
                    setter.1 = format!("{}@{}", pack.jurisdiction, pack.version);
                }
            }
        }
    }
    (params, setters)
}

fn sets_field(name: &str, p: &RuleParams) -> bool {
    match name {
        "max_months_per_charge" => p.max_months_per_charge.is_some(),
        "max_hours_per_charge" => p.max_hours_per_charge.is_some(),
        "max_amount_per_charge_minor" => p.max_amount_per_charge_minor.is_some(),
        "amount_cap_applies_to_subject" => p.amount_cap_applies_to_subject.is_some(),
        "earliest_charge_months_before_start" => p.earliest_charge_months_before_start.is_some(),
        "deposit_floor_months" => p.deposit_floor_months.is_some(),
        "coverage_min_bp" => p.coverage_min_bp.is_some(),
        "min_balance_share_bp" => p.min_balance_share_bp.is_some(),
        "refund_two_officers_above_minor" => p.refund_two_officers_above_minor.is_some(),
        "release_reserve_bp" => p.release_reserve_bp.is_some(),
        "lesson_confirm_working_days" => p.lesson_confirm_working_days.is_some(),
        _ => false,
    }
}

/// What publishing `pack` would do to the limits, given its jurisdiction's
/// ancestry `chain` (root first, the pack's jurisdiction last) and the
/// packs of those jurisdictions already published.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LimitChanges {
    /// Limits set above the pack's jurisdiction that it would loosen: it
    /// may not (only the setter or a jurisdiction above it may).
    pub below_floor: Vec<Loosening>,
    /// Limits it loosens that its own jurisdiction set (within the floors):
    /// a second officer must approve.
    pub loosened: Vec<Loosening>,
}

pub fn limit_changes(
    chain: &[JurisdictionCode],
    packs: &[RulePack],
    pack: &RulePack,
) -> LimitChanges {
    let day = pack.effective_from;
    let above = chain
        .iter()
        .take_while(|c| **c != pack.jurisdiction)
        .cloned()
        .collect::<Vec<_>>();
    let mut own_chain = above.clone();
    own_chain.push(pack.jurisdiction.clone());
    let (floor, floor_setters) = resolve_with_setters(&above, packs, day);
    let (in_force, setters) = resolve_with_setters(&own_chain, packs, day);
    let mut new = in_force.clone();
    new.overlay(&pack.params);
    let mut floored = floor.clone();
    floored.overlay(&pack.params);
    let mut out = LimitChanges::default();
    // The nation sets the floors: nothing is above it.
    let national = pack.jurisdiction.as_str() == JurisdictionCode::NATIONAL;
    for (i, (name, check)) in LIMITS.iter().enumerate() {
        let practice =
            PRACTICE_NOT_FLOOR.contains(name) && floor_setters[i].1 == "national defaults";
        if !national && !practice {
            if let Some((from, to)) = check(&pack.params, &floor, &floored) {
                out.below_floor.push(Loosening {
                    param: name,
                    from,
                    to,
                    set_by: floor_setters[i].1.clone(),
                });
                continue;
            }
        }
        if let Some((from, to)) = check(&pack.params, &in_force, &new) {
            out.loosened.push(Loosening {
                param: name,
                from,
                to,
                set_by: setters[i].1.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> JurisdictionCode {
        JurisdictionCode::parse(c).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn pack(j: &str, version: u32, params: RuleParams) -> RulePack {
        RulePack {
            jurisdiction: code(j),
            version,
            effective_from: day("2026-09-01"),
            params,
        }
    }

    fn months(limit: u32, action: CapAction) -> Option<Cap<u32>> {
        Some(Cap { limit, action })
    }

    fn chain() -> Vec<JurisdictionCode> {
        vec![
            code("000000"),
            code("410000"),
            code("410900"),
            code("410922"),
        ]
    }

    #[test]
    fn a_county_may_not_lift_a_national_cap_and_is_told_who_set_it() {
        let lifted = pack(
            "410922",
            1,
            RuleParams {
                max_months_per_charge: months(120, CapAction::Reject),
                max_amount_per_charge_minor: Some(Cap {
                    limit: 90_000_000,
                    action: CapAction::Reject,
                }),
                ..Default::default()
            },
        );
        let c = limit_changes(&chain(), &[], &lifted);
        let params: Vec<_> = c.below_floor.iter().map(|l| l.param).collect();
        assert_eq!(
            params,
            ["max_months_per_charge", "max_amount_per_charge_minor"]
        );
        assert_eq!(c.below_floor[0].from, "3 (reject)");
        assert_eq!(c.below_floor[0].to, "120 (reject)");
        assert_eq!(c.below_floor[0].set_by, "national defaults");
        assert!(c.loosened.is_empty());
        // Turning a rejection into a flag loosens too.
        let flagged = pack(
            "410922",
            1,
            RuleParams {
                max_months_per_charge: months(3, CapAction::Flag),
                ..Default::default()
            },
        );
        assert_eq!(
            limit_changes(&chain(), &[], &flagged).below_floor[0].param,
            "max_months_per_charge"
        );
    }

    #[test]
    fn a_province_limit_binds_its_counties_and_names_the_province() {
        let province = pack(
            "410000",
            2,
            RuleParams {
                deposit_floor_months: Some(4),
                ..Default::default()
            },
        );
        let county = pack(
            "410922",
            1,
            RuleParams {
                deposit_floor_months: Some(3),
                ..Default::default()
            },
        );
        let c = limit_changes(&chain(), std::slice::from_ref(&province), &county);
        assert_eq!(c.below_floor.len(), 1);
        assert_eq!(c.below_floor[0].set_by, "410000@2");
        assert_eq!(
            (c.below_floor[0].from.as_str(), c.below_floor[0].to.as_str()),
            ("4", "3")
        );
    }

    #[test]
    fn tightening_is_free_and_loosening_ones_own_limit_needs_a_second_officer() {
        let tight = pack(
            "410000",
            1,
            RuleParams {
                max_months_per_charge: months(2, CapAction::Reject),
                ..Default::default()
            },
        );
        assert_eq!(
            limit_changes(&chain(), &[], &tight),
            LimitChanges::default()
        );
        let back = pack(
            "410000",
            2,
            RuleParams {
                max_months_per_charge: months(3, CapAction::Reject),
                ..Default::default()
            },
        );
        let c = limit_changes(&chain(), std::slice::from_ref(&tight), &back);
        assert!(c.below_floor.is_empty(), "{c:?}");
        assert_eq!(c.loosened.len(), 1);
        assert_eq!(c.loosened[0].param, "max_months_per_charge");
        assert_eq!(c.loosened[0].set_by, "410000@1");
        // The nation may loosen its own defaults (with a second officer).
        let national = pack(
            "000000",
            1,
            RuleParams {
                max_hours_per_charge: Some(Cap {
                    limit: 72,
                    action: CapAction::Reject,
                }),
                ..Default::default()
            },
        );
        let c = limit_changes(&chain(), &[], &national);
        assert!(c.below_floor.is_empty());
        assert_eq!(c.loosened[0].param, "max_hours_per_charge");
    }

    #[test]
    fn parameters_that_are_not_limits_change_freely() {
        let p = pack(
            "410922",
            1,
            RuleParams {
                refund_answer_working_days: Some(7),
                feed_silence_days: Some(5),
                feed_silence_red_days: Some(9),
                ..Default::default()
            },
        );
        assert_eq!(limit_changes(&chain(), &[], &p), LimitChanges::default());
    }

    #[test]
    fn a_refund_threshold_set_above_may_not_be_raised_below() {
        let city = pack(
            "410900",
            1,
            RuleParams {
                refund_two_officers_above_minor: Some(1_000_000),
                ..Default::default()
            },
        );
        let county = pack(
            "410922",
            1,
            RuleParams {
                refund_two_officers_above_minor: Some(2_000_000),
                ..Default::default()
            },
        );
        let c = limit_changes(&chain(), std::slice::from_ref(&city), &county);
        assert_eq!(c.below_floor[0].param, "refund_two_officers_above_minor");
        assert_eq!(c.below_floor[0].set_by, "410900@1");
        // Lowering it is tightening.
        let lower = pack(
            "410922",
            1,
            RuleParams {
                refund_two_officers_above_minor: Some(500_000),
                ..Default::default()
            },
        );
        assert_eq!(
            limit_changes(&chain(), std::slice::from_ref(&city), &lower),
            LimitChanges::default()
        );
    }

    #[test]
    fn a_county_may_not_lower_the_release_reserve_or_shorten_the_window_set_above() {
        let province = pack(
            "410000",
            1,
            RuleParams {
                release_reserve_bp: Some(1_000),
                lesson_confirm_working_days: Some(10),
                ..Default::default()
            },
        );
        let county = pack(
            "410922",
            1,
            RuleParams {
                release_reserve_bp: Some(500),
                lesson_confirm_working_days: Some(7),
                ..Default::default()
            },
        );
        let c = limit_changes(&chain(), std::slice::from_ref(&province), &county);
        let refused: Vec<(&str, &str, &str)> = c
            .below_floor
            .iter()
            .map(|l| (l.param, l.from.as_str(), l.set_by.as_str()))
            .collect();
        assert_eq!(
            refused,
            [
                ("release_reserve_bp", "1000", "410000@1"),
                ("lesson_confirm_working_days", "10", "410000@1"),
            ]
        );
        // Raising the reserve, lengthening the window: tightening, free.
        let stricter = pack(
            "410922",
            1,
            RuleParams {
                release_reserve_bp: Some(2_000),
                lesson_confirm_working_days: Some(15),
                ..Default::default()
            },
        );
        assert_eq!(
            limit_changes(&chain(), std::slice::from_ref(&province), &stricter),
            LimitChanges::default()
        );
    }

    #[test]
    fn the_national_fifteen_days_are_a_practice_a_county_may_shorten_with_a_second_officer() {
        let county = pack(
            "410922",
            1,
            RuleParams {
                lesson_confirm_working_days: Some(7),
                ..Default::default()
            },
        );
        let c = limit_changes(&chain(), &[], &county);
        assert!(c.below_floor.is_empty(), "{c:?}");
        assert_eq!(c.loosened.len(), 1, "{c:?}");
        assert_eq!(c.loosened[0].param, "lesson_confirm_working_days");
        assert_eq!(
            (c.loosened[0].from.as_str(), c.loosened[0].to.as_str()),
            ("15", "7")
        );
    }
}
