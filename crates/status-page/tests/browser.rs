//! The status page in a real browser (Debian's headless Chromium, `.ci/run` installs it): the
//! numbers a reader sees are the model's, the tables and the chart have their text
//! alternatives, and the page loads nothing. `AUTHPORT_SCREENSHOTS=1` also writes
//! docs/status-page.png (the README's picture); without it the test writes nothing in the repo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use authport_browser::Browser;
use authport_core::Health;
use authport_status_page::{HealthCounts, StatusPage, example, render};
use serde_json::{Value, json};

fn screenshot_path() -> Option<PathBuf> {
    (std::env::var("AUTHPORT_SCREENSHOTS").as_deref() == Ok("1"))
        .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/status-page.png"))
}

/// The widest page: every health in every row, seven-digit counts, a long service name.
fn widest_page() -> StatusPage {
    let mut page = example();
    let every_health: HealthCounts = Health::ALL
        .into_iter()
        .map(|health| (health, 1_234_567))
        .collect();
    page.totals = every_health.clone();
    for row in &mut page.services {
        row.counts = every_health.clone();
    }
    page.services[0].service = "microsoft-dynamics-365-business-central".to_owned();
    for point in &mut page.history {
        point.counts = every_health.clone();
    }
    page
}

/// The widest table (or the page) in CSS pixels, laid out for print at A4's width less the
/// page's 15 mm margins: 180 mm, 680 pixels.
async fn widest_printed(browser: &mut Browser) -> f64 {
    browser.emulate_print(true).await.unwrap();
    browser.set_viewport(680, 1000).await.unwrap();
    let widest = browser
        .eval(
            "Math.max(...[...document.querySelectorAll('table')].map(table => table.scrollWidth),
                document.documentElement.scrollWidth)",
        )
        .await
        .unwrap();
    browser.set_viewport(1000, 800).await.unwrap();
    browser.emulate_print(false).await.unwrap();
    widest.as_f64().unwrap()
}

/// "1,204" as 1204.
fn number(text: &Value) -> u64 {
    text.as_str().unwrap().replace(',', "").parse().unwrap()
}

/// The first page's size in points, from the PDF's first `/MediaBox [0 0 w h]` (Chromium writes
/// page dictionaries uncompressed).
fn media_box(pdf: &[u8]) -> (f64, f64) {
    let text = String::from_utf8_lossy(pdf);
    let start = text.find("/MediaBox [").expect("a MediaBox") + "/MediaBox [".len();
    let numbers: Vec<f64> = text[start..]
        .split(']')
        .next()
        .unwrap()
        .split_whitespace()
        .map(|number| number.parse().unwrap())
        .collect();
    (numbers[2] - numbers[0], numbers[3] - numbers[1])
}

