//! The institution page's chart, server-rendered inline SVG (no script, no
//! library, no CDN): what families are owed against escrow in the books
//! and the bank's closing balance day by day, with each day's inflows and
//! outflows as bars below, a yuan scale on the left, dates beneath and each
//! line's last figure at its end. Coordinates are integers scaled from fen with
//! integer arithmetic; the same figures follow as a table for screen
//! readers and for print.

use ledger_core::domain::history::DayPoint;
use maud::{html, Markup};

use crate::console::format::{date, yuan};
use crate::console::views::{col, num, thead};
use crate::console::Lang;

const WIDTH: i64 = 760;
/// Room on the left for the yuan scale, on the right for each line's last
/// figure.
const LEFT: i64 = 84;
const RIGHT: i64 = 136;
const TOP: i64 = 12;
/// The bottom of the lines' area (the zero of the yuan scale).
const LINES_BOTTOM: i64 = 232;
/// Between the lines and the bars: the dates.
const GAP: i64 = 34;
const BARS_HEIGHT: i64 = 80;
/// At most this many steps on the yuan scale.
const STEPS: i64 = 5;

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

/// The yuan scale's step in fen: 1, 2 or 5 times a power of ten yuan, the
/// smallest that reaches `max` in [`STEPS`] steps or fewer.
fn step_of(max: i64) -> i64 {
    let mut unit: i64 = 100;
    loop {
        for m in [1, 2, 5] {
            let step = unit.saturating_mul(m);
            if step.saturating_mul(STEPS) >= max || step == i64::MAX {
                return step;
            }
        }
        unit = unit.saturating_mul(10);
    }
}

/// A tick's figure: whole yuan with thousands separators (`¥50,000`).
fn tick_words(minor: i64) -> String {
    let text = yuan(minor);
    text.strip_suffix(".00").map(str::to_string).unwrap_or(text)
}

/// A date under the chart, short: 11月7日, Nov 7.
fn short_date(lang: Lang, d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    match lang {
        Lang::Zh => format!("{}月{}日", d.month(), d.day()),
        Lang::En => d.format("%b %-d").to_string(),
    }
}

/// The days to write under the x axis: the first, the last and evenly
/// between, at most six.
fn dated(days: usize) -> Vec<usize> {
    let labels = days.min(6);
    if labels <= 1 {
        return (0..days).collect();
    }
    (0..labels).map(|k| k * (days - 1) / (labels - 1)).collect()
}

