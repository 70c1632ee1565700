//! The model test: a seeded random sequence of operations applied to the real
//! store and to a naive in-memory model of the books. After every step they
//! agree on the outcome and on every balance, every entry balances, no floor
//! is broken; the hash chain verifies; past balances match the model's
//! snapshots at random instants. Set MODEL_SEED to replay a failure.

mod support {
    pub mod county;
    pub mod db;
}

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger_core::{Command, RefundSource, Request, Side};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::county::*;
use support::db::{Backend, TestDb};

const STEPS: usize = 400;
const INSTITUTIONS: [&str; 2] = ["I1", "I2"];
const ASSETS: [&str; 3] = ["escrow_cash", "deposit_cash", "held_by_institution"];

#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct T {
    pd: i64,
    pc: i64,
    qd: i64,
    qc: i64,
}

impl T {
    fn asset(account: &str) -> bool {
        ASSETS.contains(&account)
    }
    fn available(&self, account: &str) -> i64 {
        if Self::asset(account) {
            self.pd - self.pc - self.qc
        } else {
            self.pc - self.pd - self.qd
        }
    }
}

#[derive(Clone, Debug)]
struct Enr {
    price: i64,
    bought: u32,
    bonus: u32,
    consumed: u32,
    paid: i64,
}

#[derive(Clone, Debug)]
struct Recorded {
    request: Request,
    legs: Vec<(String, bool, i64)>, // (account, is_debit, amount)
    kind: &'static str,
    enrollment: Option<String>,
    resolved: bool,
}

type Accounts = BTreeMap<(String, String), T>;
type Legs = Vec<(String, bool, i64)>;
/// What a request does: kind, phase, legs, enrollment, the entry it acts on.
type Effect = (
    &'static str,
    &'static str,
    Legs,
    Option<String>,
    Option<(String, String)>,
);

#[derive(Default)]
struct Model {
    accounts: BTreeMap<(String, String), T>,
    enrollments: BTreeMap<(String, String), Enr>,
    entries: BTreeMap<(String, String), Recorded>,
    order: Vec<(String, String)>,
}

impl Model {
    fn t(&self, i: &str, a: &str) -> T {
        self.accounts
            .get(&(i.into(), a.into()))
            .copied()
            .unwrap_or_default()
    }

