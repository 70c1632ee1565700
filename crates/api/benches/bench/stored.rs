//! `bench reconcile-stored` and `bench risk-stored`: reconciliation and the
//! risk scan as the jobs run them, against a database (a scratch schema or
//! file), each with a baseline in the same run.
//!
//! - reconcile-stored: N bank lines on A supervised accounts against N
//!   ledger entries (a third releases, two thirds receipts; 90% of the lines
//!   carry the end-to-end id, 8% only an order number in the remittance
//!   text, 2% nothing). Measured: `reconcile --record` of every account
//!   (load the lines, entries and claims; match; keep the matches, confirm
//!   the releases the bank executed, book the unknown credits to suspense).
//!   Baseline: the matcher alone on the same lines and entries, in memory.
//! - risk-stored: N institutions, each with an enrollment, a payment, lessons,
//!   a release and the bank's statement of them (1 in 100 with a debit nobody
//!   instructed), all in one county and category (one peer group).
//!   Measured: the streamed scan as `assess` runs it (chunks of institutions,
//!   the peer group read twice), its time and its own peak resident memory.
//!   Baselines: the scan that loads every record at once (time and peak),
//!   and loading one institution at a time on a sample; all three must
//!   agree.

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, TimeZone, Utc};
use clap::Args;
use ledger_core::domain::feeds::{AccountKind, BankAccount, FeedLine, FeedStatement};
use ledger_core::domain::recon::{self, transfers, MatchConfig};
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, Jurisdiction, JurisdictionCode, Request, Store,
    SupervisionMode,
};

use super::recon::{peak_rss_mib, rate, reset_peak_rss, rss_mib};

const BANK: &str = "BENCH";

#[derive(Debug, Args)]
pub struct ReconcileStoredArgs {
    /// Bank lines (and ledger entries) in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub lines: usize,
    /// Supervised accounts (one institution each) they spread over.
    #[arg(long, default_value_t = 100)]
    pub accounts: usize,
}

#[derive(Debug, Args)]
pub struct RiskStoredArgs {
    /// How many institutions to generate and scan set-wise.
    #[arg(long, default_value_t = 100_000)]
    pub institutions: usize,
    /// Institutions loaded one at a time for the baseline.
    #[arg(long, default_value_t = 1_000)]
    pub sample: usize,
    /// Institutions the streamed scan loads at a time.
    #[arg(long, default_value_t = api::app::risk::STREAM_CHUNK)]
    pub chunk: usize,
    /// Scan the institutions an earlier run generated (PostgreSQL, the
    /// `bench_risk` schema, when it holds exactly `--institutions`)
    /// instead of generating them again: generation takes tens of minutes
    /// at 100,000, the scans seconds.
    #[arg(long)]
    pub reuse: bool,
}

fn day0() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default()
}

pub(super) fn secs(micros: u128) -> String {
    format!("{}.{:02}", micros / 1_000_000, (micros / 10_000) % 100)
}

async fn county(store: &Store) -> anyhow::Result<()> {
    for (code, name, parent) in [
        ("000000", "Nation", None),
        ("410000", "Henan", Some("000000")),
        ("410900", "Puyang", Some("410000")),
        ("410922", "Qingfeng", Some("410900")),
    ] {
        store
            .create_jurisdiction(&Jurisdiction {
                code: JurisdictionCode::parse(code)?,
                name: name.into(),
                parent: parent.map(JurisdictionCode::parse).transpose()?,
            })
            .await?;
    }
    store.register_bank(BANK, "Benchmark Bank").await?;
    Ok(())
}

