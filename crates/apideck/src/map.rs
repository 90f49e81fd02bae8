//! Canonical record -> the import body (`ConnectionImportData`, plus the absolute expiry
//! `crate::expiry` renders at send time). Pure: no IO, no clock (the run's `now` is an input),
//! so it can be snapshot-tested exhaustively.

use authport_core::record::escaped_name;
use authport_core::{
    Auth, CredentialRecord, ExposeSecret, MappedRecord, MappingError, OAuth2, SecretJson,
};
use authport_kit::Payload;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::config::{SuspectMilliseconds, is_header_safe};
use crate::connector::ConnectorInfo;
use crate::expiry::{self, SendClock, render_expiry};
use crate::schema::IMPORT_SCHEMA;
use crate::target::{ApideckRef, PROVIDER, ResolvedTarget};
use crate::wire::FormField;

/// Metadata key marking a connection as imported by authport for one record. Lets a later
/// import tell "ours" (safe to update) from a connection someone else set up (skipped).
pub use authport_kit::ownership::RECORD_ID_METADATA_KEY;

/// Per-run mapping policy.
#[derive(Debug, Clone, Copy)]
pub struct MapOptions {
    pub suspect_milliseconds: SuspectMilliseconds,
    pub allow_incomplete_settings: bool,
    /// The run's clock: decides "already expired"; [`crate::expiry::render_at_send`] renders an absolute
    /// expiry with it.
    pub now: DateTime<Utc>,
}

/// Maps one record for `connector`. The body is what the import sends, except that an
/// absolute expiry is rendered by [`crate::expiry::render_at_send`]; that rendering, at the
/// run's clock, is validated against `ConnectionImportData` here, with the connector's required
/// form fields, before anything can be sent.
pub fn map_record(
    record: &CredentialRecord,
    target: &ResolvedTarget,
    connector: &ConnectorInfo,
    options: &MapOptions,
) -> Result<MappedRecord, MappingError> {
    map_record_at(
        record,
        target,
        connector,
        options,
        &SendClock::new(options.now),
    )
}

/// [`map_record`] with the run's clock as the import renders it (`SendClock::new(options.now)`),
/// which the importer formats once per run.
pub(crate) fn map_record_at(
    record: &CredentialRecord,
    target: &ResolvedTarget,
    connector: &ConnectorInfo,
    options: &MapOptions,
    clock: &SendClock,
) -> Result<MappedRecord, MappingError> {
    if !is_header_safe(&record.owner.id) {
        return Err(MappingError::new(
            "owner.id",
            "must be printable ASCII: it is sent as Apideck's x-apideck-consumer-id header",
        ));
    }
    let mut notes = Vec::new();
    let mut settings = map_settings(record, target, connector, &mut notes)?;
    let credentials = match (&record.auth, connector.auth_type.as_str()) {
        (Auth::OAuth2(oauth), "oauth2") => Some(map_oauth2(oauth, target, options, &mut notes)?),
        (Auth::OAuth2(_), other) => return Err(auth_mismatch("oauth2", other, connector)),
        (_, "oauth2") => return Err(auth_mismatch(record.auth.kind(), "oauth2", connector)),
        (Auth::ApiKey { .. }, "apiKey" | "custom")
        | (Auth::Basic { .. }, "basic" | "custom")
        | (Auth::Custom { .. }, "apiKey" | "basic" | "custom") => {
            map_secret_settings(&record.auth, target, connector, &mut settings)?;
            None
        }
        (Auth::ApiKey { .. } | Auth::Basic { .. }, other @ ("apiKey" | "basic")) => {
            return Err(auth_mismatch(record.auth.kind(), other, connector));
        }
        (_, other) => {
            return Err(MappingError::new(
                "auth.type",
                format!(
                    "connector {} uses auth type `{other}`, which authport cannot import",
                    connector.label()
                ),
            ));
        }
    };
    check_required_fields(connector, &settings, options, &mut notes)?;

    let mut metadata = record.metadata.clone();
    check_no_type_only_objects("metadata", &metadata)?;
    metadata.insert(RECORD_ID_METADATA_KEY.to_owned(), json!(record.id));

    let mut body = Map::new();
    if let Some(credentials) = credentials {
        body.insert("credentials".to_owned(), Value::Object(credentials));
    }
    if !settings.is_empty() {
        body.insert("settings".to_owned(), Value::Object(settings));
    }
    body.insert("metadata".to_owned(), Value::Object(metadata));
    let mut body = Value::Object(body);
    expiry::with_rendered(&mut body, clock, |rendered| {
        IMPORT_SCHEMA.check_body(rendered, "Apideck's ConnectionImportData")
    })?;

    let destination = ApideckRef {
        consumer_id: record.owner.id.clone(),
        unified_api: target.unified_api.clone(),
        service_id: target.service_id.clone(),
        connection_id: None,
    };
    Ok(MappedRecord {
        target: destination.to_map(),
        body: SecretJson::new(body),
        notes,
        payload: Payload::new(destination),
    })
}

