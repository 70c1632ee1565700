//! Scope, enforced in one place: every handler loads its target through
//! these, which answer 404 for what the caller cannot see (so out of scope
//! and absent look the same) and 403 for what it can see but may not do.

use ledger_core::domain::error::ErrorKind;
use ledger_core::{Institution, InstitutionId, JurisdictionCode};

use crate::access::{permits, Action, Caller, Scope};
use crate::http::problem::{ApiError, ApiResult};
use crate::http::AppState;

fn action_name(action: Action) -> &'static str {
    match action {
        Action::ReadBooks => "read the books",
        Action::Oversee => "read oversight reports",
        Action::WorkAlerts => "work alerts",
        Action::Register => "register institutions or jurisdictions",
        Action::RecordTeaching => "record enrollments or lessons",
        Action::RecordPayments => "record payments",
        Action::RequestRefund => "request refunds",
        Action::ApproveRefund => "approve refunds",
        Action::SendFeeds => "send bank feeds",
        Action::Release => "release tuition or set where it is paid",
        Action::ReadAudit => "read the audit log",
        Action::ReportEvents => "report institution events",
        Action::Approve => "approve or reject another officer's request",
        Action::PostConfirmedLessons => {
            "post lessons straight into the books (record them for the family to confirm: POST /v1/institutions/{id}/lessons)"
        }
        Action::ReadEnrollment => "read an enrollment's account",
        Action::AnswerLessons => "confirm or dispute lessons (the family does)",
        Action::ResolveDisputes => "decide disputed lessons",
        Action::FreezeReleases => "freeze or unfreeze an institution's releases",
        Action::SettleRefund => "settle refunds",
        Action::ManageWebhooks => "manage webhook subscriptions",
    }
}

pub fn permitted(caller: &Caller, action: Action) -> ApiResult<()> {
    if permits(caller.role, action) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            caller.role.as_str(),
            action_name(action),
        ))
    }
}

/// An institution the caller may act on.
pub async fn institution(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> ApiResult<Institution> {
    let not_found = || ApiError::not_found(format!("institution {id:?}"));
    let parsed = InstitutionId::parse(id).map_err(|_| not_found())?;
    let institution = match state.institutions.get(&state.store, &parsed).await {
        Ok(i) => i,
        Err(e)
            if e.rejection()
                .is_some_and(|r| r.kind() == ErrorKind::NotFound) =>
        {
            return Err(not_found())
        }
        Err(e) => return Err(e.into()),
    };
    check_institution(state, caller, institution, action).await
}

/// An institution the caller may act on, with its current balances, read
/// in one round trip (the balance query is the API's busiest), from the
/// read replica when there is one.
pub async fn institution_with_balances(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> ApiResult<(Institution, ledger_core::store::BalanceSheet)> {
    let not_found = || ApiError::not_found(format!("institution {id:?}"));
    let parsed = InstitutionId::parse(id).map_err(|_| not_found())?;
    let (institution, sheet) = match state.reads.institution_with_balances(&parsed).await {
        Ok(found) => found,
        Err(e)
            if e.rejection()
                .is_some_and(|r| r.kind() == ErrorKind::NotFound) =>
        {
            return Err(not_found())
        }
        Err(e) => return Err(e.into()),
    };
    // The balances are only handed out once the checks pass.
    let institution = check_institution(state, caller, institution, action).await?;
    Ok((institution, sheet))
}

async fn check_institution(
    state: &AppState,
    caller: &Caller,
    institution: Institution,
    action: Action,
) -> ApiResult<Institution> {
    let id = institution.id.to_string();
    let not_found = || ApiError::not_found(format!("institution {id:?}"));
    let banked_here = match &caller.scope {
        Scope::Bank(bank) => state
            .store
            .supervised_accounts(&institution.id)
            .await?
            .iter()
            .any(|a| a.bank == *bank),
        _ => false,
    };
    if !caller.sees_institution(&institution, banked_here) {
        return Err(not_found());
    }
    permitted(caller, action)?;
    Ok(institution)
}

/// A jurisdiction the caller may act on.
pub async fn jurisdiction(
    state: &AppState,
    caller: &Caller,
    code: &str,
    action: Action,
) -> ApiResult<ledger_core::Jurisdiction> {
    let not_found = || ApiError::not_found(format!("jurisdiction {code:?}"));
    let code = JurisdictionCode::parse(code).map_err(|_| not_found())?;
    if !caller.sees_jurisdiction(&code) {
        return Err(not_found());
    }
    let jurisdiction = state
        .jurisdictions
        .get(&state.store, &code)
        .await?
        .ok_or_else(not_found)?;
    permitted(caller, action)?;
    Ok(jurisdiction)
}

/// A bank the caller may act for.
pub async fn bank(state: &AppState, caller: &Caller, bank: &str, action: Action) -> ApiResult<()> {
    let not_found = || ApiError::not_found(format!("bank {bank:?}"));
    if !caller.sees_bank(bank) || !state.store.banks().await?.iter().any(|b| b == bank) {
        return Err(not_found());
    }
    permitted(caller, action)
}

/// The institutions the caller can see, for lists.
pub async fn visible_institutions(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<Vec<Institution>> {
    let all = state.store.institutions().await?;
    let mut out = Vec::new();
    for i in all {
        let banked_here = match &caller.scope {
            Scope::Bank(bank) => state
                .store
                .supervised_accounts(&i.id)
                .await?
                .iter()
                .any(|a| a.bank == *bank),
            _ => false,
        };
        if caller.sees_institution(&i, banked_here) {
            out.push(i);
        }
    }
    Ok(out)
}

/// A permission check for actions without a loaded target (lists).
pub fn may(caller: &Caller, action: Action) -> ApiResult<()> {
    permitted(caller, action)
}

/// An enrollment named in a request, as the caller may name it: a family
/// token naming another enrollment gets what an absent one gets (404).
pub fn enrollment_in_scope(caller: &Caller, enrollment: &str) -> ApiResult<()> {
    match &caller.scope {
        Scope::Enrollment(_, own) if own.as_str() != enrollment => {
            Err(ApiError::not_found(format!("enrollment {enrollment:?}")))
        }
        _ => Ok(()),
    }
}
