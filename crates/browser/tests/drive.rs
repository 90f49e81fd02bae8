//! The driver against the real Chromium of `.ci/run`: navigation, evaluation, a click that
//! submits a form, screenshots and PDFs, and the error when Chromium is missing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use authport_browser::{Browser, BrowserError};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

    browser.emulate_print(true).await.unwrap();
    assert_eq!(
        browser.eval("matchMedia('print').matches").await.unwrap(),
        json!(true)
    );
    browser.emulate_print(false).await.unwrap();
    assert_eq!(
        browser.eval("matchMedia('print').matches").await.unwrap(),
        json!(false)
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
    assert_eq!(
        browser.eval("matchMedia('print').matches").await.unwrap(),
        json!(false),
        "printing leaves the page laid out for the screen"
    );
}

/// A loopback server shaped like the broker: a page with a POST form, the POST's 303 to a
/// landing page, and a 410 page. It counts the POSTs it answers.
async fn serve_broker_like() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let posts = Arc::new(AtomicUsize::new(0));
    let counted = posts.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            // One task per connection: Chromium may open one it never uses.
            tokio::spawn(answer(stream, counted.clone()));
        }
    });
    (address, posts)
}

async fn answer(mut stream: TcpStream, posts: Arc<AtomicUsize>) {
    let mut request = Vec::new();
    let mut buffer = [0; 4096];
    let head_end = loop {
        let read = stream.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            return;
        }
        request.extend_from_slice(&buffer[..read]);
        if let Some(end) = request.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let content_length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|value| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while request.len() < head_end + content_length {
        let read = stream.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let (status, extra_header, body) = match request_line.split(' ').take(2).collect::<Vec<_>>()[..]
    {
        ["GET", "/link"] => (
            "200 OK",
            "",
            r#"<!DOCTYPE html><title>Link</title><form method="post" action="/link"><button type="submit">Reconnect</button></form>"#,
        ),
        ["POST", "/link"] => {
            posts.fetch_add(1, Ordering::SeqCst);
            ("303 See Other", "Location: /landed\r\n", "")
        }
        ["GET", "/landed"] => (
            "200 OK",
            "",
            "<!DOCTYPE html><title>Landed</title><h1>Landed</h1>",
        ),
        ["GET", "/gone"] => (
            "410 Gone",
            "",
            "<!DOCTYPE html><title>Gone</title><h1>This link has expired</h1>",
        ),
        _ => (
            "404 Not Found",
            "",
            "<!DOCTYPE html><title>Not found</title>",
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra_header}Content-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

#[tokio::test]
async fn a_posted_form_follows_the_303_and_statuses_are_readable() {
    let (address, posts) = serve_broker_like().await;
    let mut browser = Browser::launch().await.unwrap();

    browser.goto(&format!("{address}/link")).await.unwrap();
    assert_eq!(browser.response_status().await.unwrap(), 200);
    assert_eq!(
        posts.load(Ordering::SeqCst),
        0,
        "opening the page posts nothing"
    );

    browser.click("form button").await.unwrap();
    assert_eq!(
        browser.current_url().await.unwrap(),
        format!("{address}/landed")
    );
    assert_eq!(
        browser.eval("document.title").await.unwrap(),
        json!("Landed")
    );
    assert_eq!(posts.load(Ordering::SeqCst), 1);

    browser.goto(&format!("{address}/gone")).await.unwrap();
    assert_eq!(browser.response_status().await.unwrap(), 410);
    assert_eq!(browser.text("h1").await.unwrap(), "This link has expired");
    let missing = browser.text("h2").await;
    assert!(
        matches!(&missing, Err(BrowserError::NoSuchElement { selector }) if selector == "h2"),
        "{missing:?}"
    );

    // A move within the page loads nothing and does not wait for a load event.
    browser.goto(&format!("{address}/gone#top")).await.unwrap();
    assert_eq!(
        browser.current_url().await.unwrap(),
        format!("{address}/gone#top")
    );
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
