//! Reconnect links against the sandbox: a Connect session per row, `reconnect` for an imported
//! connection and a new session limited to the integration for a record never imported; the
//! link opens the (sandbox's) Connect UI, and the session token shows in no `Debug` or error.

use authport_core::{
    AuthImporter, CredentialRecord, DiscoveryKey, Owner, ReconnectLinks, TargetRef, find_provider,
};
use authport_testkit::{Sandbox, assert_no_canary, canary, record, sandbox};
use serde_json::{Map, Value, json};

// Links this crate, so its `inventory::submit!` registers "nango".
use authport_nango as _;

fn importer(sandbox: &Sandbox) -> Box<dyn AuthImporter> {
    sandbox.context().config(Value::Null).provider("nango")
}

fn links(importer: &dyn AuthImporter) -> &dyn ReconnectLinks {
    find_provider("nango")
        .expect("nango is registered")
        .links(importer)
        .expect("nango declares reconnect links")
}

fn hubspot(secret: &str) -> CredentialRecord {
    record(&json!({"id": "acme-42/hubspot",
        "owner": {"id": "acme-42", "name": "Ada", "email": "ops@acme.example"},
        "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": format!("{secret}-access"),
                 "refresh_token": format!("{secret}-refresh"), "expires_at": "2030-01-01T00:00:00Z"}}))
}

async fn discovered(importer: &dyn AuthImporter, record: &CredentialRecord) {
    importer
        .discover(&[DiscoveryKey::for_record(record, "nango")])
        .await
        .expect("discovery");
}

fn owner(record: &CredentialRecord) -> Owner {
    record.owner.clone()
}

/// The session token of a link (its `session_token` query value).
fn token_of(url: &str) -> String {
    let url = reqwest::Url::parse(url).expect("a URL");
    url.query_pairs()
        .find(|(key, _)| key == "session_token")
        .map(|(_, value)| value.into_owned())
        .expect("a session token")
}

#[tokio::test]
async fn an_imported_connection_gets_a_reconnect_session_on_its_own_connection() {
    let sandbox = sandbox().await;
    let importer = importer(&sandbox);
    let record = hubspot(&canary("links-imported"));
    discovered(importer.as_ref(), &record).await;
    let mapped = importer.map(&record).expect("maps");
    let outcome = importer
        .import(&record, &mapped, None)
        .await
        .expect("imports");
    let links = links(importer.as_ref());
    assert!(!links.one_link_per_owner());
    let ids = links.link_ids(&record, Some(&outcome.target)).await;
    let connection_id = outcome.target.get_str("connection_id").unwrap().to_owned();
    assert_eq!(
        Value::Object(ids.clone()),
        json!({"integration_id": "hubspot", "connection_id": connection_id})
    );

    let link = links.mint(&owner(&record), &[ids]).await.expect("mints");
    let sessions = sandbox.nango.sessions_created();
    assert_eq!(sessions.len(), 1, "one session per mint");
    let session = &sessions[0];
    assert_eq!(
        session.reconnect,
        Some(("hubspot".to_owned(), connection_id.clone()))
    );
    assert_eq!(session.allowed_integrations, vec!["hubspot".to_owned()]);
    // The link is the configured Connect UI (the sandbox's page) with the session's token.
    assert!(
        link.url.starts_with(&format!(
            "{}/_sandbox/nango/connect?session_token=",
            sandbox.base_url()
        )),
        "{link:?}"
    );
    assert_eq!(token_of(&link.url), session.token);
    assert!(link.note.contains("30 minutes"), "{}", link.note);
    let expires = chrono::DateTime::parse_from_rfc3339(&link.expires_at).expect("RFC 3339");
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(25) && left <= chrono::Duration::minutes(30));

    // The token is a secret: no Debug shows it, neither the link's nor the emulator's.
    for debug in [format!("{link:?}"), format!("{session:?}")] {
        assert!(!debug.contains(&session.token), "{debug}");
    }
    let page = reqwest::get(&link.url).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Nango Connect (sandbox)"), "{html}");
    assert!(html.contains("data-integration=\"hubspot\""), "{html}");
    assert!(html.contains(&connection_id), "{html}");
    assert!(
        !html.contains(&session.token),
        "the page never shows its token"
    );
    assert_no_canary("link", &format!("{link:?} {}", link.url));
}

