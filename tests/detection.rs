//! The detection bound (issue 15, DETECTION.md): a small simulated county
//! (`escrow_ledger::simulate`) replayed day by day through ingest,
//! reconciliation and the risk scan on SQLite, whose run-offs must turn red
//! at least 30 days before they collapse and whose healthy institutions
//! must stay green. A regression of the engine's recall or of its false
//! alarms fails it. The full county, on several seeds, is DETECTION.md's.

use api::simulate::{self, Options, Pattern};

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
