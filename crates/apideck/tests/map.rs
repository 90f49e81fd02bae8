//! The pure mapping: snapshots of every catalogue connector × auth kind, target resolution
//! and located mapping errors (expiry rendering: `map_expiry.rs`).

use crate::support;

use std::collections::BTreeMap;

use authport_apideck::config::TargetOverride;
use authport_apideck::map::{MapOptions, RECORD_ID_METADATA_KEY};
use authport_apideck::target::resolve_target;
use authport_core::{Auth, ExposeSecret};
use serde_json::{Value, json};
use support::*;

const KINDS: [&str; 4] = ["oauth2", "api_key", "basic", "custom"];

#[test]
fn import_body_for_every_catalogue_connector_and_auth_kind() {
    for connector in catalogue() {
        let mut results = serde_json::Map::new();
        for kind in KINDS {
            let record = record_for(&connector, kind);
            let result = map_with(&record, &connector, &options());
            let view = outcome_json(&record, &result);
            assert_no_canary("snapshot", &view.to_string());
            results.insert(kind.to_owned(), view);
        }
        let name = format!(
            "import_body__{}_{}",
            connector.unified_api, connector.service_id
        );
        insta::assert_json_snapshot!(name, results);
    }
}

#[test]
fn the_connector_auth_kind_maps_and_the_others_are_refused() {
    for connector in catalogue() {
        for kind in KINDS {
            let record = record_for(&connector, kind);
            let result = map_with(&record, &connector, &options());
            let fits = match connector.auth_type.as_str() {
                "oauth2" => kind == "oauth2",
                "apiKey" => kind == "api_key" || kind == "custom",
                "basic" => kind == "basic" || kind == "custom",
                other => panic!("catalogue has auth type {other}"),
            };
            match (&result, fits) {
                (Ok(_), true) => {}
                (Err(error), false) => {
                    assert_eq!(error.field, "auth.type", "{}/{kind}", connector.service_id)
                }
                _ => panic!(
                    "{}/{kind}: unexpected {:?}",
                    connector.service_id,
                    result.as_ref().map(|m| &m.target)
                ),
            }
        }
    }
}

#[test]
fn secrets_land_in_credentials_for_oauth_and_in_settings_otherwise() {
    let check = |unified_api: &str, service_id: &str, kind: &str, expect: Value| {
        let connector = connector(unified_api, service_id);
        let mapped = map_with(&record_for(&connector, kind), &connector, &options()).expect("maps");
        let body = mapped.body.expose();
        for (pointer, expected) in expect.as_object().expect("an object") {
            assert_eq!(
                body.pointer(pointer),
                Some(expected),
                "{service_id}/{kind} at {pointer}"
            );
        }
        assert_eq!(
            body.pointer(&format!("/metadata/{RECORD_ID_METADATA_KEY}")),
            Some(&json!(format!("acme-42/{service_id}-{kind}")))
        );
    };
    check(
        "crm",
        "hubspot",
        "oauth2",
        json!({
        "/credentials/access_token": CANARY_ACCESS, "/credentials/refresh_token": CANARY_REFRESH,
        "/credentials/issued_at": "2026-11-01T11:30:00Z", "/credentials/expires_in": 3600}),
    );
    check(
        "accounting",
        "quickbooks",
        "oauth2",
        json!({"/settings/realm_id": "4620816365164357123"}),
    );
    check(
        "ats",
        "greenhouse",
        "api_key",
        json!({"/settings/api_key": CANARY_API_KEY}),
    );
    check(
        "crm",
        "activecampaign",
        "api_key",
        json!({"/settings/api_key": CANARY_API_KEY, "/settings/instance_url": "https://acme.example.com"}),
    );
    check(
        "ticketing",
        "zendesk",
        "basic",
        json!({
        "/settings/username": CANARY_USERNAME, "/settings/password": CANARY_PASSWORD, "/settings/subdomain": "initech"}),
    );
    check(
        "ticketing",
        "zendesk",
        "custom",
        json!({"/settings/password": CANARY_API_KEY}),
    );
    // Nothing secret ever reaches the closed credentials object for non-OAuth connectors.
    for (unified_api, service_id, kind) in [
        ("ats", "greenhouse", "api_key"),
        ("ticketing", "zendesk", "basic"),
    ] {
        let connector = connector(unified_api, service_id);
        let mapped = map_with(&record_for(&connector, kind), &connector, &options()).expect("maps");
        assert!(mapped.body.expose().get("credentials").is_none());
    }
}

