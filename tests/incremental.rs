//! `reconcile --record` reads what is new and open, not the history
//! (issue 15): one history lived on two databases of the same backend,
//! recorded day by day by the incremental run on one and by the run that
//! reads everything (`record_account_full`) on the other. After every run
//! both must hold the same books (entries booked: suspense, confirmations,
//! voids), the same kept matches and claims, the same alerts, and every
//! version of every statement day alike; the history includes what the
//! incremental run must be careful with: an entry booked late for a day
//! already recorded, a statement that arrives late (a gap, then filled;
//! a page for a day long settled),
//! instructions executed and returned, a credit nobody can attribute.
//! The incremental twin also keeps its open transfers after each run (as
//! `reconcile --record` does), and reads them as the other reads them from
//! the whole history.

use bank_adapter::model::{Balance, Format, Line, SourceRef, Statement};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::domain::money::minor_to_decimal;
use ledger_core::store::Clock;
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, Jurisdiction, JurisdictionCode, Request, Store,
    SupervisionMode,
};

#[path = "support/scratch_pg.rs"]
mod scratch_pg;
use scratch_pg::ScratchPg;

const BANK: &str = "PYB";
const ACCOUNT: &str = "6222040901";
const COUNTY: &str = "410922";
const PRICE_MINOR: i64 = 200_000;

fn day(n: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap() + Duration::days(n - 1)
}

fn at(on: NaiveDate, hour: u32) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&on.and_hms_opt(hour, 0, 0).unwrap())
}

fn institution() -> InstitutionId {
    InstitutionId::parse(format!("INS-{COUNTY}-T1")).unwrap()
}

fn account() -> BankAccount {
    BankAccount {
        institution: institution(),
        bank: BANK.into(),
        account_no: ACCOUNT.into(),
        kind: AccountKind::Escrow,
        currency: Currency::Cny,
    }
}

fn request(client_id: String, on: NaiveDate, hour: u32, command: Command) -> Request {
    Request {
        institution: institution(),
        client_id: ClientId::parse(client_id).unwrap(),
        currency: Currency::Cny,
        occurred_at: at(on, hour),
        external_ref: None,
        command,
    }
}

fn line(
    amount_minor: i64,
    on: NaiveDate,
    e2e: Option<String>,
    bank_ref: String,
    text: &str,
) -> Line {
    Line::booked_transfer(
        minor_to_decimal(amount_minor, Currency::Cny),
        on,
        e2e,
        bank_ref,
        text.to_string(),
    )
}

async fn open(store: &Store) {
    let code = |c: &str| JurisdictionCode::parse(c).unwrap();
    for (c, name, parent) in [
        ("000000", "Nation", None),
        (COUNTY, "Qingfeng", Some("000000")),
    ] {
        store
            .create_jurisdiction(&Jurisdiction {
                code: code(c),
                name: name.into(),
                parent: parent.map(code),
            })
            .await
            .unwrap();
    }
    store.register_bank(BANK, "Puyang Bank").await.unwrap();
    store
        .create_institution(&Institution {
            id: institution(),
            name: "Twin Tutors".into(),
            licence_no: "L-T1".into(),
            jurisdiction: code(COUNTY),
            mode: SupervisionMode::Custody,
            category: Category::NonSubject,
            status: InstitutionStatus::Active,
            currency: Currency::Cny,
        })
        .await
        .unwrap();
    store.register_bank_account(&account()).await.unwrap();
}

/// What one day brings, written to one store: the ledger's side (entries)
/// and the bank's (statement lines), with the day's troubles.
struct Day {
    n: i64,
    requests: Vec<Request>,
    /// (amount, end-to-end id, text, reversal)
    lines: Vec<(i64, Option<String>, String, bool)>,
}

