//! The risk engine on hand-built snapshots (pure, no database): a healthy
//! institution raises nothing on any day, and each signal fires on the
//! first day its evidence allows, at the right severity, alone, and not the
//! day before.

use chrono::{Datelike, Days, NaiveDate};
use ledger_core::domain::feeds::AccountKind;
use ledger_core::domain::ids::{ClientId, EnrollmentId, InstitutionId, JurisdictionCode};
use ledger_core::domain::money::Currency;
use ledger_core::domain::policy::{resolve, Calendar, RulePack, RuleParams};
use ledger_core::domain::registry::{Category, Institution, InstitutionStatus, SupervisionMode};

use ledger_core::domain::lessons::{Lesson, LessonEvent, LessonRecord, LessonState};
use ledger_core::domain::money::Amount;
use ledger_core::domain::registry::Enrollment;
use ledger_core::domain::risk::{
    evaluate, family_counts, peer_figures, rank, score, Assessment, BalanceMismatch, BankLine,
    CapFlag, Closing, DayFigures, EntryRef, EventKind, Evidence, FamilyCounts, InstitutionEvent,
    LedgerFigures, PackageCounts, PeerStat, Peers, PendingInstruction, RefundRequest,
    ReleaseFinding, ReleaseIssue, RiskInput, Severity, Signal, SignalKind, SupervisedAccount,
};
use ledger_core::domain::risk::{ConfirmationFacts, ReleaseAsk};

const ESCROW_NO: &str = "6222-0001";
const DEPOSIT_NO: &str = "6222-0002";
/// 10,000.00 a day: collected, arrived, consumed, released.
const DAILY: i64 = 1_000_000;
const ESCROW_BALANCE: i64 = 47_000_000;
const DEPOSIT_BALANCE: i64 = 300_000_000;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn days_from(first: &str, last: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    d(first).iter_days().take_while(move |day| *day <= last)
}

fn entry(seq: i64) -> EntryRef {
    EntryRef {
        seq,
        client_id: ClientId::parse(format!("c-{seq}")).unwrap(),
    }
}

/// Shaped like China's 2026 National Day: 1–7 October off, Sunday 20
/// September and Saturday 10 October worked instead.
fn calendar() -> Calendar {
    let holidays = days_from("2026-10-01", d("2026-10-07"));
    Calendar::new(holidays, [d("2026-09-20"), d("2026-10-10")]).unwrap()
}

fn debit(id: &str, date: NaiveDate, amount_minor: i64, before: i64) -> BankLine {
    BankLine {
        line_id: id.into(),
        account: AccountKind::Escrow,
        bank_ref: Some(format!("REF-{id}")),
        date,
        amount_minor,
        balance_before_minor: Some(before),
    }
}

/// A steady institution (custody and deposit): 10,000.00 collected into
/// escrow, taught and released every day, 450,000.00 owed to families,
/// 470,000.00 in escrow and 3,000,000.00 of deposit, statements daily up
/// to the day before `as_of`, refunds answered and paid in time.
fn healthy(as_of: NaiveDate) -> RiskInput {
    let county = JurisdictionCode::parse("410922").unwrap();
    let chain = [JurisdictionCode::national(), county.clone()];
    let last_statement = as_of.pred_opt().unwrap();
    let closings = |balance_minor| {
        days_from("2026-09-01", last_statement)
            .map(|date| Closing {
                date,
                balance_minor,
            })
            .collect()
    };
    RiskInput {
        as_of,
        institution: Institution {
            id: InstitutionId::parse("INS-410922-0001").unwrap(),
            name: "Sunrise Arts".into(),
            licence_no: "L-1".into(),
            jurisdiction: county,
            mode: SupervisionMode::Both,
            category: Category::NonSubject,
            status: InstitutionStatus::Active,
            currency: Currency::Cny,
        },
        rules: resolve(&chain, &[], as_of),
        calendar: calendar(),
        history_from: d("2026-01-01"),
        ledger: LedgerFigures {
            unearned_prepaid_minor: 45_000_000,
            refund_payable_minor: 0,
            releasable_minor: 2_000_000,
            unidentified_minor: 0,
            escrow_cash_minor: ESCROW_BALANCE,
            deposit_cash_minor: DEPOSIT_BALANCE,
            held_by_institution_minor: 0,
            pending_release_minor: 0,
            pending_refund_minor: 0,
            collections_12m_minor: 365 * DAILY,
        },
        ledger_at_statements: None,
        accounts: vec![
            SupervisedAccount {
                kind: AccountKind::Escrow,
                account_no: ESCROW_NO.into(),
                closings: closings(ESCROW_BALANCE),
                chain_break: None,
                registered_on: None,
            },
            SupervisedAccount {
                kind: AccountKind::Deposit,
                account_no: DEPOSIT_NO.into(),
                closings: closings(DEPOSIT_BALANCE),
                chain_break: None,
                registered_on: None,
            },
        ],
        days: days_from("2026-01-01", d("2026-12-31"))
            .map(|date| DayFigures {
                date,
                collections_reported_minor: DAILY,
                collections_into_escrow_minor: DAILY,
                consumed_minor: DAILY,
                consumed_hours: 50,
                released_minor: DAILY,
                refunds_paid_minor: 0,
                bank_debits_minor: DAILY,
                bank_credits_minor: DAILY,
            })
            .collect(),
        packages: PackageCounts {
            recent_sold: 100,
            recent_at_cap: 10,
            baseline_sold: 300,
            baseline_at_cap: 30,
        },
        // One family of 200 left this month, four of 400 before.
        families: FamilyCounts {
            recent_leaving: vec![EnrollmentId::parse("E-1").unwrap()],
            recent_live: 200,
            baseline_leaving: 4,
            baseline_live: 400,
        },
        bank_debits: days_from("2026-09-01", d("2026-12-31"))
            .map(|date| debit(&format!("REL-{date}"), date, DAILY, ESCROW_BALANCE + DAILY))
            .collect(),
        unauthorized_outflows: vec![],
        balance_mismatches: vec![],
        release_findings: vec![],
        refund_requests: vec![
            // Answered and paid in time.
            RefundRequest {
                enrollment: EnrollmentId::parse("E-1").unwrap(),
                amount_minor: 120_000,
                requested_on: d("2026-09-01"),
                approved_on: Some(d("2026-09-03")),
                paid_on: Some(d("2026-09-10")),
                entry: Some(entry(7)),
            },
            // Approved the day before, payment not yet due.
            RefundRequest {
                enrollment: EnrollmentId::parse("E-2").unwrap(),
                amount_minor: 80_000,
                requested_on: as_of.checked_sub_days(Days::new(2)).unwrap(),
                approved_on: Some(last_statement),
                paid_on: None,
                entry: Some(entry(8)),
            },
        ],
        cap_flags: vec![],
        events: vec![],
        confirmations: steady_confirmations(),
        instructed_debits: vec![],
        pending_instructions: vec![],
        peers: None,
    }
}

/// E-L's timetable: 1 July to 31 December, an hour a day (184 hours).
fn timetabled() -> Enrollment {
    Enrollment {
        institution: InstitutionId::parse("INS-410922-0001").unwrap(),
        id: EnrollmentId::parse("E-L").unwrap(),
        student_ref: "S-L".into(),
        hours_bought: 184,
        bonus_hours: 0,
        price: Amount::parse("18400.00", Currency::Cny).unwrap(),
        currency: Currency::Cny,
        course_start: d("2026-07-01"),
        course_end: d("2026-12-31"),
    }
}

