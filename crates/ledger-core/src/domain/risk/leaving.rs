//! Families leaving (issue 15: refunds compared with the peers and with
//! the institution's own history). Families hear first: when a school is
//! about to close they ask for their money back, and they do so before the
//! school has failed to pay anyone. A rate far above what the county's
//! schools see, and above the school's own, is a leading sign; on its own
//! it is yellow (a bad teacher, a move across town), together with any
//! other sign the escalation makes it red.
//!
//! The test is the one the share at the caps uses (one-sample, z standard
//! errors above the expected share), with the expected share never below a
//! floor of the rule pack: a handful of schools that saw nobody leave this
//! month would otherwise make one family leaving look like a run.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::domain::ids::EnrollmentId;
use crate::domain::policy::RuleParams;
use crate::domain::registry::Enrollment;
use crate::domain::risk::flows::share_above_significant;
use crate::domain::risk::leading::PeerRules;
use crate::domain::risk::text::percent;
use crate::domain::risk::{
    rule, Ctx, Evidence, FamilyCounts, Out, Peers, Severity, SignalKind, Window,
};

/// Counts the families leaving and the families who could have in the
/// engine's recent and baseline windows ending on `as_of` (windows as the
/// rule pack sets them), from each enrollment's first charge and the day
/// its family first asked for a refund (either may be absent).
pub fn family_counts(
    enrollments: &[Enrollment],
    first_charge: &BTreeMap<&str, NaiveDate>,
    first_ask: &BTreeMap<&str, NaiveDate>,
    as_of: NaiveDate,
    p: &RuleParams,
) -> FamilyCounts {
    let (recent, baseline) = Window::of_engine(as_of, p);
    let mut counts = FamilyCounts::default();
    for en in enrollments {
        let id = en.id.as_str();
        let Some(&sold) = first_charge.get(id).filter(|d| **d <= as_of) else {
            continue;
        };
        let asked = first_ask.get(id).copied().filter(|d| *d <= as_of);
        // Could have asked in the window: sold by its end, still taught at
        // its start, and not gone before it.
        let could = |w: &Window| {
            sold <= w.last && en.course_end >= w.first && asked.is_none_or(|a| a >= w.first)
        };
        let left = |w: &Window| asked.is_some_and(|a| w.contains(a));
        if let Some(w) = recent.as_ref().filter(|w| could(w)) {
            counts.recent_live += 1;
            if left(w) {
                counts.recent_leaving.push(en.id.clone());
            }
        }
        if let Some(w) = baseline.as_ref().filter(|w| could(w)) {
            counts.baseline_live += 1;
            counts.baseline_leaving += u32::from(left(w));
        }
    }
    counts.recent_leaving.sort();
    counts
}

/// What the check reads of a snapshot (kept by a streamed scan until the
/// peers are known).
#[derive(Debug, Clone)]
pub(super) struct LeavingFigures {
    recent: Window,
    leaving: Vec<EnrollmentId>,
    live: u32,
    /// The own baseline's families leaving per recent window, in bp of the
    /// families who could have, with the (clipped) baseline window.
    own: Option<(i128, Window)>,
}

impl LeavingFigures {
    pub(super) fn of(ctx: &Ctx) -> Option<LeavingFigures> {
        let recent = ctx.recent?;
        let f = &ctx.input.families;
        if f.recent_live == 0 {
            return None;
        }
        // Families live at any time of the baseline are more than those
        // live at once, so this understates the own rate: the expected
        // share is the higher of it, the peers' and the floor.
        let own = ctx.own_baseline().filter(|_| f.baseline_live > 0).map(|b| {
            let share = i128::from(f.baseline_leaving) * 10_000 * i128::from(recent.days)
                / (i128::from(f.baseline_live) * i128::from(b.days));
            (share, b)
        });
        Some(LeavingFigures {
            recent,
            leaving: f.recent_leaving.clone(),
            live: f.recent_live,
            own,
        })
    }

    /// The recent window's families leaving, in bp of those who could have.
    pub(super) fn share_bp(&self) -> i128 {
        self.count() * 10_000 / i128::from(self.live.max(1))
    }

    fn count(&self) -> i128 {
        i128::try_from(self.leaving.len()).unwrap_or(i128::MAX)
    }
}

/// More families asked for their money back in the recent window than the
/// expected share (the highest of the rule's floor, the own baseline's and
/// the peers' median) explains, by `families_leaving_min_z_tenths / 10`
/// standard errors, and at least `families_leaving_min_count` of them.
pub(super) fn families_leaving(
    f: &LeavingFigures,
    r: &PeerRules,
    peers: Option<&Peers>,
    out: &mut Out,
) {
    let (Some(floor), Some(z), Some(min)) = (
        r.families_leaving_floor_bp,
        r.families_leaving_min_z_tenths,
        r.families_leaving_min_count,
    ) else {
        return;
    };
    let k = f.count();
    if k < i128::from(min) {
        return;
    }
    let peer = r.peer(peers, |p| p.families_leaving_bp);
    let expected = [
        Some(i128::from(floor)),
        f.own.map(|(share, _)| share),
        peer.map(|p| p.median),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
    .min(10_000);
    if !share_above_significant(k, i128::from(f.live), expected, z) {
        return;
    }
    let share = f.share_bp();
    let mut evidence: Vec<Evidence> = f
        .leaving
        .iter()
        .map(|id| Evidence::Enrollment { id: id.clone() })
        .collect();
    evidence.extend([
        Evidence::Count {
            name: "families_leaving",
            value: f.leaving.len() as u64,
        },
        Evidence::Count {
            name: "families_live",
            value: f.live.into(),
        },
        Evidence::Date {
            name: "window_first",
            date: f.recent.first,
        },
        Evidence::Ratio {
            name: "leaving_share",
            bp: share,
        },
        Evidence::Ratio {
            name: "expected_share",
            bp: expected,
        },
    ]);
    let mut against = vec![format!("the rule's floor of {}", percent(floor.into()))];
    if let Some((own, b)) = f.own {
        evidence.extend([
            Evidence::Ratio {
                name: "own_baseline_share",
                bp: own,
            },
            Evidence::Date {
                name: "baseline_first",
                date: b.first,
            },
        ]);
        against.push(format!(
            "the own {} days before at {} per {} days",
            b.days,
            percent(own),
            f.recent.days
        ));
    }
    if let Some(p) = peer {
        evidence.extend([
            Evidence::Ratio {
                name: "peer_median_leaving_share",
                bp: p.median,
            },
            Evidence::Count {
                name: "peers",
                value: p.count.into(),
            },
        ]);
        against.push(format!(
            "the median of {} peers at {}",
            p.count,
            percent(p.median)
        ));
    }
    evidence.extend([
        rule("families_leaving_floor_bp", floor),
        rule("families_leaving_min_count", min),
        rule("families_leaving_min_z_tenths", z),
    ]);
    out.signal(
        SignalKind::FamiliesLeaving,
        Severity::Yellow,
        "families_leaving".into(),
        format!(
            "{k} of {} families ({}) asked for their money back in the last {} days, against {} expected (the highest of {}) (rule: at least {min} families, {}.{} standard errors above the expected share)",
            f.live,
            percent(share),
            f.recent.days,
            percent(expected),
            against.join(", "),
            z / 10,
            z % 10
        ),
        evidence,
    );
}
