//! The signals about money held: shortfall, deposit below floor,
//! unauthorized outflow, balance mismatch and outflow warnings.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::feeds::AccountKind;
use crate::domain::risk::coverage;
use crate::domain::risk::text::{percent, ratio_bp};
use crate::domain::risk::{
    less, rule, Confirmed, Ctx, Evidence, Out, Severity, SignalKind, Window,
};

const OUT_OF_RANGE: &str = "figures out of range for exact comparison";

/// Bank-confirmed escrow + deposit, less releases in flight, against what
/// families are owed (unearned tuition + approved refunds) and against the
/// minimum balance.
pub(super) fn shortfall(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::Shortfall;
    // The one coverage definition (`coverage.rs`): the banks' closings
    // less releases in flight, over what was owed the day they close.
    let cov = match coverage::coverage(ctx.input) {
        Ok(c) => c,
        Err(why) => return out.skip(kind, why.reason()),
    };
    let mut evidence = Vec::new();
    for (account, account_no, c) in &cov.closings {
        evidence.push(Evidence::Account {
            kind: *account,
            account_no: account_no.clone(),
        });
        evidence.push(Evidence::Amount {
            name: closing_name(*account),
            minor: i128::from(c.balance_minor),
        });
        evidence.push(Evidence::Date {
            name: "closing_date",
            date: c.date,
        });
    }
    if cov.owed_on < ctx.as_of {
        evidence.push(Evidence::Date {
            name: "owed_as_of",
            date: cov.owed_on,
        });
    }
    let (_, ledger) = coverage::owed_figures(ctx.input);
    let in_flight = cov.in_flight_minor;
    let funds = cov.held_minor();
    let owed = cov.owed_minor();
    // Tuition the institution collected outside escrow (deposit mode) is
    // covered by the deposit's own rule (deposit below floor), not by
    // custody: `coverage.rs` leaves it out of what is owed here.
    let outside = cov.outside_minor;
    if outside > 0 {
        evidence.push(Evidence::Amount {
            name: "unearned_collected_outside",
            minor: outside,
        });
    }
    evidence.push(Evidence::Amount {
        name: "pending_release",
        minor: in_flight,
    });
    evidence.push(Evidence::Amount {
        name: "funds",
        minor: funds,
    });
    evidence.push(Evidence::Amount {
        name: "unearned_prepaid",
        minor: i128::from(ledger.unearned_prepaid_minor),
    });
    evidence.push(Evidence::Amount {
        name: "refund_payable",
        minor: i128::from(ledger.refund_payable_minor),
    });
    evidence.push(Evidence::Amount {
        name: "owed_to_families",
        minor: owed,
    });

    let funds_text = if in_flight > 0 {
        format!(
            "escrow and deposit {} (less {} of releases in flight)",
            ctx.money_wide(funds),
            ctx.money_wide(in_flight)
        )
    } else {
        format!("escrow and deposit {}", ctx.money_wide(funds))
    };
    let mut severity = None;
    let mut sentences = Vec::new();

    if owed > 0 {
        let below = |bp: Option<u32>| match bp {
            Some(bp) => less(&[funds, 10_000], &[owed, i128::from(bp)]),
            None => Some(false),
        };
        let (Some(below_red), Some(below_min)) =
            (below(ctx.p.coverage_red_bp), below(ctx.p.coverage_min_bp))
        else {
            return out.skip(kind, OUT_OF_RANGE.into());
        };
        if below_red || below_min {
            let coverage = cov.basis_points().unwrap_or_default();
            evidence.push(Evidence::Ratio {
                name: "coverage",
                bp: coverage,
            });
            let mut rules = Vec::new();
            if let Some(bp) = ctx.p.coverage_min_bp {
                evidence.push(rule("coverage_min_bp", bp));
                rules.push(format!("at least {}", percent(bp.into())));
            }
            if let Some(bp) = ctx.p.coverage_red_bp {
                evidence.push(rule("coverage_red_bp", bp));
                rules.push(format!("red below {}", percent(bp.into())));
            }
            let whose = if outside > 0 {
                format!(
                    " from custody (the {} collected outside escrow aside)",
                    ctx.money_wide(outside)
                )
            } else {
                String::new()
            };
            sentences.push(format!(
                "{funds_text} cover {} of the {} families are owed{whose} (rule: {})",
                percent(coverage),
                ctx.money_wide(owed),
                rules.join(", ")
            ));
            severity = Some(if below_red {
                Severity::Red
            } else {
                Severity::Yellow
            });
        }
    }

    let base = i128::from(ledger.collections_12m_minor.max(0));
    let by_share = ctx
        .p
        .min_balance_share_bp
        .map(|bp| base * i128::from(bp) / 10_000);
    let fixed = ctx.p.min_balance_fixed_minor.map(i128::from);
    let minimum = by_share.max(fixed);
    if let Some(minimum) = minimum.filter(|m| funds < *m) {
        evidence.push(Evidence::Amount {
            name: "minimum_balance",
            minor: minimum,
        });
        evidence.push(Evidence::Amount {
            name: "collections_12m",
            minor: base,
        });
        if let Some(bp) = ctx.p.min_balance_share_bp {
            evidence.push(rule("min_balance_share_bp", bp));
        }
        if let Some(fixed) = ctx.p.min_balance_fixed_minor {
            evidence.push(rule("min_balance_fixed_minor", fixed));
        }
        let how = if by_share >= fixed {
            format!(
                "{} of the last 12 months' collections {}",
                percent(ctx.p.min_balance_share_bp.unwrap_or_default().into()),
                ctx.money_wide(base)
            )
        } else {
            "the bureau's fixed minimum".to_string()
        };
        let subject = if sentences.is_empty() {
            funds_text.clone()
        } else {
            "they".to_string()
        };
        sentences.push(format!(
            "{subject} are below the minimum balance {} ({how})",
            ctx.money_wide(minimum)
        ));
        severity = severity.max(Some(Severity::Yellow));
    }

    if let Some(severity) = severity {
        out.signal(
            kind,
            severity,
            "shortfall".into(),
            sentences.join("; "),
            evidence,
        );
    }
}

