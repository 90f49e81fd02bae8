//! Nango as a source: `GET /connections` page by page (one owner's with
//! `tags[end_user_id]`), then each connection with `refresh_token=true`, to a canonical v1
//! record.
//!
//! [`to_record`] is the pure part. Nango's credential types map onto the canonical kinds
//! (OAUTH2, API_KEY, BASIC); any other type, or a credential with fields outside its kind
//! (e.g. an OAuth `client_secret`), is exported as `custom` with a warning naming the fields.
//! `raw` (the token endpoint's own answer, which repeats the typed fields) is not exported.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use authport_core::retry_read;
use authport_core::{
    Auth, AuthExporter, BuildContext, ConfigError, CredentialRecord, Expiry, ExportCounts,
    ExportFilter, ExportSink, ExposeSecret, OAuth2, Owner, ProviderError, ReadRetry, RecordWarning,
    Removal, SecretValue, SourceObject,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::{CredentialRead, NangoClient};
use crate::config::NangoConfig;
use crate::target::{NangoRef, PROVIDER};

/// Connections per `GET /connections` page.
const PAGE_SIZE: u64 = 100;

/// The Nango exporter. Read-only at Nango (a read may refresh a token: that is Nango's own).
#[derive(Debug)]
pub struct NangoExporter {
    client: NangoClient,
}

/// Builds the exporter from the `[nango]` section and the environment (no network IO).
pub fn build_exporter(context: &BuildContext) -> Result<Box<dyn AuthExporter>, ConfigError> {
    let config = NangoConfig::from_sources(&context.config, &context.env)?;
    Ok(Box::new(NangoExporter {
        client: NangoClient::new(&config, context)?,
    }))
}

impl NangoExporter {
    /// Every connection of one listing (all, or one owner's), each handed to the sink.
    async fn export_listing(
        &self,
        owner: Option<&str>,
        sink: &mut dyn ExportSink,
        progress: &mut Progress,
    ) -> Result<(), ProviderError> {
        let mut page = 0;
        loop {
            let listed = retry_read(sink.reads(), || {
                self.client.list_connections_page(owner, page, PAGE_SIZE)
            })
            .await?;
            let full_page = listed.len() as u64 >= PAGE_SIZE;
            let mut new_on_page = 0;
            for connection in listed {
                let at = NangoRef {
                    provider_config_key: connection.provider_config_key,
                    connection_id: connection.connection_id,
                };
                // Pages that overlap (the page base is not documented) give nothing twice.
                if !progress
                    .seen
                    .insert((at.provider_config_key.clone(), at.connection_id.clone()))
                {
                    continue;
                }
                new_on_page += 1;
                progress.objects += 1;
                let source_id = source_id(&at);
                let read = retry_read(sink.reads(), || {
                    self.client.read_connection_with_credentials(&at)
                })
                .await;
                let outcome = match read {
                    Ok(CredentialRead::Found(full)) => to_record(*full),
                    Ok(CredentialRead::Missing) => Err(ProviderError::rejected(
                        "nango connection was removed while the export ran",
                    )),
                    Ok(CredentialRead::RefreshExhausted) => Err(ProviderError::rejected(
                        "nango can no longer refresh this connection (424): reconnect it",
                    )),
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(record) => {
                        progress.owners.insert(record.owner.id.clone());
                        sink.record(record).await?;
                    }
                    Err(error @ ProviderError::Fatal { .. }) => return Err(error),
                    Err(error) => sink.failed(&source_id, error).await?,
                }
            }
            if !full_page || new_on_page == 0 {
                return Ok(());
            }
            page += 1;
        }
    }
}

/// What one export has seen so far.
#[derive(Debug, Default)]
struct Progress {
    /// `(provider_config_key, connection_id)` of every connection handed on.
    seen: BTreeSet<(String, String)>,
    /// Owner ids of the exported records.
    owners: BTreeSet<String>,
    objects: u64,
}

#[async_trait]
impl AuthExporter for NangoExporter {
    async fn export(
        &self,
        filter: &ExportFilter,
        sink: &mut dyn ExportSink,
    ) -> Result<ExportCounts, ProviderError> {
        let mut progress = Progress::default();
        if filter.owners.is_empty() {
            self.export_listing(None, sink, &mut progress).await?;
        } else {
            // An owner named twice is exported once.
            let mut owners: Vec<&String> = Vec::new();
            for owner in &filter.owners {
                if !owners.contains(&owner) {
                    owners.push(owner);
                }
            }
            for owner in owners {
                let before = progress.objects;
                self.export_listing(Some(owner), sink, &mut progress)
                    .await?;
                if progress.objects == before {
                    // Named, as Tray's exporter names an unknown owner: an owner id with a
                    // typo must not pass as "nothing to export".
                    progress.objects += 1;
                    sink.failed(
                        owner,
                        ProviderError::rejected(
                            "nango has no connection tagged with this end_user_id",
                        ),
                    )
                    .await?;
                }
            }
        }
        Ok(ExportCounts {
            owners: progress.owners.len() as u64,
            objects: progress.objects,
        })
    }

    /// The export's own read again: `GET /connections/{id}?refresh_token=true`, never with
    /// `force_refresh` (Nango then refreshes only a token that is about to expire, as it
    /// would on its own).
    async fn reread(
        &self,
        object: &SourceObject,
        reads: &dyn ReadRetry,
    ) -> Result<Option<CredentialRecord>, ProviderError> {
        let at = ref_of(&object.id)?;
        let read = retry_read(reads, || self.client.read_connection_with_credentials(&at)).await?;
        match read {
            CredentialRead::Found(full) => to_record(*full).map(Some),
            CredentialRead::Missing => Ok(None),
            CredentialRead::RefreshExhausted => Err(ProviderError::rejected(
                "nango can no longer refresh this connection (424): reconnect it",
            )),
        }
    }

    /// `DELETE /connections/{id}?provider_config_key=…`.
    async fn retire(
        &self,
        object: &SourceObject,
        reads: &dyn ReadRetry,
    ) -> Result<Removal, ProviderError> {
        let at = ref_of(&object.id)?;
        retry_read(reads, || self.client.delete(&at)).await
    }
}

/// The connection a record id ([`source_id`]) names: an integration's unique key holds no `/`.
fn ref_of(id: &str) -> Result<NangoRef, ProviderError> {
    match id.split_once('/') {
        Some((key, connection)) if !key.is_empty() && !connection.is_empty() => Ok(NangoRef {
            provider_config_key: key.to_owned(),
            connection_id: connection.to_owned(),
        }),
        _ => Err(ProviderError::rejected(
            "not a nango record id (<integration>/<connection id>)",
        )),
    }
}

/// The record id: a connection id is unique per integration only.
pub fn source_id(at: &NangoRef) -> String {
    format!("{}/{}", at.provider_config_key, at.connection_id)
}

/// `ConnectionFull` as the export reads it; the credentials go straight into secret types.
#[derive(Debug, Deserialize)]
pub struct ConnectionWithCredentials {
    pub connection_id: String,
    pub provider_config_key: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub connection_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Deprecated in favour of tags, still read for older connections.
    #[serde(default)]
    pub end_user: Option<EndUser>,
    pub credentials: Credentials,
}

#[derive(Debug, Deserialize)]
pub struct EndUser {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `AllAuthCredentials`: the `type` tag and the type's fields.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub fields: BTreeMap<String, SecretValue>,
}

fn warn(warnings: &mut Vec<RecordWarning>, field: &str, message: String) {
    warnings.push(RecordWarning {
        field: field.to_owned(),
        message,
    });
}

/// The record's owner: the `end_user_id` tag, else the deprecated `end_user`, else the
/// connection id (with a warning).
fn owner_of(connection: &ConnectionWithCredentials, warnings: &mut Vec<RecordWarning>) -> Owner {
    let tag = |name: &str| {
        connection
            .tags
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    };
    let end_user = connection.end_user.as_ref();
    let id = tag("end_user_id")
        .or_else(|| end_user.and_then(|u| u.id.clone()))
        .filter(|id| !id.trim().is_empty());
    let id = id.unwrap_or_else(|| {
        warn(
            warnings,
            "owner.id",
            "the nango connection has no end_user_id tag: its connection id stands for the owner"
                .to_owned(),
        );
        connection.connection_id.clone()
    });
    Owner {
        id,
        name: end_user
            .and_then(|u| u.display_name.clone())
            .filter(|n| !n.trim().is_empty()),
        email: tag("end_user_email")
            .or_else(|| end_user.and_then(|u| u.email.clone()))
            .filter(|e| !e.trim().is_empty()),
    }
}

/// One connection read with its credentials → a v1 record. Pure.
pub fn to_record(connection: ConnectionWithCredentials) -> Result<CredentialRecord, ProviderError> {
    let mut warnings = Vec::new();
    let owner = owner_of(&connection, &mut warnings);
    let at = NangoRef {
        provider_config_key: connection.provider_config_key.clone(),
        connection_id: connection.connection_id.clone(),
    };
    let service = connection
        .provider
        .clone()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| at.provider_config_key.clone());
    let mut metadata = connection.metadata.unwrap_or_default();
    if let Some(organization) = connection.tags.get("organization_id")
        && !metadata.contains_key("organization_id")
    {
        metadata.insert("organization_id".into(), json!(organization));
    }
    let auth = type_credentials(connection.credentials, &mut warnings)?;
    let mut targets = Map::new();
    targets.insert(PROVIDER.into(), Value::Object(at.to_map()));
    Ok(CredentialRecord {
        id: source_id(&at),
        owner,
        service,
        name: None,
        auth,
        settings: connection.connection_config.unwrap_or_default(),
        metadata,
        targets,
        warnings,
    })
}