/// An institution in custody mode, its escrow account, and one enrollment
/// of `price_minor` (subject training: no amount cap).
async fn institution(store: &Store, id: &InstitutionId, price_minor: i64) -> anyhow::Result<()> {
    store
        .create_institution(&Institution {
            id: id.clone(),
            name: format!("bench {id}"),
            licence_no: format!("L-{id}"),
            jurisdiction: JurisdictionCode::parse("410922")?,
            mode: SupervisionMode::Custody,
            category: Category::Subject,
            status: InstitutionStatus::Active,
            currency: Currency::Cny,
        })
        .await?;
    store
        .register_bank_account(&BankAccount {
            institution: id.clone(),
            bank: BANK.into(),
            account_no: format!("AC-{id}"),
            kind: AccountKind::Escrow,
            currency: Currency::Cny,
        })
        .await?;
    store
        .create_enrollment(&Enrollment {
            institution: id.clone(),
            id: EnrollmentId::parse("E")?,
            student_ref: "S".into(),
            hours_bought: 60,
            bonus_hours: 0,
            price: Amount::from_minor(price_minor)?,
            currency: Currency::Cny,
            course_start: day0(),
            course_end: day0() + Days::new(80),
        })
        .await?;
    Ok(())
}

fn request(
    id: &InstitutionId,
    client: String,
    on: NaiveDate,
    command: Command,
) -> anyhow::Result<Request> {
    Ok(Request {
        institution: id.clone(),
        client_id: ClientId::parse(client)?,
        currency: Currency::Cny,
        occurred_at: Utc.from_utc_datetime(&on.and_hms_opt(10, 0, 0).unwrap_or_default()),
        external_ref: None,
        command,
    })
}

fn feed_line(
    amount_minor: i64,
    on: NaiveDate,
    e2e: Option<String>,
    remittance: Option<String>,
    n: usize,
) -> FeedLine {
    FeedLine {
        amount_minor,
        booking_date: Some(on),
        value_date: Some(on),
        status: ledger_core::domain::feeds::LineStatus::Booked,
        bank_ref: Some(format!("B{n:012}")),
        end_to_end_id: e2e,
        remittance,
        counterparty_name: None,
        counterparty_account: None,
        bank_tx_code: Some("NTRF".into()),
        reversal: false,
        return_reason: None,
        details: "{}".into(),
        source_line: None,
        source_path: None,
    }
}

/// Cuts lines into statements of at most `per` lines that chain.
fn statements(account_no: &str, lines: Vec<FeedLine>, per: usize) -> Vec<FeedStatement> {
    let mut out = Vec::new();
    let mut balance = 0i64;
    for (k, chunk) in lines.chunks(per).enumerate() {
        let opening = balance;
        balance += chunk.iter().map(|l| l.amount_minor).sum::<i64>();
        let first = chunk
            .first()
            .and_then(|l| l.booking_date)
            .unwrap_or_else(day0);
        let last = chunk
            .last()
            .and_then(|l| l.booking_date)
            .unwrap_or_else(day0);
        out.push(FeedStatement {
            bank: BANK.into(),
            account_no: account_no.into(),
            format: "mt940".into(),
            statement_id: format!("S{k:05}"),
            sequence: Some(format!("{}/1", k + 1)),
            currency: Currency::Cny,
            provisional: false,
            opening: Some((opening, first)),
            closing: Some((balance, last)),
            lines: chunk.to_vec(),
            file_sha256: String::new(),
            message: k as u32,
        });
    }
    out
}