fn closing_name(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::Escrow => "bank_escrow_closing",
        AccountKind::Deposit => "bank_deposit_closing",
    }
}

/// The bank-confirmed deposit against the fees of `deposit_floor_months`,
/// estimated from the collections of the recent window. Compared exactly:
/// deposit × 12 × window days < collections × months × 365.
pub(super) fn deposit_below_floor(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::DepositBelowFloor;
    if !ctx.mode_requires(AccountKind::Deposit) {
        return;
    }
    let (Some(months), Some(window)) = (ctx.p.deposit_floor_months, ctx.recent) else {
        return;
    };
    if !ctx.knows(window) {
        return out.skip(
            kind,
            format!(
                "history starts {}, after the window start {}",
                ctx.input.history_from, window.first
            ),
        );
    }
    let deposit = match ctx.confirmed(AccountKind::Deposit) {
        Confirmed::Known { total, .. } => total,
        Confirmed::NoAccount => return out.skip(kind, "no deposit account on file".into()),
        Confirmed::Missing(account_no) => {
            return out.skip(
                kind,
                format!("deposit account {account_no} has sent no statement"),
            )
        }
    };
    // Fees that just rose leave the institution `deposit_topup_grace_days`
    // to top up: the floor is the lower of today's and the one then.
    let mut collected = ctx.sum(window, |d| i128::from(d.collections_reported_minor));
    let mut window = window;
    if let Some(earlier) = ctx
        .p
        .deposit_topup_grace_days
        .filter(|g| *g > 0)
        .and_then(|g| ctx.as_of.checked_sub_days(chrono::Days::new(u64::from(g))))
        .and_then(|last| Window::ending(last, window.days))
        .filter(|w| ctx.knows(*w))
    {
        let then = ctx.sum(earlier, |d| i128::from(d.collections_reported_minor));
        if then < collected {
            collected = then;
            window = earlier;
        }
    }
    let days = i128::from(window.days);
    let months = i128::from(months);
    let lhs = [deposit, 12, days];
    let rhs = [collected, months, 365];
    let Some(below) = less(&lhs, &rhs) else {
        return out.skip(kind, OUT_OF_RANGE.into());
    };
    if !below {
        return;
    }
    let red_bp = ctx.p.deposit_floor_red_bp.map(i128::from);
    let red = match red_bp {
        Some(bp) => less(&[deposit, 12, days, 10_000], &[collected, months, 365, bp]),
        None => Some(false),
    };
    let Some(red) = red else {
        return out.skip(kind, OUT_OF_RANGE.into());
    };
    let floor = collected * months * 365 / (12 * days);
    let mut evidence = vec![
        Evidence::Amount {
            name: "bank_deposit",
            minor: deposit,
        },
        Evidence::Amount {
            name: "deposit_floor",
            minor: floor,
        },
        Evidence::Amount {
            name: "collections_in_window",
            minor: collected,
        },
        Evidence::Date {
            name: "window_first",
            date: window.first,
        },
        rule(
            "deposit_floor_months",
            ctx.p.deposit_floor_months.unwrap_or_default(),
        ),
    ];
    if let Some(bp) = ctx.p.deposit_floor_red_bp {
        evidence.push(rule("deposit_floor_red_bp", bp));
    }
    out.signal(
        kind,
        if red { Severity::Red } else { Severity::Yellow },
        "deposit_below_floor".into(),
        format!(
            "risk deposit {} is below the {} of fees {} months require (estimated from {} collected in the {} days from {} to {})",
            ctx.money_wide(deposit),
            ctx.money_wide(floor),
            months,
            ctx.money_wide(collected),
            window.days,
            window.first,
            window.last
        ),
        evidence,
    );
}

