//! A small county to test against: jurisdictions, institutions, enrollments,
//! and terse constructors for requests.

#![allow(dead_code)]

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, Jurisdiction, JurisdictionCode, Request, Store,
    SupervisionMode,
};

pub const COUNTY: &str = "410922";

pub fn jc(code: &str) -> JurisdictionCode {
    JurisdictionCode::parse(code).unwrap()
}

pub fn iid(id: &str) -> InstitutionId {
    InstitutionId::parse(id).unwrap()
}

pub fn eid(id: &str) -> EnrollmentId {
    EnrollmentId::parse(id).unwrap()
}

pub fn cid(id: &str) -> ClientId {
    ClientId::parse(id).unwrap()
}

pub fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

pub async fn county(store: &Store) {
    for (code, name, parent) in [
        ("000000", "National", None),
        ("410000", "Henan", Some("000000")),
        ("410900", "Puyang", Some("410000")),
        (COUNTY, "Qingfeng County", Some("410900")),
    ] {
        store
            .create_jurisdiction(&Jurisdiction {
                code: jc(code),
                name: name.into(),
                parent: parent.map(jc),
            })
            .await
            .unwrap();
    }
}

pub fn institution(id: &str) -> Institution {
    Institution {
        id: iid(id),
        name: format!("Institution {id}"),
        licence_no: format!("LIC-{id}"),
        jurisdiction: jc(COUNTY),
        mode: SupervisionMode::Both,
        category: Category::NonSubject,
        status: InstitutionStatus::Active,
        currency: Currency::Cny,
    }
}

/// 40 paid hours + 4 bonus hours for `price_minor`, September to November.
pub fn enrollment(institution: &str, id: &str, price_minor: i64) -> Enrollment {
    Enrollment {
        institution: iid(institution),
        id: eid(id),
        student_ref: format!("student-{id}"),
        hours_bought: 40,
        bonus_hours: 4,
        price: Amount::from_minor(price_minor).unwrap(),
        currency: Currency::Cny,
        course_start: day("2026-09-01"),
        course_end: day("2026-11-30"),
    }
}

/// The county, institution `I1` and enrollments `E1` (4,000.00) and `E2`
/// (3,000.00).
pub async fn seeded(store: &Store) {
    county(store).await;
    store.create_institution(&institution("I1")).await.unwrap();
    store
        .create_enrollment(&enrollment("I1", "E1", 400_000))
        .await
        .unwrap();
    store
        .create_enrollment(&enrollment("I1", "E2", 300_000))
        .await
        .unwrap();
}

pub fn at() -> DateTime<Utc> {
    "2026-08-25T10:00:00Z".parse().unwrap()
}

pub fn req(institution: &str, client_id: &str, command: Command) -> Request {
    Request {
        institution: iid(institution),
        client_id: cid(client_id),
        currency: Currency::Cny,
        occurred_at: at(),
        external_ref: None,
        command,
    }
}

pub fn pay(enrollment: &str, amount_minor: i64) -> Command {
    Command::PayTuition {
        enrollment: eid(enrollment),
        amount: ledger_core::Amount::from_minor(amount_minor).unwrap(),
    }
}

pub fn consume(enrollment: &str, hours: u32) -> Command {
    Command::ConsumeLessons {
        enrollment: eid(enrollment),
        hours,
    }
}
