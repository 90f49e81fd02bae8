//! Durable reconnect links (issue 20 items 1 and 2), the real binary against the sandbox:
//! `reconnect --links --broker` writes one stable link per end-user row and mints nothing;
//! `links serve` shows the page on GET (a mail scanner's, then the person's) without minting,
//! mints exactly one Vault session on the POST of the page's form and redirects to it; a
//! tampered link is 404, an expired one 410, a revoked one 410, the vendor's refusal 502; no
//! canary secret, token or vendor URL reaches a log line or the state files. Apideck (Vault
//! sessions) and Tray (single-use auth-only dialog codes).

use std::path::Path;

use authport_core::Health;
use authport_links::{LinkClaims, LinkKey, sign};
use serde_json::{Value, json};

use crate::common;

use common::*;

/// `u1`'s HubSpot record holds an API key for an OAuth connector: the end user must connect
/// again (an `end_user` row). `u1`'s Slack has no connector: a `config_fix` row, no link.
/// `u2`'s Xero imports. The owner's name needs escaping on the page.
fn input_lines() -> Vec<String> {
    let owner = |id: &str| json!({"id": id, "name": "Ada <Lovelace> & Co", "email": format!("{id}@example.com")});
    vec![
        json!({"id": "u1/hubspot", "owner": owner("u1"), "service": "hubspot",
               "auth": {"type": "api_key", "api_key": canary("broker-hubspot")},
               "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}})
        .to_string(),
        json!({"id": "u1/slack", "owner": owner("u1"), "service": "slack",
               "auth": {"type": "oauth2", "access_token": canary("broker-slack"),
                        "expires_at": "2030-01-01T00:00:00Z"}})
        .to_string(),
        json!({"id": "u2/xero", "owner": owner("u2"), "service": "xero",
               "auth": {"type": "oauth2", "access_token": canary("broker-xero"),
                        "refresh_token": canary("broker-xero-refresh"),
                        "expires_at": "2030-01-01T00:00:00Z"},
               "targets": {"apideck": {"unified_api": "accounting", "service_id": "xero"}}})
        .to_string(),
    ]
}

/// `authport links serve` for `provider`, on a free port.
async fn serve(provider: &str, dir: &Path, env: &[(String, String)]) -> Listening {
    Listening::spawn(dir, &["-vv", "links", "serve", "--provider", provider], env).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let answer = client().get(url).send().await.unwrap();
    let status = answer.status().as_u16();
    assert_eq!(
        answer.headers()["cache-control"],
        "no-store",
        "every answer says no-store"
    );
    (status, answer.text().await.unwrap())
}

/// POSTs the form; returns the status and the `Location` header.
async fn post(url: &str, csrf: &str) -> (u16, Option<String>) {
    let answer = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    let location = answer
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (answer.status().as_u16(), location)
}

/// The CSRF token in the page's form.
fn csrf_of(page: &str) -> String {
    let after = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no csrf field in {page}"));
    after.split('"').next().unwrap().to_owned()
}

fn rows_of(dir: &Path, name: &str) -> Vec<Value> {
    read_lines(&dir.join(name))
}

fn link_of(rows: &[Value], service: &str) -> Option<String> {
    let row = rows
        .iter()
        .find(|r| r["service"] == service)
        .unwrap_or_else(|| panic!("no {service} row: {rows:?}"));
    row["link"].as_str().map(str::to_owned)
}

/// The signing key, read from the links store as an attacker with the state file could.
fn stored_key(dir: &Path) -> LinkKey {
    let db = rusqlite::Connection::open(dir.join("state.db.links")).unwrap();
    let bytes: Vec<u8> = db
        .query_row("SELECT key FROM link_key", [], |row| row.get(0))
        .unwrap();
    LinkKey::from_bytes(bytes.try_into().unwrap())
}

fn journal(dir: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(dir.join("state.db.links")).unwrap();
    let mut statement = db.prepare("SELECT what FROM journal ORDER BY seq").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The bytes of every state file (`state.db`, its `.links` and `.events` stores and their
/// WAL files): never a token or a vendor URL.
fn assert_not_in_state_files(dir: &Path, what: &str, needle: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("state.db") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes
            .windows(needle.len())
            .any(|window| window == needle.as_bytes());
        assert!(!found, "{what} found in {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanner_then_the_person_mint_exactly_one_session_and_refusals_hold() {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &input_lines());
    let run = import_with_state("apideck", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 1, "{:?}\n{}", run.report, run.out.stderr);
    let input = input.to_str().unwrap();
    let mut printed = vec![run.out.printed()];

    let served = serve("apideck", dir.path(), &env).await;
    let reconnect = |output: &'static str, extra: &'static [&'static str]| {
        let mut args = vec!["reconnect", "-p", "apideck", "--state", "state.db"];
        args.extend(["--input", input, "--links", "--broker", &served.url]);
        args.extend(["--output", output]);
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let env = env.clone();
        let dir = dir.path().to_owned();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            authport(&dir, &args, &env).await
        }
    };
    // Two runs, JSON Lines and CSV: the same link, nothing minted at the vendor.
    let first = reconnect("first.jsonl", &[]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("1 broker links written"),
        "{}",
        first.stderr
    );
    let again = reconnect("again.csv", &["--format", "csv", "--link-ttl", "1d"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    printed.extend([first.printed(), again.printed()]);
    let rows = rows_of(dir.path(), "first.jsonl");
    let link = link_of(&rows, "hubspot").expect("a broker link for the end user");
    assert!(
        link.starts_with(&format!("{}/r/", served.url)),
        "the link is under {}",
        served.url
    );
    assert_eq!(
        link_of(&rows, "slack"),
        None,
        "a configuration fix gets no link"
    );
    let hubspot = rows.iter().find(|r| r["service"] == "hubspot").unwrap();
    assert_eq!(
        hubspot["link_note"],
        "opens a page; the vendor's link is made when the person presses Reconnect"
    );
    assert!(hubspot["link_expires_at"].is_string(), "{hubspot}");
    let csv = std::fs::read_to_string(dir.path().join("again.csv")).unwrap();
    assert!(csv.contains(&link), "a re-run gives the same link");
    let token = link.rsplit('/').next().unwrap().to_owned();

    // The scanner's GET, then the person's: the page, nothing minted.
    for _ in 0..2 {
        let (status, page) = get(&link).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Ada &lt;Lovelace&gt; &amp; Co"), "{page}");
        assert!(page.contains("hubspot"), "{page}");
    }
    assert_eq!(journal(dir.path()), ["shown", "shown"]);
    let (status, page) = get(&link).await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);

    // The person presses Reconnect: one Vault session, the first the sandbox ever made.
    let (status, location) = post(&link, &csrf).await;
    assert_eq!(status, 303);
    let location = location.expect("a redirect to the vendor");
    let session_prefix = format!("{}/session/sandbox-session-1-", sandbox.url());
    assert!(location.starts_with(&session_prefix), "a first session");
    let session: Value = reqwest::get(&location).await.unwrap().json().await.unwrap();
    assert_eq!(session["consumer_id"], "u1");
    assert_eq!(session["unified_apis"], json!(["crm"]));
    assert_eq!(journal(dir.path()), ["shown", "shown", "shown", "minted"]);

    // A tampered token: 404, whatever was changed.
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (status, _) = get(&format!("{}/r/{tampered}", served.url)).await;
    assert_eq!(status, 404);
    let (status, _) = post(&format!("{}/r/{tampered}", served.url), &csrf).await;
    assert_eq!(status, 404);

    // An expired link, signed with the stored key: 410, and nothing minted.
    let expired = LinkClaims {
        provider: "apideck".into(),
        owner_id: "u1".into(),
        service: "hubspot".into(),
        reason: Health::NotImported,
        expires_at: chrono::Utc::now().timestamp() - 60,
    };
    let expired = format!(
        "{}/r/{}",
        served.url,
        sign(&stored_key(dir.path()), &expired)
    );
    let (status, page) = get(&expired).await;
    assert_eq!(status, 410, "{page}");

    // Revoked while the broker runs: 410 from the next request on.
    let revoke = authport(
        dir.path(),
        &["links", "revoke", "--state", "state.db", "--owner", "u1"],
        &env,
    )
    .await;
    assert_eq!(revoke.code, 0, "{}", revoke.stderr);
    assert!(
        revoke.stdout.contains("1 issued links covered"),
        "{}",
        revoke.stdout
    );
    printed.push(revoke.printed());
    let (status, _) = get(&link).await;
    assert_eq!(status, 410);
    let (status, redirect) = post(&link, &csrf).await;
    assert_eq!((status, redirect), (410, None));
    // A re-run writes no dead link for a revoked owner, and says why.
    let after = reconnect("after.jsonl", &[]).await;
    assert_eq!(after.code, 0, "{}", after.stderr);
    printed.push(after.printed());
    let rows = rows_of(dir.path(), "after.jsonl");
    assert_eq!(link_of(&rows, "hubspot"), None);
    let hubspot = rows.iter().find(|r| r["service"] == "hubspot").unwrap();
    assert!(
        hubspot["link_note"].as_str().unwrap().contains("revoked"),
        "{hubspot}"
    );

    let (code, logged) = served.stop().await;
    assert_eq!(code, 0, "{logged}");
    printed.push(logged);
    let vendor_token = location_token(&location);
    for text in &printed {
        assert_no_canary("broker run", text);
        assert!(!text.contains(&token), "a link token was printed: {text}");
        assert!(
            !text.contains(&vendor_token),
            "a vendor URL was printed: {text}"
        );
    }
    assert_not_in_state_files(dir.path(), "a link token", &token);
    assert_not_in_state_files(dir.path(), "a vendor session", &vendor_token);
    assert_no_canary_in_dir(dir.path());
}

/// The session token in the vendor URL (what makes it a capability).
fn location_token(location: &str) -> String {
    location.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_flags_need_links_and_the_ttl_needs_the_broker() {
    let dir = scratch();
    for args in [
        &["--broker", "https://links.example.com"][..],
        &["--links", "--link-ttl", "14d"][..],
        &["--links", "--broker", "http://links.example.com"][..],
        &[
            "--links",
            "--broker",
            "https://links.example.com",
            "--link-ttl",
            "2w",
        ][..],
    ] {
        let mut all = vec!["reconnect", "-p", "apideck", "--state", "state.db"];
        all.extend(["--input", "in.jsonl", "--output", "w.jsonl"]);
        all.extend_from_slice(args);
        let out = authport(dir.path(), &all, &[]).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    }
    // `links`: no state file, a public address without the flag, a revocation for nobody.
    let serve = [
        "links", "serve", "-p", "apideck", "--state", "state.db", "--listen",
    ];
    let out = authport(dir.path(), &[&serve[..], &["127.0.0.1:0"]].concat(), &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    std::fs::write(dir.path().join("state.db"), b"").unwrap();
    let out = authport(dir.path(), &[&serve[..], &["0.0.0.0:0"]].concat(), &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--allow-public-listen"),
        "{}",
        out.stderr
    );
    let revoke = [
        "links", "revoke", "--state", "state.db", "--owner", "nobody",
    ];
    let out = authport(dir.path(), &revoke, &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("give --provider"), "{}", out.stderr);
}

/// Tray: `t1` imports; `t3`'s API key cannot go into the OAuth environment, so the end user
/// must connect again.
fn tray_lines() -> Vec<String> {
    vec![
        json!({"id": "t1/hubspot", "owner": {"id": "t1", "name": "T1"}, "service": "hubspot",
               "auth": {"type": "oauth2", "access_token": canary("broker-t1-access"),
                        "refresh_token": canary("broker-t1-refresh"),
                        "expires_at": "2030-01-01T00:00:00Z"},
               "targets": {"tray": {"service_environment": "acme hubspot oauth"}}})
        .to_string(),
        json!({"id": "t3/hubspot", "owner": {"id": "t3", "name": "Grace"}, "service": "hubspot",
               "auth": {"type": "api_key", "api_key": canary("broker-t3-key")}})
        .to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tray_dialog_codes_are_minted_on_the_post_only_and_a_refusal_is_a_502() {
    let sandbox = sandbox().await;
    let with_dialog = sandbox.provider_env();
    let env: Vec<(String, String)> = with_dialog
        .iter()
        .filter(|(name, _)| name != "TRAY_EMBEDDED_ID")
        .cloned()
        .collect();
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &tray_lines());
    let run = import_with_state("tray", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stderr);
    let input = input.to_str().unwrap();
    let mut printed = vec![run.out.printed()];

    // Without the Embedded ID Tray's links cannot be minted: the page still shows, the POST
    // is a 502 that names no secret, and the refusal is journalled.
    let refusing = serve("tray", dir.path(), &env).await;
    let broker = refusing.url.clone();
    let args = [
        "reconnect",
        "-p",
        "tray",
        "--state",
        "state.db",
        "--input",
        input,
        "--links",
        "--broker",
        &broker,
        "--output",
        "worklist.jsonl",
    ];
    let out = authport(dir.path(), &args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    printed.push(out.printed());
    let rows = rows_of(dir.path(), "worklist.jsonl");
    assert_eq!(rows.len(), 1, "one end-user row");
    let link = link_of(&rows, "hubspot").expect("a broker link");
    let token = link.rsplit('/').next().unwrap().to_owned();
    let (status, page) = get(&link).await;
    assert_eq!(status, 200);
    assert!(page.contains("Grace") && page.contains("hubspot"), "{page}");
    let (status, location) = post(&link, &csrf_of(&page)).await;
    assert_eq!(status, 502);
    assert!(location.is_none(), "no redirect");
    assert_eq!(sandbox.tray.auth_codes_minted(), 0);
    let (code, logged) = refusing.stop().await;
    assert_eq!(code, 0, "{logged}");
    printed.push(logged);

    // With it: GETs mint nothing, the POST mints one single-use code and redirects to the
    // dialog, which opens once.
    let served = serve("tray", dir.path(), &with_dialog).await;
    let link = link.replacen(&broker, &served.url, 1);
    for _ in 0..2 {
        let (status, _) = get(&link).await;
        assert_eq!(status, 200);
    }
    assert_eq!(sandbox.tray.auth_codes_minted(), 0, "a GET never mints");
    let (_, page) = get(&link).await;
    let (status, location) = post(&link, &csrf_of(&page)).await;
    assert_eq!(status, 303);
    let location = location.expect("a redirect to the dialog");
    assert!(
        location.starts_with(&format!("{}/external/auth/create/", sandbox.base_url())),
        "the auth-only dialog"
    );
    assert_eq!(sandbox.tray.auth_codes_minted(), 1);
    assert_eq!(
        reqwest::get(&location).await.unwrap().status().as_u16(),
        200
    );
    assert_eq!(
        journal(dir.path()),
        ["shown", "refused", "shown", "shown", "shown", "minted"]
    );
    let (code, logged) = served.stop().await;
    assert_eq!(code, 0, "{logged}");
    printed.push(logged);
    let code_param = location.split("code=").nth(1).unwrap();
    let code_param = code_param.split('&').next().unwrap().to_owned();
    for text in &printed {
        assert_no_canary("tray broker run", text);
        assert!(!text.contains(&token), "a link token was printed: {text}");
        assert!(
            !text.contains(&code_param),
            "a dialog code was printed: {text}"
        );
    }
    assert_not_in_state_files(dir.path(), "a link token", &token);
    assert_not_in_state_files(dir.path(), "a dialog code", &code_param);
    assert_no_canary_in_dir(dir.path());
}
