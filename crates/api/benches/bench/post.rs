//! Posting throughput. Each configuration (batch size × concurrent writers)
//! posts the same workload, tuition payments and lesson consumptions across
//! N institutions, twice in one run: through the ledger (domain, locks, hash
//! chain, running totals), and as a raw-SQL baseline that writes the same
//! rows into an identical schema without the domain layer. The ratio between
//! the two is the figure that survives a noisy, shared machine.
//!
//! Both sides run in scratch space beside the given database (PostgreSQL:
//! schemas `bench_ledger` and `bench_baseline`; SQLite: sibling files), so
//! the real books are never touched.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use clap::Args;
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, Jurisdiction, JurisdictionCode, Request, Store,
    SupervisionMode,
};
use serde::Serialize;
use sqlx::{Executor, PgPool, SqlitePool};

#[derive(Debug, Args)]
pub struct PostArgs {
    /// Institutions the entries are spread over.
    #[arg(long, default_value_t = 1000)]
    institutions: usize,
    /// Entries per configuration.
    #[arg(long, default_value_t = 10_000)]
    entries: usize,
    /// Batch sizes (entries per database transaction).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 100, 1000])]
    batch: Vec<usize>,
    /// Concurrent writers.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 16])]
    writers: Vec<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    backend: &'static str,
    batch: usize,
    writers: usize,
    entries: usize,
    ledger_per_s: u64,
    baseline_per_s: u64,
    ratio_percent: u64,
}

const PRICE_MINOR: i64 = 500_000;
const HOURS: u32 = 60;
const PAYMENT_MINOR: i64 = 50_000;

/// Entry `k` of the workload: (institution index, is a payment).
fn workload(k: usize, institutions: usize) -> (usize, bool) {
    (k % institutions, (k / institutions).is_multiple_of(2))
}

fn occurred() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 20, 9, 0, 0)
        .single()
        .expect("valid date")
}

/// The scratch books for one run: the ledger's and the baseline's, with
/// identical schemas.
/// The scratch schemas on PostgreSQL: the ledger's and the raw baseline's.
pub(crate) const LEDGER_SCHEMA: &str = "bench_ledger";
pub(crate) const BASELINE_SCHEMA: &str = "bench_baseline";

pub(crate) struct Scratch {
    pub backend: &'static str,
    pub ledger: Store,
    pub baseline: Store,
}

pub(crate) async fn scratch(url: &str) -> anyhow::Result<Scratch> {
    let (backend, ledger_url, baseline_url) = if url.starts_with("postgres") {
        let admin = PgPool::connect(url).await?;
        for schema in [LEDGER_SCHEMA, BASELINE_SCHEMA] {
            admin
                .execute(format!("drop schema if exists {schema} cascade").as_str())
                .await?;
            admin
                .execute(format!("create schema {schema}").as_str())
                .await?;
        }
        admin.close().await;
        let sep = if url.contains('?') { '&' } else { '?' };
        let with_path = |schema: &str| format!("{url}{sep}options=-c%20search_path%3D{schema}");
        (
            "postgres",
            with_path(LEDGER_SCHEMA),
            with_path(BASELINE_SCHEMA),
        )
    } else {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or("escrow-ledger.db")
            .to_string();
        let files = [
            format!("{path}.bench-ledger"),
            format!("{path}.bench-baseline"),
        ];
        for p in &files {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{p}{suffix}"));
            }
        }
        (
            "sqlite",
            format!("sqlite://{}", files[0]),
            format!("sqlite://{}", files[1]),
        )
    };
    let ledger = super::connect(&ledger_url).await?;
    let baseline = Store::connect(&baseline_url).await?;
    for s in [&ledger, &baseline] {
        s.migrate().await?;
        for (code, parent) in [("000000", None), ("990000", Some("000000"))] {
            s.create_jurisdiction(&Jurisdiction {
                code: JurisdictionCode::parse(code)?,
                name: format!("bench {code}"),
                parent: parent.map(JurisdictionCode::parse).transpose()?,
            })
            .await?;
        }
    }
    Ok(Scratch {
        backend,
        ledger,
        baseline,
    })
}

