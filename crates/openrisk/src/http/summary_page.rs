//! The executive summary as one self-contained, printable HTML page. Every user-supplied text
//! goes through maud, which escapes it.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::domain::report::Summary;
use crate::domain::risk::{RiskStatus, Severity};

const CSS: &str = r#"
:root { --low: #cfe8cf; --medium: #fbe7a1; --high: #f9c08f; --critical: #ef8f8f; --ink: #1d2330; --muted: #5b6475; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1040px; padding: 32px 24px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #e3e6ec; }
.meta { color: var(--muted); margin: 0; }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 10px; margin-top: 20px; }
.card { border: 1px solid #e3e6ec; border-radius: 8px; padding: 10px 12px; }
.card .value { font-size: 22px; font-weight: 600; }
.card .label { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e9ecf1; vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nowrap { white-space: nowrap; }
.split { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
.heatmap { width: auto; }
.heatmap td { width: 64px; height: 48px; text-align: center; font-size: 16px; font-weight: 600; border: 2px solid #fff; }
.heatmap th { text-align: center; }
.low { background: var(--low); } .medium { background: var(--medium); }
.high { background: var(--high); } .critical { background: var(--critical); }
.heatmap td.empty { opacity: 0.45; font-weight: 400; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; }
.axis { color: var(--muted); font-size: 12px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@page { size: A4; margin: 14mm; }
@media print {
  body { padding: 0; max-width: none; }
  .cards { grid-template-columns: repeat(3, 1fr); }
  section, tr { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

fn severity_class(severity: Severity) -> &'static str {
    severity.as_str()
}

pub fn render(s: &Summary) -> String {
    let stats = &s.stats;
    let open: i64 = RiskStatus::OPEN
        .iter()
        .map(|st| stats.by_status.get(st).copied().unwrap_or(0))
        .sum();
    let page: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Risk summary · " (s.organization.name) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "Risk summary" }
                    p.meta { (s.organization.name) " · generated " (s.generated_at.format("%Y-%m-%d %H:%M UTC")) }
                }
                section.cards {
                    (card("Risks", stats.total.to_string()))
                    (card("Open", open.to_string()))
                    (card("Open critical", stats.open_critical.to_string()))
                    (card("Average score", format!("{:.1}", stats.average_score)))
                    (card("Overdue reviews", stats.overdue_reviews.to_string()))
                    (card("Overdue mitigations", stats.mitigations.overdue.to_string()))
                }
                div.split {
                    section {
                        h2 { "By status" }
                        table {
                            @for (status, n) in &stats.by_status {
                                tr { td { (status.as_str().replace('_', " ")) } td.num { (n) } }
                            }
                        }
                    }
                    section {
                        h2 { "By severity" }
                        table {
                            @for (severity, n) in &stats.by_severity {
                                tr { td { span.badge.(severity_class(*severity)) { (severity.as_str()) } } td.num { (n) } }
                            }
                        }
                    }
                }
                section {
                    h2 { "Heat map of open risks" }
                    table.heatmap {
                        @for likelihood in (1..=5).rev() {
                            tr {
                                th.axis { "L" (likelihood) }
                                @for impact in 1..=5 {
                                    @let n = s.matrix.cells[likelihood - 1][impact - 1];
                                    @let class = severity_class(Severity::from_score((likelihood * impact) as i32));
                                    td class=(if n == 0 { format!("{class} empty") } else { class.to_owned() }) { (n) }
                                }
                            }
                        }
                        tr { th {} @for impact in 1..=5 { th.axis { "I" (impact) } } }
                    }
                    p.axis { "Rows: likelihood (L), columns: impact (I); colour: severity of the cell's score." }
                }
                section {
                    h2 { "Top " (s.top_risks.len()) " open risks" }
                    @if s.top_risks.is_empty() {
                        p.meta { "No open risks." }
                    } @else {
                        table {
                            tr { th { "Ref" } th { "Title" } th { "Category" } th { "Status" } th.num { "Score" } th { "Severity" } th.num { "Residual" } }
                            @for risk in &s.top_risks {
                                tr {
                                    td { (risk.reference) }
                                    td { (risk.title) }
                                    td { (risk.category.as_deref().unwrap_or("—")) }
                                    td.nowrap { (risk.status.as_str().replace('_', " ")) }
                                    td.num { (risk.score) }
                                    td { span.badge.(severity_class(risk.severity)) { (risk.severity.as_str()) } }
                                    td.num { (risk.residual_score.map_or("—".to_owned(), |r| r.to_string())) }
                                }
                            }
                        }
                    }
                }
                section {
                    h2 { "Overdue mitigations" }
                    @if s.overdue_mitigations.is_empty() {
                        p.meta { "No overdue mitigations." }
                    } @else {
                        table {
                            tr { th { "Risk" } th { "Mitigation" } th { "Status" } th { "Due" } th.num { "Days overdue" } th.num { "Progress" } }
                            @for m in &s.overdue_mitigations {
                                tr {
                                    td { (m.risk_ref) " · " (m.risk_title) }
                                    td { (m.mitigation.title) }
                                    td.nowrap { (m.mitigation.status.as_str().replace('_', " ")) }
                                    td.nowrap { (m.mitigation.due_date.map(|d| d.to_string()).unwrap_or_default()) }
                                    td.num { (m.days_overdue) }
                                    td.num { (m.mitigation.progress) "%" }
                                }
                            }
                        }
                        @if stats.mitigations.overdue > s.overdue_mitigations.len() as i64 {
                            p.meta { "Showing the " (s.overdue_mitigations.len()) " longest overdue of " (stats.mitigations.overdue) "." }
                        }
                    }
                }
                footer { "OpenRisk · " (s.organization.slug) }
            }
        }
    };
    page.into_string()
}

fn card(label: &str, value: String) -> Markup {
    html! { div.card { div.value { (value) } div.label { (label) } } }
}
