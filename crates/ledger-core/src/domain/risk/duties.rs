//! The signals about what the institution and its bank owe us: refund
//! backlog, cap breaches, feed silence and institution events.

use std::collections::BTreeMap;

use crate::domain::feeds::AccountKind;
use crate::domain::registry::InstitutionStatus;
use crate::domain::risk::{
    latest_closing, rule, Ctx, EventKind, Evidence, Out, Severity, SignalKind, Window,
};

/// Refund requests unanswered past `refund_answer_working_days` (yellow:
/// the institution is then deemed to agree) and approved (or deemed
/// agreed) refunds unpaid past `refund_pay_working_days` (red), and red
/// too once `refund_unanswered_red_count` requests are unanswered. Working
/// days follow the rule pack's holiday calendar; a deadline day is still
/// in time, the day after it is overdue.
pub(super) fn refund_backlog(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::RefundBacklog;
    let (Some(answer_days), Some(pay_days)) = (
        ctx.p.refund_answer_working_days,
        ctx.p.refund_pay_working_days,
    ) else {
        return;
    };
    let cal = &ctx.input.calendar;
    let mut unanswered = Vec::new();
    let mut unpaid = Vec::new();
    for r in
        ctx.input.refund_requests.iter().filter(|r| {
            r.requested_on <= ctx.as_of && r.paid_on.is_none_or(|paid| paid > ctx.as_of)
        })
    {
        let answer_by = cal.add_working_days(r.requested_on, answer_days);
        let approved = r.approved_on.filter(|a| *a <= ctx.as_of);
        // Silence past the answer deadline is consent: payment is due from then.
        let pay_from = approved.or(answer_by);
        let pay_by = pay_from.and_then(|from| cal.add_working_days(from, pay_days));
        match (approved, answer_by, pay_by) {
            (_, _, Some(by)) if ctx.as_of > by => unpaid.push((r, by)),
            (None, Some(by), _) if ctx.as_of > by => unanswered.push((r, by)),
            _ => {}
        }
    }
    if unanswered.is_empty() && unpaid.is_empty() {
        return;
    }
    let mut sentences = Vec::new();
    let mut evidence = Vec::new();
    let mut total: i128 = 0;
    for (list, label, what, days) in [
        (&unpaid, "unpaid", "approved and unpaid past", pay_days),
        (&unanswered, "unanswered", "unanswered past", answer_days),
    ] {
        if list.is_empty() {
            continue;
        }
        let oldest = list
            .iter()
            .map(|(r, _)| r.requested_on)
            .min()
            .unwrap_or(ctx.as_of);
        let sum: i128 = list.iter().map(|(r, _)| i128::from(r.amount_minor)).sum();
        total += sum;
        sentences.push(format!(
            "{} refund{} {what} {days} working days ({}, oldest requested {oldest})",
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            ctx.money_wide(sum)
        ));
        for (r, deadline) in list {
            evidence.push(Evidence::Refund {
                request: (*r).clone(),
                overdue: label,
                deadline: *deadline,
            });
            if let Some(entry) = &r.entry {
                evidence.push(Evidence::Entry {
                    entry: entry.clone(),
                });
            }
        }
    }
    evidence.push(Evidence::Amount {
        name: "overdue_total",
        minor: total,
    });
    evidence.push(rule("refund_answer_working_days", answer_days));
    evidence.push(rule("refund_pay_working_days", pay_days));
    // Several families unanswered at once are refunds refused by silence,
    // not a slip of the office.
    let refused = ctx
        .p
        .refund_unanswered_red_count
        .filter(|n| unanswered.len() >= *n as usize);
    if let Some(n) = refused {
        evidence.push(rule("refund_unanswered_red_count", n));
        sentences.push(format!(
            "rule: {n} or more unanswered at once are refunds refused by silence"
        ));
    }
    out.signal(
        kind,
        if unpaid.is_empty() && refused.is_none() {
            Severity::Yellow
        } else {
            Severity::Red
        },
        "refund_backlog".into(),
        sentences.join("; "),
        evidence,
    );
}

