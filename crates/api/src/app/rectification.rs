//! Rectification notices (整改通知书): an officer issues one to an
//! institution, numbered per jurisdiction and year, with the finding, the
//! required action and a due date (and, when it answers an alert, the
//! alert moves to "rectification requested" with that date); the
//! institution's answers are recorded; a notice unanswered after its due
//! date is overdue.

use chrono::{Datelike, NaiveDate};
use ledger_core::store::{NewNotice, NoticeAnswer, NoticeRecord};
use ledger_core::{Institution, Store};

use crate::app::{AppError, AppResult};

/// A notice as shown: its record, its answers, and whether it is overdue.
#[derive(Debug, Clone)]
pub struct Notice {
    pub record: NoticeRecord,
    pub answers: Vec<NoticeAnswer>,
    /// Unanswered and past its due date on `today`.
    pub overdue: bool,
}

/// What an officer writes on a notice.
#[derive(Debug, Clone)]
pub struct NoticeDraft {
    pub alert_key: Option<String>,
    pub finding: String,
    pub required_action: String,
    pub due_on: NaiveDate,
}

fn text(field: &'static str, value: &str) -> AppResult<String> {
    crate::app::error::note(field, value)?;
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 2000 {
        return Err(AppError::invalid(
            "invalid_field",
            field,
            format!("{field} must be 1 to 2000 characters"),
        ));
    }
    Ok(value.to_string())
}

/// Issues a notice to an institution; the due date is today or later.
pub async fn issue(
    store: &Store,
    institution: &Institution,
    draft: NoticeDraft,
    issued_by: &str,
    today: NaiveDate,
) -> AppResult<Notice> {
    let finding = text("finding", &draft.finding)?;
    let required_action = text("required_action", &draft.required_action)?;
    ledger_core::domain::bounds::check_day("due_on", draft.due_on)?;
    if draft.due_on < today {
        return Err(AppError::invalid(
            "due_in_the_past",
            "due_on",
            format!("the due date {} is before today, {today}", draft.due_on),
        ));
    }
    // The alert it answers (the institution's own) moves to "rectification
    // requested" in the notice's own transaction (`Store::issue_notice`):
    // a notice refused leaves the alert as it was, and the reverse.
    let alert_key = draft.alert_key.filter(|k| !k.trim().is_empty());
    let record = store
        .issue_notice(&NewNotice {
            jurisdiction: institution.jurisdiction.to_string(),
            year: today.year(),
            institution_id: institution.id.to_string(),
            alert_key,
            finding,
            required_action,
            due_on: draft.due_on,
            issued_by: issued_by.to_string(),
        })
        .await?;
    Ok(Notice {
        record,
        answers: vec![],
        overdue: false,
    })
}

/// Every notice with its answers, overdue ones first, then newest first.
pub async fn all(store: &Store, today: NaiveDate) -> AppResult<Vec<Notice>> {
    let answers = store.notice_answers().await?;
    let mut notices: Vec<Notice> = store
        .notices()
        .await?
        .into_iter()
        .map(|record| {
            let answers: Vec<NoticeAnswer> = answers
                .iter()
                .filter(|a| a.notice_no == record.notice_no)
                .cloned()
                .collect();
            Notice {
                overdue: answers.is_empty() && record.due_on < today,
                record,
                answers,
            }
        })
        .collect();
    notices.sort_by(|a, b| {
        b.overdue
            .cmp(&a.overdue)
            .then(b.record.issued_at.cmp(&a.record.issued_at))
    });
    Ok(notices)
}

/// One notice with its answers.
pub async fn find(store: &Store, notice_no: &str, today: NaiveDate) -> AppResult<Notice> {
    let record = store
        .notice(notice_no)
        .await?
        .ok_or_else(|| AppError::not_found(format!("notice {notice_no:?}")))?;
    let answers: Vec<NoticeAnswer> = store
        .notice_answers()
        .await?
        .into_iter()
        .filter(|a| a.notice_no == notice_no)
        .collect();
    Ok(Notice {
        overdue: answers.is_empty() && record.due_on < today,
        record,
        answers,
    })
}

/// Records the institution's answer to a notice.
pub async fn answer(
    store: &Store,
    notice_no: &str,
    answer: &str,
    recorded_by: &str,
) -> AppResult<()> {
    let answer = text("answer", answer)?;
    if store.notice(notice_no).await?.is_none() {
        return Err(AppError::not_found(format!("notice {notice_no:?}")));
    }
    store.answer_notice(notice_no, &answer, recorded_by).await?;
    Ok(())
}
