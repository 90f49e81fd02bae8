//! Canonical record -> Tray `CreatePublicUserAuthentication` body. Pure: no IO, no clock.
//!
//! Default field rules: every canonical value goes to the field of that name (or a known alias)
//! that the environment's `credentialsSchema` or `userDataSchema` declares, credentials first.
//! When the credentials schema declares nothing (usual for OAuth), values go to `credentials`
//! under their snake_case names, settings included (Tray's Mailchimp import puts `dc` there).
//! Explicit rules (`[tray.services.X.fields]`, `targets.tray.fields`) win over the defaults.

use std::collections::BTreeMap;

use authport_core::{
    Auth, CredentialRecord, ExposeSecret, MappedRecord, MappingError, SecretJson, record_tag,
};
use serde_json::{Map, Value, json};

use crate::config::TrayConfig;
use crate::schema::TargetSchema;
use crate::target::{MappedTarget, SolutionTarget};
use crate::wire::ServiceEnvironment;

/// What discovery learned for one (service, environment) pair.
#[derive(Debug)]
pub struct ResolvedTarget {
    pub service_name: String,
    pub service_title: String,
    pub service_version: i64,
    pub environment: ServiceEnvironment,
    pub credentials: TargetSchema,
    pub user_data: TargetSchema,
}

impl ResolvedTarget {
    pub fn new(
        service_name: String,
        service_title: String,
        service_version: i64,
        environment: ServiceEnvironment,
    ) -> Self {
        let credentials = TargetSchema::new(&environment.credentials_schema);
        let user_data = TargetSchema::new(&environment.user_data_schema);
        Self {
            service_name,
            service_title,
            service_version,
            environment,
            credentials,
            user_data,
        }
    }
}

/// The record's `targets.tray` object, checked (unknown keys are an error: typos must not
/// silently change where a credential goes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrayTarget {
    pub service_environment: Option<String>,
    pub service_name: Option<String>,
    pub service_version: Option<i64>,
    pub name: Option<String>,
    pub fields: BTreeMap<String, String>,
    /// `targets.tray.solution.config`: this owner's config slot values (External ID ->
    /// value), over `[tray.solution] config_values`. Non-secret: they are kept in the state.
    pub solution_config: BTreeMap<String, Value>,
}

const TARGET_KEYS: &[&str] = &[
    "service_environment",
    "service_name",
    "service_version",
    "name",
    "fields",
    "solution",
];

/// `targets.tray.solution`: only `config` for now.
fn solution_config(value: Option<&Value>) -> Result<BTreeMap<String, Value>, MappingError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let Some(map) = value.as_object() else {
        return Err(MappingError::new(
            "targets.tray.solution",
            "must be an object",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| k.as_str() != "config") {
        return Err(MappingError::new(
            format!("targets.tray.solution.{unknown}"),
            "unknown field; expected: config",
        ));
    }
    match map.get("config") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(values)) => {
            Ok(values.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        Some(_) => Err(MappingError::new(
            "targets.tray.solution.config",
            "expected an object of config slot external ids to values",
        )),
    }
}

impl TrayTarget {
    pub fn parse(value: Option<&Value>) -> Result<Self, MappingError> {
        let Some(value) = value else {
            return Ok(Self::default());
        };
        let Some(map) = value.as_object() else {
            return Err(MappingError::new("targets.tray", "must be an object"));
        };
        if let Some(unknown) = map.keys().find(|k| !TARGET_KEYS.contains(&k.as_str())) {
            return Err(MappingError::new(
                format!("targets.tray.{unknown}"),
                format!("unknown field; expected one of: {}", TARGET_KEYS.join(", ")),
            ));
        }
        let text = |key: &str| -> Result<Option<String>, MappingError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(MappingError::new(
                    format!("targets.tray.{key}"),
                    "expected a non-empty string",
                )),
            }
        };
        let service_version = match map.get("service_version") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                MappingError::new(
                    "targets.tray.service_version",
                    "expected the integer service version",
                )
            })?),
        };
        let mut fields = BTreeMap::new();
        match map.get("fields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(rules)) => {
                for (source, target) in rules {
                    let Some(target) = target.as_str() else {
                        return Err(MappingError::new(
                            format!("targets.tray.fields.{source}"),
                            "expected a target field such as credentials.api_key, or \"\" to leave it out",
                        ));
                    };
                    fields.insert(source.clone(), target.to_owned());
                }
            }
            Some(_) => {
                return Err(MappingError::new(
                    "targets.tray.fields",
                    "expected an object",
                ));
            }
        }
        Ok(Self {
            service_environment: text("service_environment")?,
            service_name: text("service_name")?,
            service_version,
            name: text("name")?,
            fields,
            solution_config: solution_config(map.get("solution"))?,
        })
    }
}

