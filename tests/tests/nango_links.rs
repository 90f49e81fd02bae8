//! `authport reconnect --links --provider nango` end to end (issue 20): an imported connection
//! Nango can no longer refresh gets a Connect session that reconnects it; a record that never
//! imported gets a new session limited to its integration. Each link opens the sandbox's
//! Connect page; one session is minted per row and a re-run mints none; no link reaches the
//! terminal and no secret the worklist. Through the broker (`--links --broker`, `links
//! serve`): a GET mints nothing, the click mints exactly one session and lands on that page.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// `u1`'s HubSpot imports; `u2`'s Greenhouse holds an OAuth token where the integration takes
/// an API key, so it never imports (only the end user can fix that).
fn input_lines() -> Vec<String> {
    let owner = |id: &str| json!({"id": id, "name": "Ada", "email": format!("{id}@example.com")});
    vec![
        json!({"id": "u1/hubspot", "owner": owner("u1"), "service": "hubspot",
               "auth": {"type": "oauth2", "access_token": canary("nango-links-hubspot"),
                        "refresh_token": canary("nango-links-hubspot-refresh"),
                        "expires_at": "2030-01-01T00:00:00Z"}})
        .to_string(),
        json!({"id": "u2/greenhouse", "owner": owner("u2"), "service": "greenhouse",
               "auth": {"type": "oauth2", "access_token": canary("nango-links-greenhouse"),
                        "expires_at": "2030-01-01T00:00:00Z"}})
        .to_string(),
    ]
}

