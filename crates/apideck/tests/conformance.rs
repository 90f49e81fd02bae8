//! The shared provider guarantees (`authport_testkit::conformance`), for Apideck against the
//! sandbox. Apideck-specific behaviour is tested in `sandbox.rs`, `errors.rs` and `requests.rs`.

use authport_testkit::conformance::{self, Delivery, Subject, WriteRequest};
use serde_json::{Value, json};

// Links this crate, so its `inventory::submit!` registers "apideck".
use authport_apideck as _;

/// A Greenhouse API key record. A Vault connection is (consumer, connector), so each id gets
/// its own consumer.
fn fixture(id: &str, secret: &str) -> Value {
    json!({"id": id, "owner": {"id": id.replace('/', "-")}, "service": "greenhouse",
           "auth": {"type": "api_key", "api_key": secret},
           "targets": {"apideck": {"unified_api": "ats", "service_id": "greenhouse"}}})
}

/// A failed token refresh, signed as Vault signs it (HMAC-SHA256 keyed with the API key).
fn refresh_failed(env: &[(String, String)]) -> Delivery {
    let key = env
        .iter()
        .find(|(name, _)| name == "APIDECK_API_KEY")
        .map(|(_, key)| key.as_str())
        .expect("the sandbox sets APIDECK_API_KEY");
    let body = json!({"payload": {"event_id": "conformance-refresh-failed",
        "event_type": "vault.connection.token_refresh.failed", "service_id": "apideck-vault",
        "entity_id": "ats+greenhouse", "entity_type": "Connection",
        "occurred_at": "2026-11-01T10:00:00.000Z",
        "entity": {"id": "ats+greenhouse", "consumer_id": "conformance", "unified_api": "ats",
                   "service_id": "greenhouse"}}});
    let signature = authport_sandbox::apideck::webhooks::sign(key, &body);
    Delivery {
        headers: vec![("x-apideck-signature".to_owned(), signature)],
        body: body.to_string().into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apideck_keeps_the_shared_guarantees() {
    let sandbox = authport_testkit::sandbox().await;
    let vault = sandbox.apideck.clone();
    let subject = Subject::new("apideck", sandbox.target(), fixture)
        // The upsert that writes a record's connection.
        .write(WriteRequest::new(
            "POST",
            "/vault/connections/ats/greenhouse/import",
        ))
        .objects(move || vault.connection_count())
        .webhook(refresh_failed);
    conformance::run_all(&subject).await;
}