/// Every unresolved bank debit that matched no instruction: always red.
pub(super) fn unauthorized_outflow(ctx: &Ctx, out: &mut Out) {
    for line in ctx
        .input
        .unauthorized_outflows
        .iter()
        .filter(|l| l.date <= ctx.as_of)
    {
        let reference = line
            .bank_ref
            .as_deref()
            .map(|r| format!(" (bank ref {r})"))
            .unwrap_or_default();
        out.signal(
            SignalKind::UnauthorizedOutflow,
            Severity::Red,
            format!("unauthorized_outflow:{}", line.line_id),
            format!(
                "{} left the {} account on {}{reference} matching no instruction of ours: bank line {}",
                ctx.money(line.amount_minor),
                line.account.code(),
                line.date,
                line.line_id
            ),
            vec![Evidence::BankLine { line: line.clone() }],
        );
    }
}

/// The latest standing mismatch of each account: red when the bank holds
/// less than the ledger says (money missing), yellow when it holds more
/// (receipts not yet booked).
pub(super) fn balance_mismatch(ctx: &Ctx, out: &mut Out) {
    let mut latest = BTreeMap::new();
    for m in ctx
        .input
        .balance_mismatches
        .iter()
        .filter(|m| m.date <= ctx.as_of && m.bank_closing_minor != m.ledger_balance_minor)
    {
        let e = latest.entry(&m.account_no).or_insert(m);
        if m.date > e.date {
            *e = m;
        }
    }
    for (account_no, m) in latest {
        let bank = i128::from(m.bank_closing_minor);
        let ledger = i128::from(m.ledger_balance_minor);
        let (severity, direction) = if bank < ledger {
            (Severity::Red, "below")
        } else {
            (Severity::Yellow, "above")
        };
        out.signal(
            SignalKind::BalanceMismatch,
            severity,
            format!("balance_mismatch:{account_no}"),
            format!(
                "bank closing {} of {} account {account_no} on {} is {} {direction} the ledger's {}",
                ctx.money(m.bank_closing_minor),
                m.account.code(),
                m.date,
                ctx.money_wide((bank - ledger).abs()),
                ctx.money(m.ledger_balance_minor)
            ),
            vec![
                Evidence::Mismatch {
                    mismatch: m.clone(),
                },
                Evidence::Amount {
                    name: "difference",
                    minor: bank - ledger,
                },
            ],
        );
    }
}

