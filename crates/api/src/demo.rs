//! The demo county: four institutions over an autumn term, built through the
//! same typed operations a real caller uses. Deterministic client ids make it
//! idempotent: a second run replays every request and changes nothing.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use ledger_core::store::Clock;
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, JurisdictionCode, RefundSource, Request, RulePack,
    RuleParams, Store, SupervisionMode,
};
use ledger_core::{Cap, CapAction};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod feeds;

pub const COUNTY: &str = "410922";

/// The last day of the demo's bank statements as the story is written:
/// `build` tells it on these dates (the tests' fixed point); `serve --demo`
/// tells it shifted so that it ends yesterday (`build_ending`).
pub const LAST_DAY: (i32, u32, u32) = (2026, 11, 7);

/// The story's calendar: its written dates moved by a whole number of days.
#[derive(Debug, Clone, Copy)]
struct Story {
    shift: Duration,
}

impl Story {
    fn ending(last_day: NaiveDate) -> Story {
        let (y, m, day) = LAST_DAY;
        Story {
            shift: last_day - d(y, m, day),
        }
    }

    /// A written date of the story, as it happens.
    fn d(&self, y: i32, m: u32, day: u32) -> NaiveDate {
        d(y, m, day) + self.shift
    }
}

struct Plan {
    id: &'static str,
    name: &'static str,
    mode: SupervisionMode,
    enrollments: usize,
    /// Of each enrollment's fee, paid into escrow (the rest collected outside).
    into_escrow_every: usize,
    deposit_percent: i64,
    consumed_hours: std::ops::Range<u32>,
    price_yuan: std::ops::Range<i64>,
    families: Families,
}

/// How an institution's lessons reach the books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Families {
    /// Posted straight into the books, as history imported from before
    /// families confirmed lessons.
    Imported,
    /// Recorded as requests (课消确认) that each family confirms the next
    /// morning; the release follows the confirmation. One family disputes
    /// a lesson it says never happened, and the last lessons recorded
    /// wait for their family's answer.
    Confirm,
    /// Recorded as requests nobody answers: deemed confirmed once the rule
    /// pack's window of working days has passed.
    Silent,
}

/// The enrollment whose family token `serve --demo` prints: its last
/// lessons wait for the family's answer.
pub const FAMILY: (&str, &str) = ("INS-410922-001", "410922-001-E001");
/// The lesson record of the demo's family (`FAMILY`) still waiting for its
/// answer, if any.
pub async fn awaiting_family(store: &Store) -> anyhow::Result<Option<String>> {
    let (institution, enrollment) = FAMILY;
    let lessons = store
        .lessons(
            &InstitutionId::parse(institution)?,
            Some(&EnrollmentId::parse(enrollment)?),
        )
        .await?;
    Ok(lessons
        .iter()
        .find(|l| l.state() == ledger_core::domain::lessons::LessonState::Pending)
        .map(|l| l.record.id.clone()))
}

/// The enrollment whose family disputes a lesson.
pub const DISPUTING: (&str, &str) = ("INS-410922-001", "410922-001-E005");
/// The institution whose families never answer.
pub const SILENT: &str = "INS-410922-003";

const PLANS: [Plan; 4] = [
    Plan {
        id: "INS-410922-001",
        name: "Sunrise Music School",
        mode: SupervisionMode::Custody,
        enrollments: 14,
        into_escrow_every: 1,
        deposit_percent: 10,
        consumed_hours: 8..24,
        price_yuan: 2_400..3_600,
        families: Families::Confirm,
    },
    Plan {
        id: "INS-410922-002",
        name: "Inkstone Calligraphy",
        mode: SupervisionMode::Both,
        enrollments: 10,
        into_escrow_every: 1,
        deposit_percent: 110,
        consumed_hours: 10..30,
        price_yuan: 1_800..3_000,
        families: Families::Imported,
    },
    Plan {
        id: "INS-410922-003",
        name: "Little Chess Masters",
        mode: SupervisionMode::Deposit,
        enrollments: 8,
        into_escrow_every: 0,
        deposit_percent: 110,
        consumed_hours: 6..20,
        price_yuan: 2_000..2_800,
        families: Families::Silent,
    },
    // Pre-sells heavily at the caps and keeps most of the money itself.
    Plan {
        id: "INS-410922-004",
        name: "Golden Path Education",
        mode: SupervisionMode::Both,
        enrollments: 40,
        into_escrow_every: 5,
        deposit_percent: 5,
        consumed_hours: 1..4,
        price_yuan: 4_600..5_001,
        families: Families::Imported,
    },
];

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("demo dates are valid")
}

