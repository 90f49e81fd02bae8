//! The page's HTML. Every piece of text from the model goes through [`escape`]; every number
//! carries a `data-*` attribute naming what it counts, so a browser test can read it back.

use std::fmt::Write as _;

use authport_core::Health;

use crate::chart;
use crate::model::{HealthCounts, StatusPage, label, sum};
use crate::text::{count, counted, escape, followable, share};

const STYLE: &str = include_str!("style.css");

/// The page may load nothing and run nothing: a CSP in the page itself says so to the browser,
/// whatever server (or none) serves the file.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// The status page: one self-contained HTML document (inline style, no script, no external
/// asset; the only addresses in it are the reconnect links).
pub fn render(page: &StatusPage) -> String {
    let title = escape(&page.title);
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
{STYLE}{palette}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="meta">Target platform: <strong>{provider}</strong>. Numbers as of {generated_at}.</p>
</header>
<main>
"#,
        palette = palette(),
        provider = escape(&page.provider),
        generated_at = escape(&page.generated_at),
    );
    html.push_str(&summary(page));
    html.push_str(&totals(page));
    html.push_str(&failures(page));
    html.push_str(&services(page));
    html.push_str(&history(page));
    html.push_str(&reconnect(page));
    html.push_str(
        "</main>\n<footer>\n<p class=\"note\">Made by authport from its journal and event store.",
    );
    if page.reconnect.iter().any(|row| row.link.is_some()) {
        html.push_str(
            " Each reconnect link lets anyone who has it reconnect that account: send it only to the person named beside it.",
        );
    }
    html.push_str("</p>\n</footer>\n</body>\n</html>\n");
    html
}

/// One class per health, for the bars and the swatches.
fn palette() -> String {
    let mut css = String::new();
    for health in Health::ALL {
        let colour = chart::colour(health);
        let _ = writeln!(
            css,
            ".h-{0} {{ background: {colour}; fill: {colour}; }}",
            health.as_str()
        );
    }
    css
}

/// The sentence a reader needs if they read nothing else.
fn summary(page: &StatusPage) -> String {
    let total = page.total();
    if total == 0 && page.reconnect.is_empty() {
        return "<p class=\"summary\">There are no connections yet.</p>\n".to_owned();
    }
    let working = page.working();
    let people = page.people_to_reconnect() as u64;
    let to_reconnect = if people == 0 {
        "nobody needs to reconnect".to_owned()
    } else {
        format!(
            r#"<strong data-summary="people">{}</strong> {} must reconnect ({}, listed below)"#,
            count(people),
            if people == 1 { "person" } else { "people" },
            counted(page.reconnect.len() as u64, "connection", "connections")
        )
    };
    format!(
        r#"<p class="summary"><strong data-summary="working">{}</strong> of <strong data-summary="total">{}</strong> connections are working (<span data-summary="share">{}</span>); {to_reconnect}.</p>
"#,
        count(working),
        count(total),
        share(working, total),
    )
}

fn totals(page: &StatusPage) -> String {
    let total = page.total();
    let mut html = String::from(
        r#"<section aria-labelledby="totals-heading">
<h2 id="totals-heading">Connections by status</h2>
<div class="table-wrap">
<table>
<caption>Every connection, by status</caption>
<thead><tr><th scope="col">Status</th><th scope="col">What it means</th><th scope="col" class="number">Connections</th><th scope="col" class="number">Share</th></tr></thead>
<tbody>
"#,
    );
    for (health, number) in &page.totals {
        let _ = writeln!(
            html,
            r#"<tr><th scope="row"><span class="swatch h-{word}" aria-hidden="true"></span>{label}</th><td>{meaning}</td><td class="number" data-total="{word}">{number}</td><td class="number" data-share="{word}">{share}</td></tr>"#,
            word = health.as_str(),
            label = label(*health),
            meaning = escape(&sentence_case(health.reason())),
            number = count(*number),
            share = share(*number, total),
        );
    }
    let _ = write!(
        html,
        r#"</tbody>
<tfoot><tr><th scope="row">All</th><td></td><td class="number" data-total="all">{}</td><td class="number" data-share="all">{}</td></tr></tfoot>
</table>
</div>
</section>
"#,
        count(total),
        share(total, total)
    );
    html
}

fn failures(page: &StatusPage) -> String {
    let mut html = String::from(
        r#"<section aria-labelledby="failures-heading">
<h2 id="failures-heading">Why connections fail</h2>
"#,
    );
    if page.failures_by_reason.is_empty() {
        html.push_str("<p>No connection has failed.</p>\n</section>\n");
        return html;
    }
    html.push_str(
        r#"<div class="table-wrap">
<table>
<caption>Failed or unusable connections, by reason</caption>
<thead><tr><th scope="col">Reason</th><th scope="col" class="number">Connections</th></tr></thead>
<tbody>
"#,
    );
    for failure in &page.failures_by_reason {
        let reason = escape(&failure.reason);
        let _ = writeln!(
            html,
            r#"<tr><th scope="row">{}</th><td class="number" data-failure="{reason}">{}</td></tr>"#,
            escape(&sentence_case(&failure.reason)),
            count(failure.count)
        );
    }
    html.push_str("</tbody>\n</table>\n</div>\n</section>\n");
    html
}