    /// Applies legs in the given phase; returns the first overdraw as an error code.
    fn apply(
        &mut self,
        i: &str,
        phase: &str,
        legs: &[(String, bool, i64)],
    ) -> Result<(), &'static str> {
        let mut next = self.accounts.clone();
        for (a, debit, amt) in legs {
            let t = next.entry((i.into(), a.clone())).or_default();
            match (phase, debit) {
                ("posted", true) => t.pd += amt,
                ("posted", false) => t.pc += amt,
                ("pending", true) => t.qd += amt,
                ("pending", false) => t.qc += amt,
                ("post", true) => {
                    t.qd -= amt;
                    t.pd += amt
                }
                ("post", false) => {
                    t.qc -= amt;
                    t.pc += amt
                }
                ("void", true) => t.qd -= amt,
                ("void", false) => t.qc -= amt,
                _ => unreachable!(),
            }
            if t.available(a) < 0 {
                return Err("would_overdraw");
            }
        }
        self.accounts = next;
        Ok(())
    }

    fn legs(debit: &str, credit: &str, amt: i64) -> Vec<(String, bool, i64)> {
        vec![(debit.into(), true, amt), (credit.into(), false, amt)]
    }

    /// The model's own account of what a request should do.
    fn run(&mut self, r: &Request) -> Result<(), &'static str> {
        let i = r.institution.to_string();
        let key = (i.clone(), r.client_id.to_string());
        if let Some(prev) = self.entries.get(&key) {
            return if prev.request == *r {
                Ok(())
            } else {
                Err("exists_with_different_fields")
            };
        }
        let (kind, phase, legs, enrollment, target): Effect = match &r.command {
            Command::PayTuition {
                enrollment,
                amount: amount_minor,
            }
            | Command::CollectOutsideEscrow {
                enrollment,
                amount: amount_minor,
            }
            | Command::AttributeReceipt {
                enrollment,
                amount: amount_minor,
            } => {
                let e = &self.enrollments[&(i.clone(), enrollment.to_string())];
                if e.paid + amount_minor.minor() > e.price {
                    return Err("payment_exceeds_price");
                }
                let (kind, debit) = match &r.command {
                    Command::PayTuition { .. } => ("pay", "escrow_cash"),
                    Command::CollectOutsideEscrow { .. } => ("collect", "held_by_institution"),
                    _ => ("attribute", "unidentified"),
                };
                (
                    kind,
                    "posted",
                    Self::legs(
                        debit,
                        &format!("prepaid/{enrollment}"),
                        amount_minor.minor(),
                    ),
                    Some(enrollment.to_string()),
                    None,
                )
            }
            Command::ConsumeLessons { enrollment, hours } => {
                let e = &self.enrollments[&(i.clone(), enrollment.to_string())];
                if e.consumed + hours > e.bought + e.bonus {
                    return Err("enrollment_hours_exhausted");
                }
                let value =
                    |h: u32| (e.price as i128 * h.min(e.bought) as i128 / e.bought as i128) as i64;
                let amt = value(e.consumed + hours) - value(e.consumed);
                let legs = if amt > 0 {
                    Self::legs(&format!("prepaid/{enrollment}"), "releasable", amt)
                } else {
                    vec![]
                };
                (
                    "consume",
                    "posted",
                    legs,
                    Some(enrollment.to_string()),
                    None,
                )
            }
            Command::InstructRelease {
                amount: amount_minor,
            } => (
                "release",
                "pending",
                Self::legs("releasable", "escrow_cash", amount_minor.minor()),
                None,
                None,
            ),
            Command::ApproveRefund {
                enrollment,
                amount: amount_minor,
            } => {
                let acct = format!("prepaid/{enrollment}");
                let refundable = self.t(&i, &acct).available(&acct);
                let amt = amount_minor.map_or(refundable, |a| a.minor());
                if amt > refundable || amt <= 0 {
                    return Err("refund_exceeds_refundable");
                }
                (
                    "refund",
                    "posted",
                    Self::legs(&acct, "refund_payable", amt),
                    Some(enrollment.to_string()),
                    None,
                )
            }
            Command::InstructRefundPayment {
                amount: amount_minor,
                source,
            } => {
                let credit = if *source == RefundSource::Escrow {
                    "escrow_cash"
                } else {
                    "deposit_cash"
                };
                (
                    "refund_pay",
                    "pending",
                    Self::legs("refund_payable", credit, amount_minor.minor()),
                    None,
                    None,
                )
            }
            Command::RecordRefundPaidByInstitution {
                amount: amount_minor,
            } => (
                "refund_by_institution",
                "posted",
                Self::legs(
                    "refund_payable",
                    "held_by_institution",
                    amount_minor.minor(),
                ),
                None,
                None,
            ),
            Command::RecordUnidentifiedReceipt {
                amount: amount_minor,
            } => (
                "unidentified",
                "posted",
                Self::legs("escrow_cash", "unidentified", amount_minor.minor()),
                None,
                None,
            ),
            Command::PayInDeposit {
                amount: amount_minor,
            } => (
                "deposit",
                "posted",
                Self::legs("deposit_cash", "deposit_payable", amount_minor.minor()),
                None,
                None,
            ),
            Command::InstructDepositReturn {
                amount: amount_minor,
            } => (
                "deposit_return",
                "pending",
                Self::legs("deposit_payable", "deposit_cash", amount_minor.minor()),
                None,
                None,
            ),
            Command::ConfirmPending { pending } | Command::VoidPending { pending } => {
                let tkey = (i.clone(), pending.to_string());
                let Some(t) = self.entries.get(&tkey) else {
                    return Err("unknown_entry");
                };
                if !matches!(t.kind, "release" | "refund_pay" | "deposit_return") {
                    return Err("not_pending");
                }
                if t.resolved {
                    return Err("already_resolved");
                }
                let confirm = matches!(r.command, Command::ConfirmPending { .. });
                (
                    if confirm { "confirm" } else { "void" },
                    if confirm { "post" } else { "void" },
                    t.legs.clone(),
                    t.enrollment.clone(),
                    Some(tkey),
                )
            }
            Command::Reverse { entry } => {
                let tkey = (i.clone(), entry.to_string());
                let Some(t) = self.entries.get(&tkey) else {
                    return Err("unknown_entry");
                };
                if !matches!(
                    t.kind,
                    "pay"
                        | "collect"
                        | "attribute"
                        | "refund"
                        | "refund_by_institution"
                        | "unidentified"
                        | "deposit"
                ) || t.resolved
                {
                    return Err("cannot_reverse");
                }
                let legs = t.legs.iter().map(|(a, d, x)| (a.clone(), !d, *x)).collect();
                ("reversal", "posted", legs, t.enrollment.clone(), Some(tkey))
            }
        };
        self.apply(&i, phase, &legs)?;
        // counters
        if let Some(e) = &enrollment {
            let ek = (i.clone(), e.clone());
            match &r.command {
                Command::ConsumeLessons { hours, .. } => {
                    self.enrollments.get_mut(&ek).unwrap().consumed += hours
                }
                Command::PayTuition {
                    amount: amount_minor,
                    ..
                }
                | Command::CollectOutsideEscrow {
                    amount: amount_minor,
                    ..
                }
                | Command::AttributeReceipt {
                    amount: amount_minor,
                    ..
                } => self.enrollments.get_mut(&ek).unwrap().paid += amount_minor.minor(),
                Command::Reverse { .. } => {
                    let t = &self.entries[target.as_ref().unwrap()];
                    if matches!(t.kind, "pay" | "collect" | "attribute") {
                        self.enrollments.get_mut(&ek).unwrap().paid -= t.legs[0].2;
                    }
                }
                _ => {}
            }
        }
        if let Some(tkey) = target {
            self.entries.get_mut(&tkey).unwrap().resolved = true;
        }
        self.entries.insert(
            key.clone(),
            Recorded {
                request: r.clone(),
                legs,
                kind,
                enrollment,
                resolved: false,
            },
        );
        self.order.push(key);
        Ok(())
    }
}