fn t(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(hour, 0, 0).expect("valid hour"))
}

/// The demo county on the story's written dates, ending on `LAST_DAY`.
pub async fn build(store: &Store) -> anyhow::Result<()> {
    let (y, m, day) = LAST_DAY;
    build_story(store, Story::ending(d(y, m, day))).await
}

/// The demo county with its story ending on `last_day` (its bank's
/// statements run up to that day), so that assessed on the day after, the
/// healthy institutions are green and the one running off is red. A
/// database that already holds the demo keeps the days it was told on
/// (requests are replayed, nothing changes): the day the story ends is
/// returned, and `keep_alive` brings its bank's statements up to date.
pub async fn build_ending(store: &Store, last_day: NaiveDate) -> anyhow::Result<NaiveDate> {
    let story = match feeds::story_end(store).await? {
        Some(told) => Story::ending(told),
        None => Story::ending(last_day),
    };
    build_story(store, story).await?;
    let (y, m, day) = LAST_DAY;
    Ok(story.d(y, m, day))
}

/// Each day after the story, the demo bank sends every account a
/// statement without movements (the balance stays), as a quiet real
/// account's bank does: the demo never goes silent while it is served.
pub async fn keep_alive(store: &Store, through: NaiveDate) -> anyhow::Result<usize> {
    feeds::send_quiet_days(store, through).await
}

async fn build_story(store: &Store, story: Story) -> anyhow::Result<()> {
    let j = |c: &str| JurisdictionCode::parse(c);
    for (code, name, parent) in [
        ("000000", "National", None),
        ("410000", "Henan Province", Some("000000")),
        ("410900", "Puyang City", Some("410000")),
        (COUNTY, "Qingfeng County", Some("410900")),
    ] {
        crate::app::jurisdictions::register(
            store,
            crate::app::jurisdictions::NewJurisdiction {
                code: j(code)?,
                name: name.into(),
                parent: parent.map(j).transpose()?,
            },
        )
        .await?;
    }
    // The county applies the 5,000 cap to subject training too, charges
    // may start at most one month before the course, and families answer
    // for lessons within 7 working days (as some localities do; 15 is the
    // national practice).
    crate::app::registry::publish_rule_pack(
        store,
        &RulePack {
            jurisdiction: j(COUNTY)?,
            version: 1,
            effective_from: story.d(2026, 1, 1),
            params: RuleParams {
                amount_cap_applies_to_subject: Some(true),
                earliest_charge_months_before_start: Some(Cap {
                    limit: 1,
                    action: CapAction::Reject,
                }),
                lesson_confirm_working_days: Some(7),
                ..Default::default()
            },
        },
    )
    .await?;

    let mut rng = SmallRng::seed_from_u64(2026);
    for plan in &PLANS {
        build_institution(store, plan, story, &mut rng).await?;
    }
    feeds::send(store, |y, m, day| story.d(y, m, day)).await?;
    Ok(())
}