/// A lesson record of E-L recorded on `recorded` (answer by ten days
/// later), with its trail.
fn lesson(n: usize, recorded: NaiveDate, hours: u32, steps: &[(LessonState, NaiveDate)]) -> Lesson {
    Lesson {
        record: LessonRecord {
            institution: InstitutionId::parse("INS-410922-0001").unwrap(),
            id: format!("L{n}"),
            enrollment: EnrollmentId::parse("E-L").unwrap(),
            hours,
            occurred_on: recorded,
            recorded_by: "school".into(),
            recorded_at: recorded.and_hms_opt(18, 0, 0).unwrap().and_utc(),
            answer_by: recorded.checked_add_days(Days::new(10)).unwrap(),
        },
        trail: steps
            .iter()
            .enumerate()
            .map(|(i, (state, on_day))| LessonEvent {
                seq: i as i64 + 1,
                at: on_day.and_hms_opt(9, 0, 0).unwrap().and_utc(),
                on_day: *on_day,
                actor: "family".into(),
                state: *state,
                reason: None,
            })
            .collect(),
    }
}

fn next(day: NaiveDate) -> NaiveDate {
    day.succ_opt().unwrap()
}

/// An hour a day from 1 July, each confirmed by the family the next day.
fn steady_confirmations() -> ConfirmationFacts {
    ConfirmationFacts {
        lessons: days_from("2026-07-01", d("2026-12-31"))
            .enumerate()
            .map(|(n, day)| lesson(n + 1, day, 1, &[(LessonState::Confirmed, next(day))]))
            .collect(),
        enrollments: vec![timetabled()],
        release_asks: vec![],
        at_rest: vec![],
    }
}

/// The records recorded from `from` on get `trail` instead of the family's
/// confirmation.
fn answer_from(i: &mut RiskInput, from: &str, trail: fn(&Lesson) -> Vec<(LessonState, NaiveDate)>) {
    for l in i
        .confirmations
        .lessons
        .iter_mut()
        .filter(|l| l.record.occurred_on >= d(from))
    {
        let steps = trail(l);
        *l = lesson(0, l.record.occurred_on, l.record.hours, &steps);
    }
}

fn day_mut<'a>(input: &'a mut RiskInput, date: &str) -> &'a mut DayFigures {
    let date = d(date);
    input.days.iter_mut().find(|f| f.date == date).unwrap()
}

fn account_mut<'a>(input: &'a mut RiskInput, account_no: &str) -> &'a mut SupervisedAccount {
    input
        .accounts
        .iter_mut()
        .find(|a| a.account_no == account_no)
        .unwrap()
}

fn describe(a: &Assessment) -> String {
    let mut text: Vec<String> = a
        .signals
        .iter()
        .map(|s| format!("{:?} {:?} {}", s.kind, s.severity, s.summary))
        .collect();
    text.extend(
        a.not_evaluated
            .iter()
            .map(|n| format!("not evaluated {:?}: {}", n.kind, n.reason)),
    );
    text.join("\n")
}

struct Case {
    name: &'static str,
    first_day: &'static str,
    mutate: fn(&mut RiskInput),
    kind: SignalKind,
    severity: Severity,
    /// The same kind's severity the day before (`None`: no signal at all).
    before: Option<Severity>,
}

/// Evaluates the healthy institution with `case.mutate` applied on the day
/// before the first day and on the first day itself.
#[track_caller]
fn check(case: &Case) {
    let first = d(case.first_day);
    let day_before = first.pred_opt().unwrap();
    for (day, expected) in [(day_before, case.before), (first, Some(case.severity))] {
        let mut input = healthy(day);
        (case.mutate)(&mut input);
        let a = evaluate(&input);
        let seen = describe(&a);
        match expected {
            None => assert!(
                a.signals.is_empty(),
                "{}: expected nothing on {day}, got\n{seen}",
                case.name
            ),
            Some(severity) => {
                assert!(
                    !a.signals.is_empty() && a.signals.iter().all(|s| s.kind == case.kind),
                    "{}: expected only {:?} on {day}, got\n{seen}",
                    case.name,
                    case.kind
                );
                let worst = a.signals.iter().map(|s| s.severity).max();
                assert_eq!(worst, Some(severity), "{} on {day}:\n{seen}", case.name);
            }
        }
        assert!(
            a.not_evaluated.is_empty() || case.kind == SignalKind::FeedSilence,
            "{}: {seen}",
            case.name
        );
    }
}

#[test]
fn a_healthy_institution_raises_no_signal_on_any_day_of_the_term() {
    for day in days_from("2026-09-02", d("2026-12-31")) {
        let a = evaluate(&healthy(day));
        assert!(
            a.signals.is_empty() && a.not_evaluated.is_empty() && a.score == 0,
            "{day}:\n{}",
            describe(&a)
        );
    }
}

