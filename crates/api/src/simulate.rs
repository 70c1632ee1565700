//! The county simulator (`escrow-ledger simulate`): a seeded county of
//! healthy institutions of every mode and size and one institution per
//! run-off pattern of DESIGN.md, replayed day by day through the real
//! interfaces (requests through the application layer, the bank's daily
//! statements as MT940 and camt.053 files through ingest, reconciliation
//! and the risk scan recorded each day), to measure how early the risk
//! engine turns red before a collapse and how often it troubles healthy
//! institutions. DETECTION.md holds the tables it printed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use bank_adapter::model::{Balance, Format, Line, SourceRef, Statement};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use ledger_core::domain::alerts::Severity;
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::domain::money::minor_to_decimal;
use ledger_core::domain::refunds::Payee;
use ledger_core::domain::risk::{self, snapshot::Records};
use ledger_core::store::Clock;
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, JurisdictionCode, RefundSource, Request, RulePack,
    RuleParams, Store, SupervisionMode,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub const COUNTY: &str = "410999";
const BANK: &str = "SIM-BANK";

/// How a run-off unfolds in the simulation (DESIGN.md, "Run-off risk
/// signals", and issue 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pattern {
    /// Money taken out of escrow with no instruction, week after week.
    OutrightDrain,
    /// Sales reported, the money paid to another account.
    DivertedFees,
    /// The risk deposit taken out of its account.
    DepositWithdrawn,
    /// A new legal representative, a sales drive, then the escrow drained.
    DrainAfterRepresentativeChange,
    /// The bank stops sending statements; the money goes unseen.
    BankFallsSilent,
    /// A heavy sales drive while teaching winds down, then the doors close.
    PresellThenStop,
    /// Lessons reported far faster than taught: releases empty escrow.
    ReleasesAheadOfDelivery,
    /// Refund requests left unanswered, refund instructions never executed.
    RefundsUnpaid,
}

impl Pattern {
    pub const ALL: [Pattern; 8] = [
        Pattern::OutrightDrain,
        Pattern::DivertedFees,
        Pattern::DepositWithdrawn,
        Pattern::DrainAfterRepresentativeChange,
        Pattern::BankFallsSilent,
        Pattern::PresellThenStop,
        Pattern::ReleasesAheadOfDelivery,
        Pattern::RefundsUnpaid,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Pattern::OutrightDrain => "outright drain",
            Pattern::DivertedFees => "diverted fees",
            Pattern::DepositWithdrawn => "deposit withdrawn",
            Pattern::DrainAfterRepresentativeChange => "drain after representative change",
            Pattern::BankFallsSilent => "bank falls silent",
            Pattern::PresellThenStop => "pre-sell then stop teaching",
            Pattern::ReleasesAheadOfDelivery => "releases ahead of delivery",
            Pattern::RefundsUnpaid => "refunds left unpaid",
        }
    }

    fn mode(self) -> SupervisionMode {
        match self {
            Pattern::DepositWithdrawn => SupervisionMode::Deposit,
            Pattern::DrainAfterRepresentativeChange | Pattern::PresellThenStop => {
                SupervisionMode::Both
            }
            _ => SupervisionMode::Custody,
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Healthy institutions (the run-offs, one per pattern, come on top).
    pub healthy: usize,
    /// Days measured, after the warm-up.
    pub days: u32,
    /// Days every institution trades before the measurement starts (all
    /// open on the first day: an empty county is young all at once, which
    /// the measurement of the healthy leaves out; run-offs are watched
    /// from the first day).
    pub warmup_days: u32,
    pub start: NaiveDate,
    /// Run-off patterns simulated (default: all).
    pub patterns: Vec<Pattern>,
    /// The county's seasons (the summer surge). Without them sales stay
    /// level all year, so the county's daily activity stops growing once
    /// its first courses are under way: what the daily jobs' cost against
    /// history alone is measured on (BENCHMARKS.md).
    pub seasons: bool,
    /// The county's recent and baseline windows in days, when not the
    /// national defaults (30 and 90): narrowed, the daily scan's windowed
    /// read leaves most of a short run's history in the database (the
    /// families' answer window is then 3 working days, not 15).
    pub windows: Option<(u32, u32)>,
    /// Each day, after the scan, every institution's records are read
    /// whole and windowed (`Reading`) and must assess the same; a
    /// difference stops the run with the institution and the day.
    pub check_reads: bool,
    /// Lessons go through the families' confirmation (`app::lessons`):
    /// the school records each and the family confirms it the same day,
    /// which posts its entry; at a healthy school one record in 25 is an
    /// hour it did not give, disputed by the family at once and upheld by
    /// an officer two weeks later. A package sold that day has its lessons posted
    /// directly (its payment is in the day's batch, after them). Off, the
    /// lessons are posted directly, in the day's batch.
    pub families_confirm: bool,
}

impl Options {
    pub fn new(seed: u64) -> Options {
        Options {
            seed,
            healthy: 32,
            days: 240,
            warmup_days: 60,
            start: NaiveDate::from_ymd_opt(2026, 1, 5).expect("a valid day"),
            patterns: Pattern::ALL.to_vec(),
            seasons: true,
            windows: None,
            check_reads: false,
            families_confirm: false,
        }
    }

    /// Refuses options no county can be simulated with: a run-off
    /// collapses between 55% of the measured days and 5 days before their
    /// end, so with run-offs there must be room for that.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.patterns.is_empty() || self.days >= MIN_DAYS_WITH_RUN_OFFS,
            "--days {}: a county with run-offs needs at least {MIN_DAYS_WITH_RUN_OFFS} measured \
             days (each collapses between 55% of them and 5 days before their end); \
             give more days, or --steady for none",
            self.days
        );
        Ok(())
    }
}

/// The fewest measured days a county with run-offs can have (see
/// [`Options::check`]).
pub const MIN_DAYS_WITH_RUN_OFFS: u32 = 12;

