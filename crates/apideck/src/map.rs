//! Canonical record -> `ConnectionImportData`. Pure: no IO, no clock (the run's `now` is an
//! input), so it can be snapshot-tested exhaustively.

use std::collections::BTreeMap;

use authport_core::{
    Auth, CredentialRecord, ExposeSecret, MappedRecord, MappingError, OAuth2, SecretJson,
    redact_json,
};
use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use crate::config::{SuspectMilliseconds, TargetOverride, is_header_safe};
use crate::defaults::built_in_target;
use crate::schema::import_body_violations;
use crate::wire::{Connection, FormField};

/// The provider name, also the key of `targets.<provider>` in records.
pub const PROVIDER: &str = "apideck";

/// Metadata key marking a connection as imported by authport for one record. Lets a later
/// import tell "ours" (safe to update) from a connection someone else set up (skipped).
pub const RECORD_ID_METADATA_KEY: &str = "authport_record_id";

/// What discovery learned about one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorInfo {
    pub unified_api: String,
    pub service_id: String,
    /// `oauth2`, `apiKey`, `basic`, `custom`, `none` (or a value Apideck adds later).
    pub auth_type: String,
    pub integration_state: Option<String>,
    pub form_fields: Vec<FormField>,
}

impl ConnectorInfo {
    /// Reads a discovered `Connection`; a disabled integration or a connection without
    /// `auth_type` is refused with the reason.
    pub fn from_connection(
        unified_api: &str,
        service_id: &str,
        connection: &Connection,
    ) -> Result<Self, String> {
        if connection.integration_state.as_deref() == Some("disabled") {
            return Err(format!(
                "the {unified_api}/{service_id} integration is disabled for this Apideck application; enable it in the Apideck dashboard"
            ));
        }
        let Some(auth_type) = connection.auth_type.clone() else {
            return Err(format!(
                "apideck did not say which auth type {unified_api}/{service_id} uses"
            ));
        };
        Ok(Self {
            unified_api: unified_api.to_owned(),
            service_id: service_id.to_owned(),
            auth_type,
            integration_state: connection.integration_state.clone(),
            form_fields: connection.form_fields.clone(),
        })
    }

    fn label(&self) -> String {
        format!("{}/{}", self.unified_api, self.service_id)
    }

    fn field(&self, id: &str) -> Option<&FormField> {
        self.form_fields.iter().find(|f| f.id == id)
    }

