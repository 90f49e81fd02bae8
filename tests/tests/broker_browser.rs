//! A durable reconnect link in a real browser (issue 20 item 4): the real binary, the sandbox's
//! Nango and Debian's headless Chromium. `links serve` runs, `reconnect --links --broker` writes
//! a link to it; opening the link (twice: a mail scanner, then the person) shows the owner and
//! the service and mints nothing; pressing Reconnect lands on the sandbox's Connect page with
//! exactly one session minted; an expired link (signed with the stored key) shows the 410 page,
//! a tampered one the 404 page, and neither mints.
//! `AUTHPORT_SCREENSHOTS=1` also writes docs/broker-link.png (the README's picture).

use std::path::{Path, PathBuf};

use authport_browser::Browser;
use authport_core::Health;
use authport_links::{LinkClaims, LinkKey, sign};
use serde_json::json;

use crate::common;

use common::*;

fn screenshot_path() -> Option<PathBuf> {
    (std::env::var("AUTHPORT_SCREENSHOTS").as_deref() == Ok("1"))
        .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/broker-link.png"))
}

/// `u1`'s HubSpot imports (Nango then cannot refresh it: the end user must connect again).
/// The owner's name needs escaping.
fn input_lines() -> Vec<String> {
    vec![
        json!({"id": "u1/hubspot",
               "owner": {"id": "u1", "name": "Ada <Lovelace> & Co", "email": "u1@example.com"},
               "service": "hubspot",
               "auth": {"type": "oauth2", "access_token": canary("browser-hubspot"),
                        "refresh_token": canary("browser-hubspot-refresh"),
                        "expires_at": "2030-01-01T00:00:00Z"}})
        .to_string(),
    ]
}

/// The signing key, read from the links store as someone with the state files could.
fn stored_key(dir: &Path) -> LinkKey {
    let db = rusqlite::Connection::open(dir.join("state.db.links")).unwrap();
    let bytes: Vec<u8> = db
        .query_row("SELECT key FROM link_key", [], |row| row.get(0))
        .unwrap();
    LinkKey::from_bytes(bytes.try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_link_opens_in_a_browser_and_its_button_lands_on_the_vendor_page() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &input_lines());
    let run = import_with_state("nango", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{:?}\n{}", run.report, run.out.stderr);
    let [(key, connection)] = sandbox.nango.connection_keys().try_into().unwrap();
    sandbox.nango.exhaust_refresh(&key, &connection);

    let served =
        Listening::spawn(dir.path(), &["links", "serve", "--provider", "nango"], &env).await;
    let broker = served.url.clone();
    let reconnect = authport(
        dir.path(),
        &[
            "reconnect",
            "-p",
            "nango",
            "--state",
            "state.db",
            "--input",
            input.to_str().unwrap(),
            "--links",
            "--broker",
            &broker,
            "--output",
            "worklist.jsonl",
        ],
        &env,
    )
    .await;
    assert_eq!(reconnect.code, 0, "{}", reconnect.stderr);
    let rows = read_lines(&dir.path().join("worklist.jsonl"));
    let link = rows[0]["link"].as_str().expect("a broker link").to_owned();
    assert!(link.starts_with(&format!("{broker}/r/")), "{link}");
    assert!(
        sandbox.nango.sessions_created().is_empty(),
        "nothing minted"
    );

    let mut browser = Browser::launch().await.unwrap();
    // Opened twice (a mail scanner, then the person): the page, and nothing minted.
    for _ in 0..2 {
        browser.goto(&link).await.unwrap();
        assert_eq!(browser.response_status().await.unwrap(), 200);
    }
    let body = browser.text("body").await.unwrap();
    assert!(body.contains("Ada <Lovelace> & Co"), "{body}");
    assert!(body.contains("hubspot"), "{body}");
    assert_eq!(
        browser.text("form button").await.unwrap().trim(),
        "Reconnect"
    );
    assert!(
        sandbox.nango.sessions_created().is_empty(),
        "a GET mints nothing"
    );
    if let Some(path) = screenshot_path() {
        browser.set_viewport(800, 600).await.unwrap();
        browser.screenshot_png(&path).await.unwrap();
    }

    // Reconnect: the POST mints one Connect session for the connection, and the 303 lands on
    // the sandbox's Connect page.
    browser.click("form button").await.unwrap();
    let landed = browser.current_url().await.unwrap();
    assert!(
        landed.starts_with(&format!(
            "{}/_sandbox/nango/connect?session_token=",
            sandbox.url()
        )),
        "landed on the vendor's page"
    );
    assert_eq!(browser.response_status().await.unwrap(), 200);
    let vendor_page = browser.text("body").await.unwrap();
    assert!(
        vendor_page.contains("Nango Connect (sandbox)"),
        "{vendor_page}"
    );
    let sessions = sandbox.nango.sessions_created();
    assert_eq!(sessions.len(), 1, "exactly one session: {sessions:?}");
    assert_eq!(sessions[0].reconnect, Some((key, connection)));

    // Expired, signed with the stored key: the 410 page.
    let expired = LinkClaims {
        provider: "nango".into(),
        owner_id: "u1".into(),
        service: "hubspot".into(),
        reason: Health::NotImported,
        expires_at: chrono::Utc::now().timestamp() - 60,
    };
    let expired = format!("{broker}/r/{}", sign(&stored_key(dir.path()), &expired));
    browser.goto(&expired).await.unwrap();
    assert_eq!(browser.response_status().await.unwrap(), 410);
    let body = browser.text("body").await.unwrap();
    assert!(
        !body.contains("Ada"),
        "an expired page names nobody: {body}"
    );
    assert_eq!(browser.eval("document.forms.length").await.unwrap(), 0);

    // Tampered (one character of the signature changed): the 404 page, which says nothing.
    let mut tampered = link.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    browser
        .goto(&String::from_utf8(tampered).unwrap())
        .await
        .unwrap();
    assert_eq!(browser.response_status().await.unwrap(), 404);
    let body = browser.text("body").await.unwrap();
    assert!(!body.contains("Ada") && !body.contains("hubspot"), "{body}");
    assert_eq!(browser.eval("document.forms.length").await.unwrap(), 0);
    assert_eq!(
        sandbox.nango.sessions_created().len(),
        1,
        "refusals mint nothing"
    );
}
