//! Readable and JSON reports of balances: what families are owed, what
//! escrow and the deposit hold, and the coverage ratio.

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::domain::money::format_minor;
use ledger_core::store::BalanceSheet;
use ledger_core::{Currency, Institution, InstitutionId, Store};
use rust_decimal::Decimal;
use serde_json::json;

use crate::app::oversight::CoverageOf;

fn money(minor: i64, currency: Currency) -> String {
    format_minor(minor, currency)
}

/// Coverage (the one definition, `app::oversight`) in basis points.
fn coverage_bp(c: &CoverageOf) -> Option<i64> {
    crate::app::oversight::coverage_bp(c).and_then(|bp| i64::try_from(bp).ok())
}

/// Coverage as a decimal ratio string ("0.8753"), from basis points.
fn coverage(c: &CoverageOf) -> Option<String> {
    coverage_bp(c).map(|bp| Decimal::new(bp, 4).to_string())
}

/// The day coverage is read on: the day of `--at`, or today.
fn coverage_day(store: &Store, at: Option<DateTime<Utc>>) -> NaiveDate {
    at.map_or_else(|| crate::app::jobs::today(store), |t| t.date_naive())
}

async fn sheet(
    store: &Store,
    id: &InstitutionId,
    at: Option<DateTime<Utc>>,
) -> anyhow::Result<BalanceSheet> {
    Ok(match at {
        Some(at) => store.balances_at(id, at).await?,
        None => store.balances(id).await?,
    })
}

fn summary_json(i: &Institution, s: &BalanceSheet, cov: &CoverageOf) -> serde_json::Value {
    let c = s.currency;
    json!({
        "id": i.id,
        "name": i.name,
        "jurisdiction": i.jurisdiction,
        "mode": i.mode,
        "currency": c,
        "owed_to_families": money(s.owed_to_families_minor(), c),
        "prepaid": money(s.prepaid_minor(), c),
        "refund_payable": money(s.balance("refund_payable"), c),
        "escrow": money(s.escrow_minor(), c),
        "deposit": money(s.deposit_minor(), c),
        "held_by_institution": money(s.balance("held_by_institution"), c),
        "releasable": money(s.balance("releasable"), c),
        "coverage_ratio": coverage(cov),
        "coverage_unconfirmed": cov.as_ref().err().map(|e| e.reason()),
    })
}

pub async fn summary(
    store: &Store,
    at: Option<DateTime<Utc>>,
    json_out: bool,
) -> anyhow::Result<()> {
    let institutions = store.institutions().await?;
    let mut rows = Vec::new();
    for i in &institutions {
        match sheet(store, &i.id, at).await {
            Ok(s) => rows.push((i, s)),
            // At an instant before an institution existed it has no books.
            Err(e)
                if e.downcast_ref::<ledger_core::StoreError>()
                    .map(|e| e.code())
                    == Some("before_institution_existed") => {}
            Err(e) => return Err(e),
        }
    }
    let day = coverage_day(store, at);
    let listed: Vec<Institution> = rows.iter().map(|(i, _)| (*i).clone()).collect();
    let covs = crate::app::oversight::coverages(store, &listed, day).await?;
    let cov_of = |i: &Institution| {
        covs.get(&i.id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no coverage computed for {}", i.id))
    };
    if json_out {
        let mut list = Vec::new();
        for (i, s) in &rows {
            list.push(summary_json(i, s, &cov_of(i)?));
        }
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "as_of": at, "coverage_as_of": day, "institutions": list })
            )?
        );
        return Ok(());
    }
    println!(
        "{:<16} {:<28} {:>8} {:>14} {:>14} {:>12} {:>14} {:>9}",
        "institution",
        "name",
        "mode",
        "owed families",
        "escrow",
        "deposit",
        "held outside",
        "coverage"
    );
    for (i, s) in &rows {
        let c = s.currency;
        let bp = coverage_bp(&cov_of(i)?);
        let cov = bp.map_or("-".to_string(), |bp| format!("{}%", Decimal::new(bp, 2)));
        let flag = match bp {
            Some(bp) if bp < 10_000 => "  << SHORTFALL",
            _ => "",
        };
        println!(
            "{:<16} {} {:>8} {:>14} {:>14} {:>12} {:>14} {:>9}{}",
            i.id.as_str(),
            pad(&i.name, 28),
            i.mode.code(),
            money(s.owed_to_families_minor(), c),
            money(s.escrow_minor(), c),
            money(s.deposit_minor(), c),
            money(s.balance("held_by_institution"), c),
            cov,
            flag
        );
    }
    println!(
        "\ncoverage on {day} = (the banks' latest closings of escrow + deposit, less releases in flight)\n  / (unearned tuition + approved unpaid refunds on the closings' day), rounded down;\n  '-' when nothing is owed or the bank has sent no statement (the same figure as risk, the API and the console)"
    );
    Ok(())
}

