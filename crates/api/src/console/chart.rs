//! The institution page's chart, server-rendered inline SVG (no script, no
//! library, no CDN): what families are owed against escrow in the books
//! and the bank's closing balance day by day, with each day's inflows and
//! outflows as bars below. Coordinates are integers scaled from fen with
//! integer arithmetic; the same figures follow as a table for screen
//! readers and for print.

use ledger_core::domain::history::DayPoint;
use maud::{html, Markup};

use crate::console::format::{date, yuan};
use crate::console::Lang;

const WIDTH: i64 = 760;
const LINES_HEIGHT: i64 = 220;
const BARS_HEIGHT: i64 = 80;
const LEFT: i64 = 8;
const RIGHT: i64 = 8;
const GAP: i64 = 24;

/// `value` of `0..=max` mapped onto `0..=span` (integer, rounded down).
fn scale(value: i64, max: i64, span: i64) -> i64 {
    if max <= 0 {
        return 0;
    }
    let v = i128::from(value.clamp(0, max)) * i128::from(span) / i128::from(max);
    i64::try_from(v).unwrap_or(0)
}

fn x_of(n: usize, days: usize) -> i64 {
    let inner = WIDTH - LEFT - RIGHT;
    let days = i64::try_from(days.max(2) - 1).unwrap_or(1);
    LEFT + scale(i64::try_from(n).unwrap_or(0), days, inner)
}

/// The points of one line; a day with no figure breaks the line.
fn polylines(
    points: &[DayPoint],
    max: i64,
    figure: impl Fn(&DayPoint) -> Option<i64>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for (n, p) in points.iter().enumerate() {
        match figure(p) {
            Some(v) => {
                let y = LINES_HEIGHT - scale(v, max, LINES_HEIGHT - 10);
                current.push_str(&format!("{},{} ", x_of(n, points.len()), y));
            }
            None if !current.is_empty() => lines.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

pub fn chart(lang: Lang, points: &[DayPoint]) -> Markup {
    if points.is_empty() {
        return html! { p { (lang.t("暂无数据。", "No figures yet.")) } };
    }
    let max = points
        .iter()
        .flat_map(|p| [p.owed_minor, p.escrow_minor, p.bank_minor.unwrap_or(0)])
        .max()
        .unwrap_or(0)
        .max(1);
    let flow_max = points
        .iter()
        .flat_map(|p| [p.inflow_minor, p.outflow_minor])
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = ((WIDTH - LEFT - RIGHT) / i64::try_from(points.len()).unwrap_or(1).max(1) / 2).max(1);
    let half = BARS_HEIGHT / 2;
    let base = LINES_HEIGHT + GAP + half;
    let height = LINES_HEIGHT + GAP + BARS_HEIGHT;
    let (first, last) = (points[0], points[points.len() - 1]);
    let title = lang.t(
        "应退家长、账簿监管余额与银行日终余额(逐日),及每日进出",
        "Owed to families, escrow in the books and the bank's closing balance, day by day, with inflows and outflows",
    );
    let lines = [
        (
            "owed",
            lang.t("应退家长", "Owed to families"),
            polylines(points, max, |p| Some(p.owed_minor)),
        ),
        (
            "escrow",
            lang.t("账簿监管余额", "Escrow (books)"),
            polylines(points, max, |p| Some(p.escrow_minor)),
        ),
        (
            "bank",
            lang.t("银行日终余额", "Bank closing"),
            polylines(points, max, |p| p.bank_minor),
        ),
    ];
    html! {
        figure.chart #chart {
            svg viewBox={ "0 0 " (WIDTH) " " (height) } width="100%" role="img"
                aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg" {
                title #chart-title { (title) }
                line.axis x1=(LEFT) y1=(LINES_HEIGHT) x2=(WIDTH - RIGHT) y2=(LINES_HEIGHT) {}
                line.axis x1=(LEFT) y1=(base) x2=(WIDTH - RIGHT) y2=(base) {}
                @for (class, _, parts) in &lines {
                    @for pts in parts {
                        polyline class={ "series " (class) } points=(pts.trim_end()) {}
                    }
                }
                @for (n, p) in points.iter().enumerate() {
                    @if p.inflow_minor > 0 {
                        rect.inflow x=(x_of(n, points.len()) - bar / 2) y=(base - scale(p.inflow_minor, flow_max, half))
                            width=(bar) height=(scale(p.inflow_minor, flow_max, half).max(1)) {
                            title { (date(lang, p.date)) " " (lang.t("流入", "in")) " " (yuan(p.inflow_minor)) }
                        }
                    }
                    @if p.outflow_minor > 0 {
                        rect.outflow x=(x_of(n, points.len()) - bar / 2) y=(base)
                            width=(bar) height=(scale(p.outflow_minor, flow_max, half).max(1)) {
                            title { (date(lang, p.date)) " " (lang.t("流出", "out")) " " (yuan(p.outflow_minor)) }
                        }
                    }
                }
            }
            figcaption {
                ul.legend {
                    @for (class, label, _) in &lines {
                        li { span class={ "swatch " (class) } aria-hidden="true" {} (label) }
                    }
                    li { span.swatch.inflow aria-hidden="true" {} (lang.t("流入监管账户", "Into escrow")) }
                    li { span.swatch.outflow aria-hidden="true" {} (lang.t("流出监管账户", "Out of escrow")) }
                }
                p.note {
                    (date(lang, first.date)) " – " (date(lang, last.date)) "; "
                    (lang.t("纵轴最高 ", "top of the scale ")) (yuan(max)) "; "
                    (lang.t("进出最高 ", "largest day's movement ")) (yuan(flow_max))
                }
            }
            details {
                summary { (lang.t("逐日数据表", "The figures as a table")) }
                table #chart-table {
                    thead { tr {
                        th scope="col" { (lang.t("日期", "Date")) }
                        th.num scope="col" { (lang.t("应退家长", "Owed")) }
                        th.num scope="col" { (lang.t("账簿监管余额", "Escrow (books)")) }
                        th.num scope="col" { (lang.t("银行日终余额", "Bank closing")) }
                        th.num scope="col" { (lang.t("流入", "In")) }
                        th.num scope="col" { (lang.t("流出", "Out")) }
                    } }
                    tbody {
                        @for p in points.iter().rev() {
                            tr {
                                td { (date(lang, p.date)) }
                                td.num { (yuan(p.owed_minor)) }
                                td.num { (yuan(p.escrow_minor)) }
                                td.num { @match p.bank_minor { Some(b) => (yuan(b)), None => "—" } }
                                td.num { (yuan(p.inflow_minor)) }
                                td.num { (yuan(p.outflow_minor)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scale;

    #[test]
    fn figures_scale_onto_the_chart_in_integers_and_stay_inside_it() {
        assert_eq!(scale(50, 100, 200), 100);
        assert_eq!(scale(100, 100, 200), 200);
        assert_eq!(scale(-5, 100, 200), 0);
        assert_eq!(scale(500, 100, 200), 200);
        assert_eq!(scale(5, 0, 200), 0);
        assert_eq!(scale(i64::MAX, i64::MAX, 200), 200);
    }
}