async fn build_institution(
    store: &Store,
    plan: &Plan,
    story: Story,
    rng: &mut SmallRng,
) -> anyhow::Result<()> {
    let institution = InstitutionId::parse(plan.id)?;
    crate::app::registry::register_institution(
        store,
        &Institution {
            id: institution.clone(),
            name: plan.name.into(),
            licence_no: format!("JY{}", &plan.id[4..]),
            jurisdiction: JurisdictionCode::parse(COUNTY)?,
            mode: plan.mode,
            category: Category::NonSubject,
            status: InstitutionStatus::Active,
            currency: Currency::Cny,
        },
    )
    .await?;

    let mut requests = Vec::new();
    let request =
        |client_id: String, at: DateTime<Utc>, command: Command| -> anyhow::Result<Request> {
            Ok(Request {
                institution: institution.clone(),
                client_id: ClientId::parse(client_id)?,
                currency: Currency::Cny,
                occurred_at: at,
                external_ref: None,
                command,
            })
        };
    let start = story.d(2026, 9, 1);
    let mut fees = 0;
    let mut enrollments = Vec::new();
    for n in 0..plan.enrollments {
        let price = rng.gen_range(plan.price_yuan.clone()) * 100;
        let e = Enrollment {
            institution: institution.clone(),
            id: EnrollmentId::parse(format!("{}-E{n:03}", &plan.id[4..]))?,
            student_ref: format!("S{:06}", rng.gen_range(0..1_000_000)),
            hours_bought: 48,
            bonus_hours: 12,
            price: Amount::from_minor(price)?,
            currency: Currency::Cny,
            course_start: start,
            course_end: story.d(2026, 11, 30),
        };
        crate::app::books::enroll(store, &e).await?;
        fees += price;
        let paid_on = t(story.d(2026, 8, 10) + Duration::days(n as i64 % 20), 10);
        let into_escrow = plan.into_escrow_every > 0 && n % plan.into_escrow_every == 0;
        let command = if into_escrow {
            Command::PayTuition {
                enrollment: e.id.clone(),
                amount: ledger_core::Amount::from_minor(price)?,
            }
        } else {
            Command::CollectOutsideEscrow {
                enrollment: e.id.clone(),
                amount: ledger_core::Amount::from_minor(price)?,
            }
        };
        requests.push(request(format!("pay-{}", e.id), paid_on, command)?);
        enrollments.push(e);
    }
    requests.push(request(
        "deposit-1".into(),
        t(story.d(2026, 8, 5), 9),
        Command::PayInDeposit {
            amount: ledger_core::Amount::from_minor(fees * plan.deposit_percent / 100)?,
        },
    )?);
    // Lessons in two chunks; tuition paid into escrow is released chunk by
    // chunk the day after (the second chunk's earnings wait for the next
    // settlement, after the demo's term), and the bank confirms it the
    // next day. Where families answer, the lessons are requests until then
    // (posted on the family's confirmation the morning after, before the
    // release), and the releases and refunds follow them.
    let asked = plan.families != Families::Imported;
    let mut later = Vec::new();
    let mut taught_lessons = Vec::new();
    let mut hours_taught = vec![0u32; enrollments.len()];
    for (n, e) in enrollments.iter().enumerate() {
        let hours = rng.gen_range(plan.consumed_hours.clone());
        let escrowed = plan.into_escrow_every > 0 && n % plan.into_escrow_every == 0;
        let mut taught = 0;
        for (k, chunk) in [hours / 2, hours - hours / 2].into_iter().enumerate() {
            if chunk == 0 {
                continue;
            }
            let on = start + Duration::days(14 + 30 * k as i64 + n as i64 % 7);
            if asked {
                taught_lessons.push(Taught {
                    key: format!("lessons-{}-{k}", e.id),
                    enrollment: e.id.clone(),
                    hours: chunk,
                    on,
                    answer: match plan.families {
                        Families::Confirm => Answer::Confirm,
                        _ => Answer::Silence,
                    },
                });
            } else {
                requests.push(request(
                    format!("lessons-{}-{k}", e.id),
                    t(on, 18),
                    Command::ConsumeLessons {
                        enrollment: e.id.clone(),
                        hours: chunk,
                    },
                )?);
            }
            let earned = e.earned_after(taught + chunk) - e.earned_after(taught);
            taught += chunk;
            if escrowed && earned > 0 && k == 0 {
                let id = format!("release-{}-{k}", e.id);
                let to = if asked { &mut later } else { &mut requests };
                to.push(request(
                    id.clone(),
                    t(on + Duration::days(1), 16),
                    Command::InstructRelease {
                        amount: ledger_core::Amount::from_minor(earned)?,
                    },
                )?);
                to.push(request(
                    format!("{id}-confirmed"),
                    t(on + Duration::days(2), 12),
                    Command::ConfirmPending {
                        pending: ClientId::parse(id)?,
                    },
                )?);
            }
        }
        hours_taught[n] = taught;
    }
    if plan.families == Families::Confirm {
        // A make-up lesson the family says never happened, and the last
        // lessons of the term, still waiting for the family's answer.
        for ((_, enrollment), on, answer) in [
            (DISPUTING, story.d(2026, 11, 2), Answer::Dispute),
            (FAMILY, story.d(2026, 11, 6), Answer::Silence),
        ] {
            taught_lessons.push(Taught {
                key: format!("lessons-{enrollment}-extra"),
                enrollment: EnrollmentId::parse(enrollment)?,
                hours: 2,
                on,
                answer,
            });
        }
    }
    // One family asks for its unconsumed tuition back.
    if let Some(e) = enrollments.last() {
        let to = if asked { &mut later } else { &mut requests };
        let at = t(story.d(2026, 11, 3), 11);
        to.push(request(
            format!("refund-{}", e.id),
            at,
            Command::ApproveRefund {
                enrollment: e.id.clone(),
                amount: None,
            },
        )?);
        let refundable = if plan.into_escrow_every > 0
            && (enrollments.len() - 1) % plan.into_escrow_every == 0
        {
            Some(RefundSource::Escrow)
        } else if plan.mode != SupervisionMode::Custody {
            Some(RefundSource::Deposit)
        } else {
            None
        };
        if let Some(source) = refundable {
            let hours_used = hours_taught[enrollments.len() - 1];
            let amount = e.price.minor() - e.earned_after(hours_used);
            to.push(request(
                format!("refund-{}-paid", e.id),
                at + Duration::days(2),
                Command::InstructRefundPayment {
                    amount: ledger_core::Amount::from_minor(amount)?,
                    source,
                },
            )?);
            // Golden Path never gets its refund paid: it stays pending.
            if plan.deposit_percent > 5 {
                to.push(request(
                    format!("refund-{}-paid-confirmed", e.id),
                    at + Duration::days(3),
                    Command::ConfirmPending {
                        pending: ClientId::parse(format!("refund-{}-paid", e.id))?,
                    },
                )?);
            }
        }
    }
    crate::app::books::record_batch(store, requests).await?;
    if asked {
        let (y, m, day) = LAST_DAY;
        tell_lessons(
            store,
            &institution,
            plan.name,
            taught_lessons,
            story.d(y, m, day),
        )
        .await?;
        crate::app::books::record_batch(store, later).await?;
    }
    Ok(())
}

