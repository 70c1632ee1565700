//! Who may do what: roles, their scopes, and the permission table. Pure: the
//! HTTP layer asks these questions in one place (`http::guard`), with the
//! target it has loaded.

use ledger_core::{EnrollmentId, Institution, InstitutionId, JurisdictionCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A jurisdiction and everything below it.
    Officer,
    /// One supervising bank.
    Bank,
    /// One institution.
    Institution,
    /// The national or provincial platform integration for a jurisdiction.
    Platform,
    /// Everything, including tokens.
    Admin,
    /// A family: one enrollment (its token handed over by the institution
    /// when the enrollment was made).
    Family,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Officer,
        Role::Bank,
        Role::Institution,
        Role::Platform,
        Role::Admin,
        Role::Family,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Bank => "bank",
            Role::Institution => "institution",
            Role::Platform => "platform",
            Role::Admin => "admin",
            Role::Family => "family",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a token is limited to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Jurisdiction(JurisdictionCode),
    Institution(InstitutionId),
    Bank(String),
    /// One enrollment of one institution (a family).
    Enrollment(InstitutionId, EnrollmentId),
}

impl Scope {
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Jurisdiction(_) => "jurisdiction",
            Scope::Institution(_) => "institution",
            Scope::Bank(_) => "bank",
            Scope::Enrollment(..) => "enrollment",
        }
    }

    /// The scope's id as kept: an enrollment is `<institution>/<enrollment>`
    /// ('/' is in no id).
    pub fn id(&self) -> Option<String> {
        match self {
            Scope::All => None,
            Scope::Jurisdiction(c) => Some(c.as_str().to_string()),
            Scope::Institution(i) => Some(i.as_str().to_string()),
            Scope::Bank(b) => Some(b.clone()),
            Scope::Enrollment(i, e) => Some(format!("{i}/{e}")),
        }
    }

    pub fn parse(kind: &str, id: Option<&str>) -> Result<Scope, String> {
        match (kind, id) {
            ("all", None) => Ok(Scope::All),
            ("jurisdiction", Some(id)) => JurisdictionCode::parse(id)
                .map(Scope::Jurisdiction)
                .map_err(|e| e.to_string()),
            ("institution", Some(id)) => InstitutionId::parse(id)
                .map(Scope::Institution)
                .map_err(|e| e.to_string()),
            ("bank", Some(id)) => Ok(Scope::Bank(id.to_string())),
            ("enrollment", Some(id)) => {
                let (i, e) = id.split_once('/').ok_or_else(|| {
                    format!("enrollment scope {id:?} is not <institution>/<enrollment>")
                })?;
                Ok(Scope::Enrollment(
                    InstitutionId::parse(i).map_err(|e| e.to_string())?,
                    EnrollmentId::parse(e).map_err(|e| e.to_string())?,
                ))
            }
            (kind, id) => Err(format!("scope {kind:?} with id {id:?} is not a scope")),
        }
    }
}

