//! The signals about money moving: diverted collection, collection spike,
//! release ahead of delivery and delivery stall.

use chrono::Days;

use crate::domain::feeds::AccountKind;
use crate::domain::money::Currency;
use crate::domain::risk::leading::PeerRules;
use crate::domain::risk::text::{self, percent, ratio_bp};
use crate::domain::risk::{
    less, rule, Ctx, Evidence, Out, PackageCounts, Peers, ReleaseIssue, Severity, SignalKind,
    Window,
};

/// Reported sales that never reached the supervised account: over the
/// recent window, the days old enough to be past the grace period, the
/// unarrived part of each day's sales (a day's surplus never hides
/// another day's gap) against what was reported.
pub(super) fn diverted_collection(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::DivertedCollection;
    // In deposit mode the institution collects itself by design.
    if !ctx.mode_requires(AccountKind::Escrow) {
        return;
    }
    let (Some(recent), Some(grace), Some(tolerance)) = (
        ctx.recent,
        ctx.p.diverted_grace_days,
        ctx.p.diverted_tolerance_bp,
    ) else {
        return;
    };
    // A day's sales can only be judged once the bank has reported the grace
    // days after it: a silent bank is feed silence, not diverted money.
    let Some(reported_through) = ctx
        .input
        .accounts
        .iter()
        .filter(|a| a.kind == AccountKind::Escrow)
        .map(|a| crate::domain::risk::latest_closing(a, ctx.as_of).map(|c| c.date))
        .min()
        .flatten()
    else {
        return out.skip(kind, "no statement of the escrow account yet".into());
    };
    let Some(cutoff) = reported_through.checked_sub_days(Days::new(u64::from(grace))) else {
        return;
    };
    let counted =
        |d: &&crate::domain::risk::DayFigures| recent.contains(d.date) && d.date <= cutoff;
    let days: Vec<_> = ctx.input.days.iter().filter(counted).collect();
    let reported: i128 = days
        .iter()
        .map(|d| i128::from(d.collections_reported_minor))
        .sum();
    let missing: i128 = days
        .iter()
        .map(|d| {
            (i128::from(d.collections_reported_minor) - i128::from(d.collections_into_escrow_minor))
                .max(0)
        })
        .sum();
    if missing <= 0 || reported <= 0 {
        return;
    }
    let above = |bp: u32| less(&[reported, i128::from(bp)], &[missing, 10_000]);
    let Some(yellow) = above(tolerance) else {
        return out.skip(kind, "figures out of range for exact comparison".into());
    };
    if !yellow {
        return;
    }
    let red = ctx.p.diverted_red_bp.and_then(above).unwrap_or(false);
    let share = ratio_bp(missing, reported).unwrap_or_default();
    let first_gap = days
        .iter()
        .filter(|d| d.collections_reported_minor > d.collections_into_escrow_minor)
        .map(|d| d.date)
        .min();
    let mut evidence = vec![
        Evidence::Amount {
            name: "reported",
            minor: reported,
        },
        Evidence::Amount {
            name: "not_arrived",
            minor: missing,
        },
        Evidence::Ratio {
            name: "not_arrived_share",
            bp: share,
        },
        Evidence::Date {
            name: "counted_through",
            date: cutoff,
        },
        rule("diverted_grace_days", grace),
        rule("diverted_tolerance_bp", tolerance),
    ];
    if let Some(date) = first_gap {
        evidence.push(Evidence::Date {
            name: "first_gap",
            date,
        });
    }
    if let Some(bp) = ctx.p.diverted_red_bp {
        evidence.push(rule("diverted_red_bp", bp));
    }
    out.signal(
        kind,
        if red { Severity::Red } else { Severity::Yellow },
        "diverted_collection".into(),
        format!(
            "{} of the {} in sales reported from {} to {} ({}) never arrived in the supervised account within {} days",
            ctx.money_wide(missing),
            ctx.money_wide(reported),
            recent.first,
            cutoff,
            percent(share),
            grace
        ),
        evidence,
    );
}

