//! The national risk scan streamed in chunks of institutions (issue 14)
//! says what the scan that loads every record at once says, on both
//! backends: three peer groups (two counties, two categories) whose
//! members' ids interleave, so every chunk mixes jurisdictions and every
//! group spreads over several chunks. Each group has an institution whose
//! liability months stand out only against all of its peers (five at
//! least, the national `peer_min_count`): statistics taken per chunk would
//! miss it, and the scans would differ.

use chrono::{Days, NaiveDate, TimeZone, Utc};
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::domain::risk::{self, Assessment, SignalKind};
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, Jurisdiction, JurisdictionCode, Request, Store,
    SupervisionMode,
};

use api::app::risk::{
    assess, assess_loaded, assess_streamed, records_all, snapshot, Loading, Reading,
};

#[path = "support/scratch_pg.rs"]
mod scratch_pg;
use scratch_pg::ScratchPg;

const BANK: &str = "PYB";
/// Sixty hours at 80.00: under the national cap on a charge (5,000.00),
/// which binds non-subject training.
const PRICE_MINOR: i64 = 480_000;
const HOURS: u32 = 60;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 30).unwrap()
}

fn code(c: &str) -> JurisdictionCode {
    JurisdictionCode::parse(c).unwrap()
}

/// Hours taught in the last days per member of a group: five hold two
/// months of tuition at that pace, one half a month (under 40% of the
/// peers' median), one four months (twice the median, over the rule's
/// three): both flagged with peers, neither without.
const TAUGHT: [u32; 7] = [20, 20, 40, 20, 12, 20, 20];