/// The fields each documented type is typed from.
const OAUTH2_FIELDS: &[&str] = &["access_token", "refresh_token", "expires_at", "client_id"];

fn type_credentials(
    credentials: Credentials,
    warnings: &mut Vec<RecordWarning>,
) -> Result<Auth, ProviderError> {
    let kind = credentials.kind.unwrap_or_default();
    let mut fields: BTreeMap<String, SecretValue> = BTreeMap::new();
    for (name, value) in credentials.fields {
        match name.as_str() {
            // The token endpoint's raw answer: it repeats the typed fields.
            "raw" => {}
            // `{client_id, client_secret}`: read as two fields of their own.
            "config_override" => match value {
                SecretValue::Structured(text) => {
                    let inner: BTreeMap<String, SecretValue> =
                        serde_json::from_str(text.0.expose_secret()).unwrap_or_default();
                    fields.extend(inner);
                }
                SecretValue::Null(()) => {}
                other => {
                    fields.insert(name, other);
                }
            },
            _ => {
                fields.insert(name, value);
            }
        }
    }
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    let typed = match kind.as_str() {
        "OAUTH2"
            if names.contains(&"access_token")
                && names.iter().all(|n| OAUTH2_FIELDS.contains(n)) =>
        {
            return oauth2(fields, warnings);
        }
        "API_KEY" if names == ["apiKey"] => fields
            .remove("apiKey")
            .and_then(SecretValue::into_secret)
            .map(|api_key| Auth::ApiKey { api_key }),
        "BASIC" if names == ["password", "username"] => {
            let username = fields.remove("username").and_then(SecretValue::into_secret);
            let password = fields.remove("password").and_then(SecretValue::into_secret);
            username
                .zip(password)
                .map(|(username, password)| Auth::Basic { username, password })
        }
        _ => None,
    };
    if let Some(auth) = typed {
        return Ok(auth);
    }
    if fields.is_empty() {
        return Err(ProviderError::rejected(format!(
            "nango connection has no credentials to export (type {})",
            printable_kind(&kind)
        )));
    }
    warn(
        warnings,
        "auth",
        format!(
            "nango credentials of type {} ({}) are not exactly an oauth2, api_key or basic set: exported as custom",
            printable_kind(&kind),
            fields
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let mut secrets = BTreeMap::new();
    for (name, value) in fields {
        match value.into_secret() {
            Some(secret) => {
                secrets.insert(name, secret);
            }
            None => warn(
                warnings,
                &format!("auth.fields.{name}"),
                "empty in nango: left out".to_owned(),
            ),
        }
    }
    if secrets.is_empty() {
        return Err(ProviderError::rejected(
            "nango connection has only empty credentials",
        ));
    }
    Ok(Auth::Custom { fields: secrets })
}

/// A type tag for messages: Nango's documented tags are upper-case words; anything else is
/// not shown.
fn printable_kind(kind: &str) -> &str {
    if !kind.is_empty()
        && kind.len() <= 40
        && kind
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        kind
    } else {
        "(unknown)"
    }
}

fn oauth2(
    mut fields: BTreeMap<String, SecretValue>,
    warnings: &mut Vec<RecordWarning>,
) -> Result<Auth, ProviderError> {
    let access_token = fields
        .remove("access_token")
        .and_then(SecretValue::into_secret)
        .ok_or_else(|| ProviderError::rejected("nango connection has an empty access token"))?;
    let refresh_token = fields
        .remove("refresh_token")
        .and_then(SecretValue::into_secret);
    let client_id = fields
        .remove("client_id")
        .and_then(SecretValue::into_secret)
        .map(|s| s.expose_secret().to_owned());
    let expiry = match fields.remove("expires_at") {
        None | Some(SecretValue::Null(())) => None,
        Some(value) => {
            let at = value.into_secret().and_then(|text| {
                DateTime::parse_from_rfc3339(text.expose_secret())
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            });
            if at.is_none() {
                warn(
                    warnings,
                    "auth.expires_at",
                    "nango's expires_at is not an RFC 3339 instant: expiry left out".to_owned(),
                );
            }
            at.map(|expires_at| Expiry {
                expires_at,
                issued_at: None,
                suspect_milliseconds: false,
            })
        }
    };
    Ok(Auth::OAuth2(OAuth2 {
        access_token,
        refresh_token,
        token_type: None,
        scopes: Vec::new(),
        expiry,
        client_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(credentials: Value) -> (Result<&'static str, String>, Vec<String>) {
        let credentials: Credentials = serde_json::from_value(credentials).unwrap();
        let mut warnings = Vec::new();
        let typed = type_credentials(credentials, &mut warnings)
            .map(|auth| auth.kind())
            .map_err(|e| e.to_string());
        (typed, warnings.into_iter().map(|w| w.field).collect())
    }

    #[test]
    fn credentials_are_typed_by_type_and_fields() {
        let ok = |kind: &'static str, warned: &[&str]| {
            (
                Ok(kind),
                warned.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        // `raw` repeats the token answer and is not exported; a client id is typed.
        assert_eq!(
            kind_of(
                json!({"type": "OAUTH2", "access_token": "a", "raw": {"access_token": "a"},
                "config_override": {"client_id": "cid"}})
            ),
            ok("oauth2", &[])
        );
        // A client secret has no canonical field: custom, with a warning.
        assert_eq!(
            kind_of(json!({"type": "OAUTH2", "access_token": "a",
                "config_override": {"client_id": "cid", "client_secret": "s"}})),
            ok("custom", &["auth"])
        );
        assert_eq!(
            kind_of(json!({"type": "API_KEY", "apiKey": "k"})),
            ok("api_key", &[])
        );
        assert_eq!(
            kind_of(json!({"type": "BASIC", "username": "u", "password": "p"})),
            ok("basic", &[])
        );
        assert_eq!(
            kind_of(json!({"type": "TBA", "token_id": "t", "token_secret": ""})),
            ok("custom", &["auth", "auth.fields.token_secret"])
        );
        assert!(kind_of(json!({"type": "NONE"})).0.is_err());
    }

    #[test]
    fn a_record_id_names_its_connection_again() {
        let at = ref_of("hubspot-crm/conn/with/slashes").unwrap();
        assert_eq!(at.provider_config_key, "hubspot-crm");
        assert_eq!(at.connection_id, "conn/with/slashes");
        assert_eq!(source_id(&at), "hubspot-crm/conn/with/slashes");
        for bad in ["", "no-slash", "/c", "k/"] {
            assert!(ref_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_documented_looking_type_tags_are_printed() {
        assert_eq!(printable_kind("OAUTH2"), "OAUTH2");
        assert_eq!(printable_kind("secret-looking value"), "(unknown)");
        assert_eq!(printable_kind(""), "(unknown)");
    }
}