/// Charges that broke a cap the rule pack flags rather than rejects, in
/// the recent window.
pub(super) fn cap_breach(ctx: &Ctx, out: &mut Out) {
    let in_window = |d| ctx.recent.is_none_or(|w: Window| w.contains(d));
    let flags: Vec<_> = ctx
        .input
        .cap_flags
        .iter()
        .filter(|f| f.date <= ctx.as_of && in_window(f.date))
        .collect();
    if flags.is_empty() {
        return;
    }
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &flags {
        *by_rule.entry(f.rule.as_str()).or_default() += 1;
    }
    let rules: Vec<String> = by_rule.iter().map(|(r, n)| format!("{r} ({n})")).collect();
    let since = ctx
        .recent
        .map(|w| format!(" since {}", w.first))
        .unwrap_or_default();
    out.signal(
        SignalKind::CapBreach,
        Severity::Yellow,
        "cap_breach".into(),
        format!(
            "{} charge{}{since} broke the rule pack's caps: {}",
            flags.len(),
            if flags.len() == 1 { "" } else { "s" },
            rules.join(", ")
        ),
        flags
            .iter()
            .map(|f| Evidence::CapFlag { flag: (*f).clone() })
            .collect(),
    );
}

/// The ladder of silence: beyond `yellow` days yellow, beyond `red` red.
fn silence_severity(silent_days: i64, yellow: u32, red: Option<u32>) -> Option<Severity> {
    if red.is_some_and(|r| silent_days > i64::from(r)) {
        Some(Severity::Red)
    } else if silent_days > i64::from(yellow) {
        Some(Severity::Yellow)
    } else {
        None
    }
}

/// An account whose bank has gone quiet: silence longer than
/// `feed_silence_days` is yellow, longer than `feed_silence_red_days` red;
/// an account that never sent a statement, or a required account that is
/// not on file, is red.
pub(super) fn feed_silence(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::FeedSilence;
    for account_kind in [AccountKind::Escrow, AccountKind::Deposit] {
        let on_file = ctx.input.accounts.iter().any(|a| a.kind == account_kind);
        if ctx.mode_requires(account_kind) && !on_file {
            out.signal(
                kind,
                Severity::Red,
                format!("feed_silence:{}:none", account_kind.code()),
                format!(
                    "no {} account is on file, though the supervision mode ({}) requires one",
                    account_kind.code(),
                    ctx.input.institution.mode.code()
                ),
                vec![],
            );
        }
    }
    let (Some(yellow), red) = (ctx.p.feed_silence_days, ctx.p.feed_silence_red_days) else {
        return;
    };
    for account in &ctx.input.accounts {
        let evidence = vec![Evidence::Account {
            kind: account.kind,
            account_no: account.account_no.clone(),
        }];
        if let Some(b) = account
            .chain_break
            .as_ref()
            .filter(|b| b.opening_date <= ctx.as_of)
        {
            // A statement that does not open where the last one closed: what
            // happened in between is not seen, so the account is not
            // supervised from the missing day until the bank fills the gap.
            let mut evidence = evidence.clone();
            evidence.extend([
                Evidence::Date {
                    name: "quarantined_from",
                    date: b.quarantined_from,
                },
                Evidence::Amount {
                    name: "closing_before_gap",
                    minor: b.after_closing_minor.into(),
                },
                Evidence::Amount {
                    name: "opening_after_gap",
                    minor: b.opening_minor.into(),
                },
            ]);
            out.signal(
                kind,
                Severity::Yellow,
                format!("feed_silence:{}:gap", account.account_no),
                format!(
                    "{} account {}: statement {} opens at {} on {} but {} closed at {} on {}; a statement is missing, the account is quarantined from {} until the bank sends it",
                    account.kind.code(),
                    account.account_no,
                    b.before,
                    ctx.money(b.opening_minor),
                    b.opening_date,
                    b.after,
                    ctx.money(b.after_closing_minor),
                    b.after_closing_date,
                    b.quarantined_from
                ),
                evidence,
            );
        }
        let key = format!("feed_silence:{}", account.account_no);
        let Some(last) = latest_closing(account, ctx.as_of) else {
            // Never a statement: silent since it was registered, judged on
            // the same ladder as any silence (an account registered today
            // is not yet late); unknown registration, red at once.
            let (severity, since) = match account.registered_on {
                Some(on) => {
                    let silent = (ctx.as_of - on).num_days();
                    let severity = if red.is_some_and(|r| silent > i64::from(r)) {
                        Severity::Red
                    } else if silent > i64::from(yellow) {
                        Severity::Yellow
                    } else {
                        continue;
                    };
                    (
                        severity,
                        format!(" in the {silent} days since it was registered on {on}"),
                    )
                }
                None => (Severity::Red, String::new()),
            };
            let mut evidence = evidence;
            if let Some(on) = account.registered_on {
                evidence.push(Evidence::Date {
                    name: "registered_on",
                    date: on,
                });
            }
            out.signal(
                kind,
                severity,
                key,
                format!(
                    "{} account {} has never sent a statement{since}",
                    account.kind.code(),
                    account.account_no
                ),
                evidence,
            );
            continue;
        };
        let silent = (ctx.as_of - last.date).num_days();
        let Some(severity) = silence_severity(silent, yellow, red) else {
            continue;
        };
        let mut evidence = evidence;
        evidence.push(Evidence::Date {
            name: "last_statement",
            date: last.date,
        });
        evidence.push(rule("feed_silence_days", yellow));
        if let Some(r) = red {
            evidence.push(rule("feed_silence_red_days", r));
        }
        out.signal(
            kind,
            severity,
            key,
            format!(
                "no statement since {} from {} account {} ({silent} days)",
                last.date,
                account.kind.code(),
                account.account_no
            ),
            evidence,
        );
    }
}