#[tokio::test]
async fn the_status_page_shows_the_models_numbers_in_chromium() {
    let page = example();
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("status.html");
    std::fs::write(&file, render(&page)).unwrap();

    let mut browser = Browser::launch().await.unwrap();
    browser.set_viewport(1000, 800).await.unwrap();
    browser
        .goto(&format!("file://{}", file.display()))
        .await
        .unwrap();

    // The totals as the reader sees them.
    let totals = browser
        .eval(
            "Object.fromEntries([...document.querySelectorAll('[data-total]')]
                .map(cell => [cell.dataset.total, cell.textContent]))",
        )
        .await
        .unwrap();
    let shown: BTreeMap<String, u64> = totals
        .as_object()
        .unwrap()
        .iter()
        .map(|(word, text)| (word.clone(), number(text)))
        .collect();
    let mut expect: BTreeMap<String, u64> = page
        .totals
        .iter()
        .map(|(health, count)| (health.as_str().to_owned(), *count))
        .collect();
    expect.insert("all".to_owned(), page.total());
    assert_eq!(shown, expect);

    let summary = browser
        .eval(
            "Object.fromEntries([...document.querySelectorAll('[data-summary]')]
                .map(element => [element.dataset.summary, element.textContent]))",
        )
        .await
        .unwrap();
    assert_eq!(number(&summary["working"]), page.working());
    assert_eq!(number(&summary["total"]), page.total());
    assert_eq!(
        number(&summary["people"]),
        page.people_to_reconnect() as u64
    );

    // Every table has a caption and scoped headers; the reconnect table names its people.
    let tables = browser
        .eval(
            "[...document.querySelectorAll('table')].map(table => ({
                caption: table.caption ? table.caption.textContent : null,
                columns: [...table.querySelectorAll('thead th')].map(th => th.getAttribute('scope')),
                unscoped: table.querySelectorAll('th:not([scope])').length,
            }))",
        )
        .await
        .unwrap();
    let tables = tables.as_array().unwrap();
    assert_eq!(tables.len(), 5);
    for table in tables {
        assert!(!table["caption"].as_str().unwrap().is_empty(), "{table}");
        assert!(
            table["columns"]
                .as_array()
                .unwrap()
                .iter()
                .all(|scope| scope == "col"),
            "{table}"
        );
        assert_eq!(table["unscoped"], json!(0), "{table}");
    }
    let people = browser
        .eval("[...document.querySelectorAll('tr[data-reconnect] th')].map(th => th.textContent)")
        .await
        .unwrap();
    let expect_people: Vec<&str> = page
        .reconnect
        .iter()
        .map(|row| row.owner_name.as_str())
        .collect();
    assert_eq!(
        people,
        json!(expect_people),
        "names are shown as written, not as markup"
    );

    // The chart: an image with a title and a description, drawn at a readable size.
    let chart = browser
        .eval(
            "(() => { const svg = document.querySelector('svg[role=img]');
                const labels = svg.getAttribute('aria-labelledby').split(' ')
                    .map(id => document.getElementById(id).textContent);
                return { labels, height: svg.getBoundingClientRect().height,
                         bars: svg.querySelectorAll('rect').length }; })()",
        )
        .await
        .unwrap();
    assert_eq!(chart["labels"][0], json!("Connections by status over time"));
    assert!(
        chart["labels"][1]
            .as_str()
            .unwrap()
            .contains("1,240 working"),
        "{chart}"
    );
    assert!(chart["height"].as_f64().unwrap() > 100.0, "{chart}");
    assert!(chart["bars"].as_u64().unwrap() > 0, "{chart}");

    // Self-contained: the browser fetched nothing besides the file.
    let fetched = browser
        .eval("performance.getEntriesByType('resource').length")
        .await
        .unwrap();
    assert_eq!(fetched, json!(0));

    // The README's picture, as a screen shows the page.
    if let Some(path) = screenshot_path() {
        browser.screenshot_png(&path).await.unwrap();
    }

    // Printed, a link shows its address after its words.
    browser.emulate_print(true).await.unwrap();
    let printed_links = browser
        .eval(
            "[...document.querySelectorAll('a[href]')].map(a =>
                [a.getAttribute('href'), getComputedStyle(a, '::after').content])",
        )
        .await
        .unwrap();
    let printed_links = printed_links.as_array().unwrap();
    assert_eq!(printed_links.len(), page.reconnect.len());
    for pair in printed_links {
        let (href, after) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert_eq!(after, format!(r#"" ({href})""#));
    }
    browser.emulate_print(false).await.unwrap();

    // It prints on A4 (the page's own @page rule).
    let pdf = directory.path().join("status.pdf");
    browser.print_to_pdf(&pdf).await.unwrap();
    let pdf = std::fs::read(&pdf).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let (width, height) = media_box(&pdf);
    assert!(
        (width - 595.0).abs() < 2.0 && (height - 842.0).abs() < 2.0,
        "{width} x {height} pt"
    );
}

#[tokio::test]
async fn the_page_fits_an_a4_page_and_a_phone_screen() {
    let directory = tempfile::tempdir().unwrap();
    let mut browser = Browser::launch().await.unwrap();
    for (name, page) in [("example", example()), ("widest", widest_page())] {
        let file = directory.path().join(format!("{name}.html"));
        std::fs::write(&file, render(&page)).unwrap();
        browser
            .goto(&format!("file://{}", file.display()))
            .await
            .unwrap();
        let widest = widest_printed(&mut browser).await;
        assert!(widest <= 680.0, "{name}: {widest} px");
        // On a phone's 360 pixels, a wide table scrolls in its box; the page does not.
        browser.set_viewport(360, 740).await.unwrap();
        let page_width = browser
            .eval("document.documentElement.scrollWidth")
            .await
            .unwrap();
        assert!(
            page_width.as_f64().unwrap() <= 360.0,
            "{name}: {page_width} px"
        );
        browser.set_viewport(1000, 800).await.unwrap();
    }
}