/// The history, the same on both stores: a package paid every day and
/// credited by the bank, lessons and a release every other day, executed;
/// and the troubles.
fn plan(n: i64) -> (Vec<Enrollment>, Day) {
    let on = day(n);
    let enrollment = Enrollment {
        institution: institution(),
        id: EnrollmentId::parse(format!("T1-E{n:03}")).unwrap(),
        student_ref: format!("T1-{n}"),
        hours_bought: 20,
        bonus_hours: 0,
        price: Amount::from_minor(PRICE_MINOR).unwrap(),
        currency: Currency::Cny,
        course_start: day(1),
        course_end: day(60),
    };
    let order = format!("PT1{n:04}");
    let mut d = Day {
        n,
        requests: vec![request(
            order.clone(),
            on,
            9,
            Command::PayTuition {
                enrollment: enrollment.id.clone(),
                amount: Amount::from_minor(PRICE_MINOR).unwrap(),
            },
        )],
        lines: vec![(PRICE_MINOR, None, format!("学费 订单 {order}"), false)],
    };
    if n % 2 == 0 {
        // Yesterday's package: two hours taught, 200.00 earned, released.
        d.requests.push(request(
            format!("LT1-{n}"),
            on,
            17,
            Command::ConsumeLessons {
                enrollment: EnrollmentId::parse(format!("T1-E{:03}", n - 1)).unwrap(),
                hours: 2,
            },
        ));
        let release = format!("RT1{n:04}");
        d.requests.push(request(
            release.clone(),
            on,
            18,
            Command::InstructRelease {
                amount: Amount::from_minor(20_000).unwrap(),
            },
        ));
        d.lines
            .push((-20_000, Some(release.clone()), "拨付 release".into(), false));
        if n == 6 {
            // The bank returns that release the same day.
            d.lines
                .push((20_000, Some(release), "退回 returned".into(), true));
        }
    }
    if n == 3 {
        d.lines
            .push((12_345, None, "汇款 unknown payer".into(), false));
    }
    if n == 7 {
        d.lines.push((-50_000, None, "转账 transfer".into(), false));
    }
    let mut enrollments = vec![enrollment];
    if n == 10 {
        // Paid on day 7, booked only today, when a run through day 5 comes
        // first: it must not take the entry as counted for days 7 to 9.
        let late = Enrollment {
            id: EnrollmentId::parse("T1-ELATE2".to_string()).unwrap(),
            student_ref: "T1-late2".into(),
            price: Amount::from_minor(40_000).unwrap(),
            ..enrollments[0].clone()
        };
        d.requests.push(request(
            "PT1-LATE2".into(),
            day(7),
            10,
            Command::PayTuition {
                enrollment: late.id.clone(),
                amount: Amount::from_minor(40_000).unwrap(),
            },
        ));
        d.lines
            .push((40_000, None, "学费 订单 PT1-LATE2".into(), false));
        enrollments.push(late);
    }
    if n == 9 {
        // Paid on day 4, booked only today: days 4 to 8, already recorded,
        // change.
        let late = Enrollment {
            id: EnrollmentId::parse("T1-ELATE".to_string()).unwrap(),
            student_ref: "T1-late".into(),
            price: Amount::from_minor(30_000).unwrap(),
            ..enrollments[0].clone()
        };
        d.requests.push(request(
            "PT1-LATE".into(),
            day(4),
            10,
            Command::PayTuition {
                enrollment: late.id.clone(),
                amount: Amount::from_minor(30_000).unwrap(),
            },
        ));
        d.lines
            .push((30_000, None, "学费 订单 PT1-LATE".into(), false));
        enrollments.push(late);
    }
    (enrollments, d)
}

/// The bank's end-of-day statements sent on day `n`: day 11's is held
/// back and arrives on day 14 (after 12 and 13: a gap, then filled). A
/// second page of day 2 arrives on day 15 as well.
fn statements_sent(n: i64) -> Vec<i64> {
    match n {
        11 => vec![],
        14 => vec![11, 14],
        _ => vec![n],
    }
}

struct Bank {
    /// Each day's statement once built: (opening, closing, lines).
    days: std::collections::BTreeMap<i64, Statement>,
    balance_minor: i64,
    refs: u32,
}