#[test]
fn each_signal_fires_on_the_first_day_its_evidence_allows_and_not_the_day_before() {
    use Severity::{Red, Yellow};
    let cases = [
        Case {
            name: "escrow emptied below what families are owed",
            first_day: "2026-10-15",
            mutate: |i| {
                i.institution.mode = SupervisionMode::Custody;
                i.accounts.retain(|a| a.kind == AccountKind::Escrow);
                i.ledger.unearned_prepaid_minor = 18_338_022;
                for c in &mut account_mut(i, ESCROW_NO).closings {
                    if c.date >= d("2026-10-15") {
                        c.balance_minor = 3_178_978;
                    }
                }
                account_mut(i, ESCROW_NO).closings.push(Closing {
                    date: d("2026-10-15"),
                    balance_minor: 3_178_978,
                });
            },
            kind: SignalKind::Shortfall,
            severity: Red,
            before: None,
        },
        Case {
            name: "deposit under three months of fees a week after a sales day (the top-up grace)",
            first_day: "2026-10-15",
            mutate: |i| {
                for c in &mut account_mut(i, DEPOSIT_NO).closings {
                    c.balance_minor = 92_000_000;
                }
                let day = day_mut(i, "2026-10-08");
                day.collections_reported_minor += DAILY;
                day.collections_into_escrow_minor += DAILY;
            },
            kind: SignalKind::DepositBelowFloor,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "a debit nobody instructed",
            first_day: "2026-10-15",
            mutate: |i| {
                let line = debit("L-9", d("2026-10-15"), 8_800_000, ESCROW_BALANCE);
                // Also a large single debit: left to the stronger signal.
                i.bank_debits.push(line.clone());
                i.unauthorized_outflows.push(line);
            },
            kind: SignalKind::UnauthorizedOutflow,
            severity: Red,
            before: None,
        },
        Case {
            name: "the bank holds less than the ledger",
            first_day: "2026-10-15",
            mutate: |i| {
                i.balance_mismatches.push(BalanceMismatch {
                    account: AccountKind::Escrow,
                    account_no: ESCROW_NO.into(),
                    date: d("2026-10-15"),
                    bank_closing_minor: ESCROW_BALANCE - 10_000,
                    ledger_balance_minor: ESCROW_BALANCE,
                })
            },
            kind: SignalKind::BalanceMismatch,
            severity: Red,
            before: None,
        },
        Case {
            // The grace ends on 10-15; the statement that shows the 15th is
            // the next day's (statements run a day behind in this input).
            name:
                "one day's sales never arrive: seen when the statement after the grace period comes",
            first_day: "2026-10-16",
            mutate: |i| day_mut(i, "2026-10-12").collections_reported_minor += DAILY,
            kind: SignalKind::DivertedCollection,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "sales paid elsewhere from 1 October: red past a fifth of the sales",
            first_day: "2026-10-10",
            mutate: |i| {
                for f in i.days.iter_mut().filter(|f| f.date >= d("2026-10-01")) {
                    f.collections_into_escrow_minor = 0;
                }
            },
            kind: SignalKind::DivertedCollection,
            severity: Red,
            before: Some(Yellow),
        },
        Case {
            name: "a top-up drive triples the collection rate",
            first_day: "2026-10-15",
            mutate: |i| {
                let day = day_mut(i, "2026-10-15");
                day.collections_reported_minor += 60 * DAILY;
                day.collections_into_escrow_minor += 60 * DAILY;
            },
            kind: SignalKind::CollectionSpike,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "a top-up drive with packages at the caps",
            first_day: "2026-10-15",
            mutate: |i| {
                i.packages.recent_at_cap = 40;
                let day = day_mut(i, "2026-10-15");
                day.collections_reported_minor += 60 * DAILY;
                day.collections_into_escrow_minor += 60 * DAILY;
            },
            kind: SignalKind::CollectionSpike,
            severity: Red,
            before: Some(Yellow),
        },
        Case {
            name: "a release ahead of the schedule",
            first_day: "2026-10-15",
            mutate: |i| {
                i.release_findings.push(ReleaseFinding {
                    entry: entry(42),
                    date: d("2026-10-15"),
                    amount_minor: 500_000,
                    issue: ReleaseIssue::AheadOfSchedule,
                })
            },
            kind: SignalKind::ReleaseAheadOfDelivery,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "teaching slows to a fifth from 20 September",
            first_day: "2026-10-08",
            mutate: |i| {
                // The stall alone: families' months of tuition left (which a
                // stall also raises) have their own case.
                i.rules.params.liability_months_max_bp = None;
                for f in i.days.iter_mut().filter(|f| f.date >= d("2026-09-20")) {
                    f.consumed_hours = 10;
                    f.consumed_minor = DAILY / 5;
                }
            },
            kind: SignalKind::DeliveryStall,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "teaching stops on 10 September: red once a whole window is silent",
            first_day: "2026-10-09",
            mutate: |i| {
                // The stall alone: families' months of tuition left (which a
                // stall also raises) have their own case.
                i.rules.params.liability_months_max_bp = None;
                for f in i.days.iter_mut().filter(|f| f.date >= d("2026-09-10")) {
                    f.consumed_hours = 0;
                    f.consumed_minor = 0;
                }
            },
            kind: SignalKind::DeliveryStall,
            severity: Red,
            before: Some(Yellow),
        },
        Case {
            name: "a request on the Friday before National Day goes unanswered",
            // 5 working days: 28, 29, 30 September, 8 and 9 October.
            first_day: "2026-10-10",
            mutate: |i| {
                i.refund_requests.push(RefundRequest {
                    enrollment: EnrollmentId::parse("E-3").unwrap(),
                    amount_minor: 250_000,
                    requested_on: d("2026-09-25"),
                    approved_on: None,
                    paid_on: None,
                    entry: None,
                })
            },
            kind: SignalKind::RefundBacklog,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "an approved refund unpaid for 15 working days",
            // 15 working days after Monday 14 September, counting the
            // make-up Sunday 20 September: Friday 9 October.
            first_day: "2026-10-10",
            mutate: |i| {
                i.refund_requests.push(RefundRequest {
                    enrollment: EnrollmentId::parse("E-4").unwrap(),
                    amount_minor: 250_000,
                    requested_on: d("2026-09-11"),
                    approved_on: Some(d("2026-09-14")),
                    paid_on: None,
                    entry: Some(entry(51)),
                })
            },
            kind: SignalKind::RefundBacklog,
            severity: Red,
            before: None,
        },
        Case {
            name: "silence is consent: an unanswered request falls due for payment",
            // Answer due 18 September; 15 working days later: 14 October.
            first_day: "2026-10-15",
            mutate: |i| {
                i.refund_requests.push(RefundRequest {
                    enrollment: EnrollmentId::parse("E-5").unwrap(),
                    amount_minor: 250_000,
                    requested_on: d("2026-09-11"),
                    approved_on: None,
                    paid_on: None,
                    entry: None,
                })
            },
            kind: SignalKind::RefundBacklog,
            severity: Red,
            before: Some(Yellow),
        },
        Case {
            name: "three families left unanswered at once: refunds refused by silence",
            // Answers due 8, 10 and 14 September (5 working days each); the
            // third is overdue on the 15th, long before any is due for
            // payment (29 September at the earliest).
            first_day: "2026-09-15",
            mutate: three_families_unanswered,
            kind: SignalKind::RefundBacklog,
            severity: Red,
            before: Some(Yellow),
        },
        Case {
            name: "a flagged charge above the amount cap",
            first_day: "2026-10-15",
            mutate: |i| {
                i.cap_flags.push(CapFlag {
                    entry: entry(77),
                    date: d("2026-10-15"),
                    rule: "max_amount_per_charge".into(),
                    enrollment: Some(EnrollmentId::parse("E-6").unwrap()),
                })
            },
            kind: SignalKind::CapBreach,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "a month's outflow above the county's yellow preset",
            first_day: "2026-10-15",
            mutate: |i| {
                i.rules.params.outflow_period_yellow_minor = Some(35_000_000);
                i.rules.params.outflow_period_red_minor = Some(50_000_000);
                day_mut(i, "2026-10-15").bank_debits_minor += 6 * DAILY;
                for id in ["X-1", "X-2"] {
                    i.bank_debits
                        .push(debit(id, d("2026-10-15"), 3 * DAILY, ESCROW_BALANCE));
                }
            },
            kind: SignalKind::OutflowWarning,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "one debit above a tenth of the balance",
            first_day: "2026-10-15",
            mutate: |i| {
                i.bank_debits
                    .push(debit("X-3", d("2026-10-15"), 4_700_001, ESCROW_BALANCE));
                day_mut(i, "2026-10-15").bank_debits_minor += 4_700_001;
            },
            kind: SignalKind::OutflowWarning,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "the escrow bank stops sending statements after 2 October",
            first_day: "2026-10-06",
            mutate: |i| {
                account_mut(i, ESCROW_NO)
                    .closings
                    .retain(|c| c.date <= d("2026-10-02"))
            },
            kind: SignalKind::FeedSilence,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "a week of silence is red",
            first_day: "2026-10-10",
            mutate: |i| {
                account_mut(i, ESCROW_NO)
                    .closings
                    .retain(|c| c.date <= d("2026-10-02"))
            },
            kind: SignalKind::FeedSilence,
            severity: Red,
            before: Some(Yellow),
        },
        Case {
            name: "a closure notice",
            first_day: "2026-10-15",
            mutate: |i| {
                i.events.push(InstitutionEvent {
                    kind: EventKind::ClosureNotice,
                    date: d("2026-10-15"),
                })
            },
            kind: SignalKind::InstitutionEvent,
            severity: Red,
            before: None,
        },
        Case {
            name: "unearned tuition reaches six months of the delivery rate (twice the rule, no peers)",
            first_day: "2026-10-15",
            mutate: |i| {
                for f in i.days.iter_mut() {
                    if f.date >= d("2026-09-16") {
                        f.consumed_minor = DAILY / 4;
                    }
                }
            },
            kind: SignalKind::LiabilityMonths,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "a refund instruction the bank has not executed in three working days",
            first_day: "2026-10-15",
            mutate: |i| {
                i.pending_instructions.push(PendingInstruction {
                    entry: entry(88),
                    what: "refund",
                    // Sent Friday 9 October; 3 working days: 10 (a make-up
                    // Saturday), 12 and 13 October.
                    date: d("2026-10-09"),
                    amount_minor: 50_000,
                })
            },
            kind: SignalKind::InstructionUnexecuted,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "a new legal representative",
            first_day: "2026-10-15",
            mutate: |i| {
                i.events.push(InstitutionEvent {
                    kind: EventKind::LegalRepresentativeChange,
                    date: d("2026-10-15"),
                })
            },
            kind: SignalKind::InstitutionEvent,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "families stop confirming from 1 October: six of 29 due unconfirmed",
            first_day: "2026-10-17",
            mutate: |i| {
                answer_from(i, "2026-10-01", |l| {
                    vec![(LessonState::DeemedConfirmed, next(l.record.answer_by))]
                })
            },
            kind: SignalKind::ConfirmationRateFalling,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "families dispute from 10 October: four of 30 recorded",
            first_day: "2026-10-14",
            mutate: |i| {
                answer_from(i, "2026-10-10", |l| {
                    vec![(LessonState::Disputed, next(l.record.occurred_on))]
                })
            },
            kind: SignalKind::DisputesRising,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "silence from 1 October outnumbers confirmations (the rate check off)",
            first_day: "2026-10-22",
            mutate: |i| {
                i.rules.params.confirmation_rate_drop_bp = None;
                answer_from(i, "2026-10-01", |l| {
                    vec![(LessonState::DeemedConfirmed, next(l.record.answer_by))]
                })
            },
            kind: SignalKind::DeemedCrowdingOut,
            severity: Yellow,
            before: None,
        },
        Case {
            // E-N's timetable, an hour a day from 14 September, allows 16
            // hours by the 29th; three times that (the national pace
            // allowance, which an intensive course may reach) is 48.
            name: "fifty hours recorded at once, beyond three times two weeks of a new course's timetable",
            first_day: "2026-09-15",
            mutate: |i| {
                let mut e = timetabled();
                e.id = EnrollmentId::parse("E-N").unwrap();
                e.course_start = d("2026-09-14");
                e.hours_bought = 109;
                let mut extra = lesson(
                    999,
                    d("2026-09-15"),
                    50,
                    &[(LessonState::Confirmed, d("2026-09-16"))],
                );
                extra.record.enrollment = e.id.clone();
                i.confirmations.enrollments.push(e);
                i.confirmations.lessons.push(extra);
            },
            kind: SignalKind::LessonsAheadOfTimetable,
            severity: Yellow,
            before: None,
        },
        Case {
            name: "a release asked for beyond confirmed earnings (a decided one does not count)",
            first_day: "2026-10-15",
            mutate: |i| {
                i.confirmations.release_asks = vec![
                    ReleaseAsk {
                        id: "AP1".into(),
                        asked_on: d("2026-10-09"),
                        decided_on: Some(d("2026-10-10")),
                        amount_minor: 5_000_000,
                    },
                    ReleaseAsk {
                        id: "AP2".into(),
                        asked_on: d("2026-10-15"),
                        decided_on: None,
                        amount_minor: 2_000_001,
                    },
                ]
            },
            kind: SignalKind::ReleaseBeyondEarned,
            severity: Red,
            before: None,
        },
        Case {
            name: "a fourth family of sixty asks for its money back within a month",
            // Sixty families sold on 1 August; asks on 1, 5, 9 and 15
            // October. Three of sixty against the floor of 1% is chance
            // (z ≈ 3.1), four is not (z ≈ 4.4).
            first_day: "2026-10-15",
            mutate: |i| {
                let ids: Vec<String> = (0..60).map(|k| format!("E-F{k:02}")).collect();
                let enrollments: Vec<Enrollment> = ids
                    .iter()
                    .map(|id| {
                        let mut e = timetabled();
                        e.id = EnrollmentId::parse(id.as_str()).unwrap();
                        e.course_start = d("2026-08-01");
                        e
                    })
                    .collect();
                let sold = ids.iter().map(|id| (id.as_str(), d("2026-08-01"))).collect();
                let asked = ["2026-10-01", "2026-10-05", "2026-10-09", "2026-10-15"]
                    .iter()
                    .zip(&ids)
                    .map(|(on, id)| (id.as_str(), d(on)))
                    .collect();
                i.families = family_counts(&enrollments, &sold, &asked, i.as_of, &i.rules.params);
            },
            kind: SignalKind::FamiliesLeaving,
            severity: Yellow,
            before: None,
        },
    ];
    for case in &cases {
        check(case);
    }
    // Every kind is exercised by at least one case (an escalation, which
    // comes with the signs it combines, by its own test).
    for kind in SignalKind::ALL
        .into_iter()
        .filter(|k| *k != SignalKind::Escalation)
    {
        assert!(cases.iter().any(|c| c.kind == kind), "{kind:?} has no case");
    }
}