/// Lessons an institution recorded, and how their family answers.
struct Taught {
    key: String,
    enrollment: EnrollmentId,
    hours: u32,
    on: NaiveDate,
    answer: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The family confirms the next morning.
    Confirm,
    /// The family disputes the next evening.
    Dispute,
    /// Nobody answers.
    Silence,
}

/// Records an institution's lessons as requests on the days they were
/// given, the families' answers on the days they gave them, and the
/// lessons job's passes on the days after the silent ones' windows closed,
/// all through the store's clock set to the story's dates. A record
/// answered already (a replay) is left as it is.
async fn tell_lessons(
    store: &Store,
    institution: &InstitutionId,
    name: &str,
    mut taught: Vec<Taught>,
    until: NaiveDate,
) -> anyhow::Result<()> {
    use ledger_core::domain::lessons::{LessonState, LessonStep};
    taught.sort_by(|a, b| (a.on, &a.key).cmp(&(b.on, &b.key)));
    let clock = Clock::manual(store.now());
    let told = store.with_clock(clock.clone());
    let institution = told.institution(institution).await?;
    let mut deem_on = std::collections::BTreeSet::new();
    for l in taught {
        clock.set(t(l.on, 18));
        let lesson = crate::app::lessons::record(
            &told,
            &institution,
            crate::app::lessons::LessonAsk {
                enrollment: l.enrollment.to_string(),
                hours: i64::from(l.hours),
                occurred_on: l.on,
            },
            &format!("{name} (institution)"),
            Some(&l.key),
            l.on,
        )
        .await?;
        if lesson.state() != LessonState::Pending {
            continue;
        }
        let family = format!("family of {}", l.enrollment);
        let next = l.on + Duration::days(1);
        let (step, at, reason) = match l.answer {
            Answer::Confirm => (LessonStep::Confirm, t(next, 8), None),
            Answer::Dispute => (
                LessonStep::Dispute,
                t(next, 20),
                Some("our child was ill that day and missed the make-up lesson"),
            ),
            Answer::Silence => {
                deem_on.insert(lesson.record.answer_by + Duration::days(1));
                continue;
            }
        };
        clock.set(at);
        let answered = crate::app::lessons::answer(
            &told,
            &institution,
            &lesson.record.id,
            step,
            &family,
            reason,
            next,
        )
        .await?;
        if let Some(why) = answered.not_posted {
            anyhow::bail!("demo lessons {} not posted: {why}", lesson.record.id);
        }
    }
    // The lessons job runs each morning; within the story it has work on
    // the days after a silent family's window closed (later ones are the
    // job's to deem while the demo is served).
    for on in deem_on.into_iter().filter(|on| *on <= until) {
        clock.set(t(on, 2));
        let pass = crate::app::lessons::deem_and_post(&told, on).await?;
        if pass.not_posted > 0 {
            anyhow::bail!("demo lessons deemed on {on} not posted");
        }
    }
    Ok(())
}
