//! `bench overview`: the jurisdiction overview of a province of N
//! institutions, timed over R requests, p50 and p99: a page of 50 sorted
//! by coverage (what the console's page and `GET
//! /v1/jurisdictions/{code}/overview` read, from the kept figures), the
//! whole overview (the CSV/XLSX exports), and in the same run the baselines:
//! a plain read of the institutions (the floor of any read of the
//! province), the per-request computation the overview made before the
//! figures were kept (set-wise coverage and every balance sheet), and the
//! coverage computed the long way (every record of each institution loaded
//! and its risk snapshot made) on a sample, per institution.
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

    // A page of 50 sorted by coverage, at offsets spread over the province
    // (a deep page costs its offset), then the whole overview.
    use api::app::oversight::{overview_page, OverviewQuery};
    use ledger_core::store::FiguresSort;
    let page_of = |k: usize| OverviewQuery {
        sort: FiguresSort::Coverage,
        offset: ((k * 37) % n.div_ceil(50).max(1)) as u64 * 50,
        limit: Some(50),
        ..OverviewQuery::default()
    };
    let warm = overview_page(&store, &province, &page_of(0)).await?;
    anyhow::ensure!(
        warm.matched == n as u64,
        "the page counts every institution"
    );
    let mut paged = Vec::with_capacity(args.requests);
    for k in 0..args.requests {
        let started = Instant::now();
        let p = overview_page(&store, &province, &page_of(k)).await?;
        paged.push(started.elapsed().as_micros());
        anyhow::ensure!(!p.rows.is_empty() && p.matched == n as u64);
    }
    // The pages are in coverage order, each the kept figure.
    let first_page = overview_page(&store, &province, &page_of(0)).await?;
    let bps: Vec<i128> = first_page
        .rows
        .iter()
        .map(|r| api::app::oversight::coverage_bp(&r.coverage).unwrap_or(i128::MAX))
        .collect();
    anyhow::ensure!(bps.windows(2).all(|w| w[0] <= w[1]), "a page out of order");

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
    // What the overview computed per request before the figures were kept:
    // set-wise coverage and every balance sheet of the province.
    let mut before = Vec::with_capacity(args.requests.min(10));
    for _ in 0..args.requests.min(10) {
        let started = Instant::now();
        let c = api::app::oversight::coverages(&store, &institutions, as_of).await?;
        let s = store.balance_sheets(&institutions).await?;
        before.push(started.elapsed().as_micros());
        anyhow::ensure!(c.len() == n && s.len() == n);
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
    // The kept figures give the same coverage as the set-wise read.
    let kept = store
        .kept_figures(&sample.iter().map(|i| i.id.clone()).collect::<Vec<_>>())
        .await?;
    for i in &sample {
        let k = kept
            .get(&i.id)
            .and_then(|k| k.coverage_on(i.mode, as_of))
            .ok_or_else(|| anyhow::anyhow!("{} has no kept figures valid today", i.id))?;
        let mut s = short[&i.id].clone();
        if let Ok(c) = s.as_mut() {
            c.closings.clear();
        }
        anyhow::ensure!(k == s, "{}: kept and set-wise coverage disagree", i.id);
    }
    let per_institution = long_micros / sample.len().max(1) as u128;

    let (p50, p99) = quantiles(&mut paged);
    let (o50, o99) = quantiles(&mut overview);
    let (c50, _) = quantiles(&mut count);
    let (s50, s99) = quantiles(&mut set_wise);
    let (b50, b99) = quantiles(&mut before);
    let ratio = |a: u128, b: u128| format!("{}.{}×", a / b.max(1), a * 10 / b.max(1) % 10);
    println!(
        "| institutions | requests | page of 50 by coverage p50 ms | p99 ms | whole overview (exports) p50 ms | p99 ms | before: computed per request ({} requests) p50 ms | p99 ms | coverage set-wise p50 ms | p99 ms | baseline `institutions` p50 ms | page / baseline | whole / baseline | long way per institution ms (sample {}) | long way × {n}, s (estimated) |",
        before.len(),
        sample.len()
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        args.requests,
        ms(p50),
        ms(p99),
        ms(o50),
        ms(o99),
        ms(b50),
        ms(b99),
        ms(s50),
        ms(s99),
        ms(c50),
        ratio(p50, c50),
        ratio(o50, c50),
        ms(per_institution),
        secs(per_institution * n as u128),
    );
    Ok(())
}