fn only(a: &Assessment) -> &Signal {
    assert_eq!(a.signals.len(), 1, "{}", describe(a));
    &a.signals[0]
}

#[test]
fn a_shortfall_explains_itself_with_the_figures_and_the_rule_pack() {
    let mut input = healthy(d("2026-10-15"));
    input.institution.mode = SupervisionMode::Custody;
    input.accounts.retain(|a| a.kind == AccountKind::Escrow);
    input.ledger.unearned_prepaid_minor = 18_338_022;
    account_mut(&mut input, ESCROW_NO).closings.push(Closing {
        date: d("2026-10-15"),
        balance_minor: 3_178_978,
    });
    let a = evaluate(&input);
    let s = only(&a);
    assert_eq!(
        s.summary,
        "escrow and deposit 31,789.78 cover 17.33% of the 183,380.22 families are owed \
         (rule: at least 100.00%, red below 80.00%); they are below the minimum balance \
         182,500.00 (5.00% of the last 12 months' collections 3,650,000.00)"
    );
    assert_eq!(s.rule_pack, "national@builtin");
    assert_eq!(s.severity, Severity::Red);
    assert_eq!(a.score, 60);
}

#[test]
fn coverage_is_compared_exactly_at_the_yellow_and_red_lines() {
    #[track_caller]
    fn check(escrow_minor: i64, pending_release_minor: i64, expected: Option<Severity>) {
        let mut input = healthy(d("2026-10-15"));
        input.institution.mode = SupervisionMode::Custody;
        input.accounts.retain(|a| a.kind == AccountKind::Escrow);
        input.ledger.collections_12m_minor = 0; // coverage alone
        input.ledger.unearned_prepaid_minor = 1_000_000;
        input.ledger.refund_payable_minor = 200_000; // owed: 12,000.00
        input.ledger.pending_release_minor = pending_release_minor;
        account_mut(&mut input, ESCROW_NO).closings.push(Closing {
            date: d("2026-10-15"),
            balance_minor: escrow_minor,
        });
        let a = evaluate(&input);
        let got = a
            .signals
            .iter()
            .find(|s| s.kind == SignalKind::Shortfall)
            .map(|s| s.severity);
        assert_eq!(got, expected, "escrow {escrow_minor}:\n{}", describe(&a));
    }
    check(1_200_000, 0, None); // exactly what is owed
    check(1_199_999, 0, Some(Severity::Yellow));
    check(960_000, 0, Some(Severity::Yellow)); // exactly 80%
    check(959_999, 0, Some(Severity::Red));
    check(1_300_000, 100_000, None); // a release in flight is not the families'
    check(1_300_000, 100_001, Some(Severity::Yellow));
}

