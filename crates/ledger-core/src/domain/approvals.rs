//! Maker–checker (two people for money that leaves): which requests wait
//! for a second officer, and who may give that approval. Pure: the
//! application layer loads the request and the approver and asks here.
//!
//! Waiting for a second officer: every manual release, every payee change,
//! a refund above the rule pack's `refund_two_officers_above_minor`, and a
//! rule pack that loosens a limit (`policy::floors`).
//!
//! Refusal precedence (the first that applies is the answer):
//! `approval_already_decided`, `approval_being_decided`,
//! `institution_cannot_approve`,
//! `approver_not_an_officer`, `outside_approver_jurisdiction`,
//! `same_person_cannot_approve`.

use chrono::{DateTime, Utc};

use crate::domain::ids::{InstitutionId, JurisdictionCode};

/// What a request, once approved, does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalKind {
    /// A manual release (拨付) to the payee on file.
    Release,
    /// A new payee account for an institution's releases.
    PayeeChange,
    /// A refund above the rule pack's threshold.
    Refund,
    /// A rule pack version that loosens a limit.
    RulePack,
}

impl ApprovalKind {
    pub const ALL: [ApprovalKind; 4] = [
        ApprovalKind::Release,
        ApprovalKind::PayeeChange,
        ApprovalKind::Refund,
        ApprovalKind::RulePack,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ApprovalKind::Release => "release",
            ApprovalKind::PayeeChange => "payee_change",
            ApprovalKind::Refund => "refund",
            ApprovalKind::RulePack => "rule_pack",
        }
    }

    pub fn parse(code: &str) -> Option<ApprovalKind> {
        ApprovalKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// Who asks or answers: a token, the person holding it (its name), and
/// what it is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub token_id: String,
    /// The holder's name: one person may hold several tokens, so a second
    /// token under the same name is the same person.
    pub name: String,
    pub standing: Standing,
}

/// What a party is, for the approval rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// A bureau officer over a jurisdiction and everything below it.
    Officer(JurisdictionCode),
    /// An institution (it may never approve, least of all for itself).
    Institution(InstitutionId),
    /// Any other caller (an administrator, a platform, a bank): it may
    /// request where its role allows, never approve.
    Other(&'static str),
}

impl Party {
    /// How the records name the party: `name (role token id)`, the form
    /// refunds and payees already carry.
    pub fn describe(&self) -> String {
        let role = match &self.standing {
            Standing::Officer(_) => "officer",
            Standing::Institution(_) => "institution",
            Standing::Other(role) => role,
        };
        format!("{} ({role} token {})", self.name, self.token_id)
    }

    /// Whether `self` and the party that `described` names (see
    /// [`Party::describe`]) are the same person: the same token, or the
    /// same holder's name.
    pub fn is_described_by(&self, described: &str) -> bool {
        let Some((name, rest)) = described.rsplit_once(" (") else {
            return described == self.name;
        };
        let token = rest
            .strip_suffix(')')
            .and_then(|r| r.rsplit_once(" token "))
            .map(|(_, id)| id);
        token == Some(self.token_id.as_str()) || name == self.name
    }

    pub fn same_person(&self, token_id: &str, name: &str) -> bool {
        self.token_id == token_id || self.name == name
    }
}

/// A request waiting for (or given) a second officer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub kind: ApprovalKind,
    /// The jurisdiction whose officers may approve it (the institution's,
    /// or the rule pack's).
    pub jurisdiction: JurisdictionCode,
    pub institution: Option<InstitutionId>,
    /// What it is about: an institution, a refund, `code@version`.
    pub subject: String,
    /// What it does once approved, encoded by the application layer.
    pub payload: String,
    /// One line for people: what, how much, to whom.
    pub summary: String,
    pub requested_by: String,
    pub requested_token: String,
    pub requested_name: String,
    pub requested_at: DateTime<Utc>,
    /// Who took the decision, before its effect ran: at most one per
    /// request, so exactly one decider wins (see [`Claim`]).
    pub claim: Option<Claim>,
    pub decision: Option<Decision>,
}

/// The decision taken, before its effect runs. One per request (the
/// first wins); a rejection is claimed and recorded at once, an approval
/// is claimed, its effect runs, then its decision is recorded. An
/// approval claimed and not recorded is `approving`: its effect is under
/// way, or was cut short and is completed by the approver's retry or the
/// workflow job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub approved: bool,
    pub by: String,
    pub token: String,
    pub at: DateTime<Utc>,
}