/// A closure notice (red, until the file is closed) and a change of legal
/// representative in the recent window (yellow); a suspended institution
/// (yellow) and a closed one that still owes families (red).
pub(super) fn institution_event(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::InstitutionEvent;
    let in_window = |d| ctx.recent.is_none_or(|w: Window| w.contains(d));
    for event in ctx.input.events.iter().filter(|e| e.date <= ctx.as_of) {
        let (severity, what) = match event.kind {
            EventKind::ClosureNotice => (Severity::Red, "gave notice of closure"),
            EventKind::LegalRepresentativeChange if in_window(event.date) => {
                (Severity::Yellow, "changed its legal representative")
            }
            EventKind::LegalRepresentativeChange => continue,
        };
        out.signal(
            kind,
            severity,
            format!("institution_event:{}:{}", event.kind.code(), event.date),
            format!(
                "the institution {what} on {}; families are owed {}",
                event.date,
                ctx.money_wide(owed(ctx))
            ),
            vec![Evidence::Event {
                event: event.clone(),
            }],
        );
    }
    let owed = owed(ctx);
    let status = match ctx.input.institution.status {
        InstitutionStatus::Active => None,
        InstitutionStatus::Suspended => Some((Severity::Yellow, "is suspended")),
        InstitutionStatus::Closed if owed > 0 => Some((Severity::Red, "is closed")),
        InstitutionStatus::Closed => None,
    };
    if let Some((severity, what)) = status {
        out.signal(
            kind,
            severity,
            "institution_event:status".into(),
            format!(
                "the institution {what} while families are owed {}",
                ctx.money_wide(owed)
            ),
            vec![Evidence::Amount {
                name: "owed_to_families",
                minor: owed,
            }],
        );
    }
}

fn owed(ctx: &Ctx) -> i128 {
    i128::from(ctx.input.ledger.unearned_prepaid_minor)
        + i128::from(ctx.input.ledger.refund_payable_minor)
}
