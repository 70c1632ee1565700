//! `bench overview`: the jurisdiction overview (the use case the console's
//! page, its CSV/XLSX exports and `GET /v1/jurisdictions/{code}/overview`
//! share) of a province of N institutions, timed over R requests, p50 and
//! p99, with baselines in the same run: a plain `select count(*)` over the
//! institutions (the floor of any read of the province), and the coverage
//! computed the long way (every record of each institution loaded and its
//! risk snapshot made) on a sample, per institution.
//!
//! The province is generated as `risk-stored` generates it (custody mode,
//! a payment, lessons, a release the bank executed and its statement;
//! batched entries and statement files, four writers).

use std::time::Instant;

use chrono::NaiveDate;
use clap::Args;
use ledger_core::{Institution, JurisdictionCode};

use super::stored::{generate_province, secs};

#[derive(Debug, Args)]
pub struct OverviewArgs {
    /// How many institutions the province has.
    #[arg(long, default_value_t = 20_000)]
    institutions: usize,
    /// How many overview requests are timed.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// How many institutions the long-way baseline computes coverage of.
    #[arg(long, default_value_t = 50)]
    sample: usize,
}

fn ms(micros: u128) -> String {
    format!("{}.{:02}", micros / 1000, (micros % 1000) / 10)
}

/// p50 and p99 of some timings (microseconds), sorted in place.
fn quantiles(micros: &mut [u128]) -> (u128, u128) {
    micros.sort_unstable();
    let at = |q: usize| micros[(micros.len() * q / 100).min(micros.len().saturating_sub(1))];
    if micros.is_empty() {
        return (0, 0);
    }
    (at(50), at(99))
}

pub async fn run(args: OverviewArgs, url: &str) -> anyhow::Result<()> {
    let store = super::scratch(url, "bench_overview").await?;
    eprintln!("generating {} institutions…", args.institutions);
    let started = Instant::now();
    generate_province(&store, args.institutions).await?;
    eprintln!("generated in {} s", secs(started.elapsed().as_micros()));
    let province = JurisdictionCode::parse("410000")?;
    let n = store.institutions().await?.len();

    // Warm once (caches, connections), then time.
    let first = api::app::oversight::overview(&store, &province).await?;
    anyhow::ensure!(
        first.rows.len() == n,
        "the overview lists every institution"
    );
    let mut overview = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let started = Instant::now();
        let o = api::app::oversight::overview(&store, &province).await?;
        overview.push(started.elapsed().as_micros());
        anyhow::ensure!(o.rows.len() == n);
    }
    let mut count = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let started = Instant::now();
        let c = store.institutions().await?.len();
        count.push(started.elapsed().as_micros());
        anyhow::ensure!(c == n);
    }
    // Set-wise coverage alone, and the long way on a sample.
    let institutions = store.institutions().await?;
    let as_of: NaiveDate = first.as_of;
    let mut set_wise = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let started = Instant::now();
        let c = api::app::oversight::coverages(&store, &institutions, as_of).await?;
        set_wise.push(started.elapsed().as_micros());
        anyhow::ensure!(c.len() == n);
    }
    let sample: Vec<Institution> = institutions.iter().take(args.sample).cloned().collect();
    let started = Instant::now();
    let long = api::app::oversight::coverages_by_records(&store, &sample, as_of).await?;
    let long_micros = started.elapsed().as_micros();
    let short = api::app::oversight::coverages(&store, &sample, as_of).await?;
    anyhow::ensure!(
        long == short,
        "set-wise and per-institution coverage disagree"
    );
    let per_institution = long_micros / sample.len().max(1) as u128;

    let (o50, o99) = quantiles(&mut overview);
    let (c50, _) = quantiles(&mut count);
    let (s50, s99) = quantiles(&mut set_wise);
    println!(
        "| institutions | requests | overview p50 ms | overview p99 ms | coverage set-wise p50 ms | coverage set-wise p99 ms | baseline `institutions` p50 ms | overview p50 / baseline | long way per institution ms (sample {}) | long way × {n}, s (estimated) |",
        sample.len()
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {} | {} | {} | {} | {} | {} | {}.{}× | {} | {} |",
        args.requests,
        ms(o50),
        ms(o99),
        ms(s50),
        ms(s99),
        ms(c50),
        o50 / c50.max(1),
        o50 * 10 / c50.max(1) % 10,
        ms(per_institution),
        secs(per_institution * n as u128),
    );
    Ok(())
}