impl Bank {
    fn statement(&mut self, d: &Day) {
        let on = day(d.n);
        let opening = self.balance_minor;
        let mut lines = Vec::new();
        for (amount, e2e, text, reversal) in &d.lines {
            self.balance_minor += amount;
            self.refs += 1;
            let mut l = line(*amount, on, e2e.clone(), format!("B{:06}", self.refs), text);
            l.reversal = *reversal;
            lines.push(l);
        }
        self.days.insert(
            d.n,
            Statement {
                format: Format::Camt053,
                account: ACCOUNT.into(),
                currency: "CNY".into(),
                statement_id: format!("0901{}", on.format("%y%m%d")),
                sequence: Some(format!("{}/1", d.n)),
                opening_balance: Some(Balance {
                    amount: minor_to_decimal(opening, Currency::Cny),
                    date: on,
                }),
                closing_balance: Some(Balance {
                    amount: minor_to_decimal(self.balance_minor, Currency::Cny),
                    date: on,
                }),
                lines,
                source: SourceRef::unwritten(),
            },
        );
    }
}

async fn live(store: &Store, enrollments: &[Enrollment], d: &Day, bank: &Bank) {
    for e in enrollments {
        store.create_enrollment(e).await.unwrap();
    }
    store.execute_batch(d.requests.clone()).await.unwrap();
    let mut sent: Vec<Statement> = statements_sent(d.n)
        .into_iter()
        .map(|n| bank.days[&n].clone())
        .collect();
    if d.n == 15 {
        sent.push(second_page_of_day_2(bank));
    }
    if d.n == 16 {
        sent.push(opening_only_page_of_day_16(bank));
    }
    for statement in sent {
        let bytes = bank_adapter::render::camt053::camt053(&[statement]);
        api::app::feeds::ingest_bytes(store, BANK, bytes.as_bytes())
            .await
            .unwrap();
    }
}

/// A second page for day 16 with an opening balance only, and not the one
/// the first page closed at: the chain breaks after day 16 (nothing is
/// quarantined but the days after it). A statement without a closing is
/// placed in the chain by its opening day, which the run reading from the
/// settled day must find too.
fn opening_only_page_of_day_16(bank: &Bank) -> Statement {
    let mut page = bank.days[&16].clone();
    page.sequence = Some("16/2".into());
    page.lines.clear();
    page.closing_balance = None;
    if let Some(opening) = page.opening_balance.as_mut() {
        opening.amount += rust_decimal::Decimal::ONE;
    }
    page
}

/// A page the bank sends late for day 2, long settled: no lines, so it
/// chains (it opens and closes at day 2's closing) and books nothing; only
/// its own statement day is new.
fn second_page_of_day_2(bank: &Bank) -> Statement {
    let mut page = bank.days[&2].clone();
    page.sequence = Some("2/2".into());
    page.lines.clear();
    page.opening_balance = page.closing_balance.clone();
    page
}

/// Everything a recording run leaves behind, to compare.
async fn kept(store: &Store) -> String {
    let id = institution();
    let entries = api::app::reconcile::all_entries(store, &id).await.unwrap();
    let claimed = store.claimed(&id, BANK, ACCOUNT).await.unwrap();
    let suggestions = store.suggestions(&id).await.unwrap();
    let alerts = store.alerts(Some(&id), None).await.unwrap();
    let days = store.recon_day_history(&id).await.unwrap();
    format!("{entries:#?}\n{claimed:#?}\n{suggestions:#?}\n{alerts:#?}\n{days:#?}")
}

