//! The shared provider guarantees (`authport_testkit::conformance`), for Apideck against the
//! sandbox. Apideck-specific behaviour is tested in `sandbox.rs`, `errors.rs` and `requests.rs`.

use authport_testkit::conformance::{self, Subject, WriteRequest};
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
        .objects(move || vault.connection_count());
    conformance::run_all(&subject).await;
}