fn auth_mismatch(
    record_kind: &str,
    connector_kind: &str,
    connector: &ConnectorInfo,
) -> MappingError {
    MappingError::new(
        "auth.type",
        format!(
            "record auth `{record_kind}` does not fit connector {} (auth type `{connector_kind}`)",
            connector.label()
        ),
    )
}

/// Record settings -> `settings`, renamed by `settings_map` and checked against the form fields.
fn map_settings(
    record: &CredentialRecord,
    target: &ResolvedTarget,
    connector: &ConnectorInfo,
    notes: &mut Vec<String>,
) -> Result<Map<String, Value>, MappingError> {
    check_no_type_only_objects("settings", &record.settings)?;
    let mut settings = Map::new();
    for (name, value) in &record.settings {
        let field_path = format!("settings.{}", escaped_name(name));
        let (form_field_id, renamed) = match target.overrides.settings_map.get(name) {
            Some(None) => {
                notes.push(format!("{field_path}: dropped by settings_map"));
                continue;
            }
            Some(Some(id)) => (id.as_str(), true),
            None => (name.as_str(), false),
        };
        if connector.field(form_field_id).is_none() {
            // The name is in the field path; an id from settings_map is never shown (a value
            // put there by mistake may be a secret).
            let what = if renamed {
                "the form field id settings_map gives it (not shown)"
            } else {
                "it"
            };
            return Err(MappingError::new(
                field_path,
                format!(
                    "{what} is not a form field of {} (form fields: {}); rename or drop it with targets.{PROVIDER}.settings_map",
                    connector.label(),
                    connector.field_ids()
                ),
            ));
        }
        // Shown below: it is one of the connector's own ids (checked above).
        if settings
            .insert(form_field_id.to_owned(), value.clone())
            .is_some()
        {
            return Err(MappingError::new(
                field_path,
                format!("form field `{form_field_id}` is filled by two settings"),
            ));
        }
    }
    Ok(settings)
}

/// "If you map an object that only contains a type, it will be removed" (Apideck's import
/// guide): refuse rather than lose it silently.
fn check_no_type_only_objects(section: &str, map: &Map<String, Value>) -> Result<(), MappingError> {
    for (key, value) in map {
        if let Value::Object(inner) = value
            && inner.len() == 1
            && inner.contains_key("type")
        {
            return Err(MappingError::new(
                format!("{section}.{}", escaped_name(key)),
                "an object holding only `type` would be dropped by Apideck",
            ));
        }
    }
    Ok(())
}