fn random_request(rng: &mut SmallRng, model: &Model, n: usize) -> Request {
    let i = INSTITUTIONS[rng.gen_range(0..INSTITUTIONS.len())];
    let e = format!("E{}", rng.gen_range(0..4));
    let amount = |rng: &mut SmallRng| -> i64 {
        match rng.gen_range(0..4) {
            0 => rng.gen_range(1..100),
            1 => rng.gen_range(1..50_000),
            _ => rng.gen_range(10_000..200_000),
        }
    };
    let earlier: Vec<&(String, String)> =
        model.order.iter().filter(|(inst, _)| inst == i).collect();
    let pick = |rng: &mut SmallRng| -> String {
        if earlier.is_empty() || rng.gen_bool(0.05) {
            "no-such-entry".to_string()
        } else {
            earlier[rng.gen_range(0..earlier.len())].1.clone()
        }
    };
    // Replays (same content) and conflicting reuse of an earlier id.
    if !earlier.is_empty() && rng.gen_bool(0.06) {
        let key = earlier[rng.gen_range(0..earlier.len())];
        let mut r = model.entries[key].request.clone();
        if rng.gen_bool(0.5) {
            r.command = pay(&e, 1);
        }
        return r;
    }
    let command = match rng.gen_range(0..14) {
        0..=2 => pay(&e, amount(rng)),
        3 => Command::CollectOutsideEscrow {
            enrollment: eid(&e),
            amount: ledger_core::Amount::from_minor(amount(rng)).unwrap(),
        },
        4 | 5 => consume(&e, rng.gen_range(1..8)),
        6 => Command::InstructRelease {
            amount: ledger_core::Amount::from_minor(amount(rng)).unwrap(),
        },
        7 => Command::ApproveRefund {
            enrollment: eid(&e),
            amount: if rng.gen_bool(0.5) {
                None
            } else {
                Some(ledger_core::Amount::from_minor(amount(rng)).unwrap())
            },
        },
        8 => {
            if rng.gen_bool(0.15) {
                Command::RecordRefundPaidByInstitution {
                    amount: ledger_core::Amount::from_minor(amount(rng)).unwrap(),
                }
            } else {
                Command::InstructRefundPayment {
                    amount: ledger_core::Amount::from_minor(amount(rng)).unwrap(),
                    source: if rng.gen_bool(0.8) {
                        RefundSource::Escrow
                    } else {
                        RefundSource::Deposit
                    },
                }
            }
        }
        9 => {
            if rng.gen_bool(0.5) {
                Command::RecordUnidentifiedReceipt {
                    amount: ledger_core::Amount::from_minor(amount(rng)).unwrap(),
                }
            } else {
                Command::AttributeReceipt {
                    enrollment: eid(&e),
                    amount: ledger_core::Amount::from_minor(amount(rng)).unwrap(),
                }
            }
        }
        10 => {
            if rng.gen_bool(0.6) {
                Command::PayInDeposit {
                    amount: ledger_core::Amount::from_minor(amount(rng)).unwrap(),
                }
            } else {
                Command::InstructDepositReturn {
                    amount: ledger_core::Amount::from_minor(amount(rng)).unwrap(),
                }
            }
        }
        11 | 12 => {
            if rng.gen_bool(0.7) {
                Command::ConfirmPending {
                    pending: cid(&pick(rng)),
                }
            } else {
                Command::VoidPending {
                    pending: cid(&pick(rng)),
                }
            }
        }
        _ => Command::Reverse {
            entry: cid(&pick(rng)),
        },
    };
    req(i, &format!("op-{n}"), command)
}