#[tokio::test]
async fn a_record_never_imported_gets_a_new_session_limited_to_its_integration() {
    let sandbox = sandbox().await;
    let importer = importer(&sandbox);
    let record = hubspot(&canary("links-new"));
    discovered(importer.as_ref(), &record).await;
    let links = links(importer.as_ref());
    let ids = links.link_ids(&record, None).await;
    assert_eq!(
        Value::Object(ids.clone()),
        json!({"integration_id": "hubspot"})
    );

    let link = links.mint(&owner(&record), &[ids]).await.expect("mints");
    let sessions = sandbox.nango.sessions_created();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(session.reconnect, None);
    assert_eq!(session.allowed_integrations, vec!["hubspot".to_owned()]);
    // The owner as the tags an import sets, so the connection made is found like one.
    assert_eq!(session.tags["end_user_id"], "acme-42");
    assert_eq!(session.tags["organization_id"], "acme-42");
    assert_eq!(session.tags["end_user_email"], "ops@acme.example");
    assert_eq!(token_of(&link.url), session.token);
    assert_eq!(sandbox.nango.connection_count(), 0, "nothing imported");
}

#[tokio::test]
async fn refusals_name_no_token_and_mint_nothing() {
    let sandbox = sandbox().await;
    let importer = importer(&sandbox);
    let record = hubspot(&canary("links-refused"));
    discovered(importer.as_ref(), &record).await;
    let links = links(importer.as_ref());
    // A connection Nango does not have: its 400, as a rejection naming no secret.
    let gone = TargetRef(
        json!({"provider_config_key": "hubspot", "connection_id": "gone"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let ids = links.link_ids(&record, Some(&gone)).await;
    let error = links
        .mint(&owner(&record), &[ids])
        .await
        .expect_err("refused");
    assert_eq!(error.kind().as_str(), "rejected", "{error}");
    assert!(error.message().contains("does not exist"), "{error}");
    // A row whose integration is unknown is refused before any call.
    let error = links
        .mint(&owner(&record), &[Map::new()])
        .await
        .expect_err("refused");
    assert!(error.message().contains("integration"), "{error}");
    assert!(sandbox.nango.sessions_created().is_empty());
    // A token minted afterwards never shows in those errors or the importer's Debug.
    let ids = links.link_ids(&record, None).await;
    let link = links.mint(&owner(&record), &[ids]).await.expect("mints");
    let token = token_of(&link.url);
    assert!(!format!("{importer:?} {link:?}").contains(&token));
    assert_no_canary("error", &error.to_string());
}

#[tokio::test]
async fn the_connect_url_is_configurable_and_checked() {
    let sandbox = sandbox().await;
    // The sandbox points NANGO_CONNECT_URL at its page; without it, `[nango] connect_url`.
    let env: Vec<(String, String)> = sandbox
        .env()
        .into_iter()
        .filter(|(name, _)| name != "NANGO_CONNECT_URL")
        .collect();
    let built = |connect_url: &str| {
        authport_testkit::context()
            .env(env.clone())
            .config(json!({ "connect_url": connect_url }))
            .try_provider("nango")
    };
    // Plain HTTP off loopback is refused, naming the setting, never the URL.
    let error = built("http://connect.example.com").expect_err("refused");
    assert!(error.to_string().contains("[nango] connect_url"), "{error}");
    assert!(
        !error.to_string().contains("connect.example.com"),
        "{error}"
    );
    let importer = built("https://connect.example.com/ui").expect("builds");
    let record = hubspot(&canary("links-config"));
    discovered(importer.as_ref(), &record).await;
    let links = links(importer.as_ref());
    let ids = links.link_ids(&record, None).await;
    let link = links.mint(&owner(&record), &[ids]).await.expect("mints");
    assert!(
        link.url
            .starts_with("https://connect.example.com/ui?session_token="),
        "{link:?}"
    );
}

#[tokio::test]
async fn a_link_for_a_record_never_imported_needs_no_prior_discovery() {
    let sandbox = sandbox().await;
    let importer = importer(&sandbox);
    let record = hubspot(&canary("links-undiscovered"));
    // No `discover` first (a broker mints on a click): one read of the integrations.
    let ids = links(importer.as_ref()).link_ids(&record, None).await;
    assert_eq!(Value::Object(ids), json!({"integration_id": "hubspot"}));
}