/// What the collection spike reads of a snapshot: the windows, the
/// collections over them and the packages sold. A streamed scan keeps these
/// while it waits for the statistics of every peer (`super::BeforePeers`).
#[derive(Debug, Clone, Copy)]
pub(super) struct SpikeFigures {
    recent: Window,
    /// The baseline clipped to the history (`Ctx::own_baseline`).
    baseline: Window,
    now: i128,
    before: i128,
    packages: PackageCounts,
}

impl SpikeFigures {
    /// `None` when the rules set no windows; the reason when the history is
    /// too short to have a baseline.
    pub(super) fn of(ctx: &Ctx) -> Option<Result<SpikeFigures, String>> {
        let (Some(recent), Some(full)) = (ctx.recent, ctx.baseline) else {
            return None;
        };
        // A young institution is compared with the part of the baseline it has.
        let Some(baseline) = ctx.own_baseline() else {
            return Some(Err(format!(
                "history starts {}, less than {} days before the recent window (baseline from {})",
                ctx.input.history_from, recent.days, full.first
            )));
        };
        Some(Ok(SpikeFigures {
            recent,
            baseline,
            now: ctx.sum(recent, |d| i128::from(d.collections_reported_minor)),
            before: ctx.sum(baseline, |d| i128::from(d.collections_reported_minor)),
            packages: ctx.input.packages,
        }))
    }

    /// Recent rate over the own baseline rate, in bp; none without a
    /// baseline to measure against.
    pub(super) fn multiple_bp(&self) -> Option<i128> {
        (self.before > 0).then(|| {
            self.now * i128::from(self.baseline.days) * 10_000
                / (self.before * i128::from(self.recent.days))
        })
    }
}

