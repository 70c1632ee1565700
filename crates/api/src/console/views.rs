//! The console's pages as maud templates: escaped by default, checked by
//! the compiler, no files to ship.

use maud::{html, Markup, DOCTYPE};

use crate::console::format::{percent, yuan};
use crate::console::Lang;

/// A page around `body`: the header with navigation, the language switch
/// and sign-out (when signed in).
pub fn page(lang: Lang, title: &str, signed: Option<(&str, &str)>, body: Markup) -> Markup {
    let other = match lang {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("教育培训资金监管", "Training fee supervision")) }
                link rel="stylesheet" href="/console.css";
            }
            body {
                header.top {
                    span.brand { (lang.t("教育培训资金监管平台", "Training fee supervision")) }
                    nav aria-label=(lang.t("主导航", "Main")) {
                        @if signed.is_some() {
                            a href="/overview" { (lang.t("辖区总览", "Overview")) }
                            a href="/decisions" { (lang.t("待审批", "Decisions")) }
                            a href="/notices" { (lang.t("整改通知书", "Notices")) }
                        }
                        a href="/lists" { (lang.t("黑白名单", "Lists")) }
                    }
                    a.lang href={ "?lang=" (other.0) } hreflang=(other.0) { (other.1) }
                    @if signed.is_none() {
                        a href="/sign-in" { (lang.t("监管人员登录", "Officer sign-in")) }
                    }
                    @if let Some((name, csrf)) = signed {
                        span { (name) }
                        form.inline method="post" action="/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button.secondary type="submit" { (lang.t("退出登录", "Sign out")) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A table's column: its heading in both languages, and whether it holds
/// figures (right-aligned, as `td.num`).
pub struct Col(&'static str, &'static str, bool);

pub fn col(zh: &'static str, en: &'static str) -> Col {
    Col(zh, en, false)
}

pub fn num(zh: &'static str, en: &'static str) -> Col {
    Col(zh, en, true)
}

/// A table's heading row, every cell a column header.
pub fn thead(lang: Lang, cols: &[Col]) -> Markup {
    html! {
        thead { tr {
            @for Col(zh, en, figures) in cols {
                @if *figures {
                    th.num scope="col" { (lang.t(zh, en)) }
                } @else {
                    th scope="col" { (lang.t(zh, en)) }
                }
            }
        } }
    }
}

pub fn sign_in(lang: Lang, token: &str, error: Option<&str>) -> Markup {
    html! {
        h1 { (lang.t("监管人员登录", "Officer sign-in")) }
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        form.stack method="post" action="/sign-in" {
            input type="hidden" name="csrf" value=(token);
            label for="login" { (lang.t("账号", "Login"))
                input #login type="text" name="login" autocomplete="username" required autofocus;
            }
            label for="password" { (lang.t("密码", "Password"))
                input #password type="password" name="password" autocomplete="current-password" required;
            }
            button type="submit" { (lang.t("登录", "Sign in")) }
        }
    }
}

/// A severity's colour class and its words.
pub fn light(lang: Lang, red: u32, yellow: u32) -> (&'static str, &'static str) {
    if red > 0 {
        ("red", lang.t("红色预警", "Red"))
    } else if yellow > 0 {
        ("yellow", lang.t("黄色预警", "Yellow"))
    } else {
        ("green", lang.t("正常", "Green"))
    }
}

/// One row of the overview, as shown.
pub struct Row {
    pub id: String,
    pub name: String,
    pub licence_no: String,
    pub owed: i64,
    pub escrow: i64,
    pub deposit: i64,
    pub coverage_bp: Option<i64>,
    pub red: u32,
    pub yellow: u32,
}

pub struct Filters<'a> {
    pub q: &'a str,
    pub sort: &'a str,
    pub level: &'a str,
    /// The `lang` asked for in the address, kept in the page links.
    pub lang: Option<&'a str>,
    /// 1-based, of `pages`.
    pub page: u64,
    pub pages: u64,
}

impl Filters<'_> {
    /// The address of another page with the same search, filter and sort.
    pub fn page_href(&self, page: u64) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            q.append_pair("q", self.q);
        }
        q.append_pair("sort", self.sort);
        if !self.level.is_empty() {
            q.append_pair("level", self.level);
        }
        if let Some(lang) = self.lang {
            q.append_pair("lang", lang);
        }
        q.append_pair("page", &page.to_string());
        format!("/overview?{}", q.finish())
    }
}

