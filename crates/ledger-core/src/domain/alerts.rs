//! Alerts: a risk signal that an officer works, with its lifecycle. Open →
//! acknowledged → rectification requested (with a due date) → resolved; a
//! resolved alert whose condition comes back is reopened, never duplicated.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::error::LedgerError;
use crate::domain::ids::InstitutionId;
use crate::domain::risk::SignalKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    RectificationRequested,
    Resolved,
}

impl AlertStatus {
    pub fn code(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::RectificationRequested => "rectification_requested",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        [
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::RectificationRequested,
            AlertStatus::Resolved,
        ]
        .into_iter()
        .find(|s| s.code() == text)
        .ok_or_else(|| LedgerError::InvalidField {
            field: "status",
            reason: format!(
                "{text:?} is not open, acknowledged, rectification_requested or resolved"
            ),
        })
    }
}

/// What an officer does to an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertAction {
    Acknowledge,
    RequestRectification { due: NaiveDate },
    Resolve,
}

impl AlertAction {
    pub fn code(&self) -> &'static str {
        match self {
            AlertAction::Acknowledge => "acknowledged",
            AlertAction::RequestRectification { .. } => "rectification_requested",
            AlertAction::Resolve => "resolved",
        }
    }
}

/// The status an action leads to, or why it may not be taken.
pub fn transition(from: AlertStatus, action: &AlertAction) -> Result<AlertStatus, LedgerError> {
    use AlertStatus::*;
    let to = match (from, action) {
        (Open, AlertAction::Acknowledge) => Acknowledged,
        (
            Open | Acknowledged | RectificationRequested,
            AlertAction::RequestRectification { .. },
        ) => RectificationRequested,
        (Open | Acknowledged | RectificationRequested, AlertAction::Resolve) => Resolved,
        _ => {
            return Err(LedgerError::InvalidAlertTransition {
                from: from.code(),
                action: action.code(),
            })
        }
    };
    Ok(to)
}

/// How bad a finding is. Yellow sorts before red, so `max` is the worse of
/// two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Yellow,
    Red,
}

impl Severity {
    pub const ALL: [Severity; 2] = [Severity::Yellow, Severity::Red];

    pub fn code(self) -> &'static str {
        match self {
            Severity::Yellow => "yellow",
            Severity::Red => "red",
        }
    }

    pub fn parse(text: &str) -> Result<Severity, LedgerError> {
        Severity::ALL
            .into_iter()
            .find(|s| s.code() == text)
            .ok_or_else(|| LedgerError::InvalidField {
                field: "severity",
                reason: format!("{text:?} is not yellow or red"),
            })
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What an alert is about: a signal of the risk engine, or a step of the
/// money's way that went wrong (an instruction the bank returned, a refund
/// escrow cannot pay, a refund unpaid past its deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    Signal(SignalKind),
    InstructionReturned,
    RefundBlocked,
    RefundOverdue,
}

impl AlertKind {
    pub fn code(self) -> &'static str {
        match self {
            AlertKind::Signal(s) => s.code(),
            AlertKind::InstructionReturned => "instruction_returned",
            AlertKind::RefundBlocked => "refund_blocked",
            AlertKind::RefundOverdue => "refund_overdue",
        }
    }

    pub fn parse(text: &str) -> Result<AlertKind, LedgerError> {
        let workflow = [
            AlertKind::InstructionReturned,
            AlertKind::RefundBlocked,
            AlertKind::RefundOverdue,
        ];
        SignalKind::ALL
            .into_iter()
            .map(AlertKind::Signal)
            .chain(workflow)
            .find(|k| k.code() == text)
            .ok_or_else(|| LedgerError::InvalidField {
                field: "kind",
                reason: format!("{text:?} is not a kind of alert"),
            })
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for AlertKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// One finding of a risk run, as an alert records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable across runs for the same condition (e.g. `unauthorized_outflow:<line>`).
    pub key: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub summary: String,
    /// The evidence, as JSON.
    pub evidence: String,
    pub rule_pack: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub institution: InstitutionId,
    pub key: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub summary: String,
    pub evidence: String,
    pub rule_pack: String,
    pub status: AlertStatus,
    pub rectification_due: Option<NaiveDate>,
    pub first_seen_on: NaiveDate,
    pub last_seen_on: NaiveDate,
}

/// What a risk run did to the alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordReport {
    pub raised: u32,
    pub updated: u32,
    pub reopened: u32,
    pub unchanged: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(from: AlertStatus, action: AlertAction, expected: Result<AlertStatus, &str>) {
        assert_eq!(transition(from, &action).map_err(|e| e.code()), expected);
    }

    #[test]
    fn alerts_move_forward_and_a_resolved_one_takes_no_action() {
        use AlertStatus::*;
        let due = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        check(Open, AlertAction::Acknowledge, Ok(Acknowledged));
        check(
            Acknowledged,
            AlertAction::RequestRectification { due },
            Ok(RectificationRequested),
        );
        check(RectificationRequested, AlertAction::Resolve, Ok(Resolved));
        check(Open, AlertAction::Resolve, Ok(Resolved));
        check(
            Acknowledged,
            AlertAction::Acknowledge,
            Err("invalid_alert_transition"),
        );
        check(
            Resolved,
            AlertAction::Resolve,
            Err("invalid_alert_transition"),
        );
        check(
            Resolved,
            AlertAction::Acknowledge,
            Err("invalid_alert_transition"),
        );
    }
}
