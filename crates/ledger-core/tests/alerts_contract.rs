//! Alerts in the store, the same bodies on PostgreSQL and SQLite: a finding
//! seen again updates its alert, a resolved one comes back reopened, and
//! every officer action is checked and left in the trail.

mod support {
    pub mod county;
    pub mod db;
}

use ledger_core::domain::alerts::{AlertAction, AlertStatus, Finding};
use support::county::*;
use support::db::TestDb;

contract!(
    the_same_condition_on_the_next_run_updates_its_alert_instead_of_raising_another,
    officers_move_an_alert_through_its_lifecycle_and_every_step_is_kept,
    a_refused_action_changes_nothing,
);

fn finding(severity: &str, summary: &str) -> Finding {
    Finding {
        key: "unauthorized_outflow:L-9".into(),
        kind: ledger_core::domain::alerts::AlertKind::Signal(
            ledger_core::domain::risk::SignalKind::UnauthorizedOutflow,
        ),
        severity: ledger_core::domain::alerts::Severity::parse(severity).unwrap(),
        summary: summary.into(),
        evidence: "[]".into(),
        rule_pack: "national@builtin".into(),
    }
}

async fn the_same_condition_on_the_next_run_updates_its_alert_instead_of_raising_another(
    db: &TestDb,
) {
    let s = &db.store;
    seeded(s).await;
    let r = s
        .record_findings(
            &iid("I1"),
            day("2026-11-05"),
            &[finding("red", "30,000.00 left")],
        )
        .await
        .unwrap();
    assert_eq!(r.raised, 1);
    let r = s
        .record_findings(
            &iid("I1"),
            day("2026-11-06"),
            &[finding("red", "30,000.00 left")],
        )
        .await
        .unwrap();
    assert_eq!((r.raised, r.unchanged), (0, 1));
    let r = s
        .record_findings(
            &iid("I1"),
            day("2026-11-07"),
            &[finding("red", "31,000.00 left")],
        )
        .await
        .unwrap();
    assert_eq!(r.updated, 1);
    let alerts = s.alerts(Some(&iid("I1")), None).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].first_seen_on, day("2026-11-05"));
    assert_eq!(alerts[0].last_seen_on, day("2026-11-07"));
    assert_eq!(alerts[0].summary, "31,000.00 left");
    assert_eq!(alerts[0].status, AlertStatus::Open);
    let trail = s
        .alert_trail(&iid("I1"), "unauthorized_outflow:L-9")
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(actions, ["raised", "updated"]);
    assert_eq!(
        s.record_findings(&iid("NOPE"), day("2026-11-07"), &[])
            .await
            .unwrap_err()
            .code(),
        "unknown_institution"
    );
}

async fn officers_move_an_alert_through_its_lifecycle_and_every_step_is_kept(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.record_findings(&iid("I1"), day("2026-11-05"), &[finding("red", "gone")])
        .await
        .unwrap();
    let key = "unauthorized_outflow:L-9";
    let a = s
        .act_on_alert(
            &iid("I1"),
            key,
            &AlertAction::Acknowledge,
            "officer-wang",
            Some("calling the bank"),
        )
        .await
        .unwrap();
    assert_eq!(a.status, AlertStatus::Acknowledged);
    let due = day("2026-11-20");
    let a = s
        .act_on_alert(
            &iid("I1"),
            key,
            &AlertAction::RequestRectification { due },
            "officer-wang",
            Some("return the money"),
        )
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.rectification_due),
        (AlertStatus::RectificationRequested, Some(due))
    );
    let a = s
        .act_on_alert(
            &iid("I1"),
            key,
            &AlertAction::Resolve,
            "officer-li",
            Some("returned"),
        )
        .await
        .unwrap();
    assert_eq!(a.status, AlertStatus::Resolved);
    // The condition comes back: the same alert reopens.
    let r = s
        .record_findings(
            &iid("I1"),
            day("2026-12-01"),
            &[finding("red", "gone again")],
        )
        .await
        .unwrap();
    assert_eq!(r.reopened, 1);
    assert_eq!(
        s.alerts(None, Some(AlertStatus::Open)).await.unwrap().len(),
        1
    );
    let trail = s.alert_trail(&iid("I1"), key).await.unwrap();
    let steps: Vec<(&str, &str)> = trail.iter().map(|t| (t.1.as_str(), t.2.as_str())).collect();
    assert_eq!(
        steps,
        [
            ("risk-engine", "raised"),
            ("officer-wang", "acknowledged"),
            ("officer-wang", "rectification_requested"),
            ("officer-li", "resolved"),
            ("risk-engine", "reopened"),
        ]
    );
}

async fn a_refused_action_changes_nothing(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    let key = "unauthorized_outflow:L-9";
    s.record_findings(&iid("I1"), day("2026-11-05"), &[finding("red", "gone")])
        .await
        .unwrap();
    s.act_on_alert(&iid("I1"), key, &AlertAction::Resolve, "officer-li", None)
        .await
        .unwrap();
    let before = db.dump().await;
    let trail = s.alert_trail(&iid("I1"), key).await.unwrap();
    let err = s
        .act_on_alert(
            &iid("I1"),
            key,
            &AlertAction::Acknowledge,
            "officer-li",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_alert_transition");
    let err = s
        .act_on_alert(
            &iid("I1"),
            "nope",
            &AlertAction::Resolve,
            "officer-li",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_alert");
    let err = s
        .act_on_alert(&iid("I1"), key, &AlertAction::Resolve, " ", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_field");
    assert_eq!(db.dump().await, before);
    assert_eq!(s.alert_trail(&iid("I1"), key).await.unwrap(), trail);
}
