//! Canonical record -> the `POST /connections` upsert body. Pure: no IO, no clock, so it is
//! snapshot-tested per auth kind.
//!
//! - `provider_config_key`: resolved by [`crate::resolve`] from discovery;
//! - `connection_id`: [`connection_id_for`] the record id (or `targets.nango.connection_id`),
//!   so a retry is the same upsert;
//! - `credentials`: OAUTH2 (`access_token`, `refresh_token`, `expires_at`), API_KEY (`apiKey`),
//!   BASIC (`username`, `password`); `custom` only through a per-integration field map;
//! - `connection_config` from `settings`; `metadata` passed on with the record marker;
//! - `tags`: `end_user_id`, `organization_id` (the owner's id) and `end_user_email`.

use authport_core::{
    Auth, CredentialRecord, ExposeSecret, MappedRecord, MappingError, OAuth2, SecretJson,
    SecretString, record_tag,
};
use authport_kit::Payload;
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

use crate::config::CustomMap;
use crate::schema::UPSERT_SCHEMA;
use crate::target::{NangoRef, PROVIDER};

/// Metadata key marking a connection as imported by authport for one record. Lets a later
/// import tell "ours" (safe to update) from a connection someone else made (left alone).
pub use authport_kit::ownership::RECORD_ID_METADATA_KEY;

/// Nango's tag value limit (`Tags`: `maxLength: 255`).
const TAG_VALUE_MAX_CHARS: usize = 255;

/// Where one record goes and how its custom fields are named; resolved before mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub provider_config_key: String,
    /// `targets.nango.connection_id`, when the record sets one.
    pub connection_id: Option<String>,
    /// The field map for `custom` records (record's, else the integration's).
    pub custom: Option<CustomMap>,
}

/// The connection id for a record id: the id itself when it is made of letters, digits and
/// `-_.@` only; otherwise those characters kept, the others replaced by `-`, and a 16-hex tag
/// of the original id appended, so two ids never share a connection.
pub fn connection_id_for(record_id: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    if !record_id.is_empty() && record_id.chars().all(safe) {
        return record_id.to_owned();
    }
    let cleaned: String = record_id
        .chars()
        .map(|c| if safe(c) { c } else { '-' })
        .collect();
    format!("{cleaned}-{}", record_tag(record_id))
}

/// Maps one record. The body is exactly what the upsert sends, validated against the spec's
/// request schema before anything can be sent.
pub fn map_record(
    record: &CredentialRecord,
    destination: &Destination,
) -> Result<MappedRecord, MappingError> {
    let mut notes = Vec::new();
    let connection_id = match &destination.connection_id {
        Some(id) if id.trim().is_empty() => {
            return Err(MappingError::new(
                format!("targets.{PROVIDER}.connection_id"),
                "must not be empty",
            ));
        }
        Some(id) => id.clone(),
        None => connection_id_for(&record.id),
    };
    let credentials = match &record.auth {
        Auth::OAuth2(oauth) => map_oauth2(oauth, &mut notes),
        Auth::ApiKey { api_key } => {
            let mut credentials = typed("API_KEY");
            credentials.insert("apiKey".to_owned(), secret(api_key));
            credentials
        }
        Auth::Basic { username, password } => {
            let mut credentials = typed("BASIC");
            credentials.insert("username".to_owned(), secret(username));
            credentials.insert("password".to_owned(), secret(password));
            credentials
        }
        Auth::Custom { fields } => map_custom(fields.iter(), destination)?,
    };

    let mut metadata = record.metadata.clone();
    if metadata.contains_key(RECORD_ID_METADATA_KEY) {
        return Err(MappingError::new(
            format!("metadata.{RECORD_ID_METADATA_KEY}"),
            "is reserved: authport marks the connections it imports with it",
        ));
    }
    metadata.insert(RECORD_ID_METADATA_KEY.to_owned(), json!(record.id));

    let mut body = Map::new();
    body.insert(
        "provider_config_key".to_owned(),
        json!(destination.provider_config_key),
    );
    body.insert("connection_id".to_owned(), json!(connection_id));
    body.insert("credentials".to_owned(), Value::Object(credentials));
    if !record.settings.is_empty() {
        body.insert(
            "connection_config".to_owned(),
            Value::Object(record.settings.clone()),
        );
    }
    body.insert("metadata".to_owned(), Value::Object(metadata));
    body.insert("tags".to_owned(), Value::Object(owner_tags(record)?));
    let body = Value::Object(body);
    UPSERT_SCHEMA.check_body(&body, "Nango's upsert request schema")?;

    let destination = NangoRef {
        provider_config_key: destination.provider_config_key.clone(),
        connection_id,
    };
    Ok(MappedRecord {
        target: destination.to_map(),
        body: SecretJson::new(body),
        notes,
        payload: Payload::new(destination),
    })
}