/// The one answer a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub approved: bool,
    pub by: String,
    pub token: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl Approval {
    pub fn state(&self) -> &'static str {
        match (&self.decision, &self.claim) {
            (Some(d), _) if d.approved => "approved",
            (Some(_), _) => "rejected",
            (None, Some(c)) if c.approved => "approving",
            (None, Some(_)) => "rejecting",
            (None, None) => "pending",
        }
    }
}

/// Why an approval (or a rejection) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefusal {
    #[error("approval {id} is already {state}")]
    AlreadyDecided { id: String, state: &'static str },
    #[error("approval {id} is being {state} by {by} since {since}: that decision stands unless its effect is refused")]
    BeingDecided {
        id: String,
        state: &'static str,
        by: String,
        since: DateTime<Utc>,
    },
    #[error("an institution may not approve {what}")]
    InstitutionCannotApprove { what: String },
    #[error("only an officer may approve {what}; a {role} token may not")]
    NotAnOfficer { what: String, role: &'static str },
    #[error("officer of {officer} may not approve {what} of {subject}, outside that jurisdiction")]
    OutsideJurisdiction {
        what: String,
        officer: JurisdictionCode,
        subject: JurisdictionCode,
    },
    #[error("{what} was requested by {requested_by}: a second, different officer must approve it")]
    SamePerson { what: String, requested_by: String },
}

impl ApprovalRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            ApprovalRefusal::AlreadyDecided { .. } => "approval_already_decided",
            ApprovalRefusal::BeingDecided { .. } => "approval_being_decided",
            ApprovalRefusal::InstitutionCannotApprove { .. } => "institution_cannot_approve",
            ApprovalRefusal::NotAnOfficer { .. } => "approver_not_an_officer",
            ApprovalRefusal::OutsideJurisdiction { .. } => "outside_approver_jurisdiction",
            ApprovalRefusal::SamePerson { .. } => "same_person_cannot_approve",
        }
    }

    /// A conflict with the record's state, or a refusal of the person.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ApprovalRefusal::AlreadyDecided { .. } | ApprovalRefusal::BeingDecided { .. }
        )
    }
}

/// Whether `approver` may approve (or reject) `approval`: an officer whose
/// jurisdiction covers it, not the person who asked, and only while it
/// waits.
pub fn check_approver(approval: &Approval, approver: &Party) -> Result<(), ApprovalRefusal> {
    let what = format!("{} {}", approval.kind.code().replace('_', " "), approval.id);
    if approval.decision.is_some() {
        return Err(ApprovalRefusal::AlreadyDecided {
            id: approval.id.clone(),
            state: approval.state(),
        });
    }
    // Another's decision under way; one's own is taken up again (a retry
    // completes it).
    if let Some(c) = approval
        .claim
        .as_ref()
        .filter(|c| c.token != approver.token_id)
    {
        return Err(ApprovalRefusal::BeingDecided {
            id: approval.id.clone(),
            state: if c.approved { "approved" } else { "rejected" },
            by: c.by.clone(),
            since: c.at,
        });
    }
    check_officer(
        &what,
        &approval.jurisdiction,
        approver,
        approver.same_person(&approval.requested_token, &approval.requested_name),
        &approval.requested_by,
    )
}

/// The person rules alone, for a step that is not an [`Approval`] record
/// (the refund's own requester as the second officer): `same_person` says
/// whether the approver is who asked, `requested_by` names them.
pub fn check_officer(
    what: &str,
    jurisdiction: &JurisdictionCode,
    approver: &Party,
    same_person: bool,
    requested_by: &str,
) -> Result<(), ApprovalRefusal> {
    match &approver.standing {
        Standing::Institution(_) => Err(ApprovalRefusal::InstitutionCannotApprove {
            what: what.to_string(),
        }),
        Standing::Other(role) => Err(ApprovalRefusal::NotAnOfficer {
            what: what.to_string(),
            role,
        }),
        Standing::Officer(code) if !code.covers(jurisdiction) => {
            Err(ApprovalRefusal::OutsideJurisdiction {
                what: what.to_string(),
                officer: code.clone(),
                subject: jurisdiction.clone(),
            })
        }
        Standing::Officer(_) if same_person => Err(ApprovalRefusal::SamePerson {
            what: what.to_string(),
            requested_by: requested_by.to_string(),
        }),
        Standing::Officer(_) => Ok(()),
    }
}