/// Recent collections far above the institution's own baseline rate, and
/// a rising share of packages sold at the caps; both together are red.
pub(super) fn collection_spike(
    f: &SpikeFigures,
    r: &PeerRules,
    currency: Currency,
    peers: Option<&Peers>,
    out: &mut Out,
) {
    let kind = SignalKind::CollectionSpike;
    let SpikeFigures {
        recent,
        baseline,
        now,
        before,
        packages: k,
    } = *f;
    // A season lifts the whole county: the multiple must also stand out
    // against the peers' median multiple over the same days.
    let peers_multiple = r.peer(peers, |p| p.collections_multiple_bp);
    let mut evidence = Vec::new();
    let mut sentences = Vec::new();

    // Rates per day compared by cross-multiplying: now / recent days ≥
    // multiple × before / baseline days. No baseline, no spike to measure.
    let peer_median = peers_multiple.map_or(10_000, |p| p.median.max(10_000));
    let rate_spike = match r.collection_spike_multiple_pct {
        Some(pct) if before > 0 => !less(
            &[now, i128::from(baseline.days), 100, 10_000],
            &[
                before,
                i128::from(recent.days),
                i128::from(pct),
                peer_median,
            ],
        )
        .unwrap_or(true),
        _ => false,
    };
    // ... and stand out from the peers' spread (robust: the median absolute
    // deviation), so that noise among small schools is not a spike.
    let multiple_now = f.multiple_bp();
    let rate_spike = rate_spike
        && match (peers_multiple, r.peer_mad_multiple, multiple_now) {
            (Some(p), Some(k), Some(m)) => m - p.median >= i128::from(k) * p.mad,
            _ => true,
        };
    // A multiple of a handful of sales is noise: with peers to compare
    // with, a rate spike needs as many packages sold recently as the cap
    // share does (`cap_share_min_packages`).
    let rate_spike = rate_spike
        && (peers_multiple.is_none()
            || r.cap_share_min_packages
                .is_none_or(|min| k.recent_sold >= min));
    if rate_spike {
        let pct = r.collection_spike_multiple_pct.unwrap_or_default();
        let multiple_bp = ratio_bp(
            now * i128::from(baseline.days),
            before * i128::from(recent.days),
        )
        .unwrap_or_default();
        evidence.extend([
            Evidence::Amount {
                name: "collections_recent",
                minor: now,
            },
            Evidence::Amount {
                name: "collections_baseline",
                minor: before,
            },
            Evidence::Ratio {
                name: "rate_multiple",
                bp: multiple_bp,
            },
            rule("collection_spike_multiple_pct", pct),
        ]);
        let peers_text = match peers_multiple {
            Some(p) => {
                evidence.extend([
                    Evidence::Ratio {
                        name: "peer_median_multiple",
                        bp: p.median,
                    },
                    Evidence::Count {
                        name: "peers",
                        value: p.count.into(),
                    },
                ]);
                format!(
                    "; the median of {} peers is {}×, so the rule asks {}×",
                    p.count,
                    multiple_text(p.median),
                    multiple_text(i128::from(pct) * peer_median / 100)
                )
            }
            None => String::new(),
        };
        sentences.push(format!(
            "{} collected in the last {} days is {}× the daily rate of the {} days before ({} then; rule: {}×{peers_text})",
            text::amount_wide(now, currency),
            recent.days,
            multiple_text(multiple_bp),
            baseline.days,
            text::amount_wide(before, currency),
            multiple_text(i128::from(pct) * 100)
        ));
    }

    // The share at the caps must also stand out from the peers' (median)
    // share in the same window: the own baseline is a few dozen packages
    // whose share wanders by chance, the county's is steadier.
    let peer_share = r.peer(peers, |p| p.cap_share_bp);
    let cap_spike = match (r.cap_share_spike_bp, r.cap_share_min_packages) {
        (Some(spike), min) if k.recent_sold >= min.unwrap_or(1).max(1) && k.baseline_sold > 0 => {
            // recent_at_cap / recent_sold − baseline_at_cap / baseline_sold ≥ spike / 10000
            let (ra, rs) = (i128::from(k.recent_at_cap), i128::from(k.recent_sold));
            let (ba, bs) = (i128::from(k.baseline_at_cap), i128::from(k.baseline_sold));
            (ra * bs - ba * rs) * 10_000 >= i128::from(spike) * rs * bs
                && r.cap_share_min_z_tenths
                    .is_none_or(|z| cap_share_rise_significant(ra, rs, ba, bs, z))
                && match (peer_share, r.cap_share_min_z_tenths) {
                    (Some(p), Some(z)) => share_above_significant(ra, rs, p.median, z),
                    _ => true,
                }
        }
        _ => false,
    };
    if cap_spike {
        let recent_share =
            ratio_bp(k.recent_at_cap.into(), k.recent_sold.into()).unwrap_or_default();
        let baseline_share =
            ratio_bp(k.baseline_at_cap.into(), k.baseline_sold.into()).unwrap_or_default();
        evidence.extend([
            Evidence::Count {
                name: "recent_sold",
                value: k.recent_sold.into(),
            },
            Evidence::Count {
                name: "recent_at_cap",
                value: k.recent_at_cap.into(),
            },
            Evidence::Count {
                name: "baseline_sold",
                value: k.baseline_sold.into(),
            },
            Evidence::Count {
                name: "baseline_at_cap",
                value: k.baseline_at_cap.into(),
            },
            rule(
                "cap_share_spike_bp",
                r.cap_share_spike_bp.unwrap_or_default(),
            ),
        ]);
        let mut chance = match r.cap_share_min_z_tenths {
            Some(z) => {
                evidence.push(rule("cap_share_min_z_tenths", z));
                format!(", {}.{} standard errors above chance", z / 10, z % 10)
            }
            None => String::new(),
        };
        if let (Some(p), Some(_)) = (peer_share, r.cap_share_min_z_tenths) {
            evidence.extend([
                Evidence::Ratio {
                    name: "peer_median_cap_share",
                    bp: p.median,
                },
                Evidence::Count {
                    name: "peers",
                    value: p.count.into(),
                },
            ]);
            chance.push_str(&format!(
                ", against its own baseline and the median share of {} peers, {}",
                p.count,
                percent(p.median)
            ));
        }
        sentences.push(format!(
            "{} of the {} packages sold recently are at the caps, against {} of the {} before (rule: a rise of {}{chance})",
            percent(recent_share),
            k.recent_sold,
            percent(baseline_share),
            k.baseline_sold,
            percent(r.cap_share_spike_bp.unwrap_or_default().into())
        ));
    }

    if sentences.is_empty() {
        return;
    }
    out.signal(
        kind,
        if rate_spike && cap_spike {
            Severity::Red
        } else {
            Severity::Yellow
        },
        "collection_spike".into(),
        sentences.join("; "),
        evidence,
    );
}