/// The scope each role must have: one role, one kind of scope.
pub fn check_grant(role: Role, scope: &Scope) -> Result<(), String> {
    let wanted = match role {
        Role::Officer | Role::Platform => "jurisdiction",
        Role::Bank => "bank",
        Role::Institution => "institution",
        Role::Admin => "all",
        Role::Family => "enrollment",
    };
    if scope.kind() == wanted {
        Ok(())
    } else {
        let flag = match wanted {
            "all" => "no scope flag".to_string(),
            w => format!("--{w}"),
        };
        Err(format!(
            "a {} token is scoped by {wanted} (give {flag}), not by {}",
            role.as_str(),
            scope.kind()
        ))
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

/// What a request does, for the permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Institutions, balances, entries, refunds.
    ReadBooks,
    /// Overviews, risk rankings, alerts, reconciliation results.
    Oversee,
    /// Alert lifecycle, suggestion decisions.
    WorkAlerts,
    /// Register institutions and jurisdictions.
    Register,
    /// Enrollments and lesson consumption.
    RecordTeaching,
    /// Tuition payments into escrow.
    RecordPayments,
    RequestRefund,
    ApproveRefund,
    /// Statement files and pushed notifications.
    SendFeeds,
    /// Release earned tuition to the institution (拨付), and say where.
    Release,
    /// The audit log (admins only).
    ReadAudit,
    /// Events outside the books: a new legal representative, a closure notice.
    ReportEvents,
    /// Approve or reject another officer's request (maker–checker); the
    /// person rules are `ledger_core::domain::approvals`.
    Approve,
    /// Lessons already confirmed elsewhere, straight into the books
    /// (imported history: the platform's batch and consumption routes).
    PostConfirmedLessons,
    /// One enrollment's account: paid, lessons, refundable, refunds.
    ReadEnrollment,
    /// Confirm or dispute recorded lessons (the family).
    AnswerLessons,
    /// Decide a disputed lesson record (an officer).
    ResolveDisputes,
    /// Freeze an institution's releases, and lift the freeze.
    FreezeReleases,
    /// Settle an approved refund another way (paid by the institution).
    SettleRefund,
    /// Subscribe to signed webhooks, read their delivery log, replay one.
    ManageWebhooks,
}

/// The permission table: which role may take which action on what it can
/// see. Scope (what it can see) is checked separately, first.
pub fn permits(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Admin => true,
        Role::Officer => matches!(
            action,
            ReadBooks
                | Oversee
                | WorkAlerts
                | Register
                | RequestRefund
                | ApproveRefund
                | Release
                | ReportEvents
                | Approve
                | ReadEnrollment
                | ResolveDisputes
                | FreezeReleases
                | SettleRefund
                | ManageWebhooks
        ),
        Role::Platform => matches!(
            action,
            ReadBooks
                | RecordTeaching
                | RecordPayments
                | RequestRefund
                | ReportEvents
                | PostConfirmedLessons
                | ReadEnrollment
                | SettleRefund
                | ManageWebhooks
        ),
        Role::Institution => matches!(
            action,
            ReadBooks | RecordTeaching | RequestRefund | ReadEnrollment | SettleRefund
        ),
        Role::Bank => matches!(action, RecordPayments | SendFeeds),
        Role::Family => matches!(action, ReadEnrollment | AnswerLessons | RequestRefund),
    }
}

impl Caller {
    /// Whether the caller can see this jurisdiction (and so everything in it).
    pub fn sees_jurisdiction(&self, code: &JurisdictionCode) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Jurisdiction(scope) => scope.covers(code),
            Scope::Institution(_) | Scope::Bank(_) | Scope::Enrollment(..) => false,
        }
    }

    /// Whether the caller can see this institution; `banked_here` says
    /// whether the caller's bank holds one of its supervised accounts.
    pub fn sees_institution(&self, institution: &Institution, banked_here: bool) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Jurisdiction(scope) => scope.covers(&institution.jurisdiction),
            Scope::Institution(id) => *id == institution.id,
            Scope::Enrollment(id, _) => *id == institution.id,
            Scope::Bank(_) => banked_here,
        }
    }

    /// Whether the caller can see this enrollment of an institution it can
    /// see: a family only its own.
    pub fn sees_enrollment(&self, enrollment: &EnrollmentId) -> bool {
        match &self.scope {
            Scope::Enrollment(_, own) => own == enrollment,
            _ => true,
        }
    }

    pub fn sees_bank(&self, bank: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Bank(b) => b == bank,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_takes_exactly_one_kind_of_scope() {
        let scopes = [
            Scope::All,
            Scope::Jurisdiction(JurisdictionCode::parse("410922").unwrap()),
            Scope::Institution(InstitutionId::parse("INS-1").unwrap()),
            Scope::Bank("PYB".into()),
            Scope::Enrollment(
                InstitutionId::parse("INS-1").unwrap(),
                EnrollmentId::parse("E-1").unwrap(),
            ),
        ];
        for role in Role::ALL {
            let fitting = scopes
                .iter()
                .filter(|s| check_grant(role, s).is_ok())
                .count();
            assert_eq!(fitting, 1, "{role:?}");
        }
    }

    #[test]
    fn a_city_officer_sees_its_counties_and_a_county_officer_only_its_own() {
        let officer = |code: &str| Caller {
            token_id: "t".into(),
            name: "n".into(),
            role: Role::Officer,
            scope: Scope::Jurisdiction(JurisdictionCode::parse(code).unwrap()),
        };
        let county = JurisdictionCode::parse("410922").unwrap();
        let other = JurisdictionCode::parse("410923").unwrap();
        assert!(officer("410900").sees_jurisdiction(&county));
        assert!(officer("410900").sees_jurisdiction(&other));
        assert!(officer("410922").sees_jurisdiction(&county));
        assert!(!officer("410922").sees_jurisdiction(&other));
    }
}
