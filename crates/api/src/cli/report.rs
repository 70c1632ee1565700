//! Readable and JSON reports of balances: what families are owed, what
//! escrow and the deposit hold, and the coverage ratio.

use chrono::{DateTime, Utc};
use ledger_core::domain::money::format_minor;
use ledger_core::store::BalanceSheet;
use ledger_core::{Currency, Institution, InstitutionId, Store};
use rust_decimal::Decimal;
use serde_json::json;

fn money(minor: i64, currency: Currency) -> String {
    format_minor(minor, currency)
}

/// Coverage as a decimal ratio string ("0.8753"), from basis points.
fn coverage(sheet: &BalanceSheet) -> Option<String> {
    sheet
        .coverage_basis_points()
        .map(|bp| Decimal::new(bp, 4).to_string())
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

fn summary_json(i: &Institution, s: &BalanceSheet) -> serde_json::Value {
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
        "coverage_ratio": coverage(s),
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
    if json_out {
        let list: Vec<_> = rows.iter().map(|(i, s)| summary_json(i, s)).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "as_of": at, "institutions": list }))?
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
        let cov = s
            .coverage_basis_points()
            .map_or("-".to_string(), |bp| format!("{}%", Decimal::new(bp, 2)));
        let flag = match s.coverage_basis_points() {
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
    println!("\ncoverage = (escrow + deposit) / (unearned tuition + approved unpaid refunds), rounded down");
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
        let mut doc = summary_json(&institution, &s);
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