#[test]
fn the_minimum_balance_is_the_larger_of_the_share_and_the_fixed_amount() {
    #[track_caller]
    fn check(fixed_minor: Option<i64>, escrow_minor: i64, fires: bool) {
        let mut input = healthy(d("2026-10-15"));
        input.institution.mode = SupervisionMode::Custody;
        input.accounts.retain(|a| a.kind == AccountKind::Escrow);
        input.ledger.unearned_prepaid_minor = 0;
        input.ledger.collections_12m_minor = 10_000_000; // 5%: 5,000.00
        input.rules.params.min_balance_fixed_minor = fixed_minor;
        account_mut(&mut input, ESCROW_NO).closings.push(Closing {
            date: d("2026-10-15"),
            balance_minor: escrow_minor,
        });
        let a = evaluate(&input);
        let got: Vec<_> = a.signals.iter().map(|s| (s.kind, s.severity)).collect();
        let expected = if fires {
            vec![(SignalKind::Shortfall, Severity::Yellow)]
        } else {
            vec![]
        };
        assert_eq!(got, expected, "{}", describe(&a));
    }
    check(None, 500_000, false);
    check(None, 499_999, true);
    check(Some(800_000), 799_999, true);
    check(Some(800_000), 800_000, false);
    check(Some(100_000), 499_999, true); // the share is larger
}

#[test]
fn the_share_of_packages_at_the_caps_counts_only_with_enough_sales_and_a_baseline() {
    #[track_caller]
    fn check(packages: PackageCounts, fires: bool) {
        let mut input = healthy(d("2026-10-15"));
        input.packages = packages;
        let got = evaluate(&input)
            .signals
            .iter()
            .any(|s| s.kind == SignalKind::CollectionSpike);
        assert_eq!(got, fires, "{packages:?}");
    }
    let counts = |recent_sold, recent_at_cap, baseline_sold, baseline_at_cap| PackageCounts {
        recent_sold,
        recent_at_cap,
        baseline_sold,
        baseline_at_cap,
    };
    check(counts(100, 30, 300, 30), true); // 30% against 10%: exactly +20 points
    check(counts(100, 29, 300, 30), false);
    check(counts(20, 20, 300, 30), true);
    check(counts(19, 19, 300, 30), false); // too few sales to mean anything
    check(counts(100, 100, 0, 0), false); // no baseline to rise from
                                          // A rise of 28 points in 20 packages is chance (z ≈ 2.5 < 3: one
                                          // healthy school of the simulated county, DETECTION.md); the same
                                          // shares in three times the packages are not (z ≈ 4.4).
    check(counts(20, 8, 42, 5), false);
    check(counts(60, 24, 126, 15), true);
    // 44% against 22% of 25 and 50 packages: z ≈ 2.
    check(counts(25, 11, 50, 11), false);
}

#[test]
fn a_rise_of_the_share_at_the_caps_must_also_stand_out_from_the_peers_share() {
    #[track_caller]
    fn check(peer_median_bp: i128, packages: PackageCounts, fires: bool) {
        let mut input = healthy(d("2026-10-15"));
        input.packages = packages;
        input.peers = Some(Peers {
            cap_share_bp: PeerStat {
                median: peer_median_bp,
                mad: 0,
                count: 10,
            },
            ..Peers::default()
        });
        let a = evaluate(&input);
        let spike = a
            .signals
            .iter()
            .find(|s| s.kind == SignalKind::CollectionSpike);
        assert_eq!(spike.is_some(), fires, "{packages:?}: {}", describe(&a));
        if let Some(s) = spike {
            let peers = format!("the median share of 10 peers, {}.00%", peer_median_bp / 100);
            assert!(s.summary.contains(&peers), "{}", s.summary);
        }
    }
    let counts = |recent_sold, recent_at_cap, baseline_sold, baseline_at_cap| PackageCounts {
        recent_sold,
        recent_at_cap,
        baseline_sold,
        baseline_at_cap,
    };
    // 60% of 20 against 9.75% of 41 before is significant against the own
    // baseline (z ≈ 4.2), but the peers sell half at the caps: 60% of 20
    // is 0.9 standard errors above them, chance.
    check(5_000, counts(20, 12, 41, 4), false);
    // Without peers that sell so many at the caps, it stands out.
    check(500, counts(20, 12, 41, 4), true);
    // 45% of 20 against 9.75% of 41 is z ≈ 3.15 against the own baseline:
    // below the bar of 4 (a test made daily on every school meets z ≥ 3
    // by chance), whatever the peers.
    check(500, counts(20, 9, 41, 4), false);
    // A drive of packages at the caps stands out from both.
    check(2_500, counts(20, 16, 40, 10), true);
}

#[test]
fn a_negative_releasable_balance_is_a_red_release_ahead_of_delivery() {
    for (releasable, expected) in [(0, None), (-1, Some(Severity::Red))] {
        let mut input = healthy(d("2026-10-15"));
        input.ledger.releasable_minor = releasable;
        let a = evaluate(&input);
        let got = a.signals.first().map(|s| (s.kind, s.severity));
        assert_eq!(
            got,
            expected.map(|s| (SignalKind::ReleaseAheadOfDelivery, s)),
            "{}",
            describe(&a)
        );
    }
}

#[test]
fn an_account_that_never_sent_a_statement_is_red_and_nothing_is_computed_on_a_zero() {
    let mut input = healthy(d("2026-10-15"));
    account_mut(&mut input, ESCROW_NO).closings.clear();
    let a = evaluate(&input);
    let s = only(&a);
    assert_eq!(
        (s.kind, s.severity, s.summary.as_str()),
        (
            SignalKind::FeedSilence,
            Severity::Red,
            "escrow account 6222-0001 has never sent a statement"
        )
    );
    let skipped: Vec<_> = a.not_evaluated.iter().map(|n| n.kind).collect();
    // Diverted collection cannot be judged without the bank's word either.
    assert_eq!(
        skipped,
        vec![SignalKind::Shortfall, SignalKind::DivertedCollection]
    );
}