async fn check_balances(db: &TestDb, model: &Model, seed: u64, step: usize) {
    for i in INSTITUTIONS {
        let sheet = db.store.balances(&iid(i)).await.unwrap();
        for a in &sheet.accounts {
            let t = model.t(i, &a.account);
            let got = (
                a.totals.posted_debits_minor,
                a.totals.posted_credits_minor,
                a.totals.pending_debits_minor,
                a.totals.pending_credits_minor,
            );
            assert_eq!(
                got,
                (t.pd, t.pc, t.qd, t.qc),
                "seed {seed} step {step}: {i} {}",
                a.account
            );
            assert!(
                a.available_minor >= 0,
                "seed {seed} step {step}: floor broken on {i} {}",
                a.account
            );
        }
        assert_eq!(
            sheet.imbalance_minor(),
            0,
            "seed {seed} step {step}: {i} assets != liabilities"
        );
    }
}

async fn run_model(backend: Backend) {
    let seed: u64 = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("model test on {backend:?} with MODEL_SEED={seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let db = TestDb::new(backend).await;
    let s = &db.store;
    county(s).await;
    let mut model = Model::default();
    for i in INSTITUTIONS {
        s.create_institution(&institution(i)).await.unwrap();
        for n in 0..4 {
            let mut e = enrollment(i, &format!("E{n}"), rng.gen_range(1_000..=500_000));
            e.hours_bought = rng.gen_range(1..=40);
            e.bonus_hours = rng.gen_range(0..=10);
            s.create_enrollment(&e).await.unwrap();
            model.enrollments.insert(
                (i.to_string(), e.id.to_string()),
                Enr {
                    price: e.price.minor(),
                    bought: e.hours_bought,
                    bonus: e.bonus_hours,
                    consumed: 0,
                    paid: 0,
                },
            );
        }
    }
    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut snapshots: Vec<(DateTime<Utc>, Accounts)> = vec![];
    let mut step = 0;
    while step < STEPS {
        db.advance(rng.gen_range(1..120));
        // Half the time one request alone; otherwise a group of up to 8 in
        // one transaction, each with its own outcome (group commit's
        // `execute_each`), checked against the model in order: each request
        // sees the books as the ones before it in the group left them.
        let size = if rng.gen_bool(0.5) {
            1
        } else {
            rng.gen_range(2..=8)
        }
        .min(STEPS - step);
        let mut group = Vec::with_capacity(size);
        for k in 0..size {
            let request = random_request(&mut rng, &model, step + k);
            let expected = model.run(&request);
            group.push((request, expected));
        }
        let answers = if size == 1 {
            vec![s.execute(group[0].0.clone()).await]
        } else {
            let items: Vec<_> = group.iter().map(|(r, _)| (r.clone(), None)).collect();
            s.execute_each(&items).await.unwrap()
        };
        assert_eq!(
            answers.len(),
            size,
            "seed {seed} step {step}: one answer each"
        );
        for (k, ((request, expected), got)) in group.iter().zip(answers).enumerate() {
            let step = step + k;
            *outcomes
                .entry(match &expected {
                    Ok(()) => "ok",
                    Err(code) => code,
                })
                .or_default() += 1;
            match (&expected, &got) {
                (Ok(()), Ok(entry)) => {
                    let debits: i64 = entry
                        .postings
                        .iter()
                        .filter(|p| p.side == Side::Debit)
                        .map(|p| p.amount.minor())
                        .sum();
                    let credits: i64 = entry
                        .postings
                        .iter()
                        .filter(|p| p.side == Side::Credit)
                        .map(|p| p.amount.minor())
                        .sum();
                    assert_eq!(debits, credits, "seed {seed} step {step}: unbalanced entry");
                }
                (Err(code), Err(err)) => assert_eq!(
                    *code,
                    err.code(),
                    "seed {seed} step {step}: {request:?}: {err}"
                ),
                _ => {
                    panic!("seed {seed} step {step}: model {expected:?}, store {got:?} for {request:?}")
                }
            }
        }
        step += size;
        check_balances(&db, &model, seed, step - 1).await;
        snapshots.push((db.clock.now(), model.accounts.clone()));
        if (step - size) / 100 != step / 100 {
            let report = s.verify().await.unwrap();
            assert!(report.ok(), "seed {seed} step {step}: {report:?}");
        }
    }
    eprintln!("outcomes: {outcomes:?}");
    // Point-in-time balances at random past instants.
    for _ in 0..40 {
        let (at, accounts) = &snapshots[rng.gen_range(0..snapshots.len())];
        for i in INSTITUTIONS {
            let sheet = s.balances_at(&iid(i), *at).await.unwrap();
            for a in &sheet.accounts {
                let t = accounts
                    .get(&(i.to_string(), a.account.clone()))
                    .copied()
                    .unwrap_or_default();
                let got = (
                    a.totals.posted_debits_minor,
                    a.totals.posted_credits_minor,
                    a.totals.pending_debits_minor,
                    a.totals.pending_credits_minor,
                );
                assert_eq!(
                    got,
                    (t.pd, t.pc, t.qd, t.qc),
                    "seed {seed}: {i} {} at {at}",
                    a.account
                );
            }
        }
    }
    let report = s.verify().await.unwrap();
    assert!(report.ok(), "seed {seed}: {report:?}");
    assert!(
        model.entries.len() > STEPS / 4,
        "seed {seed}: too few operations succeeded to test anything"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_agrees_with_the_model_at_every_step() {
    run_model(Backend::Postgres).await;
}

/// The statements a sharded server needs (one institution each), on the
/// same server: the same books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_writing_per_institution_agrees_with_the_model_at_every_step() {
    run_model(Backend::PostgresPerInstitution).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_agrees_with_the_model_at_every_step() {
    run_model(Backend::Sqlite).await;
}
