//! The pure mapping: snapshots of the upsert body per auth kind, the connection id, the
//! integration resolution and located mapping errors.

use authport_core::EnvSnapshot;
use authport_nango::config::NangoConfig;
use authport_nango::map::{Destination, connection_id_for, map_record};
use authport_nango::resolve::resolve_destination;
use authport_nango::schema::upsert_body_violations;
use authport_nango::wire::Integration;
use authport_testkit::{assert_no_canary, canary, record};
use serde_json::{Value, json};

fn config(section: Value) -> NangoConfig {
    let env = EnvSnapshot::from_pairs(vec![("NANGO_SECRET_KEY".to_owned(), canary("nango-key"))]);
    NangoConfig::from_sources(&section, &env).expect("the config parses")
}

fn integrations() -> Vec<Integration> {
    [
        ("hubspot", "hubspot"),
        ("salesforce-prod", "salesforce"),
        ("salesforce-sandbox", "salesforce"),
        ("greenhouse", "greenhouse"),
        ("zendesk", "zendesk"),
        ("aws-keys", "aws"),
    ]
    .into_iter()
    .map(|(key, provider)| Integration {
        unique_key: key.to_owned(),
        provider: provider.to_owned(),
        display_name: None,
    })
    .collect()
}

/// A record of `kind` for `service`, with canary secrets and optional extra fields.
fn fixture(kind: &str, service: &str, extra: Value) -> Value {
    let auth = match kind {
        "oauth2" => json!({"type": "oauth2", "access_token": canary("access"),
                           "refresh_token": canary("refresh"), "token_type": "Bearer",
                           "scopes": ["crm.objects.contacts.read"],
                           "issued_at": "2026-11-01T10:00:00Z", "expires_in": 1800,
                           "client_id": "client-123"}),
        "oauth2_minimal" => json!({"type": "oauth2", "access_token": canary("access")}),
        "api_key" => json!({"type": "api_key", "api_key": canary("api-key")}),
        "basic" => {
            json!({"type": "basic", "username": canary("user"), "password": canary("password")})
        }
        "custom" => json!({"type": "custom", "fields": {"access_key_id": canary("key-id"),
                                                        "secret_access_key": canary("secret")}}),
        other => panic!("no fixture for {other}"),
    };
    let mut value = json!({"id": format!("acme-42/{service}"),
        "owner": {"id": "acme-42", "name": "Acme Inc", "email": "ops@acme.example"},
        "service": service, "auth": auth,
        "settings": {"instance_url": "https://acme.example"},
        "metadata": {"plan": "gold"}});
    if let (Value::Object(base), Value::Object(extra)) = (&mut value, extra) {
        base.extend(extra);
    }
    value
}

/// Resolves and maps; the outcome as JSON: the redacted body, target and notes, or the error.
fn outcome(config: &NangoConfig, value: &Value) -> Value {
    let record = record(value);
    let result = resolve_destination(
        &record.service,
        record.targets.get("nango"),
        config,
        &integrations(),
    )
    .and_then(|destination| map_record(&record, &destination));
    let view = match result {
        Ok(mapped) => json!({"target": mapped.target, "body": mapped.redacted_body(&record),
                             "notes": mapped.notes}),
        Err(error) => json!({"error": {"field": error.field, "message": error.message}}),
    };
    assert_no_canary("mapping outcome", &view.to_string());
    view
}

#[test]
fn upsert_body_for_each_auth_kind() {
    let custom_map = json!({"integrations": {"aws-keys": {"custom": {"type": "BASIC",
        "fields": {"access_key_id": "username", "secret_access_key": "password"}}}}});
    let cases = [
        ("oauth2", "hubspot", Value::Null),
        ("oauth2_minimal", "hubspot", Value::Null),
        ("api_key", "greenhouse", Value::Null),
        ("basic", "zendesk", Value::Null),
        ("custom", "aws", custom_map),
    ];
    for (kind, service, section) in cases {
        let view = outcome(&config(section), &fixture(kind, service, json!({})));
        insta::assert_json_snapshot!(format!("upsert_body__{kind}"), view);
    }
}