/// Outflow over the period above the bureau's presets, and single debits
/// above a share of the balance before them. Debits already reported as
/// unauthorized are left to that (stronger) signal.
pub(super) fn outflow_warning(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::OutflowWarning;
    let Some(period) = ctx
        .p
        .outflow_period_days
        .and_then(|days| Window::ending(ctx.as_of, days))
    else {
        return;
    };
    let outflow = ctx.sum(period, |d| i128::from(d.bank_debits_minor));
    let over = |preset: Option<i64>| preset.filter(|p| outflow > i128::from(*p));
    let level = over(ctx.p.outflow_period_red_minor)
        .map(|p| (Severity::Red, p, "red"))
        .or_else(|| {
            over(ctx.p.outflow_period_yellow_minor).map(|p| (Severity::Yellow, p, "yellow"))
        });
    if let Some((severity, preset, colour)) = level {
        let mut evidence = vec![
            Evidence::Amount {
                name: "outflow_in_period",
                minor: outflow,
            },
            Evidence::Date {
                name: "period_first",
                date: period.first,
            },
            rule("outflow_period_days", period.days),
        ];
        if let Some(y) = ctx.p.outflow_period_yellow_minor {
            evidence.push(rule("outflow_period_yellow_minor", y));
        }
        if let Some(r) = ctx.p.outflow_period_red_minor {
            evidence.push(rule("outflow_period_red_minor", r));
        }
        out.signal(
            kind,
            severity,
            "outflow_warning:period".into(),
            format!(
                "{} left the supervised accounts in the {} days from {}, above the {colour} preset {}",
                ctx.money_wide(outflow),
                period.days,
                period.first,
                ctx.money(preset)
            ),
            evidence,
        );
    }

    let Some(share_bp) = ctx.p.single_debit_share_bp else {
        return;
    };
    // The ledger's own instructions the bank executed (releases, refunds)
    // are not suspicious however large: only debits nobody instructed.
    let unauthorized: BTreeSet<&str> = ctx
        .input
        .unauthorized_outflows
        .iter()
        .map(|l| l.line_id.as_str())
        .chain(ctx.input.instructed_debits.iter().map(String::as_str))
        .collect();
    for line in ctx
        .input
        .bank_debits
        .iter()
        .filter(|l| period.contains(l.date) && !unauthorized.contains(l.line_id.as_str()))
    {
        let Some(before) = line.balance_before_minor else {
            out.skip(
                kind,
                format!(
                    "bank line {} does not say the balance before it",
                    line.line_id
                ),
            );
            continue;
        };
        let amount = i128::from(line.amount_minor);
        let share = i128::from(share_bp);
        if less(&[i128::from(before), share], &[amount, 10_000]) != Some(true) {
            continue;
        }
        // A debit on an empty or overdrawn account is above any share of it.
        let of_balance = ratio_bp(amount, i128::from(before))
            .filter(|_| before > 0)
            .map(|bp| format!("{} of", percent(bp)))
            .unwrap_or_else(|| "more than".into());
        out.signal(
            kind,
            Severity::Yellow,
            format!("outflow_warning:debit:{}", line.line_id),
            format!(
                "one debit of {} on {} took {of_balance} the {} account's balance {} (rule: at most {})",
                ctx.money(line.amount_minor),
                line.date,
                line.account.code(),
                ctx.money(before),
                percent(share)
            ),
            vec![
                Evidence::BankLine { line: line.clone() },
                rule("single_debit_share_bp", share_bp),
            ],
        );
    }
}