pub async fn accounts(
    store: &Store,
    id: &InstitutionId,
    at: Option<DateTime<Utc>>,
    json_out: bool,
) -> anyhow::Result<()> {
    let institution = store.institution(id).await?;
    let s = sheet(store, id, at).await?;
    let cov =
        crate::app::oversight::coverage_of(store, &institution, coverage_day(store, at)).await?;
    let c = s.currency;
    if json_out {
        let accounts: Vec<_> = s
            .accounts
            .iter()
            .map(|a| {
                json!({
                    "account": a.account,
                    "type": a.account_type,
                    "balance": money(a.balance_minor, c),
                    "available": money(a.available_minor, c),
                    "posted_debits": money(a.totals.posted_debits_minor, c),
                    "posted_credits": money(a.totals.posted_credits_minor, c),
                    "pending_debits": money(a.totals.pending_debits_minor, c),
                    "pending_credits": money(a.totals.pending_credits_minor, c),
                })
            })
            .collect();
        let mut doc = summary_json(&institution, &s, &cov);
        doc["as_of"] = json!(at);
        doc["accounts"] = json!(accounts);
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "{} {} ({}), {}",
        institution.id,
        institution.name,
        institution.mode.code(),
        at.map_or("now".to_string(), |t| format!("as recorded at {t}"))
    );
    println!(
        "coverage on {}: {}",
        coverage_day(store, at),
        match &cov {
            Ok(_) => coverage_bp(&cov).map_or("- (nothing owed)".to_string(), |bp| format!(
                "{}%",
                Decimal::new(bp, 2)
            )),
            Err(why) => format!("- ({})", why.reason()),
        }
    );
    println!(
        "{:<28} {:>10} {:>14} {:>14} {:>14}",
        "account", "type", "balance", "available", "pending out"
    );
    for a in &s.accounts {
        let pending_out = match a.account_type {
            ledger_core::AccountType::Asset => a.totals.pending_credits_minor,
            ledger_core::AccountType::Liability => a.totals.pending_debits_minor,
        };
        println!(
            "{:<28} {:>10} {:>14} {:>14} {:>14}",
            a.account,
            format!("{:?}", a.account_type).to_lowercase(),
            money(a.balance_minor, c),
            money(a.available_minor, c),
            money(pending_out, c)
        );
    }
    Ok(())
}

/// `text` cut and padded to `columns` terminal columns: a Chinese character
/// takes two, so padding by characters would push the next column right.
pub fn pad(text: &str, columns: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > columns {
            break;
        }
        out.push(c);
        used += w;
    }
    out.extend(std::iter::repeat_n(' ', columns - used));
    out
}

#[cfg(test)]
mod tests {
    use super::pad;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn names_fill_the_same_columns_whatever_their_script() {
        for name in [
            "Sunrise Music School",
            "阳光培训学校",
            "金色童年艺术培训中心有限公司（清丰分校）",
            "",
        ] {
            assert_eq!(pad(name, 28).width(), 28, "{name}");
        }
        assert_eq!(
            pad("阳光培训学校", 28),
            format!("阳光培训学校{}", " ".repeat(16))
        );
        // A wide character that would overflow is left out, not split.
        assert_eq!(pad("阳光培训", 7), "阳光培 ");
    }
}