/// The totals of every institution the overview's filters select.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub institutions: u64,
    pub owed: i64,
    pub escrow: i64,
    pub deposit: i64,
    pub red: u64,
    pub yellow: u64,
}

/// What coverage means, as the overview and the institution page explain it.
pub struct Explained(&'static str, &'static str);

impl Explained {
    pub fn pick(&self, lang: Lang) -> &'static str {
        lang.t(self.0, self.1)
    }
}

pub const COVERAGE_EXPLAINED: Explained = Explained(
    "覆盖率 = 银行确认的资金 ÷ 应退家长金额。银行确认的资金:监管账户与风险保证金账户最近一次银行日终余额之和,减去已发指令、银行尚未确认的拨付;应退家长金额:同一日未消课学费 + 已批未付退费(保证金模式的机构自收学费不计入,由保证金规则判断)。整数精确计算,向下取整。低于100%表示银行里的钱不足以退还全部家长;银行尚未发来对账单时,或保证金模式机构无应退款项时,显示“—”。风险预警、命令行与接口使用同一数值。",
    "Coverage = money the bank confirms ÷ owed to families. Money the bank confirms: the latest end-of-day bank closings of the escrow and risk-deposit accounts, less releases instructed and not yet confirmed; owed: unearned tuition + approved, unpaid refunds on the same day. Exact integer arithmetic, rounded down. Below 100% the money in the bank cannot refund every family; “—” until the bank has sent a statement. A deposit-mode school collects its fees itself (its deposit's own rule judges it): that tuition is not counted as owed, and with nothing else owed it shows “—” too. The risk alerts, the command line and the API show the same figure.",
);

pub fn overview(
    lang: Lang,
    jurisdiction: &str,
    rows: &[Row],
    totals: &Totals,
    f: &Filters<'_>,
) -> Markup {
    let selected = |v: &str, cur: &str| v == cur;
    html! {
        h1 { (jurisdiction) " · " (lang.t("辖区总览", "Jurisdiction overview")) }
        p.note { (COVERAGE_EXPLAINED.pick(lang)) }
        form.filters method="get" action="/overview" role="search" {
            @if let Some(l) = f.lang { input type="hidden" name="lang" value=(l); }
            label for="q" { (lang.t("机构名称或许可证号", "Name or licence number"))
                input #q type="search" name="q" value=(f.q);
            }
            label for="level" { (lang.t("预警级别", "Alert level"))
                select #level name="level" {
                    option value="" selected[selected("", f.level)] { (lang.t("全部", "All")) }
                    option value="red" selected[selected("red", f.level)] { (lang.t("红色", "Red")) }
                    option value="yellow" selected[selected("yellow", f.level)] { (lang.t("黄色", "Yellow")) }
                    option value="green" selected[selected("green", f.level)] { (lang.t("正常", "Green")) }
                }
            }
            label for="sort" { (lang.t("排序", "Sort by"))
                select #sort name="sort" {
                    option value="risk" selected[selected("risk", f.sort)] { (lang.t("风险最高在前", "Riskiest first")) }
                    option value="coverage" selected[selected("coverage", f.sort)] { (lang.t("覆盖率从低到高", "Coverage, lowest first")) }
                    option value="owed" selected[selected("owed", f.sort)] { (lang.t("应退金额从高到低", "Owed, highest first")) }
                    option value="name" selected[selected("name", f.sort)] { (lang.t("名称", "Name")) }
                }
            }
            button type="submit" { (lang.t("筛选", "Apply")) }
        }
        p.noprint { (lang.t("导出:", "Export: "))
            a href="/overview.xlsx" { (lang.t("总览 Excel", "overview Excel")) } " · "
            a href="/overview.csv" { (lang.t("总览 CSV", "overview CSV")) } " · "
            a href="/alerts.xlsx" { (lang.t("预警 Excel", "alerts Excel")) } " · "
            a href="/alerts.csv" { (lang.t("预警 CSV", "alerts CSV")) } }
        table #overview {
            caption.note { (lang.t("每行一家机构;颜色表示未解除的最高预警级别。", "One institution a row; the colour is its highest open alert.")) }
            (thead(lang, &[
                col("状态", "Status"),
                col("机构", "Institution"),
                col("许可证号", "Licence"),
                num("应退家长", "Owed to families"),
                num("监管账户", "Escrow"),
                num("风险保证金", "Deposit"),
                num("覆盖率", "Coverage"),
                num("红/黄预警", "Red / yellow"),
            ]))
            tbody {
                @for r in rows {
                    @let (class, words) = light(lang, r.red, r.yellow);
                    tr class=(class) {
                        td { span class={ "badge " (class) } { (words) } }
                        td { a href={ "/institutions/" (r.id) } { (r.name) } }
                        td { (r.licence_no) }
                        td.num { (yuan(r.owed)) }
                        td.num { (yuan(r.escrow)) }
                        td.num { (yuan(r.deposit)) }
                        td.num { @match r.coverage_bp { Some(bp) => (percent(bp)), None => "—" } }
                        td.num { (r.red) " / " (r.yellow) }
                    }
                }
                @if rows.is_empty() {
                    tr { td colspan="8" { (lang.t("没有符合条件的机构。", "No institution matches.")) } }
                }
            }
            tfoot { tr {
                td colspan="3" { (lang.t("合计(所有页)", "Totals (all pages)")) " (" (totals.institutions) ")" }
                td.num { (yuan(totals.owed)) }
                td.num { (yuan(totals.escrow)) }
                td.num { (yuan(totals.deposit)) }
                // Coverage is an institution's figure (its own bank's
                // closings); a sum of the books' columns would be another.
                td.num { "—" }
                td.num { (totals.red) " / " (totals.yellow) }
            } }
        }
        nav.pages aria-label=(lang.t("分页", "Pages")) {
            @if f.page > 1 {
                a rel="prev" href=(f.page_href(f.page - 1)) { "← " (lang.t("上一页", "Previous")) }
                " "
            }
            span { (lang.t("第", "Page ")) (f.page) (lang.t(" 页,共 ", " of ")) (f.pages) (lang.t(" 页", "")) }
            @if f.page < f.pages {
                " "
                a rel="next" href=(f.page_href(f.page + 1)) { (lang.t("下一页", "Next")) " →" }
            }
        }
    }
}