/// The points of one line; a day with no figure breaks the line.
fn polylines(
    points: &[DayPoint],
    top: i64,
    figure: impl Fn(&DayPoint) -> Option<i64>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for (n, p) in points.iter().enumerate() {
        match figure(p) {
            Some(v) => {
                let y = LINES_BOTTOM - scale(v, top, LINES_BOTTOM - TOP);
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

/// Each line's last figure at its right end, moved apart so that none
/// overlaps another: (class, y, words).
fn end_labels(mut labels: Vec<(&'static str, i64, String)>) -> Vec<(&'static str, i64, String)> {
    const APART: i64 = 15;
    labels.sort_by_key(|l| l.1);
    for n in 1..labels.len() {
        let above = labels[n - 1].1;
        if labels[n].1 < above + APART {
            labels[n].1 = above + APART;
        }
    }
    labels
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
    let step = step_of(max);
    // The scale ends on a tick, so the top line of the grid is a figure.
    let top = (max / step + i64::from(max % step != 0)).saturating_mul(step);
    let ticks: Vec<i64> = (0..=top / step).map(|k| k * step).collect();
    let y_of = |v: i64| LINES_BOTTOM - scale(v, top, LINES_BOTTOM - TOP);
    let flow_max = points
        .iter()
        .flat_map(|p| [p.inflow_minor, p.outflow_minor])
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = ((WIDTH - LEFT - RIGHT) / i64::try_from(points.len()).unwrap_or(1).max(1) / 2).max(1);
    let half = BARS_HEIGHT / 2;
    let base = LINES_BOTTOM + GAP + half;
    let height = LINES_BOTTOM + GAP + BARS_HEIGHT + 4;
    let (first, last) = (points[0], points[points.len() - 1]);
    let title = lang.t(
        "应退家长、账簿监管余额与银行日终余额(逐日),及每日进出",
        "Owed to families, escrow in the books and the bank's closing balance, day by day, with inflows and outflows",
    );
    // The bank's line goes under the books' (wide and pale), so where the
    // two agree both still show.
    let lines = [
        (
            "bank",
            lang.t("银行日终余额", "Bank closing"),
            lang.t("银行", "bank"),
            polylines(points, top, |p| p.bank_minor),
            last.bank_minor,
        ),
        (
            "owed",
            lang.t("应退家长", "Owed to families"),
            lang.t("应退", "owed"),
            polylines(points, top, |p| Some(p.owed_minor)),
            Some(last.owed_minor),
        ),
        (
            "escrow",
            lang.t("账簿监管余额", "Escrow (books)"),
            lang.t("账簿", "books"),
            polylines(points, top, |p| Some(p.escrow_minor)),
            Some(last.escrow_minor),
        ),
    ];
    let ends = end_labels(
        lines
            .iter()
            .filter_map(|(class, _, short, _, v)| {
                v.map(|v| (*class, y_of(v) + 4, format!("{short} {}", yuan(v))))
            })
            .collect(),
    );
    html! {
        figure.chart #chart {
            svg viewBox={ "0 0 " (WIDTH) " " (height) } width="100%" role="img"
                aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg" {
                title #chart-title { (title) }
                @for t in &ticks {
                    line.grid x1=(LEFT) y1=(y_of(*t)) x2=(WIDTH - RIGHT) y2=(y_of(*t)) {}
                    text.tick x=(LEFT - 6) y=(y_of(*t) + 4) text-anchor="end" { (tick_words(*t)) }
                }
                line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(LINES_BOTTOM) {}
                line.axis x1=(LEFT) y1=(LINES_BOTTOM) x2=(WIDTH - RIGHT) y2=(LINES_BOTTOM) {}
                @for n in dated(points.len()) {
                    line.axis x1=(x_of(n, points.len())) y1=(LINES_BOTTOM) x2=(x_of(n, points.len())) y2=(LINES_BOTTOM + 4) {}
                    text.tick x=(x_of(n, points.len())) y=(LINES_BOTTOM + 18) text-anchor="middle" {
                        (short_date(lang, points[n].date))
                    }
                }
                line.axis x1=(LEFT) y1=(base) x2=(WIDTH - RIGHT) y2=(base) {}
                text.tick x=(LEFT - 6) y=(base - half + 10) text-anchor="end" { (lang.t("流入", "in")) " ↑" }
                text.tick x=(LEFT - 6) y=(base + half) text-anchor="end" { (lang.t("流出", "out")) " ↓" }
                @for (class, _, _, parts, _) in &lines {
                    @for pts in parts {
                        polyline class={ "series " (class) } points=(pts.trim_end()) {}
                    }
                }
                @for (class, y, words) in &ends {
                    text class={ "end " (class) } x=(WIDTH - RIGHT + 6) y=(y) { (words) }
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
                    @for (class, label, _, _, _) in &lines {
                        li { span class={ "swatch " (class) } aria-hidden="true" {} (label) }
                    }
                    li { span.swatch.inflow aria-hidden="true" {} (lang.t("流入监管账户", "Into escrow")) }
                    li { span.swatch.outflow aria-hidden="true" {} (lang.t("流出监管账户", "Out of escrow")) }
                }
                p.note {
                    (date(lang, first.date)) " – " (date(lang, last.date)) "; "
                    (lang.t("进出最高 ", "largest day's movement ")) (yuan(flow_max))
                }
            }
            details {
                summary { (lang.t("逐日数据表", "The figures as a table")) }
                table #chart-table {
                    (thead(lang, &[
                        col("日期", "Date"),
                        num("应退家长", "Owed"),
                        num("账簿监管余额", "Escrow (books)"),
                        num("银行日终余额", "Bank closing"),
                        num("流入", "In"),
                        num("流出", "Out"),
                    ]))
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
    use super::{dated, end_labels, scale, step_of, tick_words};

    #[test]
    fn figures_scale_onto_the_chart_in_integers_and_stay_inside_it() {
        assert_eq!(scale(50, 100, 200), 100);
        assert_eq!(scale(100, 100, 200), 200);
        assert_eq!(scale(-5, 100, 200), 0);
        assert_eq!(scale(500, 100, 200), 200);
        assert_eq!(scale(5, 0, 200), 0);
        assert_eq!(scale(i64::MAX, i64::MAX, 200), 200);
    }

    #[test]
    fn the_yuan_scale_steps_by_one_two_or_five_and_reaches_the_top_in_five() {
        // Fen: ¥183,380.22 in steps of ¥50,000; ¥9.99 in steps of ¥2.
        assert_eq!(step_of(18_338_022), 5_000_000);
        assert_eq!(step_of(999), 200);
        assert_eq!(step_of(1), 100);
        assert_eq!(step_of(10_000_000), 2_000_000);
        assert_eq!(step_of(10_000_001), 5_000_000);
        assert!(step_of(i64::MAX) > 0);
        assert_eq!(tick_words(5_000_000), "¥50,000");
        assert_eq!(tick_words(0), "¥0");
    }

    #[test]
    fn dates_go_under_the_first_and_last_day_and_evenly_between() {
        assert_eq!(dated(1), [0]);
        assert_eq!(dated(3), [0, 1, 2]);
        assert_eq!(dated(100), [0, 19, 39, 59, 79, 99]);
    }

    #[test]
    fn the_lines_last_figures_never_overlap() {
        let ends = end_labels(vec![
            ("owed", 50, String::new()),
            ("escrow", 120, String::new()),
            ("bank", 118, String::new()),
        ]);
        let ys: Vec<i64> = ends.iter().map(|e| e.1).collect();
        assert_eq!(ys, [50, 118, 133]);
    }
}