/// A new account is not late before the pack's grace: silent since it was
/// registered, it climbs the same ladder as any silence (3 days yellow, 7
/// red by the national defaults), first day and day before.
#[test]
fn a_new_account_has_the_packs_grace_before_its_first_statement_is_missing() {
    let as_of = d("2026-10-15");
    #[track_caller]
    fn check(as_of: NaiveDate, days_ago: i64, expected: Option<Severity>) {
        let mut input = healthy(as_of);
        let account = account_mut(&mut input, ESCROW_NO);
        account.closings.clear();
        account.registered_on = Some(as_of - chrono::Duration::days(days_ago));
        let a = evaluate(&input);
        let got = a
            .signals
            .iter()
            .find(|s| s.kind == SignalKind::FeedSilence)
            .map(|s| (s.severity, s.summary.clone()));
        assert_eq!(
            got.as_ref().map(|g| g.0),
            expected,
            "{days_ago} days: {got:?}"
        );
        if let Some((_, summary)) = got {
            assert!(
                summary.contains(&format!(
                    "in the {days_ago} days since it was registered on"
                )),
                "{summary}"
            );
        }
    }
    check(as_of, 0, None);
    check(as_of, 3, None);
    check(as_of, 4, Some(Severity::Yellow));
    check(as_of, 7, Some(Severity::Yellow));
    check(as_of, 8, Some(Severity::Red));
}

#[test]
fn a_required_account_missing_from_the_file_is_red() {
    let mut input = healthy(d("2026-10-15"));
    input.accounts.retain(|a| a.kind == AccountKind::Escrow);
    let a = evaluate(&input);
    let got: Vec<_> = a
        .signals
        .iter()
        .map(|s| (s.kind, s.severity, s.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(
            SignalKind::FeedSilence,
            Severity::Red,
            "feed_silence:deposit:none"
        )]
    );
    let skipped: Vec<_> = a.not_evaluated.iter().map(|n| n.kind).collect();
    assert_eq!(
        skipped,
        vec![SignalKind::Shortfall, SignalKind::DepositBelowFloor]
    );
}

#[test]
fn the_feed_silence_summary_says_since_when() {
    let mut input = healthy(d("2026-10-13"));
    account_mut(&mut input, ESCROW_NO)
        .closings
        .retain(|c| c.date <= d("2026-10-02"));
    let s = only(&evaluate(&input)).clone();
    assert_eq!(
        s.summary,
        "no statement since 2026-10-02 from escrow account 6222-0001 (11 days)"
    );
}

#[test]
fn a_short_history_leaves_baseline_signals_unevaluated_rather_than_guessed() {
    let mut input = healthy(d("2026-10-15"));
    // Less history before the recent window (from 2026-09-16) than the
    // window is long: too little to compare with.
    input.history_from = d("2026-09-01");
    // A new institution selling fast and not yet teaching much.
    for f in input.days.iter_mut().filter(|f| f.date < d("2026-09-01")) {
        *f = DayFigures {
            date: f.date,
            ..Default::default()
        };
    }
    let a = evaluate(&input);
    assert!(a.signals.is_empty(), "{}", describe(&a));
    let skipped: Vec<_> = a.not_evaluated.iter().map(|n| n.kind).collect();
    assert_eq!(
        skipped,
        vec![SignalKind::CollectionSpike, SignalKind::DeliveryStall]
    );
}

#[test]
fn sales_collected_outside_escrow_are_expected_in_deposit_mode() {
    let mut input = healthy(d("2026-10-15"));
    input.institution.mode = SupervisionMode::Deposit;
    input.accounts.retain(|a| a.kind == AccountKind::Deposit);
    for f in &mut input.days {
        f.collections_into_escrow_minor = 0;
    }
    let a = evaluate(&input);
    assert!(a.signals.is_empty(), "{}", describe(&a));
}

/// The county of [`healthy`] and its own rule pack (version 2, in force
/// all year) with `params`.
fn county_pack(params: RuleParams) -> (JurisdictionCode, [RulePack; 1]) {
    let county = JurisdictionCode::parse("410922").unwrap();
    let pack = RulePack {
        jurisdiction: county.clone(),
        version: 2,
        effective_from: d("2026-01-01"),
        params,
    };
    (county, [pack])
}

#[test]
fn a_county_rule_pack_moves_the_deadline_and_is_named_on_the_signal() {
    let (county, packs) = county_pack(RuleParams {
        refund_answer_working_days: Some(7),
        ..Default::default()
    });
    let request = RefundRequest {
        enrollment: EnrollmentId::parse("E-3").unwrap(),
        amount_minor: 250_000,
        requested_on: d("2026-09-25"),
        approved_on: None,
        paid_on: None,
        entry: None,
    };
    // 7 working days: 28, 29, 30 September, 8, 9, 10 (make-up), 12 October.
    for (day, fires) in [("2026-10-12", false), ("2026-10-13", true)] {
        let mut input = healthy(d(day));
        input.rules = resolve(
            &[JurisdictionCode::national(), county.clone()],
            &packs,
            d(day),
        );
        input.refund_requests.push(request.clone());
        let a = evaluate(&input);
        assert_eq!(!a.signals.is_empty(), fires, "{day}: {}", describe(&a));
        if fires {
            let s = only(&a);
            assert_eq!(s.rule_pack, "national@builtin>410922@2");
            assert_eq!(
                s.summary,
                "1 refund unanswered past 7 working days (2,500.00, oldest requested 2026-09-25)"
            );
        }
    }
}

fn signal(kind: SignalKind, severity: Severity) -> Signal {
    Signal {
        kind,
        severity,
        key: kind.code().into(),
        summary: String::new(),
        evidence: vec![],
        rule_pack: "national@builtin".into(),
    }
}

#[test]
fn the_score_counts_each_kind_once_at_its_worst_and_caps_at_100() {
    use Severity::{Red, Yellow};
    use SignalKind::*;
    #[track_caller]
    fn check(signals: &[(SignalKind, Severity)], expected: u32) {
        let signals: Vec<Signal> = signals.iter().map(|(k, s)| signal(*k, *s)).collect();
        assert_eq!(score(&signals), expected, "{signals:?}");
    }
    check(&[], 0);
    check(&[(CapBreach, Yellow)], 10);
    check(&[(FeedSilence, Red)], 40);
    check(&[(Shortfall, Yellow)], 20);
    check(&[(Shortfall, Red)], 60);
    check(&[(UnauthorizedOutflow, Red); 3], 60);
    check(&[(OutflowWarning, Yellow), (OutflowWarning, Red)], 40);
    check(&[(OutflowWarning, Yellow); 5], 10);
    check(
        &[
            (CapBreach, Yellow),
            (RefundBacklog, Red),
            (DeliveryStall, Yellow),
        ],
        60,
    );
    check(&[(Shortfall, Red), (UnauthorizedOutflow, Red)], 100);
}

/// `n` families of `live` left in the recent window; 4 of 400 in the
/// baseline (0.33% per 30 days).
fn leaving(n: usize, live: u32) -> FamilyCounts {
    FamilyCounts {
        recent_leaving: (0..n)
            .map(|k| EnrollmentId::parse(format!("E-L{k}")).unwrap())
            .collect(),
        recent_live: live,
        baseline_leaving: 4,
        baseline_live: 400,
    }
}

fn peers_leaving(median: i128) -> Peers {
    Peers {
        families_leaving_bp: PeerStat {
            median,
            mad: 0,
            count: 10,
        },
        ..Peers::default()
    }
}

