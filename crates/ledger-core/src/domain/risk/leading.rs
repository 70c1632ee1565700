//! The leading signs (issue 15): what shows before the money leaves.
//! Liability months (unearned tuition against the delivery rate, against
//! the peers'), instructions the bank has not executed, the figures the
//! peers are compared on, and the escalation of concurrent independent
//! signs into red.

use std::collections::BTreeMap;

use crate::domain::money::Currency;
use crate::domain::policy::RuleParams;
use crate::domain::risk::flows::SpikeFigures;
use crate::domain::risk::leaving::LeavingFigures;
use crate::domain::risk::text::{self, percent};
use crate::domain::risk::{
    rule, Ctx, Evidence, Out, PackageCounts, PeerStat, Peers, RiskInput, Severity, Signal,
    SignalKind, Window,
};

/// Months are counted as 30 days.
const MONTH_DAYS: i128 = 30;

/// The figures an institution is compared with its peers on, on one day
/// (none when its history cannot say). They read the ledger's side of a
/// snapshot (its days' collections and consumption, its unearned tuition,
/// the packages sold, the rules) and the families' refund asks, never the
/// bank's records (a streamed scan keeps them, with the signals judged
/// without peers, in `BeforePeers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerFigures {
    /// Collections of the recent window against the own baseline, as rates
    /// per day, in bp (10000: the same pace).
    pub collections_multiple_bp: Option<i128>,
    /// Unearned tuition in months of the recent window's delivery, in bp
    /// (10000: one month).
    pub liability_months_bp: Option<i128>,
    /// Share of the recent window's packages sold at the caps, in bp, once
    /// `cap_share_min_packages` were sold (a share of a handful is noise).
    pub cap_share_bp: Option<i128>,
    /// Families who asked for a refund in the recent window, in bp of the
    /// families who could have.
    pub families_leaving_bp: Option<i128>,
}

/// What [`PeerFigures`] says of one snapshot.
pub fn peer_figures(input: &RiskInput) -> PeerFigures {
    let ctx = Ctx::new(input);
    let spike = SpikeFigures::of(&ctx).and_then(Result::ok);
    PeerFigures::of(
        spike.as_ref(),
        LiabilityFigures::of(&ctx).as_ref(),
        LeavingFigures::of(&ctx).as_ref(),
        input.packages,
        &PeerRules::of(ctx.p),
    )
}

impl PeerFigures {
    pub(super) fn of(
        spike: Option<&SpikeFigures>,
        liability: Option<&LiabilityFigures>,
        leaving: Option<&LeavingFigures>,
        packages: PackageCounts,
        r: &PeerRules,
    ) -> PeerFigures {
        let min = r.cap_share_min_packages.unwrap_or(1).max(1);
        PeerFigures {
            collections_multiple_bp: spike.and_then(SpikeFigures::multiple_bp),
            liability_months_bp: liability.map(|l| l.months),
            cap_share_bp: (packages.recent_sold >= min).then(|| {
                i128::from(packages.recent_at_cap) * 10_000 / i128::from(packages.recent_sold)
            }),
            families_leaving_bp: leaving.map(LeavingFigures::share_bp),
        }
    }
}

/// The rules the checks that compare with peers read (a few numbers of
/// the pack, kept with each institution a streamed scan holds back).
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerRules {
    pub collection_spike_multiple_pct: Option<u32>,
    pub peer_mad_multiple: Option<u32>,
    pub cap_share_min_packages: Option<u32>,
    pub cap_share_spike_bp: Option<u32>,
    pub cap_share_min_z_tenths: Option<u32>,
    pub peer_min_count: Option<u32>,
    pub liability_months_max_bp: Option<u32>,
    pub liability_peer_low_pct: Option<u32>,
    pub escalation_min_signs: Option<u32>,
    pub families_leaving_floor_bp: Option<u32>,
    pub families_leaving_min_count: Option<u32>,
    pub families_leaving_min_z_tenths: Option<u32>,
}