/// Whether a refund of `amount_minor` needs a second officer under a
/// threshold (`None`: no refund does).
pub fn refund_needs_second_officer(amount_minor: i64, threshold_minor: Option<i64>) -> bool {
    threshold_minor.is_some_and(|t| amount_minor > t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> JurisdictionCode {
        JurisdictionCode::parse(c).unwrap()
    }

    fn officer(token: &str, name: &str, j: &str) -> Party {
        Party {
            token_id: token.into(),
            name: name.into(),
            standing: Standing::Officer(code(j)),
        }
    }

    fn approval(by: &Party) -> Approval {
        Approval {
            id: "AP1".into(),
            kind: ApprovalKind::Release,
            jurisdiction: code("410922"),
            institution: Some(InstitutionId::parse("INS-A").unwrap()),
            subject: "INS-A".into(),
            payload: "{}".into(),
            summary: "release 500.00 CNY".into(),
            requested_by: by.describe(),
            requested_token: by.token_id.clone(),
            requested_name: by.name.clone(),
            requested_at: DateTime::<Utc>::default(),
            claim: None,
            decision: None,
        }
    }

    #[track_caller]
    fn check(approver: &Party, a: &Approval, expected: Result<(), &str>) {
        assert_eq!(
            check_approver(a, approver).map_err(|e| e.code()),
            expected,
            "{approver:?}"
        );
    }

    #[test]
    fn a_second_different_officer_covering_the_subject_may_approve() {
        let maker = officer("t1", "Li Wei", "410922");
        let a = approval(&maker);
        check(&officer("t2", "Wang Fang", "410922"), &a, Ok(()));
        check(&officer("t3", "Zhao Min", "410900"), &a, Ok(()));
    }

    #[test]
    fn every_refusal_has_its_code() {
        let maker = officer("t1", "Li Wei", "410922");
        let mut a = approval(&maker);
        check(&maker, &a, Err("same_person_cannot_approve"));
        // Another token of the same person.
        check(
            &officer("t9", "Li Wei", "410922"),
            &a,
            Err("same_person_cannot_approve"),
        );
        check(
            &officer("t2", "Wang Fang", "410923"),
            &a,
            Err("outside_approver_jurisdiction"),
        );
        let school = Party {
            token_id: "t4".into(),
            name: "INS-A".into(),
            standing: Standing::Institution(InstitutionId::parse("INS-A").unwrap()),
        };
        check(&school, &a, Err("institution_cannot_approve"));
        let admin = Party {
            token_id: "t5".into(),
            name: "root".into(),
            standing: Standing::Other("admin"),
        };
        check(&admin, &a, Err("approver_not_an_officer"));
        a.claim = Some(Claim {
            approved: true,
            by: "Wang Fang (officer token t2)".into(),
            token: "t2".into(),
            at: DateTime::<Utc>::default(),
        });
        // Another's decision under way, whoever else asks; its taker goes on.
        check(
            &officer("t3", "Zhao Min", "410900"),
            &a,
            Err("approval_being_decided"),
        );
        check(&maker, &a, Err("approval_being_decided"));
        check(&officer("t2", "Wang Fang", "410922"), &a, Ok(()));
        a.decision = Some(Decision {
            approved: false,
            by: "x".into(),
            token: "t2".into(),
            reason: None,
            at: DateTime::<Utc>::default(),
        });
        // Decided comes first, whoever asks.
        check(&maker, &a, Err("approval_already_decided"));
        check(
            &officer("t2", "Wang Fang", "410922"),
            &a,
            Err("approval_already_decided"),
        );
    }

    #[test]
    fn a_description_names_its_token_and_its_holder() {
        let p = officer("abc", "Li Wei", "410922");
        assert_eq!(p.describe(), "Li Wei (officer token abc)");
        assert!(p.is_described_by("Li Wei (officer token abc)"));
        assert!(p.is_described_by("Someone (platform token abc)"));
        assert!(p.is_described_by("Li Wei (officer token zzz)"));
        assert!(!p.is_described_by("Wang Fang (officer token zzz)"));
    }

    #[test]
    fn refunds_above_the_threshold_need_a_second_officer() {
        assert!(!refund_needs_second_officer(1_000_000, None));
        assert!(!refund_needs_second_officer(500_000, Some(500_000)));
        assert!(refund_needs_second_officer(500_001, Some(500_000)));
    }

    #[test]
    fn kinds_round_trip_through_their_codes() {
        for k in ApprovalKind::ALL {
            assert_eq!(ApprovalKind::parse(k.code()), Some(k));
        }
        assert_eq!(ApprovalKind::parse("payout"), None);
    }
}