/// Whether the share `ra / rs` rose above `ba / bs` by at least
/// `z_tenths / 10` standard errors of the difference (the two-proportion
/// z-test with the pooled share p = A / N, A = ra + ba, N = rs + bs):
/// (ra/rs − ba/bs)² ≥ z² · p(1 − p) · (1/rs + 1/bs), cross-multiplied by
/// (rs·bs)²·N² / (N·rs·bs) so that it stays in integers:
/// (ra·bs − ba·rs)² · N ≥ z² · A(N − A) · rs · bs. Twenty packages with a
/// quarter at the caps give a share that wanders by ±10% from one month to
/// the next; a rise of 20% in such a sample is chance, not pre-selling.
pub(super) fn cap_share_rise_significant(
    ra: i128,
    rs: i128,
    ba: i128,
    bs: i128,
    z_tenths: u32,
) -> bool {
    let diff = ra * bs - ba * rs;
    if diff <= 0 || rs <= 0 || bs <= 0 {
        return false;
    }
    let (a, n) = (ra + ba, rs + bs);
    let z = i128::from(z_tenths);
    diff * diff * n * 100 >= z * z * a * (n - a) * rs * bs
}

/// Whether the share `ra / rs` stands above the share `p_bp` (bp) by at
/// least `z_tenths / 10` standard errors of a sample of `rs` (the one-sample
/// binomial z-test, squared and in integers):
/// (ra·10000 − p·rs)² · 100 ≥ z_tenths² · p(10000 − p) · rs.
pub(super) fn share_above_significant(ra: i128, rs: i128, p_bp: i128, z_tenths: u32) -> bool {
    let diff = ra * 10_000 - p_bp * rs;
    if diff <= 0 || rs <= 0 {
        return false;
    }
    let z = i128::from(z_tenths);
    diff * diff * 100 >= z * z * p_bp * (10_000 - p_bp) * rs
}

/// `31250` bp → `"3.12"`: a multiple with two decimals, rounded down.
/// A multiple given in basis points (10000 = 1×) as the sentence prints
/// it, to two decimals, rounded down like every displayed ratio:
/// 31492 → "3.14".
fn multiple_text(bp: i128) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    let hundredths = bp.unsigned_abs() / 100;
    format!("{sign}{}.{:02}", hundredths / 100, hundredths % 100)
}

/// Releases without confirmation or ahead of schedule in the recent window
/// (yellow); red when the ledger has released more than was earned.
pub(super) fn release_ahead_of_delivery(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::ReleaseAheadOfDelivery;
    let in_window = |d| ctx.recent.is_none_or(|w: Window| w.contains(d));
    let findings: Vec<_> = ctx
        .input
        .release_findings
        .iter()
        .filter(|f| f.date <= ctx.as_of && in_window(f.date))
        .collect();
    let overdrawn = ctx.input.ledger.releasable_minor < 0;
    if findings.is_empty() && !overdrawn {
        return;
    }
    let mut sentences = Vec::new();
    for (issue, what) in [
        (
            ReleaseIssue::Unconfirmed,
            "without the parents' confirmation",
        ),
        (
            ReleaseIssue::AheadOfSchedule,
            "ahead of the enrollment's schedule",
        ),
    ] {
        let of_issue: Vec<_> = findings.iter().filter(|f| f.issue == issue).collect();
        if of_issue.is_empty() {
            continue;
        }
        let total: i128 = of_issue.iter().map(|f| i128::from(f.amount_minor)).sum();
        let first = of_issue.iter().map(|f| f.date).min().unwrap_or(ctx.as_of);
        sentences.push(format!(
            "{} released {what} in {} release{} since {first}",
            ctx.money_wide(total),
            of_issue.len(),
            if of_issue.len() == 1 { "" } else { "s" }
        ));
    }
    let mut evidence: Vec<Evidence> = findings
        .iter()
        .map(|f| Evidence::Release {
            finding: (*f).clone(),
        })
        .collect();
    if overdrawn {
        evidence.push(Evidence::Amount {
            name: "releasable",
            minor: ctx.input.ledger.releasable_minor.into(),
        });
        sentences.push(format!(
            "releases exceed earned tuition by {}",
            ctx.money_wide(-i128::from(ctx.input.ledger.releasable_minor))
        ));
    }
    out.signal(
        kind,
        if overdrawn {
            Severity::Red
        } else {
            Severity::Yellow
        },
        "release_ahead_of_delivery".into(),
        sentences.join("; "),
        evidence,
    );
}