impl PeerRules {
    pub(super) fn of(p: &RuleParams) -> PeerRules {
        PeerRules {
            collection_spike_multiple_pct: p.collection_spike_multiple_pct,
            peer_mad_multiple: p.peer_mad_multiple,
            cap_share_min_packages: p.cap_share_min_packages,
            cap_share_spike_bp: p.cap_share_spike_bp,
            cap_share_min_z_tenths: p.cap_share_min_z_tenths,
            peer_min_count: p.peer_min_count,
            liability_months_max_bp: p.liability_months_max_bp,
            liability_peer_low_pct: p.liability_peer_low_pct,
            escalation_min_signs: p.escalation_min_signs,
            families_leaving_floor_bp: p.families_leaving_floor_bp,
            families_leaving_min_count: p.families_leaving_min_count,
            families_leaving_min_z_tenths: p.families_leaving_min_z_tenths,
        }
    }

    /// The peers' figure when enough of them have it.
    pub(super) fn peer(
        &self,
        peers: Option<&Peers>,
        pick: impl Fn(&Peers) -> PeerStat,
    ) -> Option<PeerStat> {
        let min = self.peer_min_count?;
        peers.map(pick).filter(|s| s.count >= min.max(1))
    }
}

/// The median and the median absolute deviation of each figure over the
/// peers that have it.
pub fn peer_stats(figures: &[PeerFigures]) -> Peers {
    let stat = |values: Vec<i128>| -> PeerStat {
        let median = median(values.clone());
        let deviations = values.iter().map(|v| (v - median).abs()).collect();
        PeerStat {
            median,
            mad: median_of(deviations),
            count: u32::try_from(values.len()).unwrap_or(u32::MAX),
        }
    };
    Peers {
        collections_multiple_bp: stat(
            figures
                .iter()
                .filter_map(|f| f.collections_multiple_bp)
                .collect(),
        ),
        liability_months_bp: stat(
            figures
                .iter()
                .filter_map(|f| f.liability_months_bp)
                .collect(),
        ),
        cap_share_bp: stat(figures.iter().filter_map(|f| f.cap_share_bp).collect()),
        families_leaving_bp: stat(
            figures
                .iter()
                .filter_map(|f| f.families_leaving_bp)
                .collect(),
        ),
    }
}

fn median(values: Vec<i128>) -> i128 {
    median_of(values)
}

/// The lower median (an element of the list; 0 for none).
fn median_of(mut values: Vec<i128>) -> i128 {
    values.sort_unstable();
    match values.len() {
        0 => 0,
        n => values[(n - 1) / 2],
    }
}

/// Unearned tuition over the recent delivery rate (what liability months
/// reads of a snapshot).
#[derive(Debug, Clone, Copy)]
pub(super) struct LiabilityFigures {
    recent: Window,
    /// In bp of months.
    months: i128,
    unearned: i128,
    earned: i128,
}

impl LiabilityFigures {
    pub(super) fn of(ctx: &Ctx) -> Option<LiabilityFigures> {
        let recent = ctx.recent?;
        if !ctx.knows(recent) {
            return None;
        }
        let earned = ctx.sum(recent, |d| i128::from(d.consumed_minor));
        let unearned = i128::from(ctx.input.ledger.unearned_prepaid_minor);
        if earned <= 0 || unearned <= 0 {
            return None;
        }
        let months = unearned * i128::from(recent.days) * 10_000 / (earned * MONTH_DAYS);
        Some(LiabilityFigures {
            recent,
            months,
            unearned,
            earned,
        })
    }
}