/// The peer groups: county, category.
fn groups() -> [(&'static str, Category); 3] {
    [
        ("410922", Category::Subject),
        ("410923", Category::NonSubject),
        ("410922", Category::NonSubject),
    ]
}

/// Member `m` of group `g`: ids interleave the groups.
fn id(g: usize, m: usize) -> InstitutionId {
    InstitutionId::parse(format!("ST-{m:02}-{g}")).unwrap()
}

fn request(id: &InstitutionId, client: String, on: NaiveDate, command: Command) -> Request {
    Request {
        institution: id.clone(),
        client_id: ClientId::parse(client).unwrap(),
        currency: Currency::Cny,
        occurred_at: Utc.from_utc_datetime(&on.and_hms_opt(10, 0, 0).unwrap()),
        external_ref: None,
        command,
    }
}

async fn populate(store: &Store) {
    for (c, name, parent) in [
        ("000000", "Nation", None),
        ("410000", "Henan", Some("000000")),
        ("410900", "Puyang", Some("410000")),
        ("410922", "Qingfeng", Some("410900")),
        ("410923", "Nanle", Some("410900")),
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
    let paid = as_of() - Days::new(40);
    let taught = as_of() - Days::new(5);
    for (g, (county, category)) in groups().into_iter().enumerate() {
        for (m, hours) in TAUGHT.into_iter().enumerate() {
            let id = id(g, m);
            store
                .create_institution(&Institution {
                    id: id.clone(),
                    name: format!("school {id}"),
                    licence_no: format!("L-{id}"),
                    jurisdiction: code(county),
                    mode: SupervisionMode::Custody,
                    category,
                    status: InstitutionStatus::Active,
                    currency: Currency::Cny,
                })
                .await
                .unwrap();
            store
                .register_bank_account(&BankAccount {
                    institution: id.clone(),
                    bank: BANK.into(),
                    account_no: format!("AC-{id}"),
                    kind: AccountKind::Escrow,
                    currency: Currency::Cny,
                })
                .await
                .unwrap();
            let enrollment = EnrollmentId::parse("E").unwrap();
            store
                .create_enrollment(&Enrollment {
                    institution: id.clone(),
                    id: enrollment.clone(),
                    student_ref: "S".into(),
                    hours_bought: HOURS,
                    bonus_hours: 0,
                    price: Amount::from_minor(PRICE_MINOR).unwrap(),
                    currency: Currency::Cny,
                    course_start: paid,
                    course_end: as_of() + Days::new(30),
                })
                .await
                .unwrap();
            store
                .execute_batch(vec![
                    request(
                        &id,
                        format!("PAY-{id}"),
                        paid,
                        Command::PayTuition {
                            enrollment: enrollment.clone(),
                            amount: Amount::from_minor(PRICE_MINOR).unwrap(),
                        },
                    ),
                    request(
                        &id,
                        format!("LES-{id}"),
                        taught,
                        Command::ConsumeLessons { enrollment, hours },
                    ),
                ])
                .await
                .unwrap();
            if m == 1 {
                store
                    .record_event(
                        &id,
                        "legal_representative_change",
                        taught,
                        None,
                        "officer",
                        None,
                    )
                    .await
                    .unwrap();
            }
        }
    }
}

/// The scan at once as the domain states it, with nothing of the
/// application's peer grouping: every snapshot given by hand the
/// statistics of its jurisdiction and category, then [`risk::evaluate`].
async fn judged_by_hand(store: &Store) -> Vec<Assessment> {
    let records = records_all(
        store,
        store.institutions().await.unwrap(),
        as_of(),
        Reading::Whole,
    )
    .await
    .unwrap();
    let mut inputs: Vec<risk::RiskInput> = records
        .iter()
        .map(|r| snapshot(r, as_of()).unwrap())
        .collect();
    let group = |i: &risk::RiskInput| {
        (
            i.institution.jurisdiction.clone(),
            i.institution.category.code(),
        )
    };
    let stats: Vec<risk::Peers> = inputs
        .iter()
        .map(|i| {
            let figures: Vec<risk::PeerFigures> = inputs
                .iter()
                .filter(|peer| group(peer) == group(i))
                .map(risk::peer_figures)
                .collect();
            risk::peer_stats(&figures)
        })
        .collect();
    for (input, peers) in inputs.iter_mut().zip(stats) {
        input.peers = Some(peers);
    }
    risk::rank(inputs.iter().map(risk::evaluate).collect())
}

fn flagged_for_liability(ranked: &[Assessment]) -> Vec<String> {
    let mut ids: Vec<String> = ranked
        .iter()
        .filter(|a| {
            a.signals
                .iter()
                .any(|s| s.kind == SignalKind::LiabilityMonths)
        })
        .map(|a| a.institution.to_string())
        .collect();
    ids.sort();
    ids
}

async fn streamed_scans_equal_the_scan_at_once(store: &Store) {
    populate(store).await;
    let nation = JurisdictionCode::national();
    let at_once = assess_loaded(
        store,
        store.institutions().await.unwrap(),
        as_of(),
        Loading::SetWise,
        Reading::Whole,
    )
    .await
    .unwrap();
    // The outliers stand out against all their peers, and only they do.
    let mut outliers: Vec<String> = (0..groups().len())
        .flat_map(|g| [id(g, 2).to_string(), id(g, 4).to_string()])
        .collect();
    outliers.sort();
    assert_eq!(flagged_for_liability(&at_once), outliers);
    assert_eq!(
        at_once,
        judged_by_hand(store).await,
        "the domain's own judgement differs"
    );
    let one_by_one = assess_loaded(
        store,
        store.institutions().await.unwrap(),
        as_of(),
        Loading::PerInstitution,
        Reading::Windowed,
    )
    .await
    .unwrap();
    assert_eq!(one_by_one, at_once, "one at a time differs");
    // 21 institutions: chunks of 1 to 7 split every group; 21 and more
    // hold the store in one.
    for chunk in [1, 2, 3, 5, 7, 20, 21, 100] {
        let streamed = assess_streamed(store, &nation, as_of(), chunk)
            .await
            .unwrap();
        assert_eq!(streamed, at_once, "streamed in chunks of {chunk} differs");
    }
    // A county's scan: chunks of the store hold institutions out of scope.
    let county = code("410923");
    let in_county: Vec<Institution> = store
        .institutions()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| county.covers(&i.jurisdiction))
        .collect();
    let county_at_once = assess_loaded(store, in_county, as_of(), Loading::SetWise, Reading::Whole)
        .await
        .unwrap();
    assert_eq!(county_at_once.len(), TAUGHT.len());
    for chunk in [2, 4] {
        let streamed = assess_streamed(store, &county, as_of(), chunk)
            .await
            .unwrap();
        assert_eq!(streamed, county_at_once, "the county in chunks of {chunk}");
    }
    assert_eq!(
        assess(store, &county, as_of()).await.unwrap(),
        county_at_once
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_streamed_in_chunks_gives_every_peer_group_its_whole_statistics_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stream.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    streamed_scans_equal_the_scan_at_once(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_streamed_in_chunks_gives_every_peer_group_its_whole_statistics_on_postgres() {
    let pg = ScratchPg::create(format!("el_test_stream_{}", std::process::id())).await;
    let store = Store::connect(&pg.url).await.unwrap();
    store.migrate().await.unwrap();
    streamed_scans_equal_the_scan_at_once(&store).await;
    store.close().await;
    pg.drop().await;
}
