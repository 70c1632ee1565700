//! The line-matching engine (domain/recon) from the outside: every pass, ties, groups,
//! reversals, duplicates, the working-day window, the search budget, input
//! errors, and — inside every check — that each line and transfer ends up in
//! exactly one place and that shuffling the inputs changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use ledger_core::domain::recon::{
    reconcile, BankLine, Calendar, LedgerTransfer, LineStatus, MatchConfig, Pass, Reason,
    ReconcileError, ReconcileOutcome, TransferKind,
};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_else(|e| panic!("test date {text}: {e}"))
}

/// A booked line with nothing but an amount and a date.
fn line(id: u64, amount_minor: i64, date: &str) -> BankLine {
    BankLine {
        id,
        amount_minor,
        booking_date: day(date),
        value_date: None,
        status: LineStatus::Booked,
        end_to_end_id: None,
        bank_ref: None,
        remittance: None,
        counterparty_name: None,
        counterparty_account: None,
        reversal: false,
    }
}

fn transfer(id: u64, amount_minor: i64, date: &str, references: &[&str]) -> LedgerTransfer {
    LedgerTransfer {
        id,
        amount_minor,
        date: day(date),
        references: references.iter().map(|r| r.to_string()).collect(),
        counterparty: None,
        kind: if amount_minor > 0 {
            TransferKind::Receipt
        } else {
            TransferKind::Release
        },
    }
}

fn some(text: &str) -> Option<String> {
    Some(text.to_string())
}

/// One line per outcome item, sorted, e.g. `auto identifier L[1] T[7]`,
/// `suggest grouped L[1] T[7, 8]`, `line 3 UnmatchedDebit`.
fn summary(outcome: &ReconcileOutcome) -> Vec<String> {
    let mut out = vec![];
    for m in &outcome.matches {
        out.push(format!(
            "auto {} L{:?} T{:?}",
            m.pass.code(),
            m.lines,
            m.transfers
        ));
    }
    for m in &outcome.suggestions {
        out.push(format!(
            "suggest {} L{:?} T{:?}",
            m.pass.code(),
            m.lines,
            m.transfers
        ));
    }
    for (id, reason) in &outcome.unmatched_lines {
        out.push(format!("line {id} {reason:?}"));
    }
    for (id, reason) in &outcome.unmatched_transfers {
        out.push(format!("transfer {id} {reason:?}"));
    }
    out.sort();
    out
}

/// Every line and every transfer appears exactly once in the outcome.
#[track_caller]
fn assert_partition(lines: &[BankLine], transfers: &[LedgerTransfer], outcome: &ReconcileOutcome) {
    let mut seen_lines = BTreeMap::new();
    let mut seen_transfers = BTreeMap::new();
    for m in outcome.matches.iter().chain(&outcome.suggestions) {
        assert!(!m.explanation.is_empty(), "{m:?} explains nothing");
        for id in &m.lines {
            *seen_lines.entry(*id).or_insert(0) += 1;
        }
        for id in &m.transfers {
            *seen_transfers.entry(*id).or_insert(0) += 1;
        }
    }
    for (id, _) in &outcome.unmatched_lines {
        *seen_lines.entry(*id).or_insert(0) += 1;
    }
    for (id, _) in &outcome.unmatched_transfers {
        *seen_transfers.entry(*id).or_insert(0) += 1;
    }
    let want_lines: BTreeMap<u64, i32> = lines.iter().map(|l| (l.id, 1)).collect();
    let want_transfers: BTreeMap<u64, i32> = transfers.iter().map(|t| (t.id, 1)).collect();
    assert_eq!(seen_lines, want_lines, "every line exactly once");
    assert_eq!(
        seen_transfers, want_transfers,
        "every transfer exactly once"
    );
}

/// Runs the engine on the inputs as given and shuffled a few times, checks
/// the outcome is identical and a partition, and returns it.
#[track_caller]
fn run(lines: &[BankLine], transfers: &[LedgerTransfer], config: &MatchConfig) -> ReconcileOutcome {
    let outcome = reconcile(lines, transfers, config).unwrap_or_else(|e| panic!("{e}"));
    assert_partition(lines, transfers, &outcome);
    let mut rng = SmallRng::seed_from_u64(42);
    for round in 0..4 {
        let mut l = lines.to_vec();
        let mut t = transfers.to_vec();
        l.shuffle(&mut rng);
        t.shuffle(&mut rng);
        if round == 0 {
            l.reverse();
            t.reverse();
        }
        let again = reconcile(&l, &t, config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, outcome, "shuffle round {round} changed the outcome");
    }
    outcome
}

