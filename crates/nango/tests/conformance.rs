//! The shared provider guarantees (`authport_testkit::conformance`), for Nango against the
//! sandbox. Nango-specific behaviour is tested in `sandbox.rs`.

use authport_testkit::conformance::{self, Delivery, Subject, WriteRequest};
use serde_json::{Value, json};

// Links this crate, so its `inventory::submit!` registers "nango".
use authport_nango as _;

/// A HubSpot OAuth record; each id is its own connection (the id is the connection id).
fn fixture(id: &str, secret: &str) -> Value {
    json!({"id": id, "owner": {"id": id.replace('/', "-"), "email": "ops@acme.example"},
           "service": "hubspot",
           "auth": {"type": "oauth2", "access_token": format!("{secret}-access"),
                    "refresh_token": format!("{secret}-refresh"),
                    "expires_at": "2030-01-01T00:00:00Z"},
           "settings": {"portal_id": "123"}})
}

/// Maps (authport cannot see an integration's auth mode), but Nango refuses it: API key
/// credentials for the OAuth integration `hubspot`.
fn refused(id: &str, secret: &str) -> Value {
    json!({"id": id, "owner": {"id": id.replace('/', "-")}, "service": "hubspot",
           "auth": {"type": "api_key", "api_key": secret}})
}

/// A failed refresh (`type: auth, operation: refresh, success: false`), signed as Nango signs
/// it (`X-Nango-Hmac-Sha256`, keyed with the webhook secret). Checked once the plugin declares
/// webhooks.
fn refresh_failed(env: &[(String, String)]) -> Delivery {
    let secret = env
        .iter()
        .find(|(name, _)| name == "NANGO_WEBHOOK_SECRET")
        .map(|(_, secret)| secret.as_str())
        .expect("the sandbox sets NANGO_WEBHOOK_SECRET");
    let body = json!({"type": "auth", "operation": "refresh", "success": false,
        "connectionId": "conformance", "providerConfigKey": "hubspot", "provider": "hubspot",
        "environment": "prod", "authMode": "OAUTH2",
        "error": {"type": "refresh_token_external_error",
                  "description": "The provider refused to refresh the token"}})
    .to_string()
    .into_bytes();
    let signature = authport_sandbox::nango::webhooks::sign(secret, &body);
    Delivery {
        headers: vec![("X-Nango-Hmac-Sha256".to_owned(), signature)],
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nango_keeps_the_shared_guarantees() {
    let sandbox = authport_testkit::sandbox().await;
    let nango = sandbox.nango.clone();
    let subject = Subject::new("nango", sandbox.target(), fixture)
        // The upsert that writes a record's connection.
        .write(WriteRequest::new("POST", "/connections"))
        .objects(move || nango.connection_count())
        .refused(refused)
        .webhook(refresh_failed);
    conformance::run_all(&subject).await;
}