    fn field_ids(&self) -> String {
        if self.form_fields.is_empty() {
            "none".to_owned()
        } else {
            self.form_fields
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// A record's destination: `(consumer = owner.id, unified_api, service_id)` plus the naming
/// overrides that apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub unified_api: String,
    pub service_id: String,
    pub overrides: TargetOverride,
}

/// Resolves where a service's records go: the record's `targets.apideck`, else
/// `[apideck.services.<service>]`, else the built-in table; later levels override key by key.
pub fn resolve_target(
    service: &str,
    record_target: Option<&Value>,
    configured: &BTreeMap<String, TargetOverride>,
) -> Result<ResolvedTarget, MappingError> {
    let field = format!("targets.{PROVIDER}");
    let from_record = match record_target {
        None => TargetOverride::default(),
        Some(value) => serde_json::from_value::<TargetOverride>(value.clone())
            .map_err(|e| MappingError::new(&field, e.to_string()))?,
    };
    let mut merged = built_in_target(service).unwrap_or_default();
    if let Some(from_config) = configured.get(service) {
        merged = merged.merged_with(from_config);
    }
    merged = merged.merged_with(&from_record);
    let (Some(unified_api), Some(service_id)) =
        (merged.unified_api.clone(), merged.service_id.clone())
    else {
        return Err(MappingError::new(
            &field,
            format!(
                "no Apideck connector known for service `{service}`; set targets.{PROVIDER}.unified_api and .service_id or [apideck.services.{service}]"
            ),
        ));
    };
    for (name, value) in [("unified_api", &unified_api), ("service_id", &service_id)] {
        if !is_path_segment(value) {
            return Err(MappingError::new(
                format!("{field}.{name}"),
                "must be a non-empty id of letters, digits, `-`, `_` or `.`",
            ));
        }
    }
    Ok(ResolvedTarget {
        unified_api,
        service_id,
        overrides: merged,
    })
}

fn is_path_segment(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Per-run mapping policy.
#[derive(Debug, Clone, Copy)]
pub struct MapOptions {
    pub suspect_milliseconds: SuspectMilliseconds,
    pub allow_incomplete_settings: bool,
    /// The run's clock: decides "already expired" and stands in for an unknown issue time.
    pub now: DateTime<Utc>,
}

/// Maps one record for `connector`. Every body is validated against `ConnectionImportData`
/// and the connector's required form fields before it can be sent.
pub fn map_record(
    record: &CredentialRecord,
    target: &ResolvedTarget,
    connector: &ConnectorInfo,
    options: &MapOptions,
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
    let body = Value::Object(body);
    let violations = import_body_violations(&body);
    if !violations.is_empty() {
        return Err(MappingError::new(
            "body",
            format!(
                "does not match Apideck's ConnectionImportData: {}",
                violations.join("; ")
            ),
        ));
    }

    let redacted_body = redact_json(&body, &record.secret_values());
    let mut target_ids = Map::new();
    target_ids.insert("consumer_id".to_owned(), json!(record.owner.id));
    target_ids.insert("unified_api".to_owned(), json!(target.unified_api));
    target_ids.insert("service_id".to_owned(), json!(target.service_id));
    Ok(MappedRecord {
        target: target_ids,
        body: SecretJson::new(body),
        redacted_body,
        notes,
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
        let field_path = format!("settings.{name}");
        let form_field_id = match target.overrides.settings_map.get(name) {
            Some(None) => {
                notes.push(format!("{field_path}: dropped by settings_map"));
                continue;
            }
            Some(Some(id)) => id.as_str(),
            None => name.as_str(),
        };
        if connector.field(form_field_id).is_none() {
            return Err(MappingError::new(
                field_path,
                format!(
                    "`{form_field_id}` is not a form field of {} (form fields: {}); rename or drop it with targets.{PROVIDER}.settings_map",
                    connector.label(),
                    connector.field_ids()
                ),
            ));
        }
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
        if let Value::Object(inner) = value {
            if inner.len() == 1 && inner.contains_key("type") {
                return Err(MappingError::new(
                    format!("{section}.{key}"),
                    "an object holding only `type` would be dropped by Apideck",
                ));
            }
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
                (format!("auth.fields.{name}"), id, secret)
            })
            .collect(),
        Auth::OAuth2(_) => Vec::new(),
    };
    for (field_path, form_field_id, secret) in secrets {
        if connector.field(&form_field_id).is_none() {
            return Err(MappingError::new(
                field_path,
                format!(
                    "`{form_field_id}` is not a form field of {} (form fields: {}); set targets.{PROVIDER}.fields",
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
    if name != "username" {
        if let [only] = sensitive.as_slice() {
            return Ok(only.id.clone());
        }
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
    if let Some((issued_at, expires_in)) = rendered.expiry {
        credentials.insert("issued_at".to_owned(), json!(issued_at));
        credentials.insert("expires_in".to_owned(), json!(expires_in));
    }
    notes.extend(rendered.notes);
    if let Some(client_id) = &oauth.client_id {
        notes.push(format!(
            "Vault refreshes with the OAuth client of the Apideck integration: it must be client `{client_id}`"
        ));
    }
    Ok(credentials)
}

/// The expiry as Apideck wants it, with what the operator should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedExpiry {
    /// `(issued_at as RFC 3339 UTC, expires_in in whole seconds)`; `None` omits both, which
    /// makes Vault queue a refresh.
    pub expiry: Option<(String, i64)>,
    pub notes: Vec<String>,
}

/// Renders the normalised expiry as `issued_at` + `expires_in` **seconds**.
///
/// - unknown expiry: omitted (Vault queues a refresh), which needs a refresh token unless the
///   service's tokens are long-lived;
/// - suspect milliseconds: refused unless the policy says how to read it;
/// - already expired: omitted so Vault refreshes it, which needs a refresh token;
/// - unknown issue time: left out of the body, which must not depend on when the run happens;
///   [`expiry_at_send`] adds the pair when the import is sent (Vault only needs
///   `issued_at + expires_in` = the expiry).
pub fn render_expiry(
    oauth: &OAuth2,
    long_lived: bool,
    options: &MapOptions,
) -> Result<RenderedExpiry, MappingError> {
    let has_refresh = oauth.refresh_token.is_some();
    let mut notes = Vec::new();
    let Some(expiry) = oauth.expiry else {
        if has_refresh {
            notes.push("expiry unknown: sent without issued_at/expires_in, so Vault queues a refresh on import".to_owned());
        } else if long_lived {
            notes.push(
                "long-lived token without expiry or refresh token: Vault cannot refresh it"
                    .to_owned(),
            );
        } else {
            return Err(MappingError::new(
                "auth.refresh_token",
                format!(
                    "the token has no expiry and no refresh_token: Vault would queue a refresh it cannot perform; give expires_at (or issued_at + expires_in), or mark the service's tokens long-lived (targets.{PROVIDER}.long_lived_tokens)"
                ),
            ));
        }
        return Ok(RenderedExpiry {
            expiry: None,
            notes,
        });
    };

    let mut expires_at = expiry.expires_at;
    if expiry.suspect_milliseconds {
        match (options.suspect_milliseconds, expiry.issued_at) {
            (SuspectMilliseconds::Refuse, _) => {
                return Err(MappingError::new(
                    "auth.expires_in",
                    "looks like milliseconds, but Apideck's expires_in is seconds; fix the input, or set [apideck] suspect_milliseconds = \"as_milliseconds\" (or \"as_seconds\")",
                ));
            }
            (SuspectMilliseconds::AsSeconds, _) => {
                notes.push(
                    "expires_in sent as seconds, as configured (suspect_milliseconds = as_seconds)"
                        .to_owned(),
                );
            }
            (SuspectMilliseconds::AsMilliseconds, Some(issued_at)) => {
                let millis = (expiry.expires_at - issued_at).num_seconds();
                expires_at = issued_at + TimeDelta::milliseconds(millis);
                notes.push(
                    "expires_in read as milliseconds and converted to seconds, as configured"
                        .to_owned(),
                );
            }
            (SuspectMilliseconds::AsMilliseconds, None) => {
                return Err(MappingError::new(
                    "auth.expires_in",
                    "cannot convert milliseconds without issued_at",
                ));
            }
        }
    }

    let expires_at_text = expires_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    if expires_at <= options.now {
        if !has_refresh {
            return Err(MappingError::new(
                "auth.access_token",
                format!(
                    "expired at {expires_at_text} and there is no refresh_token: Vault could neither use nor refresh it"
                ),
            ));
        }
        notes.push(format!(
            "access token expired at {expires_at_text}: sent without expiry so Vault refreshes it with the refresh token"
        ));
        return Ok(RenderedExpiry {
            expiry: None,
            notes,
        });
    }

    let Some(issued_at) = expiry.issued_at.map(whole_seconds) else {
        // The body must not depend on when the run happens, or every re-run would look like a
        // change: the pair is added when the import is sent (`expiry_at_send`).
        notes.push(format!(
            "issue time unknown: issued_at and expires_in are set when the import is sent (then, and the seconds left until {expires_at_text})"
        ));
        if !has_refresh {
            notes.push(format!(
                "no refresh_token: the connection stops working at {expires_at_text} unless re-imported"
            ));
        }
        return Ok(RenderedExpiry {
            expiry: None,
            notes,
        });
    };
    let expires_in = (expires_at - issued_at).num_seconds();
    if expires_in <= 0 {
        return Err(MappingError::new(
            "auth.issued_at",
            "is not before the token's expiry",
        ));
    }
    if !has_refresh {
        notes.push(format!(
            "no refresh_token: the connection stops working at {expires_at_text} unless re-imported"
        ));
    }
    Ok(RenderedExpiry {
        expiry: Some((
            issued_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            expires_in,
        )),
        notes,
    })
}

/// The `issued_at` + `expires_in` pair for a token whose issue time the source does not know,
/// rendered when the import is sent: `issued_at` = `now` (the run's clock), `expires_in` = the
/// seconds left until `expires_at`. `None` when the record needs no such pair (issue time
/// known, no expiry, suspect milliseconds, or already expired: then Vault refreshes).
pub fn expiry_at_send(record: &CredentialRecord, now: DateTime<Utc>) -> Option<(String, i64)> {
    let Auth::OAuth2(oauth) = &record.auth else {
        return None;
    };
    let expiry = oauth.expiry?;
    if expiry.issued_at.is_some() || expiry.suspect_milliseconds {
        return None;
    }
    let issued_at = whole_seconds(now);
    let expires_in = (expiry.expires_at - issued_at).num_seconds();
    (expires_in > 0).then(|| {
        (
            issued_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            expires_in,
        )
    })
}

/// The body to send: the mapped body plus, for a token whose issue time is unknown, the
/// `issued_at` + `expires_in` pair of [`expiry_at_send`].
pub fn body_at_send(body: &Value, record: &CredentialRecord, now: DateTime<Utc>) -> Value {
    let mut body = body.clone();
    if let Some((issued_at, expires_in)) = expiry_at_send(record, now) {
        if let Some(credentials) = body.get_mut("credentials").and_then(Value::as_object_mut) {
            credentials.insert("issued_at".to_owned(), json!(issued_at));
            credentials.insert("expires_in".to_owned(), json!(expires_in));
        }
    }
    body
}

fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::seconds(1)).unwrap_or(at)
}