pub async fn reconcile_stored(args: ReconcileStoredArgs, url: &str) -> anyhow::Result<()> {
    let store = super::scratch(url, "bench_recon").await?;
    county(&store).await?;
    let per = args.lines / args.accounts.max(1);
    let ids: Vec<InstitutionId> = (0..args.accounts)
        .map(|k| InstitutionId::parse(format!("BR-{k:05}")))
        .collect::<Result<_, _>>()?;
    eprintln!(
        "generating {} accounts × {per} entries and lines…",
        args.accounts
    );
    let started = Instant::now();
    for (k, id) in ids.iter().enumerate() {
        let amount = |i: usize| 100 + ((i * 7919 + k) % 480_000) as i64;
        let releases: i64 = (0..per).filter(|i| i % 3 == 0).map(amount).sum();
        institution(&store, id, releases.max(1)).await?;
        // The tuition that funds the releases, and the lessons that earn it.
        let mut requests = vec![
            request(
                id,
                format!("PAY-{k}"),
                day0(),
                Command::PayTuition {
                    enrollment: EnrollmentId::parse("E")?,
                    amount: ledger_core::Amount::from_minor(releases.max(1))?,
                },
            )?,
            request(
                id,
                format!("LES-{k}"),
                day0(),
                Command::ConsumeLessons {
                    enrollment: EnrollmentId::parse("E")?,
                    hours: 60,
                },
            )?,
        ];
        let mut lines = vec![feed_line(
            releases.max(1),
            day0(),
            Some(format!("PAY-{k}")),
            None,
            k * per + per,
        )];
        for i in 0..per {
            let on = day0() + Days::new((i * 60 / per) as u64);
            let client = format!("T{k}-{i}");
            let order = format!("ORD{k:05}{i:07}");
            let (command, signed) = if i % 3 == 0 {
                (
                    Command::InstructRelease {
                        amount: ledger_core::Amount::from_minor(amount(i))?,
                    },
                    -amount(i),
                )
            } else {
                (
                    Command::RecordUnidentifiedReceipt {
                        amount: ledger_core::Amount::from_minor(amount(i))?,
                    },
                    amount(i),
                )
            };
            let mut r = request(id, client.clone(), on, command)?;
            r.external_ref = Some(order.clone());
            requests.push(r);
            let (e2e, remittance) = match i % 50 {
                0 => (None, Some("TRANSFER".to_string())),
                1..=4 => (None, Some(format!("TUITION {order} AUTUMN"))),
                _ => (Some(client), None),
            };
            lines.push(feed_line(signed, on, e2e, remittance, k * per + i));
        }
        for batch in requests.chunks(2_000) {
            store.execute_batch(batch.to_vec()).await?;
        }
        let account_no = format!("AC-{id}");
        let feeds = statements(&account_no, lines, 1_000);
        store
            .ingest_file(BANK, &format!("bench-{k}"), "mt940", 0, &feeds)
            .await?;
    }
    eprintln!("generated in {} s", secs(started.elapsed().as_micros()));

    let accounts = store.supervised_accounts_in(None).await?;
    // Baseline: the matcher alone, on what the accounts hold.
    let (mut load, mut engine, mut line_count, mut entry_count) = (0u128, 0u128, 0usize, 0usize);
    for account in &accounts {
        let started = Instant::now();
        let stored = store.statement_lines(account).await?;
        let entries = api::app::reconcile::all_entries(&store, &account.institution).await?;
        store
            .claimed(&account.institution, &account.bank, &account.account_no)
            .await?;
        load += started.elapsed().as_micros();
        let started = Instant::now();
        let (lines, _) = transfers::bank_lines(&stored.lines);
        let transfers = transfers::transfers(&entries, account.kind);
        let outcome = recon::reconcile(&lines, &transfers, &MatchConfig::default())
            .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
        engine += started.elapsed().as_micros();
        line_count += lines.len();
        entry_count += entries.len();
        std::hint::black_box(outcome);
    }
    // Measured: reconcile --record as the command and the hourly job run
    // it: every account, then the open transfers kept.
    let started = Instant::now();
    let (mut kept, mut confirmed, mut suspense) = (0u64, 0u64, 0u64);
    for r in api::app::reconcile::record(&store, None, None).await? {
        kept += u64::from(r.matches_kept);
        confirmed += r.instructions_confirmed;
        suspense += r.credits_to_suspense;
    }
    let record = started.elapsed().as_micros();
    println!("| accounts | bank lines | entries | matches and suggestions kept | releases confirmed | credits to suspense | record seconds | lines/s | load seconds | matcher seconds | matcher lines/s | (load + matcher) / record | peak RSS MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {line_count} | {} | {kept} | {confirmed} | {suspense} | {} | {} | {} | {} | {} | {}% | {} |",
        accounts.len(),
        entry_count,
        secs(record),
        rate(line_count, record),
        secs(load),
        secs(engine),
        rate(line_count, engine),
        (load + engine) * 100 / record.max(1),
        peak_rss_mib()
    );
    let report = store.verify().await?;
    anyhow::ensure!(report.ok(), "the scratch books do not verify: {report:?}");
    Ok(())
}