async fn twins(full: &Store, incremental: &Store, clock: &Clock) {
    open(full).await;
    open(incremental).await;
    let mut bank = Bank {
        days: Default::default(),
        balance_minor: 0,
        refs: 0,
    };
    let mut totals = [0u64; 4];
    for n in 1..=16 {
        let (enrollments, d) = plan(n);
        bank.statement(&d);
        clock.set(at(day(n), 8));
        live(full, &enrollments, &d, &bank).await;
        live(incremental, &enrollments, &d, &bank).await;
        // Some runs as the daily job runs them (through today), some with
        // everything; each twice (the second finds nothing new). On day 10
        // the first run looks back through day 5 only, with days 6 to 9
        // kept.
        for run in 0..2 {
            let until = match (n, run) {
                (10, 0) => Some(day(5)),
                _ => (n % 3 != 0).then(|| day(n)),
            };
            clock.set(at(day(n), 20 + run));
            let by_full = api::app::reconcile::record_account_full(full, &account(), until)
                .await
                .unwrap();
            // The incremental twin runs as `reconcile --record` does: its
            // accounts, then the open transfers kept for the next run.
            let by_incremental =
                api::app::reconcile::record(incremental, Some(&institution()), until)
                    .await
                    .unwrap();
            assert_eq!(by_incremental, vec![by_full.clone()], "day {n}, run {run}");
            if n == 16 {
                assert_eq!(
                    by_full.quarantined_from,
                    Some(day(17)),
                    "the page of day 16"
                );
            }
            // What the next run will match from: the kept open transfers
            // read as the whole history reads them.
            assert_eq!(
                incremental
                    .open_transfer_entries(&institution())
                    .await
                    .unwrap(),
                full.open_transfer_entries(&institution()).await.unwrap(),
                "day {n}, run {run}: open transfers"
            );
            // The chain the run leaves settled holds for the next run (no
            // statement has come since), so that one reads from its day.
            let mark = incremental
                .recon_watermark(&institution(), BANK, ACCOUNT)
                .await
                .unwrap()
                .and_then(|w| w.chain)
                .expect("a settled chain");
            assert_eq!(
                incremental
                    .statements_issued_through(&account(), mark.through)
                    .await
                    .unwrap(),
                mark.statements,
                "day {n}, run {run}: {mark:?}"
            );
            let whole_through = match n {
                11..=13 => day(10),
                10 if run == 0 => day(9),
                _ => day(n),
            };
            assert_eq!(mark.through, whole_through, "day {n}, run {run}");
            let (a, b) = (kept(incremental).await, kept(full).await);
            assert!(
                a == b,
                "day {n}, run {run}: the stores differ\n{a}\n---\n{b}"
            );
            totals[0] += by_full.credits_to_suspense;
            totals[1] += by_full.instructions_confirmed;
            totals[2] += by_full.instructions_voided_as_returned;
            totals[3] += by_full.unauthorized_outflows;
        }
    }
    // The history did exercise what it is meant to.
    assert!(totals.iter().all(|t| *t > 0), "{totals:?}");
    let history = full.recon_day_history(&institution()).await.unwrap();
    let changed_on = |d: i64, on: i64| {
        history
            .iter()
            .any(|r| r.day.day == day(d) && r.recorded_at.date_naive() == day(on))
    };
    assert!(
        changed_on(5, 9),
        "the entry booked on day 9 for day 4 changed day 5"
    );
    assert!(
        changed_on(8, 10),
        "the entry booked on day 10 for day 7 changed day 8"
    );
    let statuses: Vec<&str> = history
        .iter()
        .filter(|r| r.day.day == day(12))
        .map(|r| r.day.status.as_str())
        .collect();
    assert_eq!(
        statuses.first(),
        Some(&"quarantined"),
        "day 12 waited for day 11: {statuses:?}"
    );
    assert_ne!(statuses.last(), Some(&"quarantined"), "{statuses:?}");
    assert!(
        history
            .iter()
            .any(|r| r.day.statement_key.ends_with("#2/2") && r.recorded_at.date_naive() == day(15)),
        "the page that came late for day 2 was kept on day 15"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incremental_recording_run_keeps_what_the_full_run_keeps_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(at(day(1), 8));
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let full = Store::connect_with(&url("full.db"), clock.clone())
        .await
        .unwrap();
    let incremental = Store::connect_with(&url("incremental.db"), clock.clone())
        .await
        .unwrap();
    full.migrate().await.unwrap();
    incremental.migrate().await.unwrap();
    twins(&full, &incremental, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incremental_recording_run_keeps_what_the_full_run_keeps_on_postgres() {
    let pid = std::process::id();
    let pg_full = ScratchPg::create(format!("el_test_incr_full_{pid}")).await;
    let pg_incremental = ScratchPg::create(format!("el_test_incr_{pid}")).await;
    let clock = Clock::manual(at(day(1), 8));
    let full = Store::connect_with(&pg_full.url, clock.clone())
        .await
        .unwrap();
    let incremental = Store::connect_with(&pg_incremental.url, clock.clone())
        .await
        .unwrap();
    full.migrate().await.unwrap();
    incremental.migrate().await.unwrap();
    twins(&full, &incremental, &clock).await;
    full.close().await;
    incremental.close().await;
    pg_full.drop().await;
    pg_incremental.drop().await;
}
