//! Contract with Apideck's vault.yml: the embedded `ConnectionImportData` schema is the spec's,
//! and every body the mapping produces validates against the spec itself.

use crate::support;

use authport_apideck::schema::{CONNECTION_IMPORT_DATA_SCHEMA, import_body_violations};
use authport_sandbox::spec::{Direction, bare_component, component_schema, load_spec, validator};
use serde_json::{Value, json};
use support::*;

#[test]
fn embedded_schema_is_the_spec_schema() {
    let spec = load_spec();
    let embedded: Value = serde_json::from_str(CONNECTION_IMPORT_DATA_SCHEMA).expect("json");
    assert_eq!(
        bare_component(&spec, "ConnectionImportData", Direction::Request),
        embedded
    );
}

#[test]
fn every_mapped_body_validates_against_the_spec() {
    let spec = load_spec();
    let import_data = validator(&component_schema(
        &spec,
        "ConnectionImportData",
        Direction::Request,
    ));
    let mut checked = 0;
    for connector in catalogue() {
        for kind in ["oauth2", "api_key", "basic", "custom"] {
            if let Ok(mapped) = map_with(&record_for(&connector, kind), &connector, &options()) {
                let body = mapped.body.expose();
                assert!(
                    import_data.is_valid(body),
                    "{}/{kind}",
                    connector.service_id
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} bodies mapped");
}

/// The provider's validator and the spec agree, and the provider's messages never quote values.
#[test]
fn provider_validation_agrees_with_the_spec() {
    let spec = load_spec();
    let import_data = validator(&component_schema(
        &spec,
        "ConnectionImportData",
        Direction::Request,
    ));
    let check = |body: Value, valid: bool| {
        let violations = import_body_violations(&body);
        assert_eq!(
            violations.is_empty(),
            valid,
            "provider on {body}: {violations:?}"
        );
        assert_eq!(import_data.is_valid(&body), valid, "spec on {body}");
        assert_no_canary("violations", &violations.join(" "));
    };
    check(json!({}), true);
    check(
        json!({"credentials": {"access_token": CANARY_ACCESS, "refresh_token": null, "issued_at": null, "expires_in": null}}),
        true,
    );
    check(
        json!({"credentials": {"access_token": CANARY_ACCESS, "issued_at": "2026-11-01T10:00:00Z", "expires_in": 3600}}),
        true,
    );
    check(json!({"settings": null, "metadata": null}), true);
    check(
        json!({"settings": {"api_key": CANARY_API_KEY, "nested": {"a": 1}}}),
        true,
    );
    check(
        json!({"credentials": {"access_token": CANARY_ACCESS, "token_type": "Bearer"}}),
        false,
    );
    check(json!({"credentials": {"access_token": null}}), false);
    check(json!({"credentials": null}), false);
    check(json!({"credentials": {"expires_in": "3600"}}), false);
    check(json!({"credentials": {"expires_in": 3600.5}}), false);
    check(json!({"credentials": {"issued_at": "yesterday"}}), false);
    check(json!({"credentials": {"refresh_token": 42}}), false);
    check(json!({"settings": [CANARY_API_KEY]}), false);
    check(json!({"metadata": CANARY_API_KEY}), false);
    check(json!([CANARY_ACCESS]), false);
}