#[track_caller]
fn check(
    lines: &[BankLine],
    transfers: &[LedgerTransfer],
    config: &MatchConfig,
    expected: &[&str],
) -> ReconcileOutcome {
    let outcome = run(lines, transfers, config);
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(summary(&outcome), expected, "{outcome:#?}");
    outcome
}

fn config() -> MatchConfig {
    MatchConfig::default()
}

/// China's 2025 National Day: 1–8 October off, Sunday 28 September and
/// Saturday 11 October worked.
fn national_day_2025() -> Calendar {
    let holidays = (1..=8).map(|d| day(&format!("2025-10-{d:02}")));
    let weekends = [day("2025-09-28"), day("2025-10-11")];
    Calendar::new(holidays, weekends).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_end_to_end_id_equal_to_our_instruction_id_with_the_same_amount_matches_automatically() {
    let lines = [BankLine {
        end_to_end_id: some("RL-2026-10"),
        ..line(1, -120_000, "2026-03-20")
    }];
    // No window in pass 1: the identifier is the evidence.
    let transfers = [transfer(
        7,
        -120_000,
        "2026-03-02",
        &["RL-2026-10", "ORD-1"],
    )];
    let outcome = check(
        &lines,
        &transfers,
        &config(),
        &["auto identifier L[1] T[7]"],
    );
    let explanation = &outcome.matches[0].explanation;
    assert!(
        explanation.contains("end-to-end id RL-2026-10 equals a reference of release 7"),
        "{explanation}"
    );
    assert!(explanation.contains("amount -1200.00"), "{explanation}");
    // Monday 2 March to Friday 20 March: three weeks less a day.
    assert!(
        explanation.contains("(14 working days apart)"),
        "{explanation}"
    );
    let next_day = [BankLine {
        end_to_end_id: some("RL-2026-10"),
        ..line(1, -120_000, "2026-03-03")
    }];
    let outcome = check(
        &next_day,
        &transfers,
        &config(),
        &["auto identifier L[1] T[7]"],
    );
    let explanation = &outcome.matches[0].explanation;
    assert!(
        explanation.contains("(1 working day apart)"),
        "{explanation}"
    );
}

#[test]
fn a_bank_reference_we_were_told_matches_automatically() {
    let lines = [BankLine {
        bank_ref: some("CMB20260302001"),
        end_to_end_id: some("NOTPROVIDED"),
        ..line(1, 300_000, "2026-03-02")
    }];
    let transfers = [transfer(7, 300_000, "2026-03-02", &["CMB20260302001"])];
    check(
        &lines,
        &transfers,
        &config(),
        &["auto identifier L[1] T[7]"],
    );
}

#[test]
fn an_identifier_with_a_different_amount_matches_nothing_and_says_why() {
    let lines = [BankLine {
        end_to_end_id: some("RL-2026-11"),
        ..line(1, -119_500, "2026-03-02")
    }];
    let transfers = [transfer(7, -120_000, "2026-03-02", &["RL-2026-11"])];
    check(
        &lines,
        &transfers,
        &config(),
        &[
            "line 1 ReferenceAmountMismatch { counterparts: [7] }",
            "transfer 7 ReferenceAmountMismatch { counterparts: [1] }",
        ],
    );
}

#[test]
fn a_full_width_reference_in_the_remittance_matches_automatically() {
    let lines = [BankLine {
        remittance: some("学费ＸＦ－２０２６－００４２张三"),
        ..line(1, 300_000, "2026-03-03")
    }];
    let transfers = [transfer(7, 300_000, "2026-03-02", &["xf_2026/0042"])];
    let outcome = check(&lines, &transfers, &config(), &["auto reference L[1] T[7]"]);
    assert!(outcome.matches[0]
        .explanation
        .contains("remittance text contains XF20260042"));
}

#[test]
fn a_remittance_reference_outside_the_window_is_only_an_unmatched_candidate() {
    let lines = [BankLine {
        remittance: some("order 20260042"),
        ..line(1, 300_000, "2026-03-13")
    }];
    let transfers = [transfer(7, 300_000, "2026-03-02", &["0020260042"])];
    check(
        &lines,
        &transfers,
        &config(),
        &["line 1 NoCandidate", "transfer 7 NoCandidate"],
    );
}

#[test]
fn two_transfers_sharing_an_order_number_make_a_suggestion_not_a_match() {
    // A line that could match two transfers: the nearer date is suggested,
    // the other transfer is left ambiguous for an officer.
    let lines = [BankLine {
        end_to_end_id: some("ORD-88"),
        ..line(1, 300_000, "2026-03-04")
    }];
    let transfers = [
        transfer(7, 300_000, "2026-03-02", &["ORD-88"]),
        transfer(8, 300_000, "2026-03-04", &["ORD-88"]),
    ];
    let outcome = check(
        &lines,
        &transfers,
        &config(),
        &[
            "suggest identifier L[1] T[8]",
            "transfer 7 Ambiguous { candidates: [1], total: 1 }",
        ],
    );
    assert!(outcome.suggestions[0]
        .explanation
        .contains("a tie among lines [1] and transfers [7, 8]"));
}

#[test]
fn a_counterparty_with_one_candidate_on_each_side_matches_automatically() {
    let lines = [BankLine {
        counterparty_name: some("张三 (北京)"),
        ..line(1, 300_000, "2026-03-03")
    }];
    let transfers = [LedgerTransfer {
        counterparty: some("张三（北京）"),
        ..transfer(7, 300_000, "2026-03-02", &[])
    }];
    check(
        &lines,
        &transfers,
        &config(),
        &["auto counterparty L[1] T[7]"],
    );
}

#[test]
fn counterparty_ties_are_resolved_as_an_assignment_not_first_come() {
    // Window 1. Line 1 (Tue) reaches transfers 1 (Wed) and 2 (Mon); line 2
    // (Thu) reaches only transfer 1. First come would give line 1 transfer 1
    // and leave line 2 with nothing.
    let config = MatchConfig {
        window_working_days: 1,
        ..config()
    };
    let parent = |l: BankLine| BankLine {
        counterparty_account: some("6222-0200-1234"),
        ..l
    };
    let lines = [
        parent(line(1, 300_000, "2026-03-03")),
        parent(line(2, 300_000, "2026-03-05")),
    ];
    let transfers = [
        LedgerTransfer {
            counterparty: some("622202001234"),
            ..transfer(1, 300_000, "2026-03-04", &[])
        },
        LedgerTransfer {
            counterparty: some("622202001234"),
            ..transfer(2, 300_000, "2026-03-02", &[])
        },
    ];
    check(
        &lines,
        &transfers,
        &config,
        &[
            "suggest counterparty L[1] T[2]",
            "suggest counterparty L[2] T[1]",
        ],
    );
}

#[test]
fn identical_payments_from_one_payer_pair_up_in_id_order_as_suggestions() {
    let payer = |l: BankLine| BankLine {
        counterparty_name: some("李四"),
        ..l
    };
    let lines: Vec<BankLine> = (1..=3)
        .map(|id| payer(line(id, 50_000, "2026-03-02")))
        .collect();
    let transfers: Vec<LedgerTransfer> = (11..=13)
        .map(|id| LedgerTransfer {
            counterparty: some("李四"),
            ..transfer(id, 50_000, "2026-03-02", &[])
        })
        .collect();
    check(
        &lines,
        &transfers,
        &config(),
        &[
            "suggest counterparty L[1] T[11]",
            "suggest counterparty L[2] T[12]",
            "suggest counterparty L[3] T[13]",
        ],
    );
}

#[test]
fn the_amount_alone_is_at_most_a_suggestion_and_nothing_when_ambiguous() {
    check(
        &[line(1, 300_000, "2026-03-03")],
        &[transfer(7, 300_000, "2026-03-02", &[])],
        &config(),
        &["suggest amount_date L[1] T[7]"],
    );
    check(
        &[
            line(1, 300_000, "2026-03-03"),
            line(2, 300_000, "2026-03-04"),
        ],
        &[transfer(7, 300_000, "2026-03-02", &[])],
        &config(),
        &[
            "line 1 Ambiguous { candidates: [7], total: 1 }",
            "line 2 Ambiguous { candidates: [7], total: 1 }",
            "transfer 7 Ambiguous { candidates: [1, 2], total: 2 }",
        ],
    );
}

#[test]
fn a_batched_release_is_suggested_as_one_line_for_several_transfers() {
    let lines = [line(1, -360_000, "2026-03-05")];
    let transfers = [
        transfer(7, -150_000, "2026-03-03", &["RL-7"]),
        transfer(8, -90_000, "2026-03-04", &["RL-8"]),
        transfer(9, -120_000, "2026-03-04", &["RL-9"]),
        // Wrong sign and too far away: never part of the group.
        transfer(10, 90_000, "2026-03-04", &[]),
        transfer(11, -90_000, "2026-02-02", &[]),
    ];
    let outcome = check(
        &lines,
        &transfers,
        &config(),
        &[
            "suggest grouped L[1] T[7, 8, 9]",
            "transfer 10 NoCandidate",
            "transfer 11 NoCandidate",
        ],
    );
    assert!(outcome.suggestions[0]
        .explanation
        .contains("exact sum of 3 items"));
    assert!(!outcome.group_search.cut);
}

#[test]
fn a_transfer_paid_in_several_lines_is_suggested_as_a_group() {
    let lines = [
        line(1, 100_000, "2026-03-02"),
        line(2, 150_000, "2026-03-03"),
        line(3, 50_000, "2026-03-03"),
    ];
    let transfers = [transfer(7, 300_000, "2026-03-02", &["XF-1"])];
    check(
        &lines,
        &transfers,
        &config(),
        &["suggest grouped L[1, 2, 3] T[7]"],
    );
}

#[test]
fn a_single_payment_of_the_amount_is_preferred_to_a_combination() {
    let lines = [
        line(1, -100_000, "2026-03-02"),
        line(2, -60_000, "2026-03-02"),
    ];
    let transfers = [
        transfer(7, -60_000, "2026-03-02", &[]),
        transfer(8, -40_000, "2026-03-02", &[]),
    ];
    // Line 1 could be 7 + 8, but 7 is line 2's only 1:1 partner.
    check(
        &lines,
        &transfers,
        &config(),
        &[
            "line 1 UnmatchedDebit",
            "suggest amount_date L[2] T[7]",
            "transfer 8 NoCandidate",
        ],
    );
}

#[test]
fn a_reversed_release_cancels_its_line_and_leaves_the_transfer_returned() {
    let lines = [
        BankLine {
            end_to_end_id: some("RL-1"),
            ..line(1, -120_000, "2026-03-02")
        },
        BankLine {
            end_to_end_id: some("RL-1"),
            reversal: true,
            ..line(2, 120_000, "2026-03-04")
        },
    ];
    let transfers = [transfer(7, -120_000, "2026-03-02", &["RL-1"])];
    let outcome = check(
        &lines,
        &transfers,
        &config(),
        &[
            "auto reversal L[1, 2] T[]",
            "transfer 7 Returned { lines: [1, 2] }",
        ],
    );
    assert!(outcome.matches[0].explanation.contains("reverses line 1"));
}

#[test]
fn a_release_sent_again_after_a_return_is_matched_by_the_new_line() {
    let lines = [
        BankLine {
            end_to_end_id: some("RL-1"),
            ..line(1, -120_000, "2026-03-02")
        },
        BankLine {
            end_to_end_id: some("RL-1"),
            reversal: true,
            ..line(2, 120_000, "2026-03-03")
        },
        BankLine {
            end_to_end_id: some("RL-1"),
            ..line(3, -120_000, "2026-03-05")
        },
    ];
    let transfers = [transfer(7, -120_000, "2026-03-02", &["RL-1"])];
    check(
        &lines,
        &transfers,
        &config(),
        &["auto identifier L[3] T[7]", "auto reversal L[1, 2] T[]"],
    );
}

#[test]
fn a_reversal_of_an_earlier_statement_is_reported_with_the_transfer_it_names() {
    let lines = [BankLine {
        end_to_end_id: some("RL-1"),
        reversal: true,
        ..line(2, 120_000, "2026-03-04")
    }];
    // The reversal is money in, like a receipt of the same amount would be;
    // it must never settle one.
    let transfers = [
        transfer(7, -120_000, "2026-03-02", &["RL-1"]),
        transfer(8, 120_000, "2026-03-04", &[]),
    ];
    check(
        &lines,
        &transfers,
        &config(),
        &[
            "line 2 Reversal { transfers: [7] }",
            "transfer 7 NoCandidate",
            "transfer 8 NoCandidate",
        ],
    );
}

#[test]
fn the_same_bank_line_reported_intraday_and_at_end_of_day_is_matched_once() {
    let lines = [
        BankLine {
            bank_ref: some("ICBC-555"),
            end_to_end_id: some("RL-5"),
            status: LineStatus::Pending,
            ..line(1, -80_000, "2026-03-02")
        },
        BankLine {
            bank_ref: some("ICBC-555"),
            end_to_end_id: some("RL-5"),
            ..line(2, -80_000, "2026-03-02")
        },
        BankLine {
            bank_ref: some("ICBC-555"),
            end_to_end_id: some("RL-5"),
            ..line(3, -80_000, "2026-03-02")
        },
        // No bank reference: two real payments of the same fee.
        line(4, 50_000, "2026-03-02"),
        line(5, 50_000, "2026-03-02"),
    ];
    let transfers = [transfer(7, -80_000, "2026-03-02", &["RL-5"])];
    check(
        &lines,
        &transfers,
        &config(),
        &[
            "auto identifier L[2] T[7]",
            "line 1 Duplicate { of: 2 }",
            "line 3 Duplicate { of: 2 }",
            "line 4 NoCandidate",
            "line 5 NoCandidate",
        ],
    );
}

#[test]
fn an_unmatched_debit_is_told_apart_from_an_unidentified_credit() {
    let lines = [
        line(1, -500_000, "2026-03-02"),
        line(2, 500_000, "2026-03-02"),
        BankLine {
            status: LineStatus::Info,
            ..line(3, -1, "2026-03-02")
        },
        line(4, 0, "2026-03-02"),
    ];
    let outcome = check(
        &lines,
        &[],
        &config(),
        &[
            "line 1 UnmatchedDebit",
            "line 2 NoCandidate",
            "line 3 NotBooked { status: Info }",
            "line 4 ZeroAmount",
        ],
    );
    let flagged: Vec<u64> = outcome
        .unmatched_lines
        .iter()
        .filter(|(_, r)| r.is_unauthorized_outflow())
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(flagged, [1]);
    assert_eq!(outcome.unmatched_lines[0].1.code(), "unmatched_debit");
}

#[test]
fn a_refund_never_settles_a_receipt_of_the_same_size() {
    let lines = [BankLine {
        end_to_end_id: some("RF-1"),
        ..line(1, -300_000, "2026-03-02")
    }];
    let transfers = [transfer(7, 300_000, "2026-03-02", &["RF-1"])];
    check(
        &lines,
        &transfers,
        &config(),
        &[
            "line 1 ReferenceAmountMismatch { counterparts: [7] }",
            "transfer 7 ReferenceAmountMismatch { counterparts: [1] }",
        ],
    );
}

#[test]
fn the_window_counts_working_days_across_a_holiday_and_a_make_up_saturday() {
    let with_holidays = MatchConfig {
        window_working_days: 1,
        calendar: national_day_2025(),
        ..config()
    };
    let plain = MatchConfig {
        window_working_days: 1,
        ..config()
    };
    let payer = |l: BankLine| BankLine {
        counterparty_name: some("王五"),
        ..l
    };
    let from = |id: u64, date: &str| LedgerTransfer {
        counterparty: some("王五"),
        ..transfer(id, 300_000, date, &[])
    };
    // 30 September to 9 October: nine calendar days, one working day.
    let lines = [payer(line(1, 300_000, "2025-10-09"))];
    let transfers = [from(7, "2025-09-30")];
    check(
        &lines,
        &transfers,
        &with_holidays,
        &["auto counterparty L[1] T[7]"],
    );
    check(
        &lines,
        &transfers,
        &plain,
        &["line 1 NoCandidate", "transfer 7 NoCandidate"],
    );
    // Friday 10 October to Monday 13: the Saturday between is worked.
    let lines = [payer(line(1, 300_000, "2025-10-13"))];
    let transfers = [from(7, "2025-10-10")];
    check(
        &lines,
        &transfers,
        &with_holidays,
        &["line 1 NoCandidate", "transfer 7 NoCandidate"],
    );
    check(&lines, &transfers, &plain, &["auto counterparty L[1] T[7]"]);
}

#[test]
fn a_pathological_grouped_search_stops_at_its_budget_and_says_so() {
    // Every transfer is 1 modulo 7 fen, the line a multiple of 7: no group
    // of 2 to 6 can sum to it, and the bounds prune little.
    let lines = [line(1, -(7 * 10_000), "2026-03-02")];
    let transfers: Vec<LedgerTransfer> = (0..2_000)
        .map(|i| {
            transfer(
                100 + i,
                -(7 * (i as i64 % 9_000) + 7_001),
                "2026-03-02",
                &[],
            )
        })
        .collect();
    let config = MatchConfig {
        max_group_search_steps: 200_000,
        max_group_search_steps_per_target: 100_000,
        ..config()
    };
    let started = Instant::now();
    let outcome = reconcile(&lines, &transfers, &config).unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed();
    assert_partition(&lines, &transfers, &outcome);
    assert!(outcome.group_search.cut);
    assert!(
        outcome.group_search.cut_lines.contains(&1),
        "{:?}",
        outcome.group_search
    );
    assert!(outcome.group_search.steps <= 200_000);
    assert!(outcome.suggestions.is_empty());
    assert_eq!(outcome.unmatched_lines, [(1, Reason::UnmatchedDebit)]);
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A mixed day: exact ids, remittance references, counterparties, groups,
/// amount-only, a reversal, duplicates and strays, for the shuffle check.
fn mixed_inputs(n: u64) -> (Vec<BankLine>, Vec<LedgerTransfer>) {
    let mut lines = vec![];
    let mut transfers = vec![];
    let date = |k: u64| format!("2026-03-{:02}", 2 + (k % 20));
    for k in 0..n {
        let id = k * 10;
        let amount = 10_000 + (k as i64 % 37) * 500;
        match k % 8 {
            0..=2 => {
                lines.push(BankLine {
                    end_to_end_id: some(&format!("RL-{k}")),
                    ..line(id, -amount, &date(k))
                });
                transfers.push(transfer(id, -amount, &date(k), &[&format!("RL-{k}")]));
            }
            3 => {
                lines.push(BankLine {
                    remittance: some(&format!("学费 XF {k:06}")),
                    ..line(id, amount, &date(k))
                });
                transfers.push(transfer(id, amount, &date(k), &[&format!("XF{k}")]));
            }
            4 => {
                lines.push(BankLine {
                    counterparty_name: some("赵六"),
                    ..line(id, amount, &date(k))
                });
                transfers.push(LedgerTransfer {
                    counterparty: some("赵六"),
                    ..transfer(id, amount, &date(k), &[])
                });
            }
            5 => {
                lines.push(line(id, -3 * amount, &date(k)));
                for j in 0..3 {
                    transfers.push(transfer(id + j, -amount, &date(k), &[]));
                }
            }
            6 => {
                lines.push(BankLine {
                    bank_ref: some(&format!("B-{k}")),
                    ..line(id, amount, &date(k))
                });
                lines.push(BankLine {
                    bank_ref: some(&format!("B-{k}")),
                    ..line(id + 1, amount, &date(k))
                });
            }
            _ => {
                lines.push(line(id, -amount - 1, &date(k)));
                lines.push(BankLine {
                    end_to_end_id: some(&format!("RL-{k}")),
                    reversal: true,
                    ..line(id + 1, amount, &date(k))
                });
                transfers.push(transfer(id, amount, &date(k), &[]));
            }
        }
    }
    (lines, transfers)
}

#[test]
fn shuffled_inputs_give_the_same_outcome() {
    let (lines, transfers) = mixed_inputs(400);
    let outcome = run(&lines, &transfers, &config());
    let passes: BTreeSet<Pass> = outcome
        .matches
        .iter()
        .chain(&outcome.suggestions)
        .map(|m| m.pass)
        .collect();
    assert!(passes.len() >= 4, "{passes:?}");
}

#[test]
fn fifty_thousand_mostly_exact_lines_all_match_automatically() {
    let n: u64 = 50_000;
    let mut lines = Vec::with_capacity(n as usize);
    let mut transfers = Vec::with_capacity(n as usize);
    for k in 0..n {
        let date = format!("2026-{:02}-{:02}", 1 + k % 12, 1 + k % 28);
        let amount = 10_000 + (k as i64 % 97) * 100;
        if k % 10 == 9 {
            // A tenth arrive with the order number typed into the remittance.
            lines.push(BankLine {
                remittance: some(&format!("学费 订单 ORD {k:08} 家长")),
                ..line(k, amount, &date)
            });
            transfers.push(transfer(k, amount, &date, &[&format!("ORD-{k:08}")]));
        } else {
            lines.push(BankLine {
                end_to_end_id: some(&format!("RL-{k}")),
                bank_ref: some(&format!("BK{k}")),
                ..line(k, -amount, &date)
            });
            transfers.push(transfer(
                k,
                -amount,
                &date,
                &[&format!("RL-{k}"), &format!("PO-{k}")],
            ));
        }
    }
    let started = Instant::now();
    let outcome = reconcile(&lines, &transfers, &config()).unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed();
    eprintln!("{n} lines against {n} transfers in {took:?} (debug build)");
    assert_eq!(outcome.matches.len(), n as usize);
    assert!(outcome.suggestions.is_empty());
    assert!(outcome.unmatched_lines.is_empty() && outcome.unmatched_transfers.is_empty());
    assert!(outcome.matches.iter().all(|m| m.lines == m.transfers));
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[track_caller]
fn check_error(lines: &[BankLine], transfers: &[LedgerTransfer], config: &MatchConfig, code: &str) {
    let error = reconcile(lines, transfers, config)
        .err()
        .unwrap_or_else(|| panic!("expected {code}"));
    assert_eq!(error.code(), code, "{error}");
}

#[test]
fn inputs_that_break_a_rule_are_refused_with_its_code() {
    let ok_line = line(1, 100, "2026-03-02");
    let ok_transfer = transfer(1, 100, "2026-03-02", &[]);
    let wide = MatchConfig {
        window_working_days: 261,
        ..config()
    };
    check_error(&[], &[], &wide, "window_too_wide");
    check_error(
        &[ok_line.clone(), ok_line.clone()],
        &[],
        &config(),
        "duplicate_line_id",
    );
    check_error(
        &[line(2, i64::MIN, "2026-03-02")],
        &[],
        &config(),
        "line_amount_out_of_range",
    );
    check_error(
        &[],
        &[ok_transfer.clone(), ok_transfer.clone()],
        &config(),
        "duplicate_transfer_id",
    );
    let backwards = LedgerTransfer {
        kind: TransferKind::Refund,
        ..ok_transfer.clone()
    };
    check_error(&[], &[backwards], &config(), "sign_disagrees_with_kind");
    let zero = transfer(2, 0, "2026-03-02", &[]);
    check_error(&[], &[zero], &config(), "sign_disagrees_with_kind");
    let huge = LedgerTransfer {
        kind: TransferKind::Refund,
        ..transfer(3, i64::MIN, "2026-03-02", &[])
    };
    check_error(&[], &[huge], &config(), "transfer_amount_out_of_range");
    let message = reconcile(&[], &[backwards_refund()], &config())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some("ledger transfer 4: a refund must be negative, got 100")
    );
    assert!(matches!(
        reconcile(&[], &[], &wide),
        Err(ReconcileError::WindowTooWide {
            working_days: 261,
            max: 260
        })
    ));
}

fn backwards_refund() -> LedgerTransfer {
    LedgerTransfer {
        kind: TransferKind::Refund,
        ..transfer(4, 100, "2026-03-02", &[])
    }
}