/// An alert on the institution page.
pub struct AlertItem {
    pub key: String,
    pub severity: &'static str,
    pub kind: String,
    pub summary: String,
    pub status: String,
    pub first_seen: String,
    pub last_seen: String,
    pub evidence: Vec<Markup>,
    pub open: bool,
}

pub struct Figures {
    pub owed: i64,
    pub prepaid: i64,
    pub refund_payable: i64,
    pub escrow: i64,
    pub deposit: i64,
    pub held_by_institution: i64,
    pub releasable: i64,
    pub coverage_bp: Option<i64>,
    /// The figures coverage is computed from, or why it is unconfirmed.
    pub coverage_basis: String,
}

#[allow(clippy::too_many_arguments)]
pub fn institution(
    lang: Lang,
    id: &str,
    name: &str,
    licence_no: &str,
    figures: &Figures,
    alerts: &[AlertItem],
    csrf: &str,
) -> Markup {
    let fig = |label: &'static str, v: String| html! { div { dt { (label) } dd { (v) } } };
    html! {
        p.noprint { a href="/overview" { "← " (lang.t("返回辖区总览", "Back to the overview")) } }
        h1 { (name) }
        p { (lang.t("许可证号", "Licence")) ": " (licence_no) " · " (id) " · "
            a href={ "/institutions/" (id) "/bank-lines" } { (lang.t("银行流水", "Bank lines")) } " · "
            a href={ "/institutions/" (id) "/entries" } { (lang.t("账簿分录", "Ledger entries")) } }
        (institution_exports(lang, id))
        h2 { (lang.t("资金情况", "Figures")) }
        dl.figures {
            (fig(lang.t("应退家长", "Owed to families"), yuan(figures.owed)))
            (fig(lang.t("未消课学费", "Unearned tuition"), yuan(figures.prepaid)))
            (fig(lang.t("已批未付退费", "Refunds approved, unpaid"), yuan(figures.refund_payable)))
            (fig(lang.t("监管账户", "Escrow"), yuan(figures.escrow)))
            (fig(lang.t("风险保证金", "Risk deposit"), yuan(figures.deposit)))
            (fig(lang.t("机构自收未入监管", "Held by the institution"), yuan(figures.held_by_institution)))
            (fig(lang.t("待拨付", "Releasable"), yuan(figures.releasable)))
            (fig(lang.t("覆盖率", "Coverage"), figures.coverage_bp.map(percent).unwrap_or_else(|| "—".into())))
        }
        p.note #coverage-basis { (lang.t("覆盖率依据:", "Coverage from: ")) (figures.coverage_basis) }
        p.note { (COVERAGE_EXPLAINED.pick(lang)) }
        h2 { (lang.t("预警", "Alerts")) }
        @if alerts.is_empty() {
            p { (lang.t("没有预警。", "No alerts.")) }
        } @else {
            table #alerts {
                (thead(lang, &[
                    col("级别", "Level"),
                    col("预警与依据", "Alert and evidence"),
                    col("状态", "Status"),
                    col("发现 / 最近", "First / last seen"),
                    col("处理", "Act"),
                ]))
                tbody {
                    @for a in alerts {
                        tr class=(a.severity) id={ "alert-" (a.key.replace(|c: char| !c.is_ascii_alphanumeric(), "-")) } {
                            td { span class={ "badge " (a.severity) } {
                                @if a.severity == "red" { (lang.t("红色", "Red")) } @else { (lang.t("黄色", "Yellow")) } } }
                            td.prose {
                                strong { (a.summary) } br;
                                span.note { (a.kind) }
                                ul.evidence { @for e in &a.evidence { li { (e) } } }
                            }
                            td.nowrap { (a.status) }
                            td.nowrap { (a.first_seen) br; (a.last_seen) }
                            td.actions {
                                @if a.open {
                                    form.inline method="post" action={ "/institutions/" (id) "/alerts/" (a.key) } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="action" value="acknowledge";
                                        button.secondary type="submit" { (lang.t("确认知悉", "Acknowledge")) }
                                    }
                                    " "
                                    form.inline method="post" action={ "/institutions/" (id) "/alerts/" (a.key) } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="action" value="resolve";
                                        button.secondary type="submit" { (lang.t("解除", "Resolve")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The anchor of a bank line on the bank lines page.
pub fn line_anchor(line_id: &str) -> String {
    let tail: String = line_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("line-{tail}")
}

pub struct LineRow {
    pub line_id: String,
    pub account_no: String,
    pub date: String,
    pub amount: i64,
    pub bank_ref: String,
    pub counterparty: String,
    pub remittance: String,
}

pub fn bank_lines(lang: Lang, id: &str, name: &str, lines: &[LineRow]) -> Markup {
    html! {
        p.noprint { a href={ "/institutions/" (id) } { "← " (name) } }
        h1 { (name) " · " (lang.t("银行流水", "Bank lines")) }
        table #bank-lines {
            (thead(lang, &[
                col("流水", "Line"),
                col("账号", "Account"),
                col("日期", "Date"),
                num("金额", "Amount"),
                col("银行流水号", "Bank reference"),
                col("对方", "Counterparty"),
                col("附言", "Remittance"),
            ]))
            tbody {
                @for l in lines {
                    tr id=(line_anchor(&l.line_id)) {
                        td { (l.line_id) }
                        td { (l.account_no) }
                        td.nowrap { (l.date) }
                        td.num { (yuan(l.amount)) }
                        td { (l.bank_ref) }
                        td { (l.counterparty) }
                        td { (l.remittance) }
                    }
                }
            }
        }
    }
}

/// One ledger entry on the entries page.
pub struct EntryRow {
    pub seq: i64,
    pub client_id: String,
    pub kind: String,
    pub date: String,
    pub postings: Vec<String>,
}

/// Links to an institution's entries, balances and notices as Excel and
/// as CSV.
fn institution_exports(lang: Lang, id: &str) -> Markup {
    let files = [
        ("entries", lang.t("分录", "entries")),
        ("balances", lang.t("余额", "balances")),
        ("notices", lang.t("整改通知书", "notices")),
    ];
    html! {
        p.noprint.exports { (lang.t("导出:", "Export: "))
            @for (n, (what, words)) in files.iter().enumerate() {
                @if n > 0 { " · " }
                a href={ "/institutions/" (id) "/export/" (what) ".xlsx" } { (words) " Excel" } " · "
                a href={ "/institutions/" (id) "/export/" (what) ".csv" } { (words) " CSV" }
            }
        }
    }
}

pub fn entries(lang: Lang, id: &str, name: &str, rows: &[EntryRow]) -> Markup {
    html! {
        p.noprint { a href={ "/institutions/" (id) } { "← " (name) } }
        h1 { (name) " · " (lang.t("账簿分录", "Ledger entries")) }
        (institution_exports(lang, id))
        table #entries {
            (thead(lang, &[
                col("序号", "Seq"),
                col("日期", "Date"),
                col("类别", "Kind"),
                col("请求编号", "Client id"),
                col("借贷", "Postings"),
            ]))
            tbody {
                @for r in rows {
                    tr id={ "entry-" (r.seq) } {
                        td { (r.seq) }
                        td.nowrap { (r.date) }
                        td { code { (r.kind) } }
                        td { code { (r.client_id) } }
                        td { @for p in &r.postings { (p) br; } }
                    }
                }
            }
        }
    }
}

/// An evidence item that is no figure: shown as its JSON text.
pub fn raw(text: &str) -> Markup {
    html! { code { (text) } }
}

/// An error page's body.
pub fn error(lang: Lang, message: &str) -> Markup {
    html! {
        h1 { (lang.t("出错了", "Something went wrong")) }
        p.error role="alert" { (message) }
        p { a href="/overview" { (lang.t("返回辖区总览", "Back to the overview")) } }
    }
}

/// A refund waiting for an officer's decision.
pub struct RefundItem {
    pub id: String,
    pub institution_id: String,
    pub institution: String,
    pub enrollment: String,
    pub amount: Option<i64>,
    pub payee: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_on: String,
    pub answer_by: String,
}

/// A match reconciliation only suggested (amount and date), waiting.
pub struct SuggestionItem {
    pub institution_id: String,
    pub institution: String,
    pub id: String,
    pub pass: String,
    pub explanation: String,
}

/// A request waiting for the second officer.
pub struct ApprovalItem {
    pub id: String,
    pub kind: &'static str,
    pub institution_id: Option<String>,
    pub summary: String,
    pub requested_by: String,
    pub requested_on: String,
}

pub fn decisions(
    lang: Lang,
    refunds: &[RefundItem],
    suggestions: &[SuggestionItem],
    approvals: &[ApprovalItem],
    csrf: &str,
) -> Markup {
    html! {
        (refund_decisions(lang, refunds, csrf))
        h2 #suggestions { (lang.t("待确认的对账建议", "Suggested reconciliation matches")) }
        p.note { (lang.t(
            "仅按金额和日期配对的银行流水与账簿分录:确认后计为已对账,驳回后两边都回到未对账。决定记录审批人和时间。",
            "Bank lines and ledger entries paired on amount and date only: confirming counts them reconciled, rejecting returns both to unmatched. Who decided and when is kept.")) }
        @if suggestions.is_empty() {
            p { (lang.t("没有待确认的对账建议。", "No suggestion awaits a decision.")) }
        } @else {
            table #suggestion-list {
                (thead(lang, &[
                    col("机构", "Institution"),
                    col("配对", "Match"),
                    col("依据", "Why"),
                    col("决定", "Decide"),
                ]))
                tbody {
                    @for m in suggestions {
                        tr id={ "suggestion-" (m.id) } {
                            td { a href={ "/institutions/" (m.institution_id) } { (m.institution) } }
                            td { code { (m.id) } " (" (m.pass) ")" }
                            td { (m.explanation) }
                            td.nowrap {
                                @for (value, label, class) in [("confirm", lang.t("确认", "Confirm"), ""), ("reject", lang.t("驳回", "Reject"), "secondary")] {
                                    form.inline method="post" action={ "/suggestions/" (m.institution_id) "/" (m.id) "/decide" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="decision" value=(value);
                                        button class=(class) type="submit" { (label) }
                                    }
                                    " "
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 #approvals { (lang.t("待第二位审批人", "Awaiting the second officer")) }
        p.note { (lang.t(
            "拨付和收款账户变更须由提出人以外的另一位审批人批准后才生效;驳回须写明理由。",
            "Releases and payee changes take effect only once an officer other than the one who asked approves; a rejection says why.")) }
        @if approvals.is_empty() {
            p { (lang.t("没有待审批的申请。", "No request awaits a second officer.")) }
        } @else {
            table #approval-list {
                (thead(lang, &[
                    col("申请", "Request"),
                    col("内容", "What"),
                    col("申请人 / 日期", "Requested by / on"),
                    col("决定", "Decide"),
                ]))
                tbody {
                    @for a in approvals {
                        tr id={ "approval-" (a.id) } {
                            td { (a.kind) br; code { (a.id) } }
                            td { (a.summary)
                                @if let Some(i) = &a.institution_id { " · " a href={ "/institutions/" (i) } { (i) } } }
                            td { (a.requested_by) br; span.nowrap { (a.requested_on) } }
                            td {
                                form.inline method="post" action={ "/approvals/" (a.id) "/decide" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="decision" value="approve";
                                    button type="submit" { (lang.t("批准", "Approve")) }
                                }
                                form.inline method="post" action={ "/approvals/" (a.id) "/decide" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="decision" value="reject";
                                    label for={ "reason-" (a.id) } { (lang.t("驳回理由", "Reason to reject")) }
                                    " "
                                    input id={ "reason-" (a.id) } type="text" name="reason" required;
                                    " "
                                    button.secondary type="submit" { (lang.t("驳回", "Reject")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn refund_decisions(lang: Lang, refunds: &[RefundItem], csrf: &str) -> Markup {
    html! {
        h1 { (lang.t("待审批退费", "Refunds awaiting a decision")) }
        p.note { (lang.t(
            "批准后退费记入账簿并向监管银行发出指令;到答复期限仍未处理的视为同意。",
            "An approval takes the refund into the books and instructs the supervising bank; a refund not answered by its date is deemed approved.")) }
        @if refunds.is_empty() {
            p { (lang.t("没有待审批的退费。", "No refund awaits a decision.")) }
        } @else {
            table #decisions {
                (thead(lang, &[
                    col("退费单", "Refund"),
                    col("机构", "Institution"),
                    col("报名", "Enrollment"),
                    num("金额", "Amount"),
                    col("收款人", "Payee"),
                    col("原因", "Reason"),
                    col("申请人 / 日期", "Requested by / on"),
                    col("答复期限", "Answer by"),
                    col("决定", "Decide"),
                ]))
                tbody {
                    @for r in refunds {
                        tr id={ "refund-" (r.id) } {
                            td { (r.id) }
                            td { a href={ "/institutions/" (r.institution_id) } { (r.institution) } }
                            td { (r.enrollment) }
                            td.num { @match r.amount { Some(a) => (yuan(a)), None => (lang.t("全部未消课部分", "all unconsumed")) } }
                            td { (r.payee) }
                            td { (r.reason) }
                            td { (r.requested_by) br; span.nowrap { (r.requested_on) } }
                            td.nowrap { (r.answer_by) }
                            td {
                                form.inline method="post" action={ "/refunds/" (r.id) "/decide" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="decision" value="approve";
                                    button type="submit" { (lang.t("批准", "Approve")) }
                                }
                                " "
                                form.inline method="post" action={ "/refunds/" (r.id) "/decide" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="decision" value="decline";
                                    label for={ "decline-reason-" (r.id) } { (lang.t("驳回理由", "Reason to decline")) }
                                    " "
                                    input id={ "decline-reason-" (r.id) } type="text" name="reason" size="16" required;
                                    " "
                                    button.secondary type="submit" { (lang.t("驳回", "Decline")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The form that issues a rectification notice, on the institution page.
pub fn notice_form(
    lang: Lang,
    id: &str,
    alerts: &[(String, String)],
    csrf: &str,
    today: &str,
) -> Markup {
    html! {
        h2 #notice { (lang.t("下发整改通知书", "Issue a rectification notice")) }
        form.stack.wide method="post" action={ "/institutions/" (id) "/notices" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="alert_key" { (lang.t("针对的预警(可选)", "For the alert (optional)"))
                select #alert_key name="alert_key" {
                    option value="" { (lang.t("不针对具体预警", "No particular alert")) }
                    @for (key, summary) in alerts {
                        option value=(key) { (summary) }
                    }
                }
            }
            label for="finding" { (lang.t("发现的问题", "Finding"))
                textarea #finding name="finding" rows="3" required {}
            }
            label for="required_action" { (lang.t("整改要求", "Required action"))
                textarea #required_action name="required_action" rows="3" required {}
            }
            label for="due_on" { (lang.t("整改期限", "Due date"))
                input #due_on type="date" name="due_on" min=(today) required;
            }
            button type="submit" { (lang.t("下发", "Issue")) }
        }
    }
}

/// A notice in a list, as shown.
pub struct NoticeRow {
    pub no: String,
    pub title_no: String,
    pub institution_id: String,
    pub institution: String,
    pub finding: String,
    pub due: String,
    pub overdue: bool,
    pub answered: bool,
}

pub fn notices(lang: Lang, rows: &[NoticeRow]) -> Markup {
    let overdue = rows.iter().filter(|r| r.overdue).count();
    html! {
        h1 { (lang.t("整改通知书", "Rectification notices")) }
        @if overdue > 0 {
            p.error role="status" { (lang.t("逾期未整改:", "Overdue, unanswered: ")) (overdue) }
        }
        @if rows.is_empty() {
            p { (lang.t("尚未下发整改通知书。", "No notice issued yet.")) }
        } @else {
            table #notices {
                (thead(lang, &[
                    col("文号", "Number"),
                    col("机构", "Institution"),
                    col("发现的问题", "Finding"),
                    col("整改期限", "Due"),
                    col("状态", "Status"),
                ]))
                tbody {
                    @for r in rows {
                        @let class = if r.overdue { "red" } else if r.answered { "green" } else { "yellow" };
                        tr class=(class) id={ "notice-" (r.no) } {
                            td.nowrap { a href={ "/notices/" (r.no) } { (r.title_no) } }
                            td { a href={ "/institutions/" (r.institution_id) } { (r.institution) } }
                            td { (r.finding) }
                            td.nowrap { (r.due) }
                            td.nowrap { span class={ "badge " (class) } {
                                @if r.overdue { (lang.t("已逾期", "Overdue")) }
                                @else if r.answered { (lang.t("已答复", "Answered")) }
                                @else { (lang.t("整改中", "Pending")) }
                            } }
                        }
                    }
                }
            }
        }
    }
}

pub struct NoticeDoc {
    pub no: String,
    pub title_no: String,
    pub bureau: String,
    pub institution: String,
    pub licence_no: String,
    pub finding: String,
    pub required_action: String,
    pub due: String,
    pub issued_on: String,
    pub issued_by: String,
    pub overdue: bool,
    pub answers: Vec<(String, String, String)>,
}

/// The notice as the bureau sends it (printable), its answers, and the
/// form that records one.
pub fn notice(lang: Lang, n: &NoticeDoc, csrf: &str) -> Markup {
    html! {
        p.noprint { a href="/notices" { "← " (lang.t("整改通知书", "Rectification notices")) } }
        article.notice {
            h1 { (n.bureau) " " (lang.t("整改通知书", "Rectification notice")) }
            p.center { (n.title_no) }
            @if n.overdue {
                p.error role="status" { (lang.t("已逾期,机构尚未答复。", "Overdue: the institution has not answered.")) }
            }
            p { strong { (n.institution) } " (" (lang.t("许可证号", "licence")) " " (n.licence_no) "):" }
            h2 { (lang.t("一、发现的问题", "1. Finding")) }
            p { (n.finding) }
            h2 { (lang.t("二、整改要求", "2. Required action")) }
            p { (n.required_action) }
            h2 { (lang.t("三、整改期限", "3. Due date")) }
            p { (lang.t("请于", "Answer by ")) (n.due) (lang.t("前完成整改并书面答复。", ", in writing.")) }
            p.sign { (n.bureau) br; (n.issued_on) br; span.note { (lang.t("经办人:", "Issued by: ")) (n.issued_by) } }
        }
        h2 { (lang.t("机构答复", "The institution's answers")) }
        @if n.answers.is_empty() {
            p { (lang.t("尚未答复。", "No answer yet.")) }
        } @else {
            ul { @for (when, who, text) in &n.answers { li { (when) " · " (who) ": " (text) } } }
        }
        form.stack.wide method="post" action={ "/notices/" (n.no) "/answer" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="answer" { (lang.t("登记机构答复", "Record the institution's answer"))
                textarea #answer name="answer" rows="3" required {}
            }
            button type="submit" { (lang.t("登记", "Record")) }
        }
    }
}

/// The form that publishes a change of the lists, on the institution page.
pub fn list_form(lang: Lang, id: &str, current: &str, csrf: &str) -> Markup {
    let words = |code: &str| match code {
        "white" => lang.t("白名单", "white list"),
        "black" => lang.t("黑名单", "black list"),
        _ => lang.t("不在名单上", "on neither list"),
    };
    html! {
        h2 #lists { (lang.t("黑白名单", "White and black lists")) }
        p { (lang.t("当前:", "Now: ")) strong { (words(current)) } " · "
            a href="/lists" { (lang.t("公开名单", "The public lists")) } }
        form.stack.wide method="post" action={ "/institutions/" (id) "/list" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="list" { (lang.t("列入", "Put on"))
                select #list name="list" {
                    option value="black" { (words("black")) }
                    option value="white" { (words("white")) }
                    option value="none" { (words("none")) }
                }
            }
            label for="reason" { (lang.t("理由(将公开)", "Reason (published)"))
                textarea #reason name="reason" rows="2" required {}
            }
            button type="submit" { (lang.t("发布", "Publish")) }
        }
    }
}

/// One published change, as shown.
pub struct ListRow {
    pub version: i32,
    pub institution: String,
    pub licence_no: String,
    pub list: &'static str,
    pub reason: String,
    pub date: String,
}

/// The public lists of one jurisdiction.
pub struct PublicLists {
    pub jurisdiction: String,
    pub white: Vec<ListRow>,
    pub black: Vec<ListRow>,
    pub history: Vec<ListRow>,
}

pub fn public_lists(lang: Lang, lists: &[PublicLists]) -> Markup {
    let table = |rows: &[ListRow], id: String, with_list: bool| {
        html! {
            table id=(id) {
                thead { tr {
                    th scope="col" { (lang.t("版本", "Version")) }
                    th scope="col" { (lang.t("机构", "Institution")) }
                    th scope="col" { (lang.t("许可证号", "Licence")) }
                    @if with_list { th scope="col" { (lang.t("名单", "List")) } }
                    th scope="col" { (lang.t("理由", "Reason")) }
                    th scope="col" { (lang.t("发布日期", "Published")) }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (r.version) }
                            td { (r.institution) }
                            td { (r.licence_no) }
                            @if with_list { td { (r.list) } }
                            td { (r.reason) }
                            td.nowrap { (r.date) }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="6" { (lang.t("无", "None")) } } }
                }
            }
        }
    };
    html! {
        h1 { (lang.t("校外培训机构黑白名单", "White and black lists of training institutions")) }
        p.note { (lang.t("由教育行政部门发布,无需登录即可查看。", "Published by the education bureaus; open to everyone."))
            " " a href="/lists.json" { "JSON" } " · " a href="/lists.csv" { "CSV" } }
        @for l in lists {
            section {
                h2 { (l.jurisdiction) }
                h3 { (lang.t("黑名单", "Black list")) }
                (table(&l.black, format!("black-{}", l.jurisdiction.split(' ').next().unwrap_or("")), false))
                h3 { (lang.t("白名单", "White list")) }
                (table(&l.white, format!("white-{}", l.jurisdiction.split(' ').next().unwrap_or("")), false))
                h3 { (lang.t("变更记录", "History of changes")) }
                (table(&l.history, format!("history-{}", l.jurisdiction.split(' ').next().unwrap_or("")), true))
            }
        }
        @if lists.is_empty() { p { (lang.t("尚未发布名单。", "No list published yet.")) } }
    }
}

/// One reconciliation day of an account, as recorded.
pub struct ReconDay {
    pub date: String,
    pub account: String,
    pub kind: String,
    pub bank_closing: String,
    pub ledger_balance: String,
    pub difference: String,
    pub agrees: bool,
    pub status: String,
}

/// A refund or a release with its state.
pub struct MoneyMove {
    pub what: String,
    pub id: String,
    pub amount: String,
    pub date: String,
    pub state: String,
    /// Still waiting for someone (an officer, or the bank).
    pub waiting: bool,
}

/// The institution page's chart, reconciliation days, and refunds and
/// releases.
pub fn institution_history(
    lang: Lang,
    chart: Markup,
    days: &[ReconDay],
    moves: &[MoneyMove],
) -> Markup {
    html! {
        h2 #history { (lang.t("逐日资金", "Day by day")) }
        (chart)
        h2 #recon-days { (lang.t("对账日", "Reconciliation days")) }
        @if days.is_empty() {
            p { (lang.t("尚无对账记录。", "No reconciliation recorded yet.")) }
        } @else {
            table #recon {
                (thead(lang, &[
                    col("日期", "Date"),
                    col("账户", "Account"),
                    num("银行日终余额", "Bank closing"),
                    num("账簿余额", "Ledger"),
                    num("差额(银行−账簿)", "Difference (bank − ledger)"),
                    col("结果", "Result"),
                ]))
                tbody {
                    @for d in days {
                        tr class=(if d.agrees { "" } else { "red" }) {
                            td { (d.date) }
                            td { (d.account) " (" (d.kind) ")" }
                            td.num { (d.bank_closing) }
                            td.num { (d.ledger_balance) }
                            td.num { (d.difference) }
                            td { (d.status) }
                        }
                    }
                }
            }
        }
        h2 #moves { (lang.t("退费与拨付", "Refunds and releases")) }
        @if moves.is_empty() {
            p { (lang.t("没有退费或拨付。", "No refunds or releases.")) }
        } @else {
            table #money-moves {
                (thead(lang, &[
                    col("类别", "Kind"),
                    col("编号", "Id"),
                    num("金额", "Amount"),
                    col("日期", "Date"),
                    col("状态", "State"),
                ]))
                tbody {
                    @for m in moves {
                        tr class=(if m.waiting { "yellow" } else { "" }) {
                            td { (m.what) }
                            td { code { (m.id) } }
                            td.num { (m.amount) }
                            td { (m.date) }
                            td { (m.state) }
                        }
                    }
                }
            }
        }
    }
}