#[test]
fn secrets_land_in_the_documented_credential_fields() {
    let check = |kind: &str, service: &str, section: Value, expect: Value| {
        let record = record(&fixture(kind, service, json!({})));
        let config = config(section);
        let destination =
            resolve_destination(&record.service, None, &config, &integrations()).expect("resolves");
        let mapped = map_record(&record, &destination).expect("maps");
        let body = mapped.body.expose();
        assert_eq!(upsert_body_violations(body), Vec::<String>::new());
        let mut secrets = record.secret_values().into_iter();
        for pointer in expect.as_array().unwrap() {
            let pointer = pointer.as_str().unwrap();
            let sent = body.pointer(pointer).and_then(Value::as_str);
            assert_eq!(sent, secrets.next(), "{kind} at {pointer}");
        }
    };
    check(
        "oauth2",
        "hubspot",
        Value::Null,
        json!(["/credentials/access_token", "/credentials/refresh_token"]),
    );
    check(
        "api_key",
        "greenhouse",
        Value::Null,
        json!(["/credentials/apiKey"]),
    );
    check(
        "basic",
        "zendesk",
        Value::Null,
        json!(["/credentials/username", "/credentials/password"]),
    );
}

#[test]
fn oauth_expiry_is_sent_as_an_absolute_expires_at() {
    let record = record(&fixture("oauth2", "hubspot", json!({})));
    let destination =
        resolve_destination("hubspot", None, &config(Value::Null), &integrations()).unwrap();
    let mapped = map_record(&record, &destination).unwrap();
    assert_eq!(
        mapped.body.expose().pointer("/credentials/expires_at"),
        Some(&json!("2026-11-01T10:30:00Z"))
    );
    assert_eq!(
        mapped.body.expose().pointer("/credentials/type"),
        Some(&json!("OAUTH2"))
    );
}

#[test]
fn connection_ids_are_deterministic_and_distinct() {
    assert_eq!(
        connection_id_for("acme-42_hubspot.v2@x"),
        "acme-42_hubspot.v2@x"
    );
    let slashed = connection_id_for("acme-42/hubspot");
    assert_eq!(slashed, connection_id_for("acme-42/hubspot"));
    assert!(slashed.starts_with("acme-42-hubspot-"), "{slashed}");
    assert_ne!(slashed, connection_id_for("acme-42-hubspot"));
    assert_ne!(connection_id_for("a/b"), connection_id_for("a b"));
    let override_id = json!({"targets": {"nango": {"connection_id": "my-own-id"}}});
    let view = outcome(
        &config(Value::Null),
        &fixture("oauth2", "hubspot", override_id),
    );
    assert_eq!(view["target"]["connection_id"], "my-own-id");
    assert_eq!(view["body"]["connection_id"], "my-own-id");
}

#[test]
fn the_integration_comes_from_the_record_then_config_then_a_unique_provider() {
    let check = |section: Value, extra: Value, service: &str, expect: &str| {
        let view = outcome(&config(section), &fixture("oauth2", service, extra));
        assert_eq!(view["target"]["provider_config_key"], expect, "{view}");
    };
    // A unique provider match.
    check(Value::Null, json!({}), "hubspot", "hubspot");
    // The record wins over the config; the service's setting over the global one.
    let by_record = json!({"targets": {"nango": {"provider_config_key": "salesforce-sandbox"}}});
    let configured = json!({"provider_config_key": "hubspot",
                            "services": {"salesforce": {"provider_config_key": "salesforce-prod"}}});
    check(
        configured.clone(),
        by_record,
        "salesforce",
        "salesforce-sandbox",
    );
    check(
        configured.clone(),
        json!({}),
        "salesforce",
        "salesforce-prod",
    );
    check(configured, json!({}), "slack", "hubspot");
}