pub async fn risk_stored(args: RiskStoredArgs, url: &str) -> anyhow::Result<()> {
    let n = args.institutions;
    if args.reuse && url.starts_with("postgres") {
        let sep = if url.contains('?') { '&' } else { '?' };
        let store =
            super::connect(&format!("{url}{sep}options=-c%20search_path%3Dbench_risk")).await?;
        let held = store.institutions().await.map(|i| i.len()).unwrap_or(0);
        if held == n {
            eprintln!("reusing the {n} institutions of the bench_risk schema");
            super::analyze_schema(url, "bench_risk").await?;
            return scan_stored(&store, &args).await;
        }
        eprintln!("bench_risk holds {held} institutions, not {n}: generating afresh");
    }
    let url = super::scratch_url(url, "bench_risk").await?;
    let store = super::connect(&url).await?;
    store.migrate().await?;
    county(&store).await?;
    eprintln!("generating {n} institutions…");
    let started = Instant::now();
    // Four writers on disjoint institutions: generation is not measured,
    // so on PostgreSQL its commits do not wait for the log's flush (three
    // registrations an institution, one commit each, were most of its
    // time). The scan reads through `store`, which does wait.
    let writer = if url.starts_with("postgres") {
        super::connect(&format!("{url}%20-c%20synchronous_commit%3Doff")).await?
    } else {
        store.clone()
    };
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = writer.clone();
        writers.spawn(async move { generate_institutions(&store, n, w, 4).await });
    }
    // The planner's statistics kept up to date while the tables grow
    // (autovacuum may be off, as on the machines these figures come from:
    // plans made for empty tables then scan whole tables for each
    // registration, and generation grows with the square of its size).
    let analyzing = url.starts_with("postgres").then(|| {
        let url = url.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if let Err(e) = super::analyze_schema(&url, "bench_risk").await {
                    eprintln!("analyze during generation failed: {e}");
                }
            }
        })
    });
    while let Some(done) = writers.join_next().await {
        done??;
    }
    if let Some(task) = analyzing {
        task.abort();
        super::analyze_schema(&url, "bench_risk").await?;
    }
    eprintln!("generated in {} s", secs(started.elapsed().as_micros()));
    scan_stored(&store, &args).await
}

/// The three scans of `risk-stored` over what the store holds.
async fn scan_stored(store: &Store, args: &RiskStoredArgs) -> anyhow::Result<()> {
    use api::app::risk::{assess_loaded, assess_streamed, Loading, Reading};
    let store = store.clone();

    let as_of = day0() + Days::new(60);
    let nation = JurisdictionCode::national();
    // Each scan's own peak: the high-water mark starts over from what is
    // resident before it (generation's leftovers included, reported).
    let reset = reset_peak_rss();
    anyhow::ensure!(reset, "cannot reset the peak RSS (/proc/self/clear_refs)");
    // Measured first, so the baseline's freed memory cannot lower its
    // figure: the streamed scan.
    let streamed_before = rss_mib();
    let started = Instant::now();
    let streamed = assess_streamed(&store, &nation, as_of, args.chunk).await?;
    let streamed_time = started.elapsed().as_micros();
    let streamed_peak = peak_rss_mib();
    // Baseline: every record at once.
    reset_peak_rss();
    let at_once_before = rss_mib();
    let started = Instant::now();
    let institutions = store.institutions().await?;
    let at_once = assess_loaded(
        &store,
        institutions.clone(),
        as_of,
        Loading::SetWise,
        Reading::Whole,
    )
    .await?;
    let at_once_time = started.elapsed().as_micros();
    let at_once_peak = peak_rss_mib();
    anyhow::ensure!(streamed == at_once, "streamed and at-once scans disagree");
    drop(at_once);
    // Baseline: one institution at a time, on a sample.
    let sample: Vec<Institution> = institutions.iter().take(args.sample).cloned().collect();
    let started = Instant::now();
    let one_by_one = assess_loaded(
        &store,
        sample.clone(),
        as_of,
        Loading::PerInstitution,
        Reading::Windowed,
    )
    .await?;
    let per_institution = started.elapsed().as_micros();
    // Peers differ (the sample is its own group): compare what they
    // cannot change here, the signals of the sample's institutions.
    let same = one_by_one.iter().all(|a| {
        streamed
            .iter()
            .any(|b| b.institution == a.institution && b.signals == a.signals)
    });
    anyhow::ensure!(same, "streamed and one-by-one loading disagree");
    let flagged = streamed.iter().filter(|a| a.score > 0).count();
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in streamed.iter().flat_map(|a| &a.signals) {
        *kinds.entry(s.kind.code()).or_default() += 1;
    }
    eprintln!("signals by kind: {kinds:?}");
    println!("| institutions | chunk | flagged | streamed seconds | streamed peak RSS MiB (resident before) | at once seconds | at once peak RSS MiB (resident before) | streamed / at once, time | streamed / at once, peak | one at a time, institutions/s (sample of {}) |", args.sample);
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {flagged} | {} | {streamed_peak} ({streamed_before}) | {} | {at_once_peak} ({at_once_before}) | {}% | {}% | {} |",
        streamed.len(),
        args.chunk,
        secs(streamed_time),
        secs(at_once_time),
        streamed_time * 100 / at_once_time.max(1),
        streamed_peak * 100 / at_once_peak.max(1),
        rate(sample.len(), per_institution),
    );
    Ok(())
}