fn services(page: &StatusPage) -> String {
    let mut html = String::from(
        r#"<section aria-labelledby="services-heading">
<h2 id="services-heading">By service</h2>
"#,
    );
    if page.services.is_empty() {
        html.push_str("<p>No service yet.</p>\n</section>\n");
        return html;
    }
    let columns = StatusPage::columns(page.services.iter().map(|row| &row.counts));
    html.push_str(
        "<div class=\"table-wrap\">\n<table class=\"counts\">\n<caption>Connections of each service, by status</caption>\n",
    );
    html.push_str(&header_row("Service", &columns));
    html.push_str("<tbody>\n");
    for row in &page.services {
        let service = escape(&row.service);
        let attributes = format!(r#"data-service="{service}""#);
        html.push_str(&counts_row(&service, &attributes, &row.counts, &columns));
    }
    html.push_str("</tbody>\n</table>\n</div>\n</section>\n");
    html
}

fn history(page: &StatusPage) -> String {
    let mut html = String::from(
        r#"<section aria-labelledby="history-heading">
<h2 id="history-heading">Health over time</h2>
"#,
    );
    if page.history.is_empty() {
        html.push_str("<p>No history yet.</p>\n</section>\n");
        return html;
    }
    html.push_str(&chart::svg(&page.history));
    html.push('\n');
    html.push_str(&chart::legend(page));
    html.push('\n');
    let columns = StatusPage::columns(page.history.iter().map(|point| &point.counts));
    html.push_str("<div class=\"table-wrap\">\n<table class=\"counts\">\n<caption>Health over time, in numbers (the chart's data)</caption>\n");
    html.push_str(&header_row("When", &columns));
    html.push_str("<tbody>\n");
    for (index, point) in page.history.iter().enumerate() {
        let attributes = format!(r#"data-history="{index}""#);
        html.push_str(&counts_row(
            &escape(&point.label),
            &attributes,
            &point.counts,
            &columns,
        ));
    }
    html.push_str("</tbody>\n</table>\n</div>\n</section>\n");
    html
}

fn reconnect(page: &StatusPage) -> String {
    let mut html = String::from(
        r#"<section aria-labelledby="reconnect-heading">
<h2 id="reconnect-heading">Who must reconnect</h2>
"#,
    );
    if page.reconnect.is_empty() {
        html.push_str("<p>Nobody needs to reconnect.</p>\n</section>\n");
        return html;
    }
    html.push_str(
        r#"<div class="table-wrap">
<table>
<caption>People who must connect an account again</caption>
<thead><tr><th scope="col">Person</th><th scope="col">Account ID</th><th scope="col">Service</th><th scope="col">Why</th><th scope="col">Reconnect link</th></tr></thead>
<tbody>
"#,
    );
    for (index, row) in page.reconnect.iter().enumerate() {
        let link = match row.link.as_deref().and_then(followable) {
            // The label says whose link it is: a screen reader's list of links says more
            // than "Reconnect" eight times.
            Some(link) => format!(
                r#"<a href="{}" rel="noreferrer" aria-label="Reconnect {} to {}">Reconnect</a>"#,
                escape(link),
                escape(&row.owner_name),
                escape(&row.service)
            ),
            None => r#"<span class="note">No link yet</span>"#.to_owned(),
        };
        let _ = writeln!(
            html,
            r#"<tr data-reconnect="{index}"><th scope="row">{}</th><td>{}</td><td>{}</td><td>{}</td><td class="link">{link}</td></tr>"#,
            escape(&row.owner_name),
            escape(&row.owner_id),
            escape(&row.service),
            escape(&sentence_case(&row.reason)),
        );
    }
    html.push_str("</tbody>\n</table>\n</div>\n</section>\n");
    html
}

/// The header of a table with one column per health, then "All".
fn header_row(first: &str, columns: &[Health]) -> String {
    let mut html = format!(r#"<thead><tr><th scope="col">{first}</th>"#);
    for health in columns {
        let _ = write!(
            html,
            r#"<th scope="col" class="number">{}</th>"#,
            label(*health)
        );
    }
    html.push_str(r#"<th scope="col" class="number">All</th></tr></thead>"#);
    html.push('\n');
    html
}

/// One row of counts; each cell carries `attributes` and `data-health` (`all` for the sum).
fn counts_row(header: &str, attributes: &str, counts: &HealthCounts, columns: &[Health]) -> String {
    let mut html = format!(r#"<tr><th scope="row">{header}</th>"#);
    for health in columns {
        let number = counts.get(health).copied().unwrap_or(0);
        let _ = write!(
            html,
            r#"<td class="number" {attributes} data-health="{}">{}</td>"#,
            health.as_str(),
            count(number)
        );
    }
    let _ = writeln!(
        html,
        r#"<td class="number" {attributes} data-health="all">{}</td></tr>"#,
        count(sum(counts))
    );
    html
}

/// "the token expired" as "The token expired" (reasons are written to follow other words).
fn sentence_case(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}