/// Which service and environment a record goes to, before discovery resolves it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selection {
    pub service_name: String,
    pub service_version: Option<i64>,
    /// Environment title or id.
    pub environment: String,
}

/// The selection for a record's service and `targets.tray`: the record wins over the service
/// override, which wins over the config default (`Production` unless set).
pub fn select(service: &str, target: &TrayTarget, config: &TrayConfig) -> Selection {
    let service_override = config.services.get(service);
    Selection {
        service_name: target
            .service_name
            .clone()
            .or_else(|| service_override.and_then(|o| o.service_name.clone()))
            .unwrap_or_else(|| service.to_owned()),
        service_version: target
            .service_version
            .or_else(|| service_override.and_then(|o| o.service_version)),
        environment: target
            .service_environment
            .clone()
            .or_else(|| service_override.and_then(|o| o.service_environment.clone()))
            .unwrap_or_else(|| config.default_environment.clone()),
    }
}

/// One canonical value of the record, with where it may go.
struct Source {
    /// The record's field path (`auth.api_key`, `settings.dc`).
    path: String,
    /// Target field names to look for, in order of preference; the first is used when the
    /// credentials schema is open.
    aliases: Vec<String>,
    value: Value,
    /// The record cannot be imported without it (dropping it would lose the credential).
    essential: bool,
}

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for ch in name.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn secret(value: &authport_core::SecretString) -> Value {
    Value::String(value.expose_secret().to_owned())
}

/// Tray accepts string, integer, boolean, arrays of objects and objects of objects: no null,
/// no decimals. Decimals and other arrays become strings so nothing is silently lost.
fn settings_value(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => Some(Value::String(n.to_string())),
        Value::Array(items) if !items.iter().all(Value::is_object) => {
            Some(Value::String(value.to_string()))
        }
        other => Some(other.clone()),
    }
}

fn sources(record: &CredentialRecord, notes: &mut Vec<String>) -> Vec<Source> {
    let mut out = Vec::new();
    match &record.auth {
        Auth::OAuth2(oauth) => {
            out.push(Source {
                path: "auth.access_token".into(),
                aliases: names(&["access_token", "accessToken", "token"]),
                value: secret(&oauth.access_token),
                essential: true,
            });
            if let Some(refresh) = &oauth.refresh_token {
                out.push(Source {
                    path: "auth.refresh_token".into(),
                    aliases: names(&["refresh_token", "refreshToken"]),
                    value: secret(refresh),
                    essential: false,
                });
            }
            if let Some(expiry) = &oauth.expiry {
                // Deterministic (no clock): the token's lifetime as issued. Tray's import example
                // sends `expires_in` in seconds.
                match expiry.issued_at {
                    _ if expiry.suspect_milliseconds => {
                        notes.push("auth.expires_in looks like milliseconds: not sent".to_owned())
                    }
                    Some(issued_at) => {
                        let seconds = (expiry.expires_at - issued_at).num_seconds();
                        if seconds > 0 {
                            out.push(Source {
                                path: "auth.expires_in".into(),
                                aliases: names(&["expires_in", "expiresIn"]),
                                value: json!(seconds),
                                essential: false,
                            });
                        }
                    }
                    None => notes
                        .push("auth.expires_at has no issued_at: expires_in not sent".to_owned()),
                }
            }
            if let Some(token_type) = &oauth.token_type {
                out.push(Source {
                    path: "auth.token_type".into(),
                    aliases: names(&["token_type", "tokenType"]),
                    value: json!(token_type),
                    essential: false,
                });
            }
        }
        Auth::ApiKey { api_key } => {
            out.push(Source {
                path: "auth.api_key".into(),
                aliases: names(&[
                    "api_key",
                    "apiKey",
                    "api_token",
                    "token",
                    "access_token",
                    "key",
                ]),
                value: secret(api_key),
                essential: true,
            });
        }
        Auth::Basic { username, password } => {
            out.push(Source {
                path: "auth.username".into(),
                aliases: names(&["username", "email", "user", "login"]),
                value: secret(username),
                essential: true,
            });
            out.push(Source {
                path: "auth.password".into(),
                aliases: names(&["password", "api_token", "token", "secret"]),
                value: secret(password),
                essential: true,
            });
        }
        Auth::Custom { fields } => {
            for (name, value) in fields {
                out.push(Source {
                    path: format!("auth.fields.{name}"),
                    aliases: vec![name.clone(), camel(name)],
                    value: secret(value),
                    essential: true,
                });
            }
        }
    }
    for (name, value) in &record.settings {
        if let Some(value) = settings_value(value) {
            out.push(Source {
                path: format!("settings.{name}"),
                aliases: vec![name.clone(), camel(name)],
                value,
                essential: false,
            });
        }
    }
    out
}