/// Maps one record (merged into a base) to one connector and checks the error's field, or
/// success when `expect_field` is `None`.
fn check_error(
    service_id: &str,
    record_json: Value,
    allow_incomplete: bool,
    expect_field: Option<&str>,
) {
    let connector = catalogue()
        .into_iter()
        .find(|c| c.service_id == service_id)
        .expect("in the catalogue");
    let mut base = json!({"id": "rec-1", "owner": {"id": "acme-42"}, "service": service_id,
                          "auth": auth_of_kind(match connector.auth_type.as_str() {
                              "oauth2" => "oauth2", "apiKey" => "api_key", _ => "basic" }, &connector),
                          "settings": sample_settings(&connector)});
    for (k, v) in record_json.as_object().expect("object") {
        base[k] = v.clone();
    }
    let record = record(&base);
    let options = MapOptions {
        allow_incomplete_settings: allow_incomplete,
        ..options()
    };
    let result = map_with(&record, &connector, &options);
    if let Err(error) = &result {
        assert_no_canary("error", &error.to_string());
        assert!(!error.message.is_empty());
    }
    assert_eq!(
        result.as_ref().err().map(|e| e.field.as_str()),
        expect_field,
        "{service_id} {record_json}: {:?}",
        result.as_ref().err()
    );
}

#[test]
fn bad_records_fail_with_a_located_reason() {
    // The record as given maps.
    check_error("greenhouse", json!({}), false, None);
    check_error(
        "activecampaign",
        json!({"service": "activecampaign", "settings": {"account_url": "https://a.example"}}),
        false,
        None,
    );
    // Consumer ids travel in a header.
    check_error(
        "greenhouse",
        json!({"owner": {"id": "café-1"}}),
        false,
        Some("owner.id"),
    );
    // Unknown service without targets, or a typo in the override.
    check_error(
        "greenhouse",
        json!({"service": "no-such-service"}),
        false,
        Some("targets.apideck"),
    );
    check_error(
        "greenhouse",
        json!({"targets": {"apideck": {"unified": "ats"}}}),
        false,
        Some("targets.apideck"),
    );
    check_error(
        "greenhouse",
        json!({"targets": {"apideck": {"unified_api": "ats/../x"}}}),
        false,
        Some("targets.apideck.unified_api"),
    );
    // Located by path, never quoting the value or the unknown key (`check_error` looks for
    // canaries in the message).
    check_error(
        "greenhouse",
        json!({"targets": {"apideck": {"long_lived_tokens": CANARY_API_KEY}}}),
        false,
        Some("targets.apideck.long_lived_tokens"),
    );
    check_error(
        "greenhouse",
        json!({"targets": {"apideck": {CANARY_API_KEY: "ats"}}}),
        false,
        Some("targets.apideck"),
    );

    // Settings must be form fields of the connector, unless renamed or dropped.
    check_error(
        "greenhouse",
        json!({"settings": {"region": "eu"}}),
        false,
        Some("settings.region"),
    );
    check_error(
        "greenhouse",
        json!({"settings": {"region": "eu"}, "targets": {"apideck": {"settings_map": {"region": null}}}}),
        false,
        None,
    );
    check_error(
        "greenhouse",
        json!({"settings": {"api_key": "x"}}),
        false,
        Some("auth.api_key"),
    );
    check_error(
        "activecampaign",
        json!({"service": "activecampaign", "settings": {}}),
        false,
        Some("settings.instance_url"),
    );
    // Required OAuth settings: refused, or a note when the operator allows `authorized`.
    check_error(
        "quickbooks",
        json!({"settings": {}}),
        false,
        Some("settings.realm_id"),
    );
    check_error("quickbooks", json!({"settings": {}}), true, None);
    check_error(
        "quickbooks",
        json!({"settings": {"realm_id": "  "}}),
        false,
        Some("settings.realm_id"),
    );
    // Wrong auth kind for the connector.
    check_error(
        "hubspot",
        json!({"auth": {"type": "api_key", "api_key": CANARY_API_KEY}}),
        false,
        Some("auth.type"),
    );
    check_error(
        "greenhouse",
        json!({"auth": oauth2_auth()}),
        false,
        Some("auth.type"),
    );
    check_error(
        "greenhouse",
        json!({"auth": {"type": "basic", "username": CANARY_USERNAME, "password": CANARY_PASSWORD}}),
        false,
        Some("auth.type"),
    );
    // Custom fields must name form fields, or be mapped to them.
    check_error(
        "greenhouse",
        json!({"auth": {"type": "custom", "fields": {"secret": CANARY_API_KEY}}}),
        false,
        Some("auth.fields.secret"),
    );
    check_error(
        "greenhouse",
        json!({"auth": {"type": "custom", "fields": {"secret": CANARY_API_KEY}},
        "targets": {"apideck": {"fields": {"secret": "api_key"}}}}),
        false,
        None,
    );
    // Objects holding only `type` would be dropped by Apideck.
    check_error(
        "greenhouse",
        json!({"metadata": {"kind": {"type": "x"}}}),
        false,
        Some("metadata.kind"),
    );
    check_error(
        "hubspot",
        json!({"auth": {"type": "oauth2", "access_token": CANARY_ACCESS}}),
        false,
        Some("auth.refresh_token"),
    );
}