#[test]
fn families_leaving_name_each_family_and_what_was_expected() {
    let mut input = healthy(d("2026-10-15"));
    input.families = leaving(6, 60);
    assert_eq!(peer_figures(&input).families_leaving_bp, Some(1_000));
    input.peers = Some(peers_leaving(150));
    let a = evaluate(&input);
    let s = only(&a);
    assert_eq!(
        (s.kind, s.severity),
        (SignalKind::FamiliesLeaving, Severity::Yellow)
    );
    assert_eq!(
        s.summary,
        "6 of 60 families (10.00%) asked for their money back in the last 30 days, \
         against 1.50% expected (the highest of the rule's floor of 1.00%, the own 90 days \
         before at 0.33% per 30 days, the median of 10 peers at 1.50%) (rule: at least 3 \
         families, 4.0 standard errors above the expected share)"
    );
    let families: Vec<&str> = s
        .evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Enrollment { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(families, ["E-L0", "E-L1", "E-L2", "E-L3", "E-L4", "E-L5"]);
    for (name, bp) in [
        ("leaving_share", 1_000),
        ("expected_share", 150),
        ("own_baseline_share", 33),
        ("peer_median_leaving_share", 150),
    ] {
        assert!(
            s.evidence.contains(&Evidence::Ratio { name, bp }),
            "{name}: {:?}",
            s.evidence
        );
    }
    // Nobody could have left: no figure for the peers, no check.
    input.families = leaving(0, 0);
    assert_eq!(peer_figures(&input).families_leaving_bp, None);
    assert!(evaluate(&input).signals.is_empty());
}

#[test]
fn families_leaving_must_stand_above_the_floor_the_own_history_and_the_peers() {
    #[track_caller]
    fn check(families: FamilyCounts, peer_median: Option<i128>, fires: bool) {
        let mut input = healthy(d("2026-10-15"));
        input.families = families.clone();
        input.peers = peer_median.map(peers_leaving);
        let a = evaluate(&input);
        assert_eq!(
            !a.signals.is_empty(),
            fires,
            "{families:?}: {}",
            describe(&a)
        );
    }
    check(leaving(4, 60), None, true); // z ≈ 4.4 against the floor of 1%
    check(leaving(3, 60), None, false); // z ≈ 3.1: chance
    check(leaving(3, 5), None, true); // three of five families
    check(leaving(2, 5), None, false); // fewer than three families
                                       // A county where one family in thirty leaves this month (a season).
    check(leaving(4, 60), Some(300), false);
    check(leaving(9, 60), Some(300), true);
    // A school whose own families leave that often.
    let own = FamilyCounts {
        baseline_leaving: 60,
        baseline_live: 400, // 5% per 30 days
        ..leaving(6, 60)
    };
    check(own.clone(), None, false);
    check(leaving(6, 60), None, true);
    // A pack that sets no floor turns the check off.
    let mut input = healthy(d("2026-10-15"));
    input.families = leaving(30, 60);
    input.rules.params.families_leaving_floor_bp = None;
    assert!(evaluate(&input).signals.is_empty());
}

#[test]
fn families_leaving_while_their_refunds_go_unanswered_escalate_to_red() {
    let mut input = healthy(d("2026-10-15"));
    input.families = leaving(5, 60);
    input.refund_requests.push(RefundRequest {
        enrollment: EnrollmentId::parse("E-L0").unwrap(),
        amount_minor: 80_000,
        requested_on: d("2026-10-01"),
        approved_on: None,
        paid_on: None,
        entry: None,
    });
    let a = evaluate(&input);
    let e = &a.signals[0];
    assert_eq!(
        e.summary,
        "2 independent signs at once: refund_backlog (yellow), families_leaving (yellow) (rule: 2 or more different signs make red)"
    );
    assert_eq!(e.severity, Severity::Red);
}

#[test]
fn two_independent_yellow_signs_at_once_escalate_to_red_with_both_in_the_evidence() {
    let mut input = healthy(d("2026-10-15"));
    input.cap_flags.push(CapFlag {
        entry: entry(77),
        date: d("2026-10-15"),
        rule: "max_hours_per_charge".into(),
        enrollment: None,
    });
    let one = evaluate(&input);
    assert_eq!(one.signals.len(), 1, "one sign alone stays yellow");
    assert_eq!(one.signals[0].severity, Severity::Yellow);
    input.events.push(InstitutionEvent {
        kind: EventKind::LegalRepresentativeChange,
        date: d("2026-10-01"),
    });
    let a = evaluate(&input);
    let e = &a.signals[0];
    assert_eq!(
        (e.kind, e.severity),
        (SignalKind::Escalation, Severity::Red)
    );
    assert_eq!(
        e.summary,
        "2 independent signs at once: cap_breach (yellow), institution_event (yellow) (rule: 2 or more different signs make red)"
    );
    let signs: Vec<_> = e
        .evidence
        .iter()
        .filter_map(|ev| match ev {
            Evidence::Sign { kind, key, .. } => Some((*kind, key.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        signs,
        vec![
            (SignalKind::CapBreach, "cap_breach"),
            (
                SignalKind::InstitutionEvent,
                "institution_event:legal_representative_change:2026-10-01"
            )
        ]
    );
    assert!(e.evidence.contains(&Evidence::Rule {
        name: "escalation_min_signs",
        value: 2
    }));
}

/// Three families ask for refunds on 1, 3 and 7 September and nobody
/// answers (5 working days each: due 8, 10 and 14 September).
fn three_families_unanswered(input: &mut RiskInput) {
    for (n, on) in [(7, "2026-09-01"), (8, "2026-09-03"), (9, "2026-09-07")] {
        input.refund_requests.push(RefundRequest {
            enrollment: EnrollmentId::parse(format!("E-{n}")).unwrap(),
            amount_minor: 80_000,
            requested_on: d(on),
            approved_on: None,
            paid_on: None,
            entry: None,
        });
    }
}

#[test]
fn refunds_refused_by_silence_say_how_many_families_wait_and_the_rule() {
    let mut input = healthy(d("2026-09-15"));
    three_families_unanswered(&mut input);
    let a = evaluate(&input);
    let s = only(&a);
    assert_eq!(
        s.summary,
        "3 refunds unanswered past 5 working days (2,400.00, oldest requested 2026-09-01); \
         rule: 3 or more unanswered at once are refunds refused by silence"
    );
    assert_eq!(s.severity, Severity::Red);
    assert!(s.evidence.contains(&Evidence::Rule {
        name: "refund_unanswered_red_count",
        value: 3
    }));
    let overdue = s
        .evidence
        .iter()
        .filter(|e| {
            matches!(
                e,
                Evidence::Refund {
                    overdue: "unanswered",
                    ..
                }
            )
        })
        .count();
    assert_eq!(overdue, 3, "each family's request is evidence");
    // A bureau that sets no count keeps them yellow.
    input.rules.params.refund_unanswered_red_count = None;
    assert_eq!(only(&evaluate(&input)).severity, Severity::Yellow);
}

#[test]
fn families_falling_silent_is_one_sign_however_many_signals_show_it() {
    let mut input = healthy(d("2026-10-22"));
    answer_from(&mut input, "2026-10-01", |l| {
        vec![(LessonState::DeemedConfirmed, next(l.record.answer_by))]
    });
    let a = evaluate(&input);
    let kinds: Vec<_> = a.signals.iter().map(|s| s.kind).collect();
    assert!(
        kinds.contains(&SignalKind::ConfirmationRateFalling)
            && kinds.contains(&SignalKind::DeemedCrowdingOut),
        "both show the silence: {kinds:?}"
    );
    assert!(
        !kinds.contains(&SignalKind::Escalation),
        "one sign seen twice does not escalate: {kinds:?}"
    );
    // With another, independent sign it does.
    input.events.push(InstitutionEvent {
        kind: EventKind::LegalRepresentativeChange,
        date: d("2026-10-20"),
    });
    let a = evaluate(&input);
    assert_eq!(a.signals[0].kind, SignalKind::Escalation);
    assert!(
        a.signals[0].summary.starts_with("2 independent signs"),
        "{}",
        a.signals[0].summary
    );
}

#[test]
fn signals_list_red_first_and_evaluation_is_deterministic() {
    let mut input = healthy(d("2026-10-15"));
    input.cap_flags.push(CapFlag {
        entry: entry(77),
        date: d("2026-10-15"),
        rule: "max_hours_per_charge".into(),
        enrollment: None,
    });
    input
        .unauthorized_outflows
        .push(debit("L-2", d("2026-10-14"), 100, ESCROW_BALANCE));
    input
        .unauthorized_outflows
        .push(debit("L-1", d("2026-10-15"), 100, ESCROW_BALANCE));
    let a = evaluate(&input);
    assert_eq!(a, evaluate(&input));
    let keys: Vec<_> = a.signals.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "unauthorized_outflow:L-1",
            "unauthorized_outflow:L-2",
            "escalation",
            "cap_breach"
        ]
    );
    // Two unauthorized outflows (60), their escalation (40), a cap breach (10).
    assert_eq!(a.score, 100);
    assert_eq!(
        a.signals[0].summary,
        "1.00 left the escrow account on 2026-10-15 (bank ref REF-L-1) matching no \
         instruction of ours: bank line L-1"
    );
}

#[test]
fn a_jurisdiction_ranks_by_score_then_by_institution_id() {
    let assessed = |id: &str, score: u32| Assessment {
        institution: InstitutionId::parse(id).unwrap(),
        name: id.into(),
        jurisdiction: JurisdictionCode::parse("410922").unwrap(),
        as_of: d("2026-10-15"),
        coverage_bp: None,
        score,
        signals: vec![],
        not_evaluated: vec![],
    };
    let ranked = rank(vec![
        assessed("B", 40),
        assessed("C", 100),
        assessed("A", 40),
        assessed("D", 0),
    ]);
    let order: Vec<_> = ranked
        .iter()
        .map(|a| (a.institution.as_str(), a.score))
        .collect();
    assert_eq!(order, vec![("C", 100), ("A", 40), ("B", 40), ("D", 0)]);
}

#[test]
fn a_delivery_stall_fires_exactly_at_half_the_baseline_pace() {
    #[track_caller]
    fn check(extra_hour: bool, fires: bool) {
        let mut input = healthy(d("2026-10-15"));
        // 30 recent days at 25 hours: exactly half of the baseline's 50.
        for f in input.days.iter_mut().filter(|f| f.date >= d("2026-09-16")) {
            f.consumed_hours = 25;
        }
        if extra_hour {
            day_mut(&mut input, "2026-10-01").consumed_hours += 1;
        }
        let a = evaluate(&input);
        let got = a
            .signals
            .iter()
            .any(|s| s.kind == SignalKind::DeliveryStall);
        assert_eq!(got, fires, "{}", describe(&a));
    }
    check(false, true);
    check(true, false);
}

/// Lesson records at rest (`confirmations::at_rest`: recorded, due and
/// settled for good before a day no later than the windows' start) summed
/// per enrollment, instead of listed, change nothing the engine says, on
/// any day: half a year of records of every fate (confirmed late or soon,
/// deemed, disputes upheld, rejected, decided two months on or still open,
/// never answered; some due 40 days on), a
/// July recorded three hours a day against a timetable of one (lessons
/// ahead of the timetable, for weeks), windows narrowed to 7 and 14 days
/// so that most records come to rest, and the day they rest from moved
/// back by up to nine days (a scan of many institutions reads from the
/// earliest any of them needs).
#[test]
fn lesson_records_at_rest_summed_assess_as_every_record_listed() {
    use ledger_core::domain::risk::confirmations::split_at_rest;
    use ledger_core::domain::risk::snapshot::lessons_windows_from;
    let (county, packs) = county_pack(RuleParams {
        lookback_days: Some(7),
        baseline_days: Some(14),
        // The rates judged on the few records a week holds, and the
        // timetable at its even pace.
        confirmation_min_records: Some(3),
        schedule_pace_max_pct: Some(100),
        ..Default::default()
    });
    // A fixed sequence of fates (a linear congruential walk, no seed to
    // forget).
    let mut roll = 17u64;
    let mut next_roll = move || {
        roll = (roll * 1_103_515_245 + 12_345) % 2_147_483_648;
        roll % 100
    };
    use LessonState::*;
    let records: Vec<Lesson> = days_from("2026-07-01", d("2026-12-31"))
        .enumerate()
        .map(|(n, day)| {
            let hours = if day.month0() == 6 {
                3
            } else {
                1 + u32::from(n % 9 == 0)
            };
            let after = |k: u64| day.checked_add_days(Days::new(k)).unwrap();
            let fate = next_roll();
            let steps: Vec<(LessonState, NaiveDate)> = match fate {
                0..=69 => vec![(Confirmed, after(fate % 6))],
                70..=79 => vec![(DeemedConfirmed, after(11))],
                80..=87 => vec![(Disputed, after(2)), (Upheld, after(9))],
                88..=92 => vec![(Disputed, after(2)), (DisputeRejected, after(6))],
                93..=95 => vec![(Disputed, after(2))],
                96..=98 => vec![(Disputed, after(2)), (Upheld, after(60))],
                _ => vec![],
            };
            let mut l = lesson(n + 1, day, hours, &steps);
            // A county with a long answer window: due well after the family
            // answered.
            if n % 7 == 3 {
                l.record.answer_by = after(40);
            }
            l
        })
        .collect();
    let (mut days_with_rest, mut ahead_with_rest) = (0, 0);
    for as_of in days_from("2026-08-01", d("2026-12-31")) {
        let mut whole = healthy(as_of);
        whole.rules = resolve(
            &[JurisdictionCode::national(), county.clone()],
            &packs,
            as_of,
        );
        whole.confirmations.lessons = records.clone();
        let back = u64::from(as_of.ordinal() % 10);
        let from = lessons_windows_from(&whole.rules, as_of)
            .and_then(|d| d.checked_sub_days(Days::new(back)))
            .unwrap();
        let mut summed = whole.clone();
        let (listed, at_rest) = split_at_rest(records.clone(), from);
        summed.confirmations.lessons = listed;
        summed.confirmations.at_rest = at_rest;
        let a = evaluate(&whole);
        assert_eq!(a, evaluate(&summed), "{as_of}, at rest before {from}");
        if !summed.confirmations.at_rest.is_empty() {
            days_with_rest += 1;
            if a.signals
                .iter()
                .any(|s| s.kind == SignalKind::LessonsAheadOfTimetable)
            {
                ahead_with_rest += 1;
            }
        }
    }
    // The comparison meant something: records were at rest on most days,
    // and on some of them their hours were what put the enrollment ahead.
    assert!(
        days_with_rest > 100,
        "{days_with_rest} days with records at rest"
    );
    assert!(
        ahead_with_rest > 5,
        "{ahead_with_rest} days ahead with records at rest"
    );
}