/// A province (410000, its institutions in county 410922) of `n`
/// institutions as `risk-stored` generates them, four writers at once.
pub(super) async fn generate_province(store: &Store, n: usize) -> anyhow::Result<()> {
    county(store).await?;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = store.clone();
        writers.spawn(async move { generate_institutions(&store, n, w, 4).await });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    Ok(())
}

/// Writer `w` of `of`: institutions k ≡ w (mod of), each with a payment,
/// lessons and a release the bank executed, and the statement of it.
async fn generate_institutions(store: &Store, n: usize, w: usize, of: usize) -> anyhow::Result<()> {
    let price = 480_000;
    let mut requests = Vec::new();
    let mut feeds = Vec::new();
    for k in (w..n).step_by(of) {
        let id = InstitutionId::parse(format!("RK-{k:06}"))?;
        institution(store, &id, price).await?;
        let paid = day0() + Days::new((k % 30) as u64);
        let taught = paid + Days::new(14);
        // Four hours of sixty: a release well under a tenth of the balance.
        let release = price * 4 / 60;
        requests.push(request(
            &id,
            format!("PAY-{k}"),
            paid,
            Command::PayTuition {
                enrollment: EnrollmentId::parse("E")?,
                amount: ledger_core::Amount::from_minor(price)?,
            },
        )?);
        requests.push(request(
            &id,
            format!("LES-{k}"),
            taught,
            Command::ConsumeLessons {
                enrollment: EnrollmentId::parse("E")?,
                hours: 4,
            },
        )?);
        requests.push(request(
            &id,
            format!("REL-{k}"),
            taught,
            Command::InstructRelease {
                amount: ledger_core::Amount::from_minor(release)?,
            },
        )?);
        requests.push(request(
            &id,
            format!("REL-{k}-OK"),
            taught,
            Command::ConfirmPending {
                pending: ClientId::parse(format!("REL-{k}"))?,
            },
        )?);
        let mut lines = vec![
            feed_line(price, paid, Some(format!("PAY-{k}")), None, 3 * k),
            feed_line(-release, taught, Some(format!("REL-{k}")), None, 3 * k + 1),
        ];
        if k % 100 == 7 {
            lines.push(feed_line(
                -100_000,
                taught,
                None,
                Some("转账".into()),
                3 * k + 2,
            ));
        }
        let mut s = statements(&format!("AC-{id}"), lines, 10);
        for st in &mut s {
            st.closing = st.closing.map(|(b, _)| (b, day0() + Days::new(60)));
        }
        feeds.extend(s);
        if requests.len() >= 4_000 {
            store.execute_batch(std::mem::take(&mut requests)).await?;
        }
        if feeds.len() >= 500 {
            store
                .ingest_file(
                    BANK,
                    &format!("risk-{k}"),
                    "mt940",
                    0,
                    &std::mem::take(&mut feeds),
                )
                .await?;
        }
        if k % 10_000 == 9_999 {
            eprintln!("  institution {}", k + 1);
        }
    }
    if !requests.is_empty() {
        store.execute_batch(requests).await?;
    }
    if !feeds.is_empty() {
        store
            .ingest_file(BANK, &format!("risk-last-{w}"), "mt940", 0, &feeds)
            .await?;
    }
    Ok(())
}
