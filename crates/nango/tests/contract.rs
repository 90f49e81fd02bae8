//! The embedded upsert schema (`src/upsert_connection.schema.json`) against nango.yaml: each
//! copied component equals the spec's, and every body the mapping sends is valid for the
//! spec's own request schema too.

use authport_core::EnvSnapshot;
use authport_nango::config::NangoConfig;
use authport_nango::map::map_record;
use authport_nango::resolve::resolve_destination;
use authport_nango::schema::UPSERT_CONNECTION_SCHEMA;
use authport_nango::wire::Integration;
use authport_sandbox::nango::spec::{load_spec, request_schema, violations};
use authport_testkit::record;
use serde_json::{Value, json};

/// Drops the keys that do not validate anything.
fn bare(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !["description", "example", "examples", "title", "deprecated"]
                        .contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), bare(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(bare).collect()),
        other => other.clone(),
    }
}

#[test]
fn the_embedded_schema_is_the_specs() {
    let spec = load_spec();
    let embedded: Value = serde_json::from_str(UPSERT_CONNECTION_SCHEMA).unwrap();
    for (name, copy) in embedded["$defs"].as_object().unwrap() {
        assert_eq!(copy, &bare(&spec["components"]["schemas"][name]), "{name}");
    }
    let request = bare(
        &spec["paths"]["/connections"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(embedded["required"], request["required"]);
    for (key, schema) in request["properties"].as_object().unwrap() {
        match key.as_str() {
            // Deprecated (tags replace it): authport never sends it.
            "end_user" => assert!(embedded["properties"].get(key).is_none()),
            // The same `$ref`, to the copy.
            "tags" => assert_eq!(schema, &json!({"$ref": "#/components/schemas/Tags"})),
            // The spec's `anyOf`, narrowed to the three kinds authport sends.
            "credentials" => {
                let kinds = schema["anyOf"].as_array().unwrap();
                for sent in [
                    "OAuth2Credentials",
                    "BasicApiCredentials",
                    "ApiKeyCredentials",
                ] {
                    let reference = json!({"$ref": format!("#/components/schemas/{sent}")});
                    assert!(kinds.contains(&reference), "{sent}");
                }
            }
            _ => assert_eq!(&embedded["properties"][key], schema, "{key}"),
        }
    }
}

#[test]
fn mapped_bodies_are_valid_for_the_specs_request_schema() {
    let spec = load_spec();
    let request = request_schema(&spec, "/connections", "post");
    let env = EnvSnapshot::from_pairs(vec![("NANGO_SECRET_KEY".to_owned(), "k".to_owned())]);
    let config = NangoConfig::from_sources(&Value::Null, &env).unwrap();
    let integrations = [Integration {
        unique_key: "svc".to_owned(),
        provider: "svc".to_owned(),
        display_name: None,
    }];
    for auth in [
        json!({"type": "oauth2", "access_token": "a", "refresh_token": "r", "expires_in": 60,
               "issued_at": "2026-11-01T10:00:00Z"}),
        json!({"type": "oauth2", "access_token": "a"}),
        json!({"type": "api_key", "api_key": "k"}),
        json!({"type": "basic", "username": "u", "password": "p"}),
    ] {
        let record = record(
            &json!({"id": "o/svc", "owner": {"id": "o", "email": "o@x.example"},
            "service": "svc", "auth": auth, "settings": {"a": 1}, "metadata": {"m": true}}),
        );
        let destination = resolve_destination("svc", None, &config, &integrations).unwrap();
        let mapped = map_record(&record, &destination).unwrap();
        assert_eq!(
            violations(&request, mapped.body.expose()),
            Vec::<String>::new()
        );
    }
}
