//! The shared provider guarantees (`authport_testkit::conformance`), for Nango against the
//! sandbox. Nango-specific behaviour is tested in `sandbox.rs`.

use authport_testkit::conformance::{self, Subject, WriteRequest};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nango_keeps_the_shared_guarantees() {
    let sandbox = authport_testkit::sandbox().await;
    let nango = sandbox.nango.clone();
    let subject = Subject::new("nango", sandbox.target(), fixture)
        // The upsert that writes a record's connection.
        .write(WriteRequest::new("POST", "/connections"))
        .objects(move || nango.connection_count())
        .refused(refused);
    conformance::run_all(&subject).await;
}
