//! `bench parse`: statement parsing throughput (MB/s, lines/s)
//! and peak memory on a generated file with N transaction lines, in MT940 and
//! camt.053. Each parse runs in a child process (`bench parse-file`) so its
//! peak memory is its own; the baseline in the same run is a plain scan of
//! the same bytes (counting newlines), the floor any parser sits on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use bank_adapter::model::{Balance, Format, Line, SourceRef, Statement};
use bank_adapter::parse::ParseOptions;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

const LINES_PER_STATEMENT: usize = 1_000;

fn statement(n: usize, lines: usize) -> Statement {
    let date =
        NaiveDate::from_ymd_opt(2026, 9, 1).expect("valid") + chrono::Days::new((n % 300) as u64);
    let source = SourceRef::unwritten();
    let mut balance = Decimal::new(1_000_000, 2);
    let opening = balance;
    let lines = (0..lines)
        .map(|i| {
            let k = (n * LINES_PER_STATEMENT + i) as i64;
            let amount = if i % 3 == 2 {
                Decimal::new(-(k % 50_000 + 1), 2)
            } else {
                Decimal::new(k % 480_000 + 100, 2)
            };
            balance += amount;
            Line::booked_transfer(
                amount,
                date,
                Some(format!("ORD{k:010}")),
                format!("B{k:012}"),
                format!(
                    "TUITION ORDER {k} ENROLLMENT E{:06} AUTUMN TERM",
                    k % 100_000
                ),
            )
        })
        .collect();
    Statement {
        format: Format::Mt940,
        account: "6222020200112233".into(),
        currency: "CNY".into(),
        statement_id: format!("ST{n:07}"),
        sequence: Some(format!("{}/1", n + 1)),
        opening_balance: Some(Balance {
            amount: opening,
            date,
        }),
        closing_balance: Some(Balance {
            amount: balance,
            date,
        }),
        lines,
        source,
    }
}

/// Writes a file of `lines` transaction lines, statement by statement, so
/// generation itself stays small in memory.
fn generate(path: &Path, format: Format, lines: usize) -> anyhow::Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let statements = lines.div_ceil(LINES_PER_STATEMENT);
    match format {
        Format::Mt940 => {
            for n in 0..statements {
                let count = LINES_PER_STATEMENT.min(lines - n * LINES_PER_STATEMENT);
                out.write_all(
                    bank_adapter::render::mt940::mt940(&[statement(n, count)]).as_bytes(),
                )?;
            }
        }
        Format::Camt053 => {
            // One document holding every statement: the large-file case.
            let mut batch = Vec::new();
            for n in 0..statements {
                let count = LINES_PER_STATEMENT.min(lines - n * LINES_PER_STATEMENT);
                let mut s = statement(n, count);
                s.format = Format::Camt053;
                batch.push(s);
            }
            out.write_all(bank_adapter::render::camt053::camt053(&batch).as_bytes())?;
        }
        other => anyhow::bail!("no generator for {}", other.code()),
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// What the child process reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileRun {
    pub statements: usize,
    pub lines: usize,
    pub parse_micros: u64,
    pub scan_micros: u64,
    pub peak_rss_kib: u64,
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Child side: stream one file through the parser (a first pass computes
/// its SHA-256, as ingestion does), report timings and peak memory as JSON.
pub fn parse_file(path: &Path, format: Format) -> anyhow::Result<()> {
    use sha2::Digest;
    use std::io::{BufRead, BufReader, Read};
    let open = || -> anyhow::Result<BufReader<std::fs::File>> {
        Ok(BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ))
    };
    // Baseline: the same bytes read and scanned for newlines, nothing more.
    let started = Instant::now();
    let mut reader = open()?;
    let mut newlines = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = sha2::Sha256::new();
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        newlines += buf[..n].iter().filter(|b| **b == b'\n').count();
        hasher.update(&buf[..n]);
    }
    let scan = started.elapsed();
    std::hint::black_box(newlines);
    let ctx = bank_adapter::parse::FileContext {
        sha256: hex::encode(hasher.finalize()),
    };

    let started = Instant::now();
    let mut statements = 0usize;
    let mut lines = 0usize;
    let mut reader = open()?;
    reader.fill_buf()?;
    bank_adapter::parse::parse_stream(
        reader,
        &ctx,
        &ParseOptions {
            format: Some(format),
            csv: None,
            ..ParseOptions::default()
        },
        &mut |s| {
            statements += 1;
            lines += s.lines.len();
            Ok(())
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let parse = started.elapsed();
    let run = FileRun {
        statements,
        lines,
        parse_micros: u64::try_from(parse.as_micros()).unwrap_or(u64::MAX),
        scan_micros: u64::try_from(scan.as_micros()).unwrap_or(u64::MAX),
        peak_rss_kib: peak_rss_kib(),
    };
    println!("{}", serde_json::to_string(&run)?);
    Ok(())
}

fn rate(amount: u64, micros: u64) -> u64 {
    amount.saturating_mul(1_000_000) / micros.max(1)
}

pub fn run(lines: usize, dir: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(lines > 0, "--lines must be positive");
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir(),
    };
    let exe = std::env::current_exe()?;
    println!("| format | file MB | lines | parse MB/s | lines/s | scan+hash MB/s | parse / scan | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for format in [Format::Mt940, Format::Camt053] {
        let path = dir.join(format!(
            "escrow-ledger-bench-{}-{lines}.{}",
            format.code(),
            if format == Format::Mt940 {
                "sta"
            } else {
                "xml"
            }
        ));
        eprintln!("generating {} with {lines} lines …", path.display());
        let bytes = generate(&path, format, lines)?;
        eprintln!("parsing {} …", path.display());
        let output = Command::new(&exe)
            .args(["parse-file", "--format", format.code()])
            .arg(&path)
            .output()?;
        let _ = std::fs::remove_file(&path);
        anyhow::ensure!(
            output.status.success(),
            "parsing failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let r: FileRun = serde_json::from_slice(&output.stdout)?;
        anyhow::ensure!(
            r.lines == lines,
            "parsed {} lines, generated {lines}",
            r.lines
        );
        println!(
            "| {} | {} | {} | {} | {} | {} | {}% | {} |",
            format.code(),
            bytes / 1_000_000,
            r.lines,
            rate(bytes, r.parse_micros) / 1_000_000,
            rate(r.lines as u64, r.parse_micros),
            rate(bytes, r.scan_micros) / 1_000_000,
            r.scan_micros * 100 / r.parse_micros.max(1),
            r.peak_rss_kib / 1024
        );
    }
    Ok(())
}