fn row<'a>(rows: &'a [Value], service: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["service"] == service)
        .unwrap_or_else(|| panic!("no {service} row: {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_links_are_connect_sessions_for_imported_and_never_imported_records() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    // The input holds the records' secrets: outside the directory checked for leaks.
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &input_lines());
    let run = import_with_state("nango", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 1, "{:?}\n{}", run.report, run.out.stderr);
    let mut imported = statuses(&run.report);
    imported.sort();
    assert_eq!(
        imported,
        [
            ("u1/hubspot".to_owned(), "imported".to_owned()),
            ("u2/greenhouse".to_owned(), "failed".to_owned())
        ],
        "{:?}",
        run.report
    );
    let [(hubspot_key, hubspot_connection)] = sandbox.nango.connection_keys().try_into().unwrap();
    sandbox
        .nango
        .exhaust_refresh(&hubspot_key, &hubspot_connection);

    let args = [
        "reconnect",
        "--provider",
        "nango",
        "--state",
        "state.db",
        "--input",
        input.to_str().unwrap(),
        "--import-report",
        "report.jsonl",
        "--links",
        "--output",
        "worklist.jsonl",
    ];
    let out = authport(dir.path(), &args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = read_lines(&dir.path().join("worklist.jsonl"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let sessions = sandbox.nango.sessions_created();
    assert_eq!(sessions.len(), 2, "one session per row: {sessions:?}");

    // The imported connection: a reconnect session on it.
    let hubspot = row(&rows, "hubspot");
    assert_eq!(hubspot["kind"], "end_user", "{hubspot}");
    let link = hubspot["link"].as_str().expect("a link");
    let session = sessions
        .iter()
        .find(|s| link.ends_with(&format!("session_token={}", s.token)))
        .expect("the link carries a minted session's token");
    assert_eq!(
        session.reconnect,
        Some((hubspot_key.clone(), hubspot_connection.clone()))
    );
    assert!(hubspot["link_expires_at"].is_string(), "{hubspot}");
    assert!(
        hubspot["link_note"]
            .as_str()
            .unwrap()
            .contains("30 minutes")
    );
    let page = reqwest::get(link).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Nango Connect (sandbox)")
    );

    // Never imported: a new session limited to its integration, the owner as tags.
    let greenhouse = row(&rows, "greenhouse");
    assert_eq!(greenhouse["status"], "not_imported", "{greenhouse}");
    let link = greenhouse["link"].as_str().expect("a link");
    let session = sessions
        .iter()
        .find(|s| link.ends_with(&format!("session_token={}", s.token)))
        .expect("the link carries a minted session's token");
    assert_eq!(session.reconnect, None);
    assert_eq!(session.allowed_integrations, vec!["greenhouse".to_owned()]);
    assert_eq!(session.tags["end_user_id"], "u2");
    let page = reqwest::get(link).await.unwrap().text().await.unwrap();
    assert!(page.contains("data-integration=\"greenhouse\""), "{page}");

    // No link on the terminal, no secret anywhere; a re-run mints nothing new.
    for session in &sessions {
        assert!(!out.printed().contains(&session.token), "{}", out.printed());
    }
    assert_no_canary("reconnect output", &out.printed());
    assert_no_canary_in_dir(dir.path());
    let again = authport(dir.path(), &args, &env).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(sandbox.nango.sessions_created().len(), 2);
}

/// The person's visit: the page (GET), then Reconnect (POST of its form, CSRF token
/// included). Returns the redirect's target.
async fn press_reconnect(link: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(link).send().await.unwrap().text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|after| after.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field in {page}"));
    let answer = client
        .post(link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_links_mint_one_nango_session_on_the_click_and_none_on_a_scanners_get() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &input_lines());
    let run = import_with_state("nango", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 1, "{:?}\n{}", run.report, run.out.stderr);
    let [(hubspot_key, hubspot_connection)] = sandbox.nango.connection_keys().try_into().unwrap();
    sandbox
        .nango
        .exhaust_refresh(&hubspot_key, &hubspot_connection);

    let broker = Listening::spawn(
        dir.path(),
        &["-vv", "links", "serve", "--provider", "nango"],
        &env,
    )
    .await;
    let args = [
        "reconnect",
        "--provider",
        "nango",
        "--state",
        "state.db",
        "--input",
        input.to_str().unwrap(),
        "--import-report",
        "report.jsonl",
        "--links",
        "--broker",
        &broker.url,
        "--output",
        "worklist.jsonl",
    ];
    let out = authport(dir.path(), &args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = read_lines(&dir.path().join("worklist.jsonl"));
    assert!(
        sandbox.nango.sessions_created().is_empty(),
        "nothing minted"
    );

    // A scanner's GET mints nothing; the person's click mints one reconnect session.
    let link = row(&rows, "hubspot")["link"]
        .as_str()
        .expect("a broker link");
    assert!(link.starts_with(&format!("{}/r/", broker.url)), "{link}");
    assert_eq!(reqwest::get(link).await.unwrap().status(), 200);
    assert!(
        sandbox.nango.sessions_created().is_empty(),
        "a GET mints nothing"
    );
    let location = press_reconnect(link).await;
    let sessions = sandbox.nango.sessions_created();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(
        sessions[0].reconnect,
        Some((hubspot_key.clone(), hubspot_connection.clone()))
    );
    assert!(
        location.starts_with(&format!(
            "{}/_sandbox/nango/connect?session_token=",
            sandbox.url()
        )),
        "the sandbox's Connect page"
    );
    let page = reqwest::get(&location).await.unwrap().text().await.unwrap();
    assert!(page.contains("Nango Connect (sandbox)"), "{page}");

    // The record never imported: a new session limited to its integration.
    let link = row(&rows, "greenhouse")["link"]
        .as_str()
        .expect("a broker link");
    press_reconnect(link).await;
    let sessions = sandbox.nango.sessions_created();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions[1].reconnect, None);
    assert_eq!(
        sessions[1].allowed_integrations,
        vec!["greenhouse".to_owned()]
    );

    // No session token in the broker's log, the terminal or the state.
    let (_, logged) = broker.stop().await;
    for session in &sessions {
        assert!(!logged.contains(&session.token), "{logged}");
        assert!(!out.printed().contains(&session.token));
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for session in &sessions {
            let token = session.token.as_bytes();
            let found = bytes.windows(token.len()).any(|window| window == token);
            assert!(!found, "a session token in {}", path.display());
        }
    }
    assert_no_canary("broker log", &logged);
    assert_no_canary_in_dir(dir.path());
}
