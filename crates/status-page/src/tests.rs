//! The page against its model: escaping, numbers, the chart's text alternative, what the page
//! may not contain, and the colours' contrast.

use authport_core::Health;

use crate::model::{HealthCounts, HistoryPoint, ReconnectRow, ServiceRow, StatusPage, example};
use crate::render::render;
use crate::text::count;

/// Every element whose opening tag contains `needle`: (the tag, the text right after it).
fn tagged<'a>(html: &'a str, needle: &str) -> Vec<(&'a str, &'a str)> {
    html.match_indices(needle)
        .map(|(at, _)| {
            let start = html[..at].rfind('<').unwrap();
            let end = at + html[at..].find('>').unwrap();
            let text_end = end + 1 + html[end + 1..].find('<').unwrap();
            (&html[start..=end], &html[end + 1..text_end])
        })
        .collect()
}

fn attribute<'a>(tag: &'a str, name: &str) -> &'a str {
    let start = tag.find(&format!(r#"{name}=""#)).unwrap() + name.len() + 2;
    let end = start + tag[start..].find('"').unwrap();
    &tag[start..end]
}

fn empty_page() -> StatusPage {
    StatusPage {
        title: "Empty".to_owned(),
        generated_at: "now".to_owned(),
        provider: "Tray".to_owned(),
        totals: HealthCounts::new(),
        failures_by_reason: Vec::new(),
        services: Vec::new(),
        history: Vec::new(),
        reconnect: Vec::new(),
    }
}

#[test]
fn every_text_from_the_model_is_escaped() {
    let hostile = r#"<script>alert("x")</script> & 'quoted' <img src=x onerror=alert(1)>"#;
    let mut page = example();
    page.title = hostile.to_owned();
    page.generated_at = hostile.to_owned();
    page.provider = hostile.to_owned();
    page.failures_by_reason[0].reason = hostile.to_owned();
    page.services[0].service = hostile.to_owned();
    page.history[0].label = hostile.to_owned();
    page.reconnect[0] = ReconnectRow {
        owner_name: hostile.to_owned(),
        owner_id: hostile.to_owned(),
        service: hostile.to_owned(),
        reason: hostile.to_owned(),
        link: Some(format!("https://links.example.com/r/\"><script>{hostile}")),
    };
    let html = render(&page);
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains(r#"alert("x")"#));
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;";
    // Title (twice), provider, generated_at, the reason (row header and attribute), the
    // service, the history label (chart axis, description and table), and the reconnect row.
    assert!(html.matches(escaped).count() >= 10, "{html}");
    assert!(html.contains(r#"href="https://links.example.com/r/&quot;&gt;&lt;script&gt;"#));
}

#[test]
fn the_page_loads_and_runs_nothing() {
    let html = render(&example());
    assert!(!html.to_lowercase().contains("<script"));
    for forbidden in [
        "src=", "url(", "@import", "<link", "<iframe", "<object", "<img",
    ] {
        assert!(!html.contains(forbidden), "{forbidden}");
    }
    assert!(html.contains(
        r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">"#
    ));
    // The only addresses are the reconnect links (`http-equiv` is the CSP's attribute).
    let mut rest = html.replace("http-equiv=", "");
    for link in example()
        .reconnect
        .iter()
        .filter_map(|row| row.link.as_deref())
    {
        assert!(
            rest.contains(&format!(r#"<a href="{link}" rel="noreferrer" "#)),
            "{link}"
        );
        rest = rest.replace(link, "");
    }
    assert!(!rest.to_lowercase().contains("http"), "{rest}");
    assert!(!rest.contains("//"), "a protocol-relative address");
}

#[test]
fn a_link_that_is_not_a_web_address_is_not_a_link() {
    let mut page = example();
    page.reconnect[0].link = Some("javascript:alert(document.cookie)".to_owned());
    let html = render(&page);
    assert!(!html.contains("javascript:"), "{html}");
    assert_eq!(html.matches("No link yet").count(), 1);
}

#[test]
fn the_totals_are_the_models() {
    let page = example();
    let html = render(&page);
    let shown: Vec<(&str, &str)> = tagged(&html, "data-total=")
        .into_iter()
        .map(|(tag, text)| (attribute(tag, "data-total"), text))
        .collect();
    let mut expect: Vec<(&str, String)> = page
        .totals
        .iter()
        .map(|(health, number)| (health.as_str(), count(*number)))
        .collect();
    expect.push(("all", "1,250".to_owned()));
    let expect: Vec<(&str, &str)> = expect
        .iter()
        .map(|(word, text)| (*word, text.as_str()))
        .collect();
    assert_eq!(shown, expect);
}

/// The summary's words, without its markup.
fn summary_words(html: &str) -> String {
    let summary = html
        .split(r#"<p class="summary">"#)
        .nth(1)
        .unwrap()
        .split("</p>")
        .next()
        .unwrap();
    summary
        .split('<')
        .map(|piece| piece.split_once('>').map_or(piece, |(_, text)| text))
        .collect()
}

#[test]
fn the_summary_says_it_in_one_sentence() {
    assert_eq!(
        summary_words(&render(&example())),
        "1,242 of 1,250 connections are working (99.4 %); 6 people must reconnect (8 connections, listed below)."
    );
    assert_eq!(
        summary_words(&render(&empty_page())),
        "There are no connections yet."
    );
    let mut one = example();
    one.reconnect.truncate(1);
    assert_eq!(
        summary_words(&render(&one)),
        "1,242 of 1,250 connections are working (99.4 %); 1 person must reconnect (1 connection, listed below)."
    );
}

#[test]
fn failures_and_services_are_the_models() {
    let page = example();
    let html = render(&page);
    let failures: Vec<(&str, &str)> = tagged(&html, "data-failure=")
        .into_iter()
        .map(|(tag, text)| (attribute(tag, "data-failure"), text))
        .collect();
    assert_eq!(
        failures,
        [
            ("the imported token could not be refreshed", "4"),
            ("the credentials could not be imported", "3"),
            ("the connection was revoked or is no longer usable", "1"),
        ]
    );
    for ServiceRow { service, counts } in &page.services {
        let cells = tagged(&html, &format!(r#"data-service="{service}""#));
        let all = cells
            .iter()
            .find(|(tag, _)| attribute(tag, "data-health") == "all")
            .unwrap();
        assert_eq!(all.1, count(counts.values().sum()));
        for (tag, text) in &cells {
            let word = attribute(tag, "data-health");
            if word != "all" {
                let health: Health = word.parse().unwrap();
                assert_eq!(
                    *text,
                    count(counts.get(&health).copied().unwrap_or(0)),
                    "{service} {word}"
                );
            }
        }
    }
    // Columns only for healths some service has.
    assert!(!html.contains(r#"data-service="salesforce" data-health="deleted""#));
}

#[test]
fn the_chart_has_a_title_a_description_and_the_same_numbers_as_a_table() {
    let page = example();
    let html = render(&page);
    assert!(html.contains(r#"<svg class="chart" viewBox="0 0 720 260" role="img" aria-labelledby="chart-title chart-desc"><title id="chart-title">Connections by status over time</title>"#));
    assert!(
        !html.contains("xmlns"),
        "inline SVG needs no namespace address"
    );
    let description = tagged(&html, r#"id="chart-desc""#)[0].1;
    assert_eq!(
        description,
        "One bar for each of 5 points in time, from 1 Dec to 5 Dec; each bar is split by status. \
         At 5 Dec: 1,240 working, 2 waiting for first refresh, 4 refresh failed, 1 revoked, 3 not imported."
    );
    for (index, HistoryPoint { counts, .. }) in page.history.iter().enumerate() {
        for (tag, text) in tagged(&html, &format!(r#"data-history="{index}""#)) {
            let word = attribute(tag, "data-health");
            let expect = if word == "all" {
                counts.values().sum()
            } else {
                counts
                    .get(&word.parse::<Health>().unwrap())
                    .copied()
                    .unwrap_or(0)
            };
            assert_eq!(text, count(expect), "point {index} {word}");
        }
    }
    // One bar segment per non-zero count.
    let segments: usize = page
        .history
        .iter()
        .map(|point| point.counts.values().filter(|n| **n > 0).count())
        .sum();
    assert_eq!(html.matches("<rect ").count(), segments);
}

#[test]
fn an_empty_page_says_so_in_words() {
    let html = render(&empty_page());
    for sentence in [
        "No connection has failed.",
        "No service yet.",
        "No history yet.",
        "Nobody needs to reconnect.",
    ] {
        assert!(html.contains(sentence), "{sentence}");
    }
    assert!(!html.contains("<svg"));
    assert!(html.contains(r#"data-total="all">0<"#));
}

#[test]
fn tables_have_captions_and_scoped_headers_and_the_page_prints_on_a4() {
    let html = render(&example());
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert_eq!(html.matches("<table").count(), 5);
    assert_eq!(html.matches("<caption>").count(), 5);
    assert!(!html.contains("<th>"), "every header has a scope");
    assert!(html.contains("@page { size: A4; margin: 15mm; }"));
    assert!(html.contains("tr, .chart, .legend, .summary { break-inside: avoid; }"));
    assert!(html.contains(r#"a[href]::after { content: " (" attr(href) ")""#));
}

/// WCAG 2's contrast ratio of two `#rrggbb` colours.
fn contrast(first: &str, second: &str) -> f64 {
    let luminance = |hex: &str| {
        let channel = |at: usize| {
            let value = f64::from(u8::from_str_radix(&hex[at..at + 2], 16).unwrap()) / 255.0;
            if value <= 0.039_28 {
                value / 12.92
            } else {
                ((value + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    };
    let (a, b) = (luminance(first), luminance(second));
    (a.max(b) + 0.05) / (a.min(b) + 0.05)
}

#[test]
fn colours_have_a_contrast_of_at_least_4_5_to_1() {
    for health in Health::ALL {
        let colour = crate::chart::colour(health);
        assert!(contrast(colour, "#ffffff") >= 4.5, "{health:?} {colour}");
    }
    // Text on each background the style sheet uses.
    for text in ["#1f2328", "#57606a", "#0b5394"] {
        for background in ["#ffffff", "#f6f8fa", "#eaeef2", "#f1f6fb"] {
            assert!(contrast(text, background) >= 4.5, "{text} on {background}");
        }
    }
    assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
}

#[test]
fn the_example_adds_up() {
    let page = example();
    let mut by_service = HealthCounts::new();
    for row in &page.services {
        for (health, number) in &row.counts {
            *by_service.entry(*health).or_default() += number;
        }
    }
    assert_eq!(by_service, page.totals);
    assert_eq!(page.history.last().unwrap().counts, page.totals);
    let must_reconnect: u64 = page
        .totals
        .iter()
        .filter(|(health, _)| health.needs_reconnect() || **health == Health::NotImported)
        .map(|(_, number)| number)
        .sum();
    assert_eq!(page.reconnect.len() as u64, must_reconnect);
    let failed: u64 = page
        .failures_by_reason
        .iter()
        .map(|failure| failure.count)
        .sum();
    assert_eq!(failed, must_reconnect);
}

#[test]
fn debug_output_never_shows_a_reconnect_link() {
    let row = ReconnectRow {
        owner_name: "Ada".to_owned(),
        owner_id: "u1".to_owned(),
        service: "slack".to_owned(),
        reason: "the token could not be refreshed".to_owned(),
        link: Some("https://links.example/r/CANARY-bearer-token".to_owned()),
    };
    let shown = format!("{row:?}");
    assert!(!shown.contains("CANARY"), "{shown}");
    assert!(shown.contains("[link]"), "{shown}");
}
