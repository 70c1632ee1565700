//! The detection bound (issue 15, DETECTION.md): a small simulated county
//! (`escrow_ledger::simulate`) replayed day by day through ingest,
//! reconciliation and the risk scan (on SQLite; the kept matches' read on
//! PostgreSQL too), whose run-offs must turn red
//! at least 30 days before they collapse and whose healthy institutions
//! must stay green. A regression of the engine's recall or of its false
//! alarms fails it. The full county, on several seeds, is DETECTION.md's.

use api::app::risk::{self, Loading, Reading};
use api::simulate::{self, Options, Pattern};
use chrono::{Duration, NaiveDate};
use ledger_core::domain::risk::snapshot;
use ledger_core::{JurisdictionCode, RulePack, RuleParams, Store};

#[path = "support/scratch_pg.rs"]
mod scratch_pg;
use scratch_pg::ScratchPg;

#[tokio::test]
async fn a_small_county_has_its_run_offs_red_a_month_ahead_and_its_healthy_left_in_peace() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("county.db").display());
    let mut options = Options::new(7);
    // Three small schools and three medium ones: the medium sell the
    // twenty packages a month from which the share at the caps counts, and
    // its chance wandering was what made the healthy yellow (DETECTION.md).
    options.healthy = 6;
    options.days = 60;
    options.patterns = vec![
        Pattern::OutrightDrain,
        Pattern::DivertedFees,
        Pattern::BankFallsSilent,
        Pattern::RefundsUnpaid,
    ];
    let (store, clock) = simulate::open(&url, &options).await.unwrap();
    let report = simulate::run(&store, &clock, &options).await.unwrap();
    // The county's history then serves the scan's summed lessons (below).
    summing_old_lessons_changes_no_assessment(&store, &options).await;
    let table = report.markdown();
    // Recall: each run-off red a month or more before its collapse (the
    // aim; on this seed the tightest, the bank falling silent, is 39 days).
    for s in report.runoffs() {
        assert!(
            s.lead_days().is_some_and(|d| d >= 30),
            "{:?} not red 30 days before collapse:\n{table}",
            s.pattern
        );
    }
    assert_eq!(report.caught_with_lead(30), 4, "{table}");
    // The families leaving the school whose refunds go unpaid (half ask
    // through the workflow, half are approved) are a sign of their own,
    // read from the store's requests and approval entries.
    let unpaid = report
        .runoffs()
        .find(|s| s.pattern == Some(Pattern::RefundsUnpaid))
        .unwrap();
    assert!(
        unpaid.watch.seen.contains("families_leaving"),
        "{:?}",
        unpaid.watch.seen
    );
    // False alarms: no healthy institution red, none yellow, any day.
    for s in report.healthy() {
        assert_eq!(
            (s.watch.days_red, s.watch.days_yellow),
            (0, 0),
            "{} was flagged:\n{table}",
            s.id
        );
    }
}

/// The daily scan reads the banks' lines as reconciliation kept them
/// (`Reading::Windowed`, `snapshot::KeptAccount`): claimed lines of
/// statements before the windows stay in the database and the matcher runs
/// only on what reconciliation left open. Every day of a small county with
/// windows narrowed to 7 and 14 days (so that most of the run lies before
/// them), right after that day's reconciliation and scan, each
/// institution's records read that way must assess exactly as the whole
/// history matched afresh does, evidence and sentences included; on both
/// dialects, whose SQL picks the lines and the kept matches.
#[tokio::test]
async fn the_daily_scan_reads_kept_matches_and_assesses_as_the_whole_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("county.db").display());
    kept_matches_assess_as_the_whole_history(&url).await;
    let pg = ScratchPg::create(format!("el_test_detection_{}", std::process::id())).await;
    kept_matches_assess_as_the_whole_history(&pg.url).await;
    pg.drop().await;
}