/// `2.50` for 25000 bp.
pub(super) fn months_text(bp: i128) -> String {
    let hundredths = bp.max(0) / 100;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// Families hold many months of tuition at the pace lessons are now
/// delivered (a pre-sell drive, or teaching that stopped), or far fewer
/// than the peers (consumption reported faster than peers teach). Without
/// enough peers only twice `liability_months_max_bp` counts: lumpy
/// timetables make one institution's months noisy.
pub(super) fn liability_months(
    f: &LiabilityFigures,
    r: &PeerRules,
    currency: Currency,
    peers: Option<&Peers>,
    out: &mut Out,
) {
    let kind = SignalKind::LiabilityMonths;
    let Some(max_bp) = r.liability_months_max_bp else {
        return;
    };
    let LiabilityFigures {
        recent,
        months,
        unearned,
        earned,
    } = *f;
    let peers = r.peer(peers, |p| p.liability_months_bp);
    // Against the peers (seasons move them all); alone, only an extreme
    // counts: twice the rule.
    let high = match peers {
        Some(p) => months >= i128::from(max_bp) && months >= 2 * p.median,
        None => months >= 2 * i128::from(max_bp),
    };
    let low = match (peers, r.liability_peer_low_pct) {
        (Some(p), Some(pct)) => months * 100 < p.median * i128::from(pct),
        _ => false,
    };
    if !(high || low) {
        return;
    }
    let mut evidence = vec![
        Evidence::Amount {
            name: "unearned_prepaid",
            minor: unearned,
        },
        Evidence::Amount {
            name: "earned_recent",
            minor: earned,
        },
        Evidence::Date {
            name: "window_first",
            date: recent.first,
        },
        Evidence::Ratio {
            name: "liability_months",
            bp: months,
        },
        rule("liability_months_max_bp", max_bp),
    ];
    let mut text = format!(
        "families hold {} of unconsumed tuition, {} months of the {} of lessons delivered in the last {} days",
        text::amount_wide(unearned, currency),
        months_text(months),
        text::amount_wide(earned, currency),
        recent.days
    );
    if let Some(p) = peers {
        evidence.extend([
            Evidence::Ratio {
                name: "peer_median_liability_months",
                bp: p.median,
            },
            Evidence::Count {
                name: "peers",
                value: p.count.into(),
            },
        ]);
        text.push_str(&format!(
            "; the median of {} peers is {} months",
            p.count,
            months_text(p.median)
        ));
    }
    if let Some(pct) = r.liability_peer_low_pct.filter(|_| low) {
        evidence.push(rule("liability_peer_low_pct", pct));
        text.push_str(&format!(
            " (rule: below {} of the peers' median, lessons are reported faster than peers teach)",
            percent(i128::from(pct) * 100)
        ));
    } else {
        text.push_str(&format!(
            " (rule: {})",
            if peers.is_some() {
                format!(
                    "at most {} months or twice the peers' median",
                    months_text(max_bp.into())
                )
            } else {
                format!(
                    "without peers, at most twice {} months",
                    months_text(max_bp.into())
                )
            }
        ));
    }
    out.signal(
        kind,
        Severity::Yellow,
        "liability_months".into(),
        text,
        evidence,
    );
}

/// Release, refund and deposit-return instructions the bank has not
/// executed `instruction_execute_working_days` working days after they
/// were sent, while its statements already run past that deadline (a late
/// bank is feed silence, not this).
pub(super) fn instruction_unexecuted(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::InstructionUnexecuted;
    let Some(days) = ctx.p.instruction_execute_working_days else {
        return;
    };
    let Some(reported) = ctx
        .input
        .accounts
        .iter()
        .filter_map(|a| crate::domain::risk::latest_closing(a, ctx.as_of).map(|c| c.date))
        .max()
    else {
        return;
    };
    let cal = &ctx.input.calendar;
    let mut late = Vec::new();
    for i in ctx
        .input
        .pending_instructions
        .iter()
        .filter(|i| i.date <= ctx.as_of)
    {
        let Some(deadline) = cal.add_working_days(i.date, days) else {
            continue;
        };
        if deadline < reported {
            late.push((i, deadline));
        }
    }
    if late.is_empty() {
        return;
    }
    let total: i128 = late.iter().map(|(i, _)| i128::from(i.amount_minor)).sum();
    let mut by_what: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, _) in &late {
        *by_what.entry(i.what).or_default() += 1;
    }
    let oldest = late.iter().map(|(i, _)| i.date).min().unwrap_or(ctx.as_of);
    let what: Vec<String> = by_what.iter().map(|(w, n)| format!("{w} ({n})")).collect();
    let mut evidence: Vec<Evidence> = late
        .iter()
        .map(|(i, deadline)| Evidence::Instruction {
            instruction: (*i).clone(),
            deadline: *deadline,
        })
        .collect();
    evidence.extend([
        Evidence::Amount {
            name: "unexecuted_total",
            minor: total,
        },
        Evidence::Date {
            name: "statements_through",
            date: reported,
        },
        rule("instruction_execute_working_days", days),
    ]);
    out.signal(
        kind,
        Severity::Yellow,
        "instruction_unexecuted".into(),
        format!(
            "{} instruction{} of ours for {} not executed by the bank within {days} working days ({}; oldest sent {oldest}), though its statements run to {reported}",
            late.len(),
            if late.len() == 1 { "" } else { "s" },
            ctx.money_wide(total),
            what.join(", ")
        ),
        evidence,
    );
}