#[test]
fn ambiguous_unknown_and_malformed_targets_are_located_errors() {
    let check = |section: Value, extra: Value, service: &str, field: &str, words: &str| {
        let view = outcome(&config(section), &fixture("oauth2", service, extra));
        assert_eq!(view["error"]["field"], field, "{view}");
        let message = view["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
    };
    check(
        Value::Null,
        json!({}),
        "salesforce",
        "service",
        "2 Nango integrations use provider `salesforce` (salesforce-prod, salesforce-sandbox)",
    );
    check(
        Value::Null,
        json!({}),
        "slack",
        "service",
        "no Nango integration uses provider",
    );
    check(
        Value::Null,
        json!({"targets": {"nango": {"provider_config_key": "nope"}}}),
        "hubspot",
        "targets.nango.provider_config_key",
        "does not exist",
    );
    check(
        json!({"services": {"hubspot": {"provider_config_key": "gone"}}}),
        json!({}),
        "hubspot",
        "service",
        "does not exist",
    );
    check(
        Value::Null,
        json!({"targets": {"nango": {"SECRET-ish": 1}}}),
        "hubspot",
        "targets.nango",
        "has a key that is not one of",
    );
    check(
        Value::Null,
        json!({"targets": {"nango": {"connection_id": ""}}}),
        "hubspot",
        "targets.nango.connection_id",
        "must not be empty",
    );
    check(
        Value::Null,
        json!({"metadata": {"authport_record_id": "x"}}),
        "hubspot",
        "metadata.authport_record_id",
        "reserved",
    );
}

#[test]
fn custom_records_need_a_complete_field_map() {
    let check = |section: Value, extra: Value, field: &str| {
        let view = outcome(&config(section), &fixture("custom", "aws", extra));
        assert_eq!(view["error"]["field"], field, "{view}");
    };
    check(Value::Null, json!({}), "auth.type");
    // A field left out of the map is refused, never dropped.
    let partial = json!({"integrations": {"aws-keys": {"custom": {"type": "BASIC",
        "fields": {"access_key_id": "username"}}}}});
    check(partial, json!({}), "auth.fields.secret_access_key");
    // Two record fields into one credential field are refused.
    let short = json!({"targets": {"nango": {"custom": {"type": "BASIC",
        "fields": {"access_key_id": "username", "secret_access_key": "username"}}}}});
    check(Value::Null, short, "auth.fields.secret_access_key");
    let wrong_field = json!({"targets": {"nango": {"custom": {"type": "API_KEY",
        "fields": {"access_key_id": "apiKey", "secret_access_key": "password"}}}}});
    check(Value::Null, wrong_field, "targets.nango.custom");
    // Through the record's own map, to API_KEY with one field.
    let record_map = json!({"auth": {"type": "custom", "fields": {"token": canary("t")}},
        "targets": {"nango": {"custom": {"type": "API_KEY", "fields": {"token": "apiKey"}}}}});
    let view = outcome(&config(Value::Null), &fixture("custom", "aws", record_map));
    assert_eq!(view["body"]["credentials"]["type"], "API_KEY", "{view}");
}

#[test]
fn owner_tags_follow_nangos_recommendation() {
    let view = outcome(
        &config(Value::Null),
        &fixture("api_key", "greenhouse", json!({})),
    );
    assert_eq!(
        view["body"]["tags"],
        json!({"end_user_id": "acme-42", "organization_id": "acme-42",
               "end_user_email": "ops@acme.example"})
    );
    let long_owner = json!({"owner": {"id": "x".repeat(256)}});
    let view = outcome(
        &config(Value::Null),
        &fixture("api_key", "greenhouse", long_owner),
    );
    assert_eq!(view["error"]["field"], "owner.id", "{view}");
}

#[test]
fn a_body_that_breaks_the_schema_is_refused_before_sending() {
    let record = record(&fixture("api_key", "greenhouse", json!({})));
    let destination = Destination {
        provider_config_key: "greenhouse".to_owned(),
        connection_id: None,
        custom: None,
    };
    let mapped = map_record(&record, &destination).unwrap();
    let mut body = mapped.body.expose().clone();
    body["credentials"]["api_key"] = json!("x");
    let violations = upsert_body_violations(&body);
    assert!(!violations.is_empty());
    assert!(
        violations.iter().all(|v| !v.contains("CANARY")),
        "{violations:?}"
    );
}