#[test]
fn targets_resolve_record_then_config_then_built_in() {
    let configured: BTreeMap<String, TargetOverride> = [
        (
            "hubspot".to_owned(),
            TargetOverride {
                service_id: Some("hubspot-eu".to_owned()),
                ..Default::default()
            },
        ),
        (
            "intercom".to_owned(),
            TargetOverride {
                unified_api: Some("crm".to_owned()),
                service_id: Some("intercom".to_owned()),
                ..Default::default()
            },
        ),
    ]
    .into();
    let check = |service: &str, target: Option<Value>, expect: Result<(&str, &str), &str>| {
        let got = resolve_target(service, target.as_ref(), &configured)
            .map(|t| (t.unified_api, t.service_id))
            .map_err(|e| e.field);
        let expect = expect
            .map(|(u, s)| (u.to_owned(), s.to_owned()))
            .map_err(str::to_owned);
        assert_eq!(got, expect, "{service} {target:?}");
    };
    check("salesforce", None, Ok(("crm", "salesforce")));
    check("quickbooks", None, Ok(("accounting", "quickbooks")));
    check("zendesk", None, Ok(("ticketing", "zendesk")));
    check("hubspot", None, Ok(("crm", "hubspot-eu")));
    check(
        "hubspot",
        Some(json!({"service_id": "hubspot"})),
        Ok(("crm", "hubspot")),
    );
    check("intercom", None, Ok(("crm", "intercom")));
    check(
        "mailchimp",
        Some(json!({"unified_api": "crm", "service_id": "mailchimp"})),
        Ok(("crm", "mailchimp")),
    );
    check(
        "mailchimp",
        Some(json!({"unified_api": "crm"})),
        Err("targets.apideck"),
    );
    check("mailchimp", None, Err("targets.apideck"));
    check(
        "salesforce",
        Some(json!({"service_id": ""})),
        Err("targets.apideck.service_id"),
    );
}

#[test]
fn mapping_is_deterministic_and_redacted() {
    let hubspot = connector("crm", "hubspot");
    let record = record_for(&hubspot, "oauth2");
    let first = map_with(&record, &hubspot, &options()).expect("maps");
    let second = map_with(&record, &hubspot, &options()).expect("maps");
    assert_eq!(first.body, second.body);
    assert_no_canary("redacted body", &first.redacted_body(&record).to_string());
    assert_no_canary("debug", &format!("{first:?} {record:?}"));
    let Auth::OAuth2(oauth) = &record.auth else {
        panic!("oauth2")
    };
    assert_eq!(oauth.access_token.expose_secret(), CANARY_ACCESS);
}

/// Issue 10 item 4: a secret pasted as a form field id in `fields` or `settings_map` (or as a
/// custom field name) is never echoed; names in the field path are escaped and capped.
#[test]
fn form_field_ids_from_fields_and_settings_map_are_never_echoed() {
    // `check_error` fails on any canary in the message.
    check_error(
        "greenhouse",
        json!({"settings": {"region": "eu"},
               "targets": {"apideck": {"settings_map": {"region": CANARY_API_KEY}}}}),
        false,
        Some("settings.region"),
    );
    check_error(
        "greenhouse",
        json!({"targets": {"apideck": {"fields": {"api_key": CANARY_API_KEY}}}}),
        false,
        Some("auth.api_key"),
    );
    check_error(
        "zendesk",
        json!({"targets": {"apideck": {"fields": {"password": CANARY_PASSWORD}}}}),
        false,
        Some("auth.password"),
    );
    check_error(
        "greenhouse",
        json!({"auth": {"type": "custom", "fields": {"secret": CANARY_API_KEY}},
               "targets": {"apideck": {"fields": {"secret": CANARY_PASSWORD}}}}),
        false,
        Some("auth.fields.secret"),
    );
    // Operator-chosen names located by the path: control characters escaped, long ones capped.
    let connector = catalogue()
        .into_iter()
        .find(|c| c.service_id == "greenhouse")
        .expect("in the catalogue");
    let long_name = format!("x{}", "y".repeat(100));
    for (name, shown) in [
        ("a\u{1b}[2Jb\n", "settings.a\\u{1b}[2Jb\\n".to_owned()),
        (long_name.as_str(), format!("settings.x{}…", "y".repeat(63))),
    ] {
        let record = record(&json!({"id": "rec-1", "owner": {"id": "acme-42"},
            "service": "greenhouse", "auth": {"type": "api_key", "api_key": CANARY_API_KEY},
            "settings": {name: "eu"}}));
        let error = map_with(&record, &connector, &options()).expect_err("not a form field");
        assert_eq!(error.field, shown);
        assert!(!error.to_string().contains(name), "{error}");
    }
}