/// The kinds whose signs count towards an escalation: every kind but the
/// escalation itself; a balance mismatch only when the bank holds less.
fn counts(s: &Signal) -> bool {
    match s.kind {
        SignalKind::Escalation => false,
        SignalKind::BalanceMismatch => s.severity == Severity::Red,
        _ => true,
    }
}

/// The sign a signal is evidence of: families answering less and deemed
/// confirmations crowding out real ones are one sign (families no longer
/// answering) seen twice, not two independent ones.
fn sign_of(kind: SignalKind) -> SignalKind {
    match kind {
        SignalKind::DeemedCrowdingOut => SignalKind::ConfirmationRateFalling,
        other => other,
    }
}

/// Concurrent independent signs: `escalation_min_signs` different kinds
/// of signal at once make a red escalation, whose evidence lists each sign
/// (kind, severity, key, sentence).
pub(super) fn escalation(min: Option<u32>, out: &mut Out) {
    let Some(min) = min else {
        return;
    };
    let mut worst: BTreeMap<SignalKind, &Signal> = BTreeMap::new();
    for s in out.signals.iter().filter(|s| counts(s)) {
        let e = worst.entry(sign_of(s.kind)).or_insert(s);
        if s.severity > e.severity {
            *e = s;
        }
    }
    if worst.len() < usize::try_from(min).unwrap_or(usize::MAX) {
        return;
    }
    let kinds: Vec<String> = worst
        .values()
        .map(|s| format!("{} ({})", s.kind.code(), s.severity.code()))
        .collect();
    let mut evidence: Vec<Evidence> = worst
        .values()
        .map(|s| Evidence::Sign {
            kind: s.kind,
            severity: s.severity,
            key: s.key.clone(),
            summary: s.summary.clone(),
        })
        .collect();
    evidence.push(Evidence::Count {
        name: "independent_signs",
        value: worst.len() as u64,
    });
    evidence.push(rule("escalation_min_signs", min));
    let summary = format!(
        "{} independent signs at once: {} (rule: {} or more different signs make red)",
        worst.len(),
        kinds.join(", "),
        min
    );
    out.signal(
        SignalKind::Escalation,
        Severity::Red,
        "escalation".into(),
        summary,
        evidence,
    );
}

/// The baseline window clipped to the institution's history: a young
/// institution is compared with the part of its baseline it has, when
/// that is at least as long as the recent window.
pub(super) fn own_baseline(ctx: &Ctx) -> Option<Window> {
    let (recent, baseline) = (ctx.recent?, ctx.baseline?);
    if ctx.knows(baseline) {
        return Some(baseline);
    }
    let first = ctx.input.history_from;
    if first > baseline.last {
        return None;
    }
    let days = u32::try_from((baseline.last - first).num_days() + 1).ok()?;
    if days < recent.days {
        return None;
    }
    let w = Window::ending(baseline.last, days)?;
    Some(w)
}