/// Secrets of apiKey/basic/custom records -> `settings` under the connector's form field ids
/// (the closed `credentials` object takes OAuth tokens only).
fn map_secret_settings(
    auth: &Auth,
    target: &ResolvedTarget,
    connector: &ConnectorInfo,
    settings: &mut Map<String, Value>,
) -> Result<(), MappingError> {
    // (field path, form field id, secret). Ids are ours, Vault's, a record's custom field
    // name, or taken from `fields` (checked below, never shown).
    let secrets: Vec<(String, String, &authport_core::SecretString)> = match auth {
        Auth::ApiKey { api_key } => vec![(
            "auth.api_key".to_owned(),
            secret_field(
                target,
                connector,
                "api_key",
                &["api_key", "apiKey", "api_token", "token", "key"],
            )?,
            api_key,
        )],
        Auth::Basic { username, password } => vec![
            (
                "auth.username".to_owned(),
                secret_field(
                    target,
                    connector,
                    "username",
                    &["username", "user", "email", "login"],
                )?,
                username,
            ),
            (
                "auth.password".to_owned(),
                secret_field(
                    target,
                    connector,
                    "password",
                    &["password", "api_token", "token", "api_key"],
                )?,
                password,
            ),
        ],
        Auth::Custom { fields } => fields
            .iter()
            .map(|(name, secret)| {
                let id = target
                    .overrides
                    .fields
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| name.clone());
                (format!("auth.fields.{}", escaped_name(name)), id, secret)
            })
            .collect(),
        Auth::OAuth2(_) => Vec::new(),
    };
    for (field_path, form_field_id, secret) in secrets {
        if connector.field(&form_field_id).is_none() {
            // Whatever named it (a `fields` value, a custom field name), the id is not shown:
            // the field path locates the secret, and the form fields are Vault's own ids.
            return Err(MappingError::new(
                field_path,
                format!(
                    "the form field id it goes to (not shown) is not a form field of {} (form fields: {}); set targets.{PROVIDER}.fields",
                    connector.label(),
                    connector.field_ids()
                ),
            ));
        }
        if settings.contains_key(&form_field_id) {
            return Err(MappingError::new(
                field_path,
                format!("form field `{form_field_id}` is also filled from the record's settings"),
            ));
        }
        settings.insert(form_field_id, json!(secret.expose_secret()));
    }
    Ok(())
}

/// The form field receiving the canonical secret `name`: an explicit `fields` override, else
/// the first of `candidates` the connector has, else its only sensitive field.
fn secret_field(
    target: &ResolvedTarget,
    connector: &ConnectorInfo,
    name: &str,
    candidates: &[&str],
) -> Result<String, MappingError> {
    if let Some(id) = target.overrides.fields.get(name) {
        return Ok(id.clone());
    }
    if let Some(id) = candidates.iter().find(|id| connector.field(id).is_some()) {
        return Ok((*id).to_owned());
    }
    let sensitive: Vec<&FormField> = connector
        .form_fields
        .iter()
        .filter(|f| f.is_sensitive())
        .collect();
    if name != "username"
        && let [only] = sensitive.as_slice()
    {
        return Ok(only.id.clone());
    }
    Err(MappingError::new(
        format!("auth.{name}"),
        format!(
            "cannot tell which form field of {} receives the {name} (form fields: {}); set targets.{PROVIDER}.fields.{name}",
            connector.label(),
            connector.field_ids()
        ),
    ))
}

fn check_required_fields(
    connector: &ConnectorInfo,
    settings: &Map<String, Value>,
    options: &MapOptions,
    notes: &mut Vec<String>,
) -> Result<(), MappingError> {
    let missing: Vec<&FormField> = connector
        .form_fields
        .iter()
        .filter(|f| f.is_required() && !settings.get(&f.id).is_some_and(is_filled))
        .collect();
    let Some(first) = missing.first() else {
        return Ok(());
    };
    let ids = missing
        .iter()
        .map(|f| f.id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if connector.auth_type == "oauth2" && options.allow_incomplete_settings {
        notes.push(format!(
            "required setting(s) {ids} missing: the connection stays `authorized` until they are filled in"
        ));
        return Ok(());
    }
    Err(MappingError::new(
        format!("settings.{}", first.id),
        format!(
            "required by {} and missing (missing: {ids})",
            connector.label()
        ),
    ))
}

fn is_filled(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.trim().is_empty(),
        _ => true,
    }
}

fn map_oauth2(
    oauth: &OAuth2,
    target: &ResolvedTarget,
    options: &MapOptions,
    notes: &mut Vec<String>,
) -> Result<Map<String, Value>, MappingError> {
    let long_lived = target.overrides.long_lived_tokens == Some(true);
    let rendered = render_expiry(oauth, long_lived, options)?;
    let mut credentials = Map::new();
    credentials.insert(
        "access_token".to_owned(),
        json!(oauth.access_token.expose_secret()),
    );
    if let Some(refresh_token) = &oauth.refresh_token {
        credentials.insert(
            "refresh_token".to_owned(),
            json!(refresh_token.expose_secret()),
        );
    }
    if let Some(expiry) = &rendered.expiry {
        expiry::insert(&mut credentials, expiry);
    }
    notes.extend(rendered.notes);
    if let Some(client_id) = &oauth.client_id {
        notes.push(format!(
            "Vault refreshes with the OAuth client of the Apideck integration: it must be client `{client_id}`"
        ));
    }
    Ok(credentials)
}