/// What the risk scan said of one institution over the run.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub first_red: Option<NaiveDate>,
    pub first_red_signals: Vec<String>,
    pub first_yellow: Option<NaiveDate>,
    pub days_red: u32,
    pub days_yellow: u32,
    /// Days each signal kind was the institution's worst, per severity.
    pub kinds: BTreeMap<(String, &'static str), u32>,
    /// Every signal kind the scan showed on any day watched, at any
    /// severity (a yellow an escalation combined included).
    pub seen: BTreeSet<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Subject {
    pub id: String,
    pub mode: SupervisionMode,
    pub size: &'static str,
    pub pattern: Option<Pattern>,
    pub onset: Option<NaiveDate>,
    pub collapse: Option<NaiveDate>,
    pub watch: Watch,
}

impl Subject {
    /// Days from the first red (on or before the collapse) to the collapse.
    pub fn lead_days(&self) -> Option<i64> {
        let (red, collapse) = (self.watch.first_red?, self.collapse?);
        (red <= collapse).then(|| (collapse - red).num_days())
    }
}

/// What one simulated day's jobs cost in wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct DayCost {
    /// Days since the first (1 is the first day).
    pub day: u32,
    /// The institutions living the day through the application layer:
    /// sales, lessons (through the families' confirmation with
    /// `Options::families_confirm`), releases, refunds.
    pub writes: std::time::Duration,
    /// `reconcile --record` over the county.
    pub reconcile: std::time::Duration,
    /// `risk --record` over the county.
    pub risk: std::time::Duration,
    /// With `Options::families_confirm`: what may be released, for every
    /// institution, as the release job reads it (the unreleased earnings
    /// alone), and as the walk over every earning that it replaced.
    pub release_read: Option<(std::time::Duration, std::time::Duration)>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub options: Options,
    pub subjects: Vec<Subject>,
    /// Each day's job times, for the growth with history (BENCHMARKS.md).
    pub costs: Vec<DayCost>,
    /// With `check_reads`: what the windowed reads left out, summed over
    /// the days and institutions checked.
    pub reads_checked: ReadsChecked,
}

/// What `Options::check_reads` compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadsChecked {
    /// Institution-days read both ways (each assessed the same).
    pub assessments: u64,
    /// Institution-days whose windowed read used reconciliation's kept
    /// matches (the others read every line: data dated after the day).
    pub with_kept_matches: u64,
    /// Bank lines (end-of-day) the whole reads held and the windowed ones
    /// left in the database.
    pub lines_left_out: u64,
    /// Lesson records the whole reads listed and the windowed ones summed
    /// at rest in the database.
    pub lesson_records_left_out: u64,
}

impl Report {
    pub fn runoffs(&self) -> impl Iterator<Item = &Subject> {
        self.subjects.iter().filter(|s| s.pattern.is_some())
    }

    pub fn healthy(&self) -> impl Iterator<Item = &Subject> {
        self.subjects.iter().filter(|s| s.pattern.is_none())
    }

    /// Run-offs red at least `lead` days before their collapse.
    pub fn caught_with_lead(&self, lead: i64) -> usize {
        self.runoffs()
            .filter(|s| s.lead_days().is_some_and(|d| d >= lead))
            .count()
    }