/// Consumed hours fell by `delivery_stall_drop_pct` against the baseline
/// rate while unearned tuition is still at least what the old pace would
/// deliver in the recent window; red when teaching stopped altogether.
pub(super) fn delivery_stall(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::DeliveryStall;
    let (Some(recent), Some(full), Some(drop)) =
        (ctx.recent, ctx.baseline, ctx.p.delivery_stall_drop_pct)
    else {
        return;
    };
    let Some(baseline) = ctx.own_baseline() else {
        return out.skip(
            kind,
            format!(
                "history starts {}, less than {} days before the recent window (baseline from {})",
                ctx.input.history_from, recent.days, full.first
            ),
        );
    };
    let hours_now = ctx.sum(recent, |d| i128::from(d.consumed_hours));
    let hours_before = ctx.sum(baseline, |d| i128::from(d.consumed_hours));
    let earned_before = ctx.sum(baseline, |d| i128::from(d.consumed_minor));
    if hours_before <= 0 {
        return;
    }
    let (r, b) = (i128::from(recent.days), i128::from(baseline.days));
    // hours_now / r ≤ (100 − drop)% × hours_before / b
    let fell = hours_now * b * 100 <= hours_before * r * (100 - i128::from(drop.min(100)));
    let unearned = i128::from(ctx.input.ledger.unearned_prepaid_minor);
    // unearned ≥ earned_before / b × r: families still wait for at least a
    // window's worth of lessons at the old pace.
    let still_owed = unearned > 0 && unearned * b >= earned_before * r;
    if !(fell && still_owed) {
        return;
    }
    let change_bp = ratio_bp(hours_now * b, hours_before * r).unwrap_or_default();
    out.signal(
        kind,
        if hours_now == 0 {
            Severity::Red
        } else {
            Severity::Yellow
        },
        "delivery_stall".into(),
        format!(
            "{} class hours taught in the last {} days, {} of the pace of the {} days before ({} hours), while families still hold {} of unconsumed tuition",
            hours_now,
            recent.days,
            percent(change_bp),
            baseline.days,
            hours_before,
            ctx.money(ctx.input.ledger.unearned_prepaid_minor)
        ),
        vec![
            Evidence::Count {
                name: "hours_recent",
                value: u64::try_from(hours_now).unwrap_or_default(),
            },
            Evidence::Count {
                name: "hours_baseline",
                value: u64::try_from(hours_before).unwrap_or_default(),
            },
            Evidence::Ratio {
                name: "pace_vs_baseline",
                bp: change_bp,
            },
            Evidence::Amount {
                name: "unearned_prepaid",
                minor: unearned,
            },
            Evidence::Amount {
                name: "earned_baseline",
                minor: earned_before,
            },
            rule("delivery_stall_drop_pct", drop),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::multiple_text;

    #[test]
    fn a_multiple_reads_as_times_not_as_percent() {
        // 3.1492× the baseline rate, against a rule of 300% (3×).
        assert_eq!(multiple_text(31_492), "3.14");
        assert_eq!(multiple_text(300 * 100), "3.00");
        assert_eq!(multiple_text(10_000), "1.00");
        assert_eq!(multiple_text(9_999), "0.99");
        assert_eq!(multiple_text(-15_000), "-1.50");
    }
}