/// Renders the auth name. Placeholders: `{service}`, `{service_title}`, `{owner}` (name, else
/// id), `{owner.id}`, `{owner.name}`, `{record.id}`, `{record.name}`, `{hash}` (16 hex of the
/// record id). A name without the record's `{hash}` gets ` ({hash})` appended: see
/// [`with_mark`].
pub fn auth_name(template: &str, record: &CredentialRecord, service_title: &str) -> String {
    with_mark(
        render_name(template, record, service_title),
        &record_tag(&record.id),
    )
    .0
}

fn render_name(template: &str, record: &CredentialRecord, service_title: &str) -> String {
    let owner = record
        .owner
        .name
        .clone()
        .unwrap_or_else(|| record.owner.id.clone());
    template
        .replace("{service_title}", service_title)
        .replace("{service}", &record.service)
        .replace("{owner.id}", &record.owner.id)
        .replace("{owner.name}", &owner)
        .replace("{owner}", &owner)
        .replace("{record.id}", &record.id)
        .replace(
            "{record.name}",
            record.name.as_deref().unwrap_or(service_title),
        )
        .replace("{hash}", &record_tag(&record.id))
}

/// authport's mark on the auths it creates: the record's tag (`{hash}`) in the name. Tray
/// documents no field of ours that a create can set (`customFields` is listed by
/// `viewer.authentications` but is no input of REST's or GraphQL's create), so the name is
/// where the mark goes. Returns the name to send and, when the mark had to be appended, the
/// name as asked for: an auth with exactly that name is the end user's own (`pre_existing`).
pub fn with_mark(name: String, tag: &str) -> (String, Option<String>) {
    if name.contains(tag) {
        (name, None)
    } else {
        (format!("{name} ({tag})"), Some(name))
    }
}