    /// The daily jobs' cost on days 10, 50, 100, 150, 200, 250 and 300 of
    /// the run (those it has), each against day 10: whether a day costs
    /// more as history grows. Each figure is the median of the five days
    /// around it (those the run has), so that one busy moment of a shared
    /// machine does not make a trend. Wall-clock times of one run; not
    /// part of [`Report::markdown`], which a seed reproduces exactly.
    pub fn costs_markdown(&self) -> String {
        let mut out = String::from(
            "| day | the day's writes (ms) | reconcile --record (ms) | risk --record (ms) | writes / day 10 | reconcile / day 10 | risk / day 10 |\n|---|---|---|---|---|---|---|\n",
        );
        let median = |day: u32, of: fn(&DayCost) -> std::time::Duration| {
            let mut around: Vec<std::time::Duration> = self
                .costs
                .iter()
                .filter(|c| c.day + 2 >= day && c.day <= day + 2)
                .map(of)
                .collect();
            around.sort();
            around.get(around.len() / 2).copied()
        };
        let at = |day: u32| {
            self.costs.iter().any(|c| c.day == day).then(|| {
                (
                    day,
                    median(day, |c| c.writes).unwrap_or_default(),
                    median(day, |c| c.reconcile).unwrap_or_default(),
                    median(day, |c| c.risk).unwrap_or_default(),
                )
            })
        };
        let Some((_, base_writes, base_reconcile, base_risk)) = at(10) else {
            return out;
        };
        let release = |day: u32,
                       pick: fn(
            (std::time::Duration, std::time::Duration),
        ) -> std::time::Duration| {
            let mut around: Vec<std::time::Duration> = self
                .costs
                .iter()
                .filter(|c| c.day + 2 >= day && c.day <= day + 2)
                .filter_map(|c| c.release_read.map(pick))
                .collect();
            around.sort();
            around.get(around.len() / 2).copied()
        };
        // In tenths, rounded down, in integers (no floats in this crate).
        let ratio = |a: std::time::Duration, b: std::time::Duration| {
            let tenths = a.as_micros() * 10 / b.as_micros().max(1);
            format!("{}.{}", tenths / 10, tenths % 10)
        };
        for (day, writes, reconcile, risk) in
            [10, 50, 100, 150, 200, 250, 300].into_iter().filter_map(at)
        {
            let _ = writeln!(
                out,
                "| {day} | {} | {} | {} | {} | {} | {} |",
                writes.as_millis(),
                reconcile.as_millis(),
                risk.as_millis(),
                ratio(writes, base_writes),
                ratio(reconcile, base_reconcile),
                ratio(risk, base_risk)
            );
        }
        if self.costs.iter().any(|c| c.release_read.is_some()) {
            out.push_str(
                "\nwhat may be released, every institution the release job computes it for (its read; the walk over every earning it replaced):\n\n\
                 | day | unreleased earnings (ms) | every earning (ms) | every earning / unreleased |\n|---|---|---|---|\n",
            );
            for day in [10, 50, 100, 150, 200, 250, 300] {
                let (Some(read), Some(walk)) = (release(day, |r| r.0), release(day, |r| r.1))
                else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "| {day} | {} | {} | {} |",
                    read.as_millis(),
                    walk.as_millis(),
                    ratio(walk, read)
                );
            }
        }
        out
    }

    /// The markdown tables: one row per run-off, then the healthy.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seed {}: {} healthy + {} run-offs, all opened {}; healthy measured over {} days from {} (after {} days' warm-up)\n",
            o.seed,
            self.healthy().count(),
            self.runoffs().count(),
            o.start,
            o.days,
            o.start + Duration::days(i64::from(o.warmup_days)),
            o.warmup_days
        );
        if !o.seasons {
            out.push_str("level sales all year: no summer surge (`--steady`)\n\n");
        }
        out.push_str("| pattern | mode | onset | collapse | first red | lead (days) | first red signals |\n|---|---|---|---|---|---|---|\n");
        for s in self.runoffs() {
            let lead = match s.lead_days() {
                Some(d) => d.to_string(),
                None => "missed".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                s.pattern.map(Pattern::code).unwrap_or_default(),
                s.mode.code(),
                s.onset.map(|d| d.to_string()).unwrap_or_default(),
                s.collapse.map(|d| d.to_string()).unwrap_or_default(),
                s.watch
                    .first_red
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                lead,
                s.watch.first_red_signals.join(", ")
            );
        }
        let healthy: Vec<&Subject> = self.healthy().collect();
        let with_red = healthy.iter().filter(|s| s.watch.days_red > 0).count();
        let with_yellow = healthy
            .iter()
            .filter(|s| s.watch.days_yellow > 0 || s.watch.days_red > 0)
            .count();
        let _ = writeln!(
            out,
            "\nrun-offs red ≥ 30 days before collapse: {} of {}; healthy ever red: {} of {}; healthy with any yellow: {} of {}\n",
            self.caught_with_lead(30),
            self.runoffs().count(),
            with_red,
            healthy.len(),
            with_yellow,
            healthy.len()
        );
        let mut kinds: BTreeMap<(String, &'static str), (u32, BTreeSet<&str>)> = BTreeMap::new();
        for s in &healthy {
            for (k, days) in &s.watch.kinds {
                let e = kinds.entry(k.clone()).or_default();
                e.0 += days;
                e.1.insert(s.id.as_str());
            }
        }
        if !kinds.is_empty() {
            out.push_str("| healthy: signal | severity | institutions | institution-days |\n|---|---|---|---|\n");
            for ((kind, severity), (days, who)) in kinds {
                let _ = writeln!(out, "| {kind} | {severity} | {} | {days} |", who.len());
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spend {
    Escrow,
    Outside,
}

struct SimEnrollment {
    e: Enrollment,
    /// Weekday of its lesson (and a second one when intensive).
    slots: Vec<Weekday>,
    consumed: u32,
    /// Taught, as opposed to reported (ahead-of-delivery over-reports).
    closed: bool,
    spend: Spend,
}

struct Account {
    kind: AccountKind,
    no: String,
    format: Format,
    balance: i64,
    /// Statement opened on `opened` at `balance_open`.
    opened: NaiveDate,
    balance_open: i64,
    today: Vec<Line>,
    /// Statements made but not yet sent (a late bank).
    held: VecDeque<Statement>,
    line_no: u64,
}

struct Sim {
    n: usize,
    institution: Institution,
    size: &'static str,
    /// Mean enrollments per day outside any surge.
    rate_milli: u32,
    pattern: Option<Pattern>,
    onset: NaiveDate,
    collapse: NaiveDate,
    enrollments: Vec<SimEnrollment>,
    releasable: i64,
    accounts: Vec<Account>,
    /// Instructions the bank will execute: (due day, account kind, client id, amount).
    instructed: Vec<(NaiveDate, AccountKind, String, i64)>,
    counter: u64,
    collections_30d: VecDeque<(NaiveDate, i64)>,
    deposit: i64,
    /// Disputed records of hours not given: the record, its enrollment and
    /// the day an officer upholds it (`Options::families_confirm`).
    phantoms: Vec<(String, EnrollmentId, NaiveDate)>,
}

fn at(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(hour, 0, 0).expect("a valid hour"))
}

fn working(day: NaiveDate) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

fn next_working(day: NaiveDate) -> NaiveDate {
    let mut d = day + Duration::days(1);
    while !working(d) {
        d += Duration::days(1);
    }
    d
}

/// The county's seasons: the summer holidays lift every school's sales.
fn season_pct(day: NaiveDate, seasons: bool) -> u32 {
    match day.month() {
        7 | 8 if seasons => 250,
        9 if seasons => 150,
        _ => 100,
    }
}

impl Sim {
    fn id(&self) -> &InstitutionId {
        &self.institution.id
    }

    fn alive(&self, day: NaiveDate) -> bool {
        day < self.collapse
    }

    fn account(&mut self, kind: AccountKind) -> Option<&mut Account> {
        self.accounts.iter_mut().find(|a| a.kind == kind)
    }

    fn request(&mut self, day: NaiveDate, hour: u32, what: &str, command: Command) -> Request {
        self.counter += 1;
        Request {
            institution: self.id().clone(),
            client_id: ClientId::parse(format!("{what}-{:03}-{}", self.n, self.counter))
                .expect("simulator client ids are valid"),
            currency: Currency::Cny,
            occurred_at: at(day, hour),
            external_ref: None,
            command,
        }
    }

    fn bank_line(&mut self, kind: AccountKind, amount: i64, day: NaiveDate, e2e: Option<String>) {
        let text = match (amount > 0, &e2e) {
            (true, Some(r)) => format!("学费 tuition {r}"),
            (true, None) => "转入 transfer".to_string(),
            (false, Some(_)) => "拨付/退费 instructed".to_string(),
            (false, None) => "转账 transfer".to_string(),
        };
        let n = self.n;
        let Some(a) = self.account(kind) else { return };
        a.line_no += 1;
        a.balance += amount;
        let bank_ref = format!("SB{n:03}{:07}", a.line_no);
        a.today.push(Line::booked_transfer(
            minor_to_decimal(amount, Currency::Cny),
            day,
            e2e,
            bank_ref,
            text,
        ));
    }
}

/// A store for the simulation at `url`, migrated, whose clock the
/// simulation moves day by day (registrations, requests and alerts are
/// dated on the simulated days, not today).
/// What may be released for every institution the release job would
/// compute it for on `day` (`app::lessons::may_release`: escrow cash to
/// pay from, something earned, not frozen), read as the release job reads
/// it and as the walk over every earning (the same answers, or the run
/// stops): the two times.
async fn time_release_reads(
    store: &Store,
    sims: &[Sim],
    day: NaiveDate,
) -> anyhow::Result<(std::time::Duration, std::time::Duration)> {
    use crate::app::lessons::{releasable, releasable_from_every_earning};
    use ledger_core::domain::lessons::CutOff;
    let cutoff = CutOff::Day(day);
    let mut releasing = Vec::with_capacity(sims.len());
    for sim in sims {
        if crate::app::lessons::may_release(store, &sim.institution).await? {
            releasing.push(sim);
        }
    }
    let sims = releasing;
    let mut read = Vec::with_capacity(sims.len());
    let started = std::time::Instant::now();
    for sim in &sims {
        read.push(releasable(store, &sim.institution, &cutoff, day).await?);
    }
    let reading = started.elapsed();
    let started = std::time::Instant::now();
    let mut walked = Vec::with_capacity(sims.len());
    for sim in &sims {
        walked.push(releasable_from_every_earning(store, &sim.institution, &cutoff, day).await?);
    }
    let walking = started.elapsed();
    anyhow::ensure!(
        read == walked,
        "{day}: what may be released read from the unreleased earnings differs from the walk over every earning"
    );
    Ok((reading, walking))
}

pub async fn open(url: &str, options: &Options) -> anyhow::Result<(Store, Clock)> {
    let clock = Clock::manual(at(options.start, 0));
    let store = Store::connect_with(url, clock.clone()).await?;
    store.migrate().await?;
    Ok((store, clock))
}

/// Runs the simulation on `store` (an empty database whose clock is
/// manual, see [`open`]).
pub async fn run(store: &Store, clock: &Clock, options: &Options) -> anyhow::Result<Report> {
    options.check()?;
    let mut rng = SmallRng::seed_from_u64(options.seed);
    let county = JurisdictionCode::parse(COUNTY)?;
    for (code, name, parent) in [
        ("000000", "National", None),
        ("410000", "Henan Province", Some("000000")),
        ("410900", "Puyang City", Some("410000")),
        (COUNTY, "Simulated County", Some("410900")),
    ] {
        crate::app::jurisdictions::register(
            store,
            crate::app::jurisdictions::NewJurisdiction {
                code: JurisdictionCode::parse(code)?,
                name: name.into(),
                parent: parent.map(JurisdictionCode::parse).transpose()?,
            },
        )
        .await?;
    }
    crate::app::registry::publish_rule_pack(
        store,
        &RulePack {
            jurisdiction: county.clone(),
            version: 1,
            effective_from: options.start - Duration::days(365),
            params: RuleParams {
                amount_cap_applies_to_subject: Some(true),
                lookback_days: options.windows.map(|w| w.0),
                baseline_days: options.windows.map(|w| w.1),
                // Narrowed windows narrow the families' answer window too:
                // a record comes to rest once due (`confirmations::at_rest`).
                lesson_confirm_working_days: options.windows.map(|_| 3),
                ..Default::default()
            },
        },
    )
    .await?;
    crate::app::feeds::register_bank(store, BANK, "Simulated county bank").await?;

    let sizes: [(&str, u32); 3] = [("small", 300), ("medium", 800), ("large", 2_000)];
    let modes = [
        SupervisionMode::Custody,
        SupervisionMode::Deposit,
        SupervisionMode::Both,
    ];
    let measured = options.start + Duration::days(i64::from(options.warmup_days));
    let last = measured + Duration::days(i64::from(options.days) - 1);
    let mut sims = Vec::new();
    let total = options.healthy + options.patterns.len();
    for n in 0..total {
        let pattern = n
            .checked_sub(options.healthy)
            .and_then(|k| options.patterns.get(k).copied());
        let mode = pattern.map_or(modes[n % 3], Pattern::mode);
        let (size, rate_milli) = sizes[(n / 3) % 3];
        // A collapse late enough to have a history, early enough to see.
        let span = i64::from(options.days);
        let collapse = match pattern {
            Some(_) => measured + Duration::days(rng.gen_range(span * 55 / 100..span - 5)),
            None => last + Duration::days(1),
        };
        let onset = collapse - Duration::days(rng.gen_range(45..=70));
        let institution = Institution {
            id: InstitutionId::parse(format!("INS-{COUNTY}-{:03}", n + 1))?,
            name: format!("Simulated school {}", n + 1),
            licence_no: format!("SIM{:04}", n + 1),
            jurisdiction: county.clone(),
            mode,
            category: Category::NonSubject,
            status: InstitutionStatus::Active,
            currency: Currency::Cny,
        };
        crate::app::registry::register_institution(store, &institution).await?;
        let mut accounts = Vec::new();
        let kinds: &[AccountKind] = match mode {
            SupervisionMode::Custody => &[AccountKind::Escrow],
            SupervisionMode::Deposit => &[AccountKind::Deposit],
            SupervisionMode::Both => &[AccountKind::Escrow, AccountKind::Deposit],
        };
        for (k, kind) in kinds.iter().enumerate() {
            let no = format!("62220410999{:03}0{}", n + 1, k + 1);
            crate::app::feeds::register_account(
                store,
                &BankAccount {
                    institution: institution.id.clone(),
                    bank: BANK.into(),
                    account_no: no.clone(),
                    kind: *kind,
                    currency: Currency::Cny,
                },
            )
            .await?;
            accounts.push(Account {
                kind: *kind,
                no,
                format: if (n + k) % 2 == 0 {
                    Format::Mt940
                } else {
                    Format::Camt053
                },
                balance: 0,
                opened: options.start,
                balance_open: 0,
                today: Vec::new(),
                held: VecDeque::new(),
                line_no: 0,
            });
        }
        sims.push(Sim {
            n: n + 1,
            institution,
            size,
            rate_milli,
            pattern,
            onset,
            collapse,
            enrollments: Vec::new(),
            releasable: 0,
            accounts,
            instructed: Vec::new(),
            counter: 0,
            collections_30d: VecDeque::new(),
            deposit: 0,
            phantoms: Vec::new(),
        });
    }

    let mut watches: Vec<Watch> = sims.iter().map(|_| Watch::default()).collect();
    let mut costs = Vec::new();
    let mut reads_checked = ReadsChecked::default();
    for offset in 0..options.warmup_days + options.days {
        let day = options.start + Duration::days(i64::from(offset));
        clock.set(at(day, 7));
        let living = std::time::Instant::now();
        for sim in sims.iter_mut() {
            live_one_day(store, sim, day, options, &mut rng).await?;
        }
        let writes = living.elapsed();
        let release_read = if options.families_confirm {
            Some(time_release_reads(store, &sims, day).await?)
        } else {
            None
        };
        clock.set(at(day, 20));
        for sim in sims.iter_mut() {
            send_statements(store, sim, day, &mut rng).await?;
        }
        let started = std::time::Instant::now();
        crate::app::reconcile::record(store, None, Some(day)).await?;
        let reconciled = std::time::Instant::now();
        let scan = crate::app::risk::scan(store, Some(county.clone()), Some(day), true).await?;
        costs.push(DayCost {
            day: offset + 1,
            writes,
            reconcile: reconciled - started,
            risk: reconciled.elapsed(),
            release_read,
        });
        if options.check_reads {
            for sim in &sims {
                check_reads(store, &sim.institution, day, &mut reads_checked).await?;
            }
        }
        for a in &scan.ranked {
            let Some(k) = sims.iter().position(|s| s.institution.id == a.institution) else {
                continue;
            };
            if sims[k].pattern.is_none() && day < measured {
                continue;
            }
            let w = &mut watches[k];
            w.seen.extend(a.signals.iter().map(|s| s.kind.code()));
            let worst = a.signals.iter().map(|s| s.severity).max();
            let Some(worst) = worst else { continue };
            for s in a.signals.iter().filter(|s| s.severity == worst) {
                let severity = match worst {
                    Severity::Red => "red",
                    Severity::Yellow => "yellow",
                };
                *w.kinds
                    .entry((s.kind.code().to_string(), severity))
                    .or_default() += 1;
            }
            match worst {
                Severity::Red => {
                    w.days_red += 1;
                    if w.first_red.is_none() {
                        w.first_red = Some(day);
                        w.first_red_signals = a
                            .signals
                            .iter()
                            .filter(|s| s.severity == Severity::Red)
                            .map(|s| s.kind.code().to_string())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect();
                    }
                }
                Severity::Yellow => {
                    w.days_yellow += 1;
                    w.first_yellow.get_or_insert(day);
                }
            }
        }
    }
    let subjects = sims
        .iter()
        .zip(watches)
        .map(|(s, watch)| Subject {
            id: s.institution.id.to_string(),
            mode: s.institution.mode,
            size: s.size,
            pattern: s.pattern,
            onset: s.pattern.map(|_| s.onset),
            collapse: s.pattern.map(|_| s.collapse),
            watch,
        })
        .collect();
    Ok(Report {
        options: options.clone(),
        subjects,
        costs,
        reads_checked,
    })
}

/// One institution's records read whole and windowed on `day`: the two
/// assessments must be the same (`Options::check_reads`).
async fn check_reads(
    store: &Store,
    institution: &Institution,
    day: NaiveDate,
    checked: &mut ReadsChecked,
) -> anyhow::Result<()> {
    use crate::app::risk::{records_of, snapshot, Reading};
    let whole = records_of(store, institution, day, Reading::Whole).await?;
    let windowed = records_of(store, institution, day, Reading::Windowed).await?;
    let assess = |r: &Records| -> anyhow::Result<_> { Ok(risk::evaluate(&snapshot(r, day)?)) };
    let (a, b) = (assess(&whole)?, assess(&windowed)?);
    if a != b {
        anyhow::bail!(
            "{} on {day}: the windowed read assesses {b:#?}\nwhere the whole history assesses {a:#?}",
            institution.id
        );
    }
    let lines = |r: &Records| -> u64 {
        r.accounts
            .iter()
            .map(|a| a.statements.lines.len() as u64)
            .sum()
    };
    checked.assessments += 1;
    if windowed.accounts.iter().any(|a| a.kept.is_some()) {
        checked.with_kept_matches += 1;
    }
    checked.lines_left_out += lines(&whole).saturating_sub(lines(&windowed));
    checked.lesson_records_left_out +=
        (whole.lessons.len() as u64).saturating_sub(windowed.lessons.len() as u64);
    Ok(())
}

/// One day of one institution: sales, lessons, releases, refunds, and
/// what its run-off (if any) does that day.
async fn live_one_day(
    store: &Store,
    sim: &mut Sim,
    day: NaiveDate,
    options: &Options,
    rng: &mut SmallRng,
) -> anyhow::Result<()> {
    let seasons = options.seasons;
    let sold_before_today = sim.enrollments.len();
    let mut requests = Vec::new();
    let p = sim.pattern;
    let running = p.is_some() && day >= sim.onset;
    let has_escrow = sim.institution.mode != SupervisionMode::Deposit;
    let has_deposit = sim.institution.mode != SupervisionMode::Custody;
    if !sim.alive(day) {
        return Ok(());
    }

    // The risk deposit: paid in on the first day, topped up on Mondays to
    // the fees of three months at the last 30 days' pace.
    if has_deposit && (day.weekday() == Weekday::Mon || sim.deposit == 0) {
        let fees_30d: i64 = sim.collections_30d.iter().map(|(_, a)| a).sum();
        let expected = i64::from(sim.rate_milli) * 3_000 * 30 / 1_000;
        let floor = fees_30d.max(expected) * 3 * 3 / 2;
        let withheld = running && p == Some(Pattern::DepositWithdrawn);
        if floor > sim.deposit && !withheld {
            let top_up = floor - sim.deposit;
            let r = sim.request(
                day,
                8,
                "deposit",
                Command::PayInDeposit {
                    amount: Amount::from_minor(top_up)?,
                },
            );
            sim.bank_line(
                AccountKind::Deposit,
                top_up,
                day,
                Some(r.client_id.to_string()),
            );
            sim.deposit += top_up;
            requests.push(r);
        }
    }

    // Sales: the county's season, and a drive before some run-offs.
    let mut rate = u64::from(sim.rate_milli) * u64::from(season_pct(day, seasons)) / 100;
    if running
        && matches!(
            p,
            Some(Pattern::PresellThenStop | Pattern::DrainAfterRepresentativeChange)
        )
    {
        rate *= 4;
    }
    let mut sold = (rate / 1_000) as usize;
    if rng.gen_range(0..1_000) < rate % 1_000 {
        sold += 1;
    }
    while sim
        .collections_30d
        .front()
        .is_some_and(|(d, _)| *d <= day - Duration::days(30))
    {
        sim.collections_30d.pop_front();
    }
    for _ in 0..sold {
        let k = sim.enrollments.len();
        let weeks = rng.gen_range(9..=12);
        let hours = 2 * weeks;
        let price = i64::from(hours) * rng.gen_range(90..=150) * 100;
        let start = day + Duration::days(rng.gen_range(0..=14));
        let e = Enrollment {
            institution: sim.id().clone(),
            id: EnrollmentId::parse(format!("E{:03}-{k:05}", sim.n))?,
            student_ref: format!("S{:08}", rng.gen_range(0..100_000_000)),
            hours_bought: hours,
            bonus_hours: 0,
            price: Amount::from_minor(price)?,
            currency: Currency::Cny,
            course_start: start,
            course_end: start + Duration::days(i64::from(weeks) * 7 - 1),
        };
        crate::app::books::enroll(store, &e).await?;
        let mut slots = vec![
            [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ][rng.gen_range(0..7)],
        ];
        // One in four is an intensive course: two lessons a week.
        if rng.gen_range(0..4) == 0 {
            slots.push(slots[0].succ().succ().succ());
        }
        let spend = if has_escrow {
            Spend::Escrow
        } else {
            Spend::Outside
        };
        let order = format!("XF{:03}{k:06}", sim.n);
        let command = match spend {
            Spend::Escrow => Command::PayTuition {
                enrollment: e.id.clone(),
                amount: e.price,
            },
            Spend::Outside => Command::CollectOutsideEscrow {
                enrollment: e.id.clone(),
                amount: e.price,
            },
        };
        let mut r = sim.request(day, 10, "pay", command);
        r.external_ref = Some(order.clone());
        // Diverted fees: most of the money goes to another account.
        let diverted = running && p == Some(Pattern::DivertedFees) && rng.gen_range(0..10) < 7;
        if spend == Spend::Escrow && !diverted {
            sim.bank_line(AccountKind::Escrow, price, day, Some(order));
        }
        sim.collections_30d.push_back((day, price));
        requests.push(r);
        sim.enrollments.push(SimEnrollment {
            e,
            slots,
            consumed: 0,
            closed: false,
            spend,
        });
    }

    // Lessons on each enrollment's weekday: sometimes skipped, sometimes
    // made up with a double lesson. A run-off winding down teaches less;
    // one running releases ahead of delivery reports triple.
    let winding_down = running && p == Some(Pattern::PresellThenStop);
    let over_report = running && p == Some(Pattern::ReleasesAheadOfDelivery);
    let mut lessons = Vec::new();
    for (k, s) in sim.enrollments.iter().enumerate() {
        if s.closed
            || day < s.e.course_start
            || s.consumed >= s.e.hours_bought
            || !s.slots.contains(&day.weekday())
        {
            continue;
        }
        let roll = rng.gen_range(0..100);
        let mut hours = match roll {
            0..=9 => 0,
            10..=19 => 4,
            _ => 2,
        };
        if winding_down {
            let gone = (day - sim.onset).num_days();
            let total = (sim.collapse - sim.onset).num_days().max(1);
            if rng.gen_range(0..total) < gone * 3 / 2 {
                hours = 0;
            }
        }
        if over_report {
            hours *= 3;
        }
        let hours = hours.min(s.e.hours_bought - s.consumed);
        if hours > 0 {
            lessons.push((k, hours));
        }
    }
    if options.families_confirm {
        uphold_phantoms_due(store, sim, day).await?;
    }
    for (k, hours) in lessons {
        let s = &mut sim.enrollments[k];
        let earned = s.e.earned_after(s.consumed + hours) - s.e.earned_after(s.consumed);
        s.consumed += hours;
        let (id, left) = (s.e.id.clone(), s.e.hours_bought - s.consumed);
        if s.spend == Spend::Escrow {
            sim.releasable += earned;
        }
        if options.families_confirm && k < sold_before_today {
            confirmed_by_family(store, sim, &id, hours, left, day, rng).await?;
            continue;
        }
        let command = Command::ConsumeLessons {
            enrollment: id,
            hours,
        };
        let r = sim.request(day, 18, "lesson", command);
        requests.push(r);
    }

    // Weekly release of what was earned (custody money only).
    if has_escrow && day.weekday() == Weekday::Fri && sim.releasable > 0 {
        let amount = sim.releasable;
        sim.releasable = 0;
        let r = sim.request(
            day,
            19,
            "release",
            Command::InstructRelease {
                amount: Amount::from_minor(amount)?,
            },
        );
        sim.instructed.push((
            next_working(day),
            AccountKind::Escrow,
            r.client_id.to_string(),
            amount,
        ));
        requests.push(r);
    }

    // An ordinary refund now and then: a family leaves, gets the
    // unconsumed part back.
    let refund_every = 40_000 / sim.rate_milli.max(1);
    let refunds_stuck = running && p == Some(Pattern::RefundsUnpaid);
    if rng.gen_range(0..refund_every.max(2)) == 0 || (refunds_stuck && rng.gen_range(0..3) == 0) {
        let open: Vec<usize> = sim
            .enrollments
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.closed && s.consumed < s.e.hours_bought && s.e.course_start <= day)
            .map(|(k, _)| k)
            .collect();
        if !open.is_empty() {
            let k = open[rng.gen_range(0..open.len())];
            let s = &mut sim.enrollments[k];
            s.closed = true;
            let unconsumed = s.e.price.minor() - s.e.earned_after(s.consumed);
            let (id, spend) = (s.e.id.clone(), s.spend);
            if refunds_stuck && rng.gen_range(0..2) == 0 {
                // The family asks through the workflow; nobody answers.
                // A family with nothing left to get back is refused, and
                // has left all the same.
                let key = format!("sim-{}-{k}", sim.n);
                let asked = crate::app::refunds::request(
                    store,
                    &sim.institution,
                    crate::app::refunds::RefundAsk {
                        enrollment: id.to_string(),
                        amount: None,
                        payee: Payee {
                            name: "Parent".into(),
                            account: format!("6217{:012}", rng.gen_range(0..1_000_000_000_000u64)),
                            bank: "PYBKCNBJ".into(),
                        },
                        reason: Some("leaving".into()),
                    },
                    crate::app::refunds::refund_id_for("simulator", &key)?,
                    "family".into(),
                    day,
                )
                .await;
                match asked {
                    Err(e) if e.code() == "refund_exceeds_refundable" => {}
                    other => {
                        other?;
                    }
                }
            } else if unconsumed > 0 {
                let approve = sim.request(
                    day,
                    11,
                    "refund",
                    Command::ApproveRefund {
                        enrollment: id,
                        amount: None,
                    },
                );
                requests.push(approve);
                let pay = match spend {
                    Spend::Escrow => Command::InstructRefundPayment {
                        amount: Amount::from_minor(unconsumed)?,
                        source: RefundSource::Escrow,
                    },
                    Spend::Outside => Command::RecordRefundPaidByInstitution {
                        amount: Amount::from_minor(unconsumed)?,
                    },
                };
                let r = sim.request(day, 12, "refund-pay", pay);
                if spend == Spend::Escrow && !refunds_stuck {
                    sim.instructed.push((
                        next_working(day),
                        AccountKind::Escrow,
                        r.client_id.to_string(),
                        unconsumed,
                    ));
                }
                requests.push(r);
            }
        }
    }

    // What the run-off does to the money.
    if running {
        let since = (day - sim.onset).num_days();
        let to_collapse = (sim.collapse - day).num_days();
        match p {
            Some(Pattern::OutrightDrain) if since % 7 == 3 => {
                drain(sim, AccountKind::Escrow, day, 15);
            }
            Some(Pattern::DrainAfterRepresentativeChange) => {
                if since == 0 {
                    store
                        .record_event(
                            sim.id(),
                            "legal_representative_change",
                            day,
                            Some("simulated"),
                            "simulator",
                            Some(&format!("sim-rep-{}", sim.n)),
                        )
                        .await?;
                }
                if to_collapse <= 14 && to_collapse % 3 == 0 {
                    drain(sim, AccountKind::Escrow, day, 30);
                }
            }
            Some(Pattern::DepositWithdrawn) if since == 0 => {
                drain(sim, AccountKind::Deposit, day, 80);
            }
            Some(Pattern::BankFallsSilent) if since >= 10 && since % 7 == 3 => {
                drain(sim, AccountKind::Escrow, day, 20);
            }
            _ => {}
        }
    }

    if !requests.is_empty() {
        crate::app::books::record_batch(store, requests).await?;
    }
    Ok(())
}

/// A lesson through the families' confirmation (`Options::families_confirm`):
/// recorded by the school and confirmed by the family, which posts it; now
/// and then an hour not given recorded beside it and disputed at once.
async fn confirmed_by_family(
    store: &Store,
    sim: &mut Sim,
    enrollment: &EnrollmentId,
    hours: u32,
    hours_left: u32,
    day: NaiveDate,
    rng: &mut SmallRng,
) -> anyhow::Result<()> {
    use crate::app::lessons::{answer, record, LessonAsk};
    use ledger_core::domain::lessons::LessonStep;
    let institution = &sim.institution;
    let ask = |hours: u32| LessonAsk {
        enrollment: enrollment.to_string(),
        hours: i64::from(hours),
        occurred_on: day,
    };
    let given = record(store, institution, ask(hours), "school", None, day).await?;
    let id = &given.record.id;
    let answered = answer(
        store,
        institution,
        id,
        LessonStep::Confirm,
        "family",
        None,
        day,
    )
    .await?;
    if let Some(why) = answered.not_posted {
        anyhow::bail!(
            "{}: lesson {id} confirmed but not posted: {why}",
            institution.id
        );
    }
    // The record disputed waits two weeks for its officer, counted against
    // the hours left meanwhile: one at a time, at a healthy school (a
    // run-off over-reporting lessons could use more), and only with more
    // hours left than two weeks of its lessons can take (two a week, four
    // hours at most each).
    let disputed = sim.phantoms.iter().any(|(_, e, _)| e == enrollment);
    let healthy = sim.pattern.is_none();
    if healthy && hours_left >= 18 && !disputed && rng.gen_range(0..25) == 0 {
        let phantom = record(store, institution, ask(1), "school", None, day).await?;
        let id = phantom.record.id;
        let reason = Some("no lesson that day");
        answer(
            store,
            institution,
            &id,
            LessonStep::Dispute,
            "family",
            reason,
            day,
        )
        .await?;
        sim.phantoms
            .push((id, enrollment.clone(), day + Duration::days(14)));
    }
    Ok(())
}

/// An officer upholds the disputes due: the hours were not given.
async fn uphold_phantoms_due(store: &Store, sim: &mut Sim, day: NaiveDate) -> anyhow::Result<()> {
    use ledger_core::domain::lessons::LessonStep;
    let (due, later): (Vec<_>, Vec<_>) = sim.phantoms.drain(..).partition(|(_, _, on)| *on <= day);
    sim.phantoms = later;
    let reason = Some("the school showed no register for the day");
    for (id, ..) in due {
        crate::app::lessons::answer(
            store,
            &sim.institution,
            &id,
            LessonStep::Uphold,
            "officer",
            reason,
            day,
        )
        .await?;
    }
    Ok(())
}

/// Money leaves an account with no instruction of ours.
fn drain(sim: &mut Sim, kind: AccountKind, day: NaiveDate, percent: i64) {
    let Some(balance) = sim
        .accounts
        .iter()
        .find(|a| a.kind == kind)
        .map(|a| a.balance)
    else {
        return;
    };
    let amount = balance * percent / 100;
    if amount > 0 {
        sim.bank_line(kind, -amount, day, None);
    }
}

/// The bank's end of day: it executes the instructions due, closes each
/// account's statement and sends it (a day late now and then; never, once
/// a silent bank has gone quiet).
async fn send_statements(
    store: &Store,
    sim: &mut Sim,
    day: NaiveDate,
    rng: &mut SmallRng,
) -> anyhow::Result<()> {
    let due: Vec<_> = sim
        .instructed
        .iter()
        .filter(|(on, ..)| *on <= day)
        .cloned()
        .collect();
    sim.instructed.retain(|(on, ..)| *on > day);
    for (_, kind, id, amount) in due {
        sim.bank_line(kind, -amount, day, Some(id));
    }
    let silent = sim.pattern == Some(Pattern::BankFallsSilent) && day >= sim.onset;
    for a in sim.accounts.iter_mut() {
        let statement = Statement {
            format: a.format,
            account: a.no.clone(),
            currency: "CNY".into(),
            statement_id: format!("{}-{}", &a.no[a.no.len() - 5..], day.format("%Y%m%d")),
            sequence: Some("1/1".into()),
            opening_balance: Some(Balance {
                amount: minor_to_decimal(a.balance_open, Currency::Cny),
                date: a.opened,
            }),
            closing_balance: Some(Balance {
                amount: minor_to_decimal(a.balance, Currency::Cny),
                date: day,
            }),
            lines: std::mem::take(&mut a.today),
            source: SourceRef::unwritten(),
        };
        a.opened = day;
        a.balance_open = a.balance;
        a.held.push_back(statement);
        if silent {
            continue;
        }
        // A late bank: one day in twelve the statement waits for the next.
        if working(day) && rng.gen_range(0..12) == 0 {
            continue;
        }
        let statements: Vec<Statement> = a.held.drain(..).collect();
        let bytes = match a.format {
            Format::Camt053 => bank_adapter::render::camt053::camt053(&statements),
            _ => bank_adapter::render::mt940::mt940(&statements),
        };
        crate::app::feeds::ingest_bytes(store, BANK, bytes.as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("statement of {}: {e}", a.no))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_county_sells_at_the_same_rate_every_month() {
        for month in 1..=12 {
            let day = NaiveDate::from_ymd_opt(2026, month, 15).unwrap();
            assert_eq!(season_pct(day, false), 100, "month {month}");
        }
        let july = NaiveDate::from_ymd_opt(2026, 7, 15).unwrap();
        let march = NaiveDate::from_ymd_opt(2026, 3, 15).unwrap();
        assert!(season_pct(july, true) > season_pct(march, true));
    }

    #[test]
    fn a_cost_is_the_median_of_the_five_days_around_it_so_one_slow_day_is_not_a_trend() {
        let ms = std::time::Duration::from_millis;
        // Risk costs 100 ms a day up to day 12, 200 ms from day 48 on, and
        // one busy moment makes day 50 take 5 s and day 10 take 1 s.
        let costs = (1..=60)
            .map(|day| DayCost {
                day,
                writes: ms(20),
                reconcile: ms(50),
                risk: match day {
                    10 => ms(1_000),
                    50 => ms(5_000),
                    d if d >= 48 => ms(200),
                    _ => ms(100),
                },
                release_read: None,
            })
            .collect();
        let report = Report {
            options: Options::new(1),
            subjects: vec![],
            costs,
            reads_checked: ReadsChecked::default(),
        };
        let table = report.costs_markdown();
        assert!(
            table.contains("| 10 | 20 | 50 | 100 | 1.0 | 1.0 | 1.0 |"),
            "{table}"
        );
        assert!(
            table.contains("| 50 | 20 | 50 | 200 | 1.0 | 1.0 | 2.0 |"),
            "{table}"
        );
        // Days the run does not have are left out.
        assert!(!table.lines().any(|l| l.starts_with("| 100 |")), "{table}");
    }
}