async fn kept_matches_assess_as_the_whole_history(url: &str) {
    let mut options = Options::new(11);
    options.healthy = 3;
    options.warmup_days = 30;
    options.days = 40;
    options.patterns = vec![
        Pattern::OutrightDrain,
        Pattern::DivertedFees,
        Pattern::BankFallsSilent,
        Pattern::RefundsUnpaid,
    ];
    options.windows = Some((7, 14));
    options.check_reads = true;
    // The families confirm lessons, so that records of every age (and
    // disputes upheld) are read too.
    options.families_confirm = true;
    let (store, clock) = simulate::open(url, &options).await.unwrap();
    let report = simulate::run(&store, &clock, &options).await.unwrap();
    let checked = report.reads_checked;
    let institution_days = 70 * 7;
    assert_eq!(checked.assessments, institution_days, "{url}: {checked:?}");
    // The reads compared were the kept matches' (nothing in the county is
    // dated after the day scanned), and they left lines out.
    assert_eq!(
        checked.with_kept_matches, institution_days,
        "{url}: {checked:?}"
    );
    assert!(checked.lines_left_out > 1_000, "{url}: {checked:?}");
    assert!(checked.lesson_records_left_out > 200, "{url}: {checked:?}");
    // The run-offs were there to be told apart: red on some day.
    assert!(
        report.runoffs().all(|s| s.watch.first_red.is_some()),
        "{url}:\n{}",
        report.markdown()
    );
    store.close().await;
}

/// The daily scan reads the lessons consumed before the days the risk
/// engine looks at summed per enrollment by the database
/// (`Reading::Windowed`); the assessments must be exactly those
/// of every lesson listed. With the county's windows narrowed to 7 and 14
/// days (a rule pack added after the run), the lessons of all but the last
/// seven weeks are summed; every fourth day of the run, each institution's
/// records read both ways give the same assessment, the store's sums are
/// what `snapshot::sum_lessons_before` makes of the listed records, and the
/// whole county (peers included) ranks the same.
async fn summing_old_lessons_changes_no_assessment(store: &Store, options: &Options) {
    let county = JurisdictionCode::parse(simulate::COUNTY).unwrap();
    store
        .put_rule_pack(&RulePack {
            jurisdiction: county.clone(),
            version: 2,
            effective_from: options.start,
            params: RuleParams {
                amount_cap_applies_to_subject: Some(true),
                lookback_days: Some(7),
                baseline_days: Some(14),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let institutions = store.institutions().await.unwrap();
    let last = options.start + Duration::days(i64::from(options.warmup_days + options.days) - 1);
    let mut summed_lessons = 0;
    let mut day: NaiveDate = options.start + Duration::days(50);
    while day <= last {
        for institution in &institutions {
            let listed = risk::records_of(store, institution, day, Reading::Whole)
                .await
                .unwrap();
            let summed = risk::records_of(store, institution, day, Reading::Windowed)
                .await
                .unwrap();
            let from = snapshot::lessons_listed_from(&listed.rules, &listed.accounts, day)
                .expect("the county's pack has both windows");
            let mut by_hand = listed.clone();
            snapshot::sum_lessons_before(&mut by_hand, from);
            // (The lines may differ: a windowed read takes reconciliation's
            // kept matches when nothing is dated after the day.)
            assert_eq!(
                (&summed.entries, &summed.lessons_summed),
                (&by_hand.entries, &by_hand.lessons_summed),
                "{} on {day}: the store's sums",
                institution.id
            );
            summed_lessons += summed.lessons_summed.len();
            let evaluate = |r: &snapshot::Records| {
                ledger_core::domain::risk::evaluate(&risk::snapshot(r, day).unwrap())
            };
            assert_eq!(
                evaluate(&summed),
                evaluate(&listed),
                "{} on {day}: summed lessons change the assessment",
                institution.id
            );
        }
        let scope = JurisdictionCode::national();
        let listed = risk::assess_loaded(
            store,
            institutions.clone(),
            day,
            Loading::SetWise,
            Reading::Whole,
        )
        .await
        .unwrap();
        assert_eq!(
            risk::assess(store, &scope, day).await.unwrap(),
            listed,
            "{day}"
        );
        day += Duration::days(4);
    }
    // The sums were there to be compared: each institution's enrollments
    // taught before the last seven weeks, on most of the days.
    assert!(
        summed_lessons > institutions.len() * 10,
        "only {summed_lessons} enrollments' lessons were summed"
    );
}