/// Maps one record to the body of `POST /core/v1/authentications`, validated against the
/// environment's schemas.
pub fn map_record(
    record: &CredentialRecord,
    target: &TrayTarget,
    resolved: &ResolvedTarget,
    config: &TrayConfig,
) -> Result<MappedRecord, MappingError> {
    let environment = &resolved.environment;
    let service = &resolved.service_name;
    let env_label = format!("tray service {service} (environment {})", environment.title);
    if environment.is_oauth() {
        if !matches!(record.auth, Auth::OAuth2(_) | Auth::Custom { .. }) {
            return Err(MappingError::new(
                "auth.type",
                format!(
                    "{env_label} uses {} but the record holds {}",
                    environment.authentication_type,
                    record.auth.kind()
                ),
            ));
        }
        if environment.title == "Production" && !config.allow_tray_oauth_app {
            return Err(MappingError::new(
                "targets.tray.service_environment",
                format!(
                    "{env_label} is Tray's own OAuth app, which cannot refresh tokens your OAuth app issued; \
                     importing OAuth tokens normally needs a custom OAuth app environment: set \
                     targets.tray.service_environment (or [tray.services.{}] service_environment) to its title or id",
                    record.service
                ),
            ));
        }
    }

    let mut notes = Vec::new();
    let mut rules = config
        .services
        .get(&record.service)
        .map(|o| o.fields.clone())
        .unwrap_or_default();
    rules.extend(target.fields.clone());
    let mut credentials = Map::new();
    let mut user_data = Map::new();
    for source in sources(record, &mut notes) {
        if let Some(rule) = rules.get(&source.path) {
            if rule.is_empty() {
                notes.push(format!("{} left out by the field rules", source.path));
                continue;
            }
            let (object, key) = match rule.split_once('.') {
                Some(("credentials", key)) if !key.is_empty() => (&mut credentials, key),
                Some(("userData", key)) if !key.is_empty() => (&mut user_data, key),
                _ => {
                    return Err(MappingError::new(
                        format!("targets.tray.fields.{}", source.path),
                        "expected credentials.<field> or userData.<field>, or \"\" to leave it out",
                    ));
                }
            };
            object.insert(key.to_owned(), source.value);
            continue;
        }
        let in_credentials = source
            .aliases
            .iter()
            .find(|a| resolved.credentials.declares(a));
        let in_user_data = source
            .aliases
            .iter()
            .find(|a| resolved.user_data.declares(a));
        match (in_credentials, in_user_data) {
            (Some(key), _) if !credentials.contains_key(key) => {
                credentials.insert(key.clone(), source.value);
            }
            (_, Some(key)) if !user_data.contains_key(key) => {
                user_data.insert(key.clone(), source.value);
            }
            _ if resolved.credentials.is_open()
                && !credentials.contains_key(&source.aliases[0]) =>
            {
                credentials.insert(source.aliases[0].clone(), source.value);
            }
            _ if source.essential => {
                return Err(MappingError::new(
                    source.path,
                    format!(
                        "{env_label} has no free field for it (credentials fields: {}; userData fields: {}); \
                         map it with targets.tray.fields or [tray.services.{}.fields]",
                        list(&resolved.credentials.properties),
                        list(&resolved.user_data.properties),
                        record.service
                    ),
                ));
            }
            _ => notes.push(format!(
                "{} not sent: {env_label} has no field for it",
                source.path
            )),
        }
    }

    // Validated before sending: the first problem is reported, located to the target field.
    if let Some(problem) = resolved
        .credentials
        .check("credentials", &credentials)
        .into_iter()
        .chain(resolved.user_data.check("userData", &user_data))
        .next()
    {
        return Err(MappingError::new(
            problem.field,
            format!("{} by {env_label}", problem.message),
        ));
    }

    let scopes = scopes_for(record, environment, &mut notes);
    let asked_for = target
        .name
        .clone()
        .unwrap_or_else(|| render_name(&config.name_template, record, &resolved.service_title));
    let (name, unmarked_name) = with_mark(asked_for, &record_tag(&record.id));
    let body = json!({
        "name": name,
        "serviceEnvironmentId": environment.id,
        "credentials": credentials,
        "userData": user_data,
        "scopes": scopes,
    });
    let solution = config.solution.as_ref().and_then(|s| {
        s.slot_for(&record.service).map(|slot| SolutionTarget {
            solution_id: s.solution_id.clone(),
            auth_external_id: slot.to_owned(),
            config: target.solution_config.clone(),
        })
    });
    let target = MappedTarget {
        service: service.clone(),
        service_version: resolved.service_version,
        service_environment: environment.title.clone(),
        service_environment_id: environment.id.clone(),
        authentication_type: environment.authentication_type.clone(),
        name,
        unmarked_name,
        external_user_id: record.owner.id.clone(),
        solution,
    };
    Ok(MappedRecord {
        target: target.to_map(),
        body: SecretJson::new(body),
        notes,
        payload: authport_kit::Payload::new(target),
    })
}

/// The body of `PUT /core/v1/authentications/{id}` from the create body [`map_record`] built:
/// every field again (Tray has no partial update) except `serviceEnvironmentId`, which cannot
/// change.
pub fn update_body(create: &Value) -> Value {
    let mut update = create.clone();
    if let Some(fields) = update.as_object_mut() {
        fields.remove("serviceEnvironmentId");
    }
    update
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Only scopes the environment offers are sent (its list, or none when it lists none).
fn scopes_for(
    record: &CredentialRecord,
    environment: &ServiceEnvironment,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let Auth::OAuth2(oauth) = &record.auth else {
        return Vec::new();
    };
    let offered = environment.scope_names();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for scope in &oauth.scopes {
        if offered.contains(scope) {
            if !kept.contains(scope) {
                kept.push(scope.clone());
            }
        } else {
            dropped.push(scope.clone());
        }
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "scopes not offered by environment {} were not sent: {}",
            environment.title,
            dropped.join(", ")
        ));
    }
    kept
}
