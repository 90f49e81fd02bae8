//! The driver against the real Chromium of `.ci/run`: navigation, evaluation, a click that
//! submits a form, screenshots and PDFs, and the error when Chromium is missing.

use std::path::Path;

use authport_browser::{Browser, BrowserError};
use serde_json::json;

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[tokio::test]
async fn it_opens_a_page_reads_it_and_follows_a_clicked_form() {
    let directory = tempfile::tempdir().unwrap();
    let first = directory.path().join("first.html");
    let second = directory.path().join("second.html");
    std::fs::write(
        &first,
        format!(
            r#"<!DOCTYPE html><html lang="en"><title>First</title>
            <p data-count="working">1,204</p>
            <form method="get" action="{}"><button type="submit">Go</button></form></html>"#,
            file_url(&second)
        ),
    )
    .unwrap();
    std::fs::write(
        &second,
        "<!DOCTYPE html><title>Second</title><h1>Arrived</h1>",
    )
    .unwrap();

    let mut browser = Browser::launch().await.unwrap();
    browser.goto(&file_url(&first)).await.unwrap();
    assert_eq!(
        browser.eval("document.title").await.unwrap(),
        json!("First")
    );
    assert_eq!(
        browser
            .eval(r#"document.querySelector('[data-count="working"]').textContent"#)
            .await
            .unwrap(),
        json!("1,204")
    );
    assert_eq!(browser.eval("undefined").await.unwrap(), json!(null));
    assert_eq!(
        browser.eval("Promise.resolve([1, 2])").await.unwrap(),
        json!([1, 2])
    );

    browser.click("form button").await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .starts_with(&file_url(&second))
    );
    assert_eq!(
        browser
            .eval("document.querySelector('h1').textContent")
            .await
            .unwrap(),
        json!("Arrived")
    );

    let png = directory.path().join("page.png");
    browser.screenshot_png(&png).await.unwrap();
    assert!(
        std::fs::read(&png)
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n")
    );
    let pdf = directory.path().join("page.pdf");
    browser.print_to_pdf(&pdf).await.unwrap();
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
}

#[tokio::test]
async fn script_errors_missing_elements_and_failed_navigations_are_errors() {
    let mut browser = Browser::launch().await.unwrap();
    let thrown = browser
        .eval("(() => { throw new Error('planted') })()")
        .await;
    assert!(
        matches!(&thrown, Err(BrowserError::Script { description }) if description.contains("planted")),
        "{thrown:?}"
    );
    let missing = browser.click("#nothing-here").await;
    assert!(
        matches!(&missing, Err(BrowserError::NoSuchElement { selector }) if selector == "#nothing-here"),
        "{missing:?}"
    );
    // Port 9 (discard) on loopback: nothing listens, the navigation fails at once.
    let refused = browser.goto("http://127.0.0.1:9/").await;
    assert!(
        matches!(refused, Err(BrowserError::Navigation { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_missing_chromium_names_the_package_to_install() {
    let missing = Browser::launch_at(Path::new("/nonexistent/chromium")).await;
    let error = missing.unwrap_err();
    assert!(matches!(error, BrowserError::ChromiumMissing { .. }));
    let message = error.to_string();
    assert!(message.contains("/nonexistent/chromium"), "{message}");
    assert!(message.contains("`chromium` package"), "{message}");
}