fn institution(prefix: &str, n: usize) -> anyhow::Result<Institution> {
    Ok(Institution {
        id: InstitutionId::parse(format!("{prefix}-{n:05}"))?,
        name: format!("Bench institution {n}"),
        licence_no: format!("BENCH-{n}"),
        jurisdiction: JurisdictionCode::parse("990000")?,
        mode: SupervisionMode::Custody,
        category: Category::NonSubject,
        status: InstitutionStatus::Active,
        currency: Currency::Cny,
    })
}

fn enrollment(institution: &InstitutionId) -> anyhow::Result<Enrollment> {
    Ok(Enrollment {
        institution: institution.clone(),
        id: EnrollmentId::parse("E")?,
        student_ref: "S".into(),
        hours_bought: HOURS,
        bonus_hours: 0,
        price: Amount::from_minor(PRICE_MINOR)?,
        currency: Currency::Cny,
        course_start: chrono::NaiveDate::from_ymd_opt(2026, 9, 1).expect("valid"),
        course_end: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("valid"),
    })
}

/// Registers the institutions of one configuration on both sides.
pub(crate) async fn setup(store: &Store, prefix: &str, institutions: usize) -> anyhow::Result<()> {
    let chunks: Vec<Vec<usize>> = (0..institutions)
        .collect::<Vec<_>>()
        .chunks(institutions.div_ceil(8).max(1))
        .map(<[usize]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let store = store.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for n in chunk {
                let i = institution(&prefix, n)?;
                store.create_institution(&i).await?;
                store.create_enrollment(&enrollment(&i.id)?).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn request(prefix: &str, k: usize, institutions: usize) -> anyhow::Result<Request> {
    let (n, is_payment) = workload(k, institutions);
    let enrollment = EnrollmentId::parse("E")?;
    Ok(Request {
        institution: InstitutionId::parse(format!("{prefix}-{n:05}"))?,
        client_id: ClientId::parse(format!("k{k}"))?,
        currency: Currency::Cny,
        occurred_at: occurred(),
        external_ref: None,
        command: if is_payment {
            Command::PayTuition {
                enrollment,
                amount: ledger_core::Amount::from_minor(PAYMENT_MINOR)?,
            }
        } else {
            Command::ConsumeLessons {
                enrollment,
                hours: 1,
            }
        },
    })
}

/// The writers' share of the workload: writer `w` owns the institutions
/// `n % writers == w`, as a real deployment partitions feeds.
fn shares(entries: usize, institutions: usize, writers: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); writers];
    for k in 0..entries {
        let (n, _) = workload(k, institutions);
        out[n % writers].push(k);
    }
    out
}

async fn run_ledger(
    store: &Store,
    prefix: &str,
    entries: usize,
    institutions: usize,
    batch: usize,
    writers: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for share in shares(entries, institutions, writers) {
        let store = store.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for chunk in share.chunks(batch) {
                let requests = chunk
                    .iter()
                    .map(|k| request(&prefix, *k, institutions))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                store.execute_batch(requests).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// One baseline row set: what the ledger writes for entry `k`, computed with
/// no checks, no locks and no hashing.
struct RawEntry {
    institution: String,
    seq: i64,
    client_id: String,
    kind: &'static str,
    legs: [(&'static str, &'static str, i64, [i64; 4]); 2],
    hours: Option<i32>,
    /// The enrollment's (hours consumed, tuition paid) after this entry.
    counters: (i32, i64),
}

/// Per-writer state of the baseline: the next seq and running totals.
#[derive(Default)]
struct RawBooks {
    seq: HashMap<usize, i64>,
    counters: HashMap<usize, (i32, i64)>,
    totals: HashMap<(usize, &'static str), [i64; 4]>,
}

impl RawBooks {
    fn entry(&mut self, prefix: &str, k: usize, institutions: usize) -> RawEntry {
        let (n, is_payment) = workload(k, institutions);
        let seq = self.seq.entry(n).or_insert(0);
        *seq += 1;
        let (kind, debit, credit, amount) = if is_payment {
            ("tuition_paid", "escrow_cash", "prepaid/E", PAYMENT_MINOR)
        } else {
            (
                "lessons_consumed",
                "prepaid/E",
                "releasable",
                PRICE_MINOR / i64::from(HOURS),
            )
        };
        let mut leg = |account: &'static str, debit_side: bool| {
            let t = self.totals.entry((n, account)).or_insert([0; 4]);
            t[if debit_side { 0 } else { 1 }] += amount;
            (account, if debit_side { "D" } else { "C" }, amount, *t)
        };
        let legs = [leg(debit, true), leg(credit, false)];
        let counters = self.counters.entry(n).or_default();
        if is_payment {
            counters.1 += amount;
        } else {
            counters.0 += 1;
        }
        let counters = *counters;
        RawEntry {
            institution: format!("{prefix}-{n:05}"),
            seq: *self.seq.get(&n).unwrap_or(&1),
            client_id: format!("k{k}"),
            kind,
            legs,
            hours: (!is_payment).then_some(1),
            counters,
        }
    }
}

const HASH: &str = "5f2b8d0c1e4a7b6c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c";

async fn baseline_pg(pool: &PgPool, rows: &[RawEntry]) -> anyhow::Result<()> {
    let at = occurred();
    let mut tx = pool.begin().await?;
    // Row for row what the ledger writes, hashes included (as stand-in
    // strings of the same length: computing them is the ledger's work).
    let hashes: Vec<String> = rows
        .iter()
        .map(|r| format!("{:064x}", r.seq * 7919 + r.client_id.len() as i64))
        .collect();
    sqlx::query(
        "insert into entries (institution_id, seq, client_id, kind, currency, occurred_at, recorded_at, \
           hours, flags, request_hash, prev_hash, hash, enrollment_id, rule_pack) \
         select i, s, c, k, 'CNY', $5, $5, h, '', rh, ph, hh, 'E', rp \
         from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $6::int[], $7::text[], $8::text[], \
           $9::text[], $10::text[]) as u(i, s, c, k, h, rh, ph, hh, rp)",
    )
    .bind(rows.iter().map(|r| r.institution.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.client_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind(at)
    .bind(rows.iter().map(|r| r.hours).collect::<Vec<_>>())
    .bind(&hashes)
    .bind(&hashes)
    .bind(&hashes)
    .bind(rows.iter().map(|r| (r.hours.is_none()).then_some("national@builtin")).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let legs: Vec<(&RawEntry, usize)> = rows.iter().flat_map(|r| [(r, 0), (r, 1)]).collect();
    sqlx::query(
        "insert into postings (institution_id, seq, leg, account_code, side, amount_minor, \
           posted_debits_after_minor, posted_credits_after_minor, pending_debits_after_minor, pending_credits_after_minor) \
         select * from unnest($1::text[], $2::bigint[], $3::smallint[], $4::text[], $5::bpchar[], $6::bigint[], \
           $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])",
    )
    .bind(legs.iter().map(|(r, _)| r.institution.as_str()).collect::<Vec<_>>())
    .bind(legs.iter().map(|(r, _)| r.seq).collect::<Vec<_>>())
    .bind(legs.iter().map(|(_, l)| *l as i16).collect::<Vec<_>>())
    .bind(legs.iter().map(|(r, l)| r.legs[*l].0).collect::<Vec<_>>())
    .bind(legs.iter().map(|(r, l)| r.legs[*l].1).collect::<Vec<_>>())
    .bind(legs.iter().map(|(r, l)| r.legs[*l].2).collect::<Vec<_>>())
    .bind(legs.iter().map(|(r, l)| r.legs[*l].3[0]).collect::<Vec<_>>())
    .bind(legs.iter().map(|(r, l)| r.legs[*l].3[1]).collect::<Vec<_>>())
    .bind(legs.iter().map(|(r, l)| r.legs[*l].3[2]).collect::<Vec<_>>())
    .bind(legs.iter().map(|(r, l)| r.legs[*l].3[3]).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    // Final totals per touched account and the last seq per institution.
    let mut accounts: HashMap<(&str, &str), [i64; 4]> = HashMap::new();
    let mut heads: HashMap<&str, i64> = HashMap::new();
    for r in rows {
        for leg in &r.legs {
            accounts.insert((r.institution.as_str(), leg.0), leg.3);
        }
        heads.insert(r.institution.as_str(), r.seq);
    }
    let accounts: Vec<_> = accounts.into_iter().collect();
    sqlx::query(
        "update accounts a set posted_debits_minor = u.pd, posted_credits_minor = u.pc \
         from unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) as u(i, c, pd, pc) \
         where a.institution_id = u.i and a.account_code = u.c",
    )
    .bind(accounts.iter().map(|((i, _), _)| *i).collect::<Vec<_>>())
    .bind(accounts.iter().map(|((_, c), _)| *c).collect::<Vec<_>>())
    .bind(accounts.iter().map(|(_, t)| t[0]).collect::<Vec<_>>())
    .bind(accounts.iter().map(|(_, t)| t[1]).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    // The enrollment counters the ledger keeps beside the accounts.
    let mut enrollments: HashMap<&str, (i32, i64)> = HashMap::new();
    for r in rows {
        let e = enrollments.entry(r.institution.as_str()).or_default();
        *e = (r.counters.0, r.counters.1);
    }
    let enrollments: Vec<_> = enrollments.into_iter().collect();
    sqlx::query(
        "update enrollments e set hours_consumed = u.h, paid_minor = u.p \
         from unnest($1::text[], $2::int[], $3::bigint[]) as u(i, h, p) \
         where e.institution_id = u.i and e.enrollment_id = 'E'",
    )
    .bind(enrollments.iter().map(|(i, _)| *i).collect::<Vec<_>>())
    .bind(enrollments.iter().map(|(_, c)| c.0).collect::<Vec<_>>())
    .bind(enrollments.iter().map(|(_, c)| c.1).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let heads: Vec<_> = heads.into_iter().collect();
    sqlx::query(
        "update chain_heads h set last_seq = u.s, last_hash = $3, last_recorded_at = $4 \
         from unnest($1::text[], $2::bigint[]) as u(i, s) where h.institution_id = u.i",
    )
    .bind(heads.iter().map(|(i, _)| *i).collect::<Vec<_>>())
    .bind(heads.iter().map(|(_, s)| *s).collect::<Vec<_>>())
    .bind(HASH)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn baseline_sqlite(pool: &SqlitePool, rows: &[RawEntry]) -> anyhow::Result<()> {
    let at = occurred().timestamp_micros();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut accounts: HashMap<(&str, &str), [i64; 4]> = HashMap::new();
    let mut last: HashMap<&str, &RawEntry> = HashMap::new();
    for r in rows {
        let hash = format!("{:064x}", r.seq * 7919 + r.client_id.len() as i64);
        sqlx::query(
            "insert into entries (institution_id, seq, client_id, kind, currency, occurred_at, recorded_at, \
               hours, flags, request_hash, prev_hash, hash, enrollment_id, rule_pack) \
             values (?, ?, ?, ?, 'CNY', ?, ?, ?, '', ?, ?, ?, 'E', ?)",
        )
        .bind(&r.institution).bind(r.seq).bind(&r.client_id).bind(r.kind).bind(at).bind(at)
        .bind(r.hours).bind(&hash).bind(&hash).bind(&hash)
        .bind(r.hours.is_none().then_some("national@builtin"))
        .execute(&mut *tx)
        .await?;
        for (l, leg) in r.legs.iter().enumerate() {
            sqlx::query(
                "insert into postings (institution_id, seq, leg, account_code, side, amount_minor, \
                   posted_debits_after_minor, posted_credits_after_minor, pending_debits_after_minor, \
                   pending_credits_after_minor) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.institution).bind(r.seq).bind(l as i64).bind(leg.0).bind(leg.1).bind(leg.2)
            .bind(leg.3[0]).bind(leg.3[1]).bind(leg.3[2]).bind(leg.3[3])
            .execute(&mut *tx)
            .await?;
            accounts.insert((r.institution.as_str(), leg.0), leg.3);
        }
        last.insert(r.institution.as_str(), r);
    }
    // Like the ledger: each touched account, enrollment and head once per batch.
    for ((institution, account), t) in &accounts {
        sqlx::query(
            "update accounts set posted_debits_minor = ?, posted_credits_minor = ? \
             where institution_id = ? and account_code = ?",
        )
        .bind(t[0])
        .bind(t[1])
        .bind(institution)
        .bind(account)
        .execute(&mut *tx)
        .await?;
    }
    for (institution, r) in &last {
        sqlx::query("update enrollments set hours_consumed = ?, paid_minor = ? where institution_id = ? and enrollment_id = 'E'")
            .bind(r.counters.0).bind(r.counters.1).bind(institution)
            .execute(&mut *tx)
            .await?;
        sqlx::query("update chain_heads set last_seq = ?, last_hash = ?, last_recorded_at = ? where institution_id = ?")
            .bind(r.seq).bind(HASH).bind(at).bind(institution)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn run_baseline(
    baseline: &Store,
    prefix: &str,
    entries: usize,
    institutions: usize,
    batch: usize,
    writers: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for share in shares(entries, institutions, writers) {
        let prefix = prefix.to_string();
        let baseline = baseline.clone();
        tasks.push(tokio::spawn(async move {
            let mut books = RawBooks::default();
            for chunk in share.chunks(batch) {
                let rows: Vec<RawEntry> = chunk
                    .iter()
                    .map(|k| books.entry(&prefix, *k, institutions))
                    .collect();
                match &baseline {
                    Store::Postgres(pg) => baseline_pg(pg.pool(), &rows).await?,
                    Store::Sqlite(sq) => baseline_sqlite(sq.pool(), &rows).await?,
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

pub(crate) fn per_second(entries: usize, elapsed: Duration) -> u64 {
    let micros = elapsed.as_micros().max(1);
    u64::try_from(entries as u128 * 1_000_000 / micros).unwrap_or(u64::MAX)
}

pub async fn run(args: PostArgs, url: &str) -> anyhow::Result<()> {
    let PostArgs {
        institutions,
        entries,
        batch,
        writers,
        json,
    } = args;
    anyhow::ensure!(
        institutions > 0 && entries > 0,
        "--institutions and --entries must be positive"
    );
    anyhow::ensure!(
        entries <= institutions * 20,
        "--entries may be at most 20 × --institutions (each institution's enrollment takes 10 payments)"
    );
    let Scratch {
        backend,
        ledger: store,
        baseline: baseline_store,
    } = scratch(url)
        .await
        .context("cannot prepare the scratch space")?;
    let mut rows = Vec::new();
    for &b in &batch {
        for &w in &writers {
            anyhow::ensure!(
                b > 0 && w > 0,
                "batch sizes and writer counts must be positive"
            );
            let prefix = format!("b{b}w{w}");
            eprintln!("[{backend}] batch {b}, writers {w}: registering {institutions} institutions on each side …");
            setup(&store, &prefix, institutions).await?;
            setup(&baseline_store, &prefix, institutions).await?;
            // Both sides planned on their tables as set up (see
            // `analyze_schema`), as a server running with autovacuum is.
            for schema in [LEDGER_SCHEMA, BASELINE_SCHEMA] {
                super::analyze_schema(url, schema).await?;
            }
            eprintln!("[{backend}] batch {b}, writers {w}: posting {entries} entries through the ledger …");
            let ledger_s = run_ledger(&store, &prefix, entries, institutions, b, w).await?;
            eprintln!("[{backend}] batch {b}, writers {w}: posting the same rows with raw SQL …");
            let baseline_s =
                run_baseline(&baseline_store, &prefix, entries, institutions, b, w).await?;
            let ledger_per_s = per_second(entries, ledger_s);
            let baseline_per_s = per_second(entries, baseline_s);
            rows.push(Row {
                backend,
                batch: b,
                writers: w,
                entries,
                ledger_per_s,
                baseline_per_s,
                ratio_percent: ledger_per_s * 100 / baseline_per_s.max(1),
            });
        }
    }
    let report = store.verify().await?;
    anyhow::ensure!(
        report.ok(),
        "the benchmark's books do not verify: {:?}",
        report.failures
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("| backend | batch | writers | entries | ledger entries/s | raw SQL entries/s | ledger / raw |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {}% |",
                r.backend,
                r.batch,
                r.writers,
                r.entries,
                r.ledger_per_s,
                r.baseline_per_s,
                r.ratio_percent
            );
        }
        println!(
            "\nthe ledger's books verified after the run ({} entries)",
            report.entries
        );
    }
    Ok(())
}
