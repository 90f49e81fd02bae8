//! Apideck's own fixtures: records with canary secrets for each connector and auth kind, the
//! sandbox catalogue as discovered connectors, and the mapping helpers. The clock, record
//! parsing and the canary check come from `authport_testkit`.

use authport_apideck::config::SuspectMilliseconds;
use authport_apideck::connector::ConnectorInfo;
use authport_apideck::map::{MapOptions, map_record};
use authport_apideck::target::{ResolvedTarget, resolve_target};
use authport_apideck::wire::Connection;
use authport_core::{CredentialRecord, MappedRecord, MappingError};
#[allow(unused_imports)]
pub use authport_testkit::{assert_no_canary, now, record};
use serde_json::{Map, Value, json};

pub const CANARY_ACCESS: &str = "CANARY-access-5d1f0c";
pub const CANARY_REFRESH: &str = "CANARY-refresh-93ab7e";
pub const CANARY_API_KEY: &str = "CANARY-apikey-41c2d8";
pub const CANARY_USERNAME: &str = "CANARY-user-6b0e@example.com";
pub const CANARY_PASSWORD: &str = "CANARY-password-c77a19";

pub fn options() -> MapOptions {
    MapOptions {
        suspect_milliseconds: SuspectMilliseconds::Refuse,
        allow_incomplete_settings: false,
        now: now(),
    }
}

/// Parses records at [`NOW`].
pub fn records(values: &[Value]) -> Vec<CredentialRecord> {
    values.iter().map(record).collect()
}

/// The sandbox's default catalogue as discovery would see it.
pub fn catalogue() -> Vec<ConnectorInfo> {
    authport_sandbox::apideck::default_catalogue()
        .iter()
        .map(|connector| {
            let connection: Connection =
                serde_json::from_value(connector.available_connection_json())
                    .expect("a connection");
            ConnectorInfo::from_connection(
                &connector.unified_api,
                &connector.service_id,
                &connection,
            )
            .expect("catalogue connectors are usable")
        })
        .collect()
}

pub fn connector(unified_api: &str, service_id: &str) -> ConnectorInfo {
    catalogue()
        .into_iter()
        .find(|c| c.unified_api == unified_api && c.service_id == service_id)
        .unwrap_or_else(|| panic!("no {unified_api}/{service_id} in the catalogue"))
}

/// An OAuth2 auth object valid at [`NOW`] (issued 11:30, expires 12:30).
pub fn oauth2_auth() -> Value {
    json!({"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
           "token_type": "Bearer", "scopes": ["read", "write"], "issued_at": "2026-11-01T11:30:00Z",
           "expires_in": 3600, "client_id": "source-oauth-client"})
}

pub fn auth_of_kind(kind: &str, connector: &ConnectorInfo) -> Value {
    match kind {
        "oauth2" => oauth2_auth(),
        "api_key" => json!({"type": "api_key", "api_key": CANARY_API_KEY}),
        "basic" => {
            json!({"type": "basic", "username": CANARY_USERNAME, "password": CANARY_PASSWORD})
        }
        "custom" => {
            // One canary per sensitive form field (and the username), named by the field id.
            let mut canaries = [CANARY_API_KEY, CANARY_PASSWORD].into_iter();
            let mut fields = Map::new();
            for field in &connector.form_fields {
                if field.id == "username" {
                    fields.insert(field.id.clone(), json!(CANARY_USERNAME));
                } else if field.is_sensitive() {
                    fields.insert(
                        field.id.clone(),
                        json!(canaries.next().unwrap_or(CANARY_PASSWORD)),
                    );
                }
            }
            if fields.is_empty() {
                fields.insert("token".to_owned(), json!(CANARY_API_KEY));
            }
            json!({"type": "custom", "fields": fields})
        }
        other => panic!("unknown kind {other}"),
    }
}

/// Plausible values for the connector's non-secret form fields.
pub fn sample_settings(connector: &ConnectorInfo) -> Map<String, Value> {
    connector
        .form_fields
        .iter()
        .filter(|f| !f.is_sensitive() && f.id != "username")
        .map(|f| {
            let value = match f.id.as_str() {
                "realm_id" => json!("4620816365164357123"),
                "subdomain" => json!("initech"),
                id if id.ends_with("url") => json!("https://acme.example.com"),
                _ => json!("sample"),
            };
            (f.id.clone(), value)
        })
        .collect()
}

/// A record of `kind` for `connector`, aimed at it through `targets.apideck`.
pub fn record_for(connector: &ConnectorInfo, kind: &str) -> CredentialRecord {
    record(&json!({
        "id": format!("acme-42/{}-{kind}", connector.service_id),
        "owner": {"id": "acme-42", "name": "Acme Inc", "email": "ops@acme.example"},
        "service": connector.service_id,
        "auth": auth_of_kind(kind, connector),
        "settings": sample_settings(connector),
        "metadata": {"plan": "gold"},
        "targets": {"apideck": {"unified_api": connector.unified_api, "service_id": connector.service_id}},
    }))
}

/// Maps with the built-in defaults and no config.
pub fn map_with(
    record: &CredentialRecord,
    connector: &ConnectorInfo,
    options: &MapOptions,
) -> Result<MappedRecord, MappingError> {
    let target: ResolvedTarget = resolve_target(
        &record.service,
        record.targets.get("apideck"),
        &Default::default(),
    )?;
    map_record(record, &target, connector, options)
}

/// Snapshot-friendly view of `record`'s mapping: the redacted body, target and notes, or the
/// error.
pub fn outcome_json(
    record: &CredentialRecord,
    result: &Result<MappedRecord, MappingError>,
) -> Value {
    match result {
        Ok(mapped) => json!({"target": mapped.target, "body": mapped.redacted_body(record),
                             "notes": mapped.notes}),
        Err(error) => json!({"error": {"field": error.field, "message": error.message}}),
    }
}

/// Serves `router` (a scripted or recording Vault) on loopback through the testkit, with the
/// variables that point the provider at it. Dropping the result stops the server.
pub async fn serve_vault(router: axum::Router, api_key: &str) -> authport_testkit::Served {
    let api_key = api_key.to_owned();
    authport_testkit::serve(router, move |url| {
        vec![
            ("APIDECK_API_KEY".to_owned(), api_key),
            ("APIDECK_APP_ID".to_owned(), "app".to_owned()),
            ("APIDECK_API_URL".to_owned(), url.to_owned()),
        ]
    })
    .await
}