fn typed(kind: &str) -> Map<String, Value> {
    let mut credentials = Map::new();
    credentials.insert("type".to_owned(), json!(kind));
    credentials
}

fn secret(value: &SecretString) -> Value {
    json!(value.expose_secret())
}

fn map_oauth2(oauth: &OAuth2, notes: &mut Vec<String>) -> Map<String, Value> {
    let mut credentials = typed("OAUTH2");
    credentials.insert("access_token".to_owned(), secret(&oauth.access_token));
    if let Some(refresh_token) = &oauth.refresh_token {
        credentials.insert("refresh_token".to_owned(), secret(refresh_token));
    }
    match &oauth.expiry {
        Some(expiry) => {
            credentials.insert(
                "expires_at".to_owned(),
                json!(expiry.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            );
        }
        None => notes.push("no expiry known: Nango treats the access token as valid".to_owned()),
    }
    if oauth.refresh_token.is_none() {
        notes.push("no refresh token: Nango cannot refresh this connection".to_owned());
    }
    if !oauth.scopes.is_empty() {
        notes.push("scopes are not sent: Nango's upsert has no field for them".to_owned());
    }
    if let Some(client_id) = &oauth.client_id {
        notes.push(format!(
            "Nango refreshes with the OAuth client of the integration: it must be client `{client_id}`"
        ));
    }
    credentials
}

/// A `custom` record through its field map: every record field must be mapped, and the
/// result must be a complete credential object of the map's type (checked by the schema).
fn map_custom<'a>(
    fields: impl Iterator<Item = (&'a String, &'a SecretString)>,
    destination: &Destination,
) -> Result<Map<String, Value>, MappingError> {
    let Some(map) = &destination.custom else {
        return Err(MappingError::new(
            "auth.type",
            format!(
                "custom credentials need a field map: set targets.{PROVIDER}.custom or [nango.integrations.{}] custom",
                destination.provider_config_key
            ),
        ));
    };
    let mut credentials = typed(map.credential_type.wire_name());
    for (name, value) in fields {
        let Some(target) = map.fields.get(name) else {
            return Err(MappingError::new(
                format!("auth.fields.{name}"),
                "is not in the custom field map: map it, or drop it from the record",
            ));
        };
        if !map.credential_type.fields().contains(&target.as_str()) {
            return Err(MappingError::new(
                format!("auth.fields.{name}"),
                format!(
                    "maps to a field that {} credentials do not have",
                    map.credential_type.wire_name()
                ),
            ));
        }
        if credentials.insert(target.clone(), secret(value)).is_some() {
            return Err(MappingError::new(
                format!("auth.fields.{name}"),
                format!("maps to `{target}`, which another field fills too"),
            ));
        }
    }
    Ok(credentials)
}

/// `end_user_id` and `organization_id` from the owner's id, `end_user_email` from its email.
fn owner_tags(record: &CredentialRecord) -> Result<Map<String, Value>, MappingError> {
    let mut tags = Map::new();
    let mut put = |key: &str, field: &str, value: &str| {
        if value.chars().count() > TAG_VALUE_MAX_CHARS {
            return Err(MappingError::new(
                field,
                format!("is longer than Nango's {TAG_VALUE_MAX_CHARS}-character tag limit"),
            ));
        }
        tags.insert(key.to_owned(), json!(value));
        Ok(())
    };
    put("end_user_id", "owner.id", &record.owner.id)?;
    put("organization_id", "owner.id", &record.owner.id)?;
    if let Some(email) = &record.owner.email {
        put("end_user_email", "owner.email", email)?;
    }
    Ok(tags)
}
