//! The canonical credential record (input format v1) and its validation from JSON.
//!
//! Parsing is done by hand from a `serde_json::Value` rather than with `#[derive(Deserialize)]`:
//! it gives every problem its exact field path, collects all problems of a record at once, and
//! guarantees that no message ever quotes a value (serde's "invalid type: string \"...\"" would
//! print a secret placed in the wrong field). Which keys a message may name is decided in
//! one place, the `names` module.

mod fields;
mod names;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

pub use fields::type_name;
use fields::{Fields, Problems, has_control_characters, secret_value};
pub use names::escaped_name;
pub(crate) use names::{PathSegment, duplicate_key_problem};

/// The keys of a record, of its `owner` and of its `auth` (every auth type's), as the format
/// names them.
const TOP_FIELDS: &[&str] = &[
    "id", "owner", "service", "name", "auth", "settings", "metadata", "targets",
];
const OWNER_FIELDS: &[&str] = &["id", "name", "email"];
const OAUTH2_FIELDS: &[&str] = &[
    "type",
    "access_token",
    "refresh_token",
    "token_type",
    "scopes",
    "expires_at",
    "issued_at",
    "expires_in",
    "client_id",
];
const API_KEY_FIELDS: &[&str] = &["type", "api_key"];
const BASIC_FIELDS: &[&str] = &["type", "username", "password"];
const CUSTOM_FIELDS: &[&str] = &["type", "fields"];
const AUTH_FIELDS: &[&str] = &[
    "type",
    "access_token",
    "refresh_token",
    "token_type",
    "scopes",
    "expires_at",
    "issued_at",
    "expires_in",
    "client_id",
    "api_key",
    "username",
    "password",
    "fields",
];
const AUTH_TYPES: &[&str] = &["oauth2", "api_key", "basic", "custom"];

/// One credential to migrate. `Debug` is allow-list: ids and kinds, never values.
#[derive(Clone)]
pub struct CredentialRecord {
    /// The source system's stable key; unique in a file.
    pub id: String,
    pub owner: Owner,
    /// Canonical service slug (`slack`, `mailchimp`, ...).
    pub service: String,
    /// Display name, if the source has one.
    pub name: Option<String>,
    pub auth: Auth,
    /// Non-secret connection settings (subdomain, dc, instance_url, ...).
    pub settings: Map<String, Value>,
    /// Free-form; passed on where the target supports it.
    pub metadata: Map<String, Value>,
    /// Per-provider overrides, keyed by provider name. Each provider validates its own.
    pub targets: Map<String, Value>,
    /// Non-fatal findings (suspect milliseconds, expired token), shown in plans and reports.
    pub warnings: Vec<RecordWarning>,
}

impl fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("id", &self.id)
            .field("owner", &self.owner.id)
            .field("service", &self.service)
            .field("auth", &self.auth.kind())
            .finish_non_exhaustive()
    }
}

impl CredentialRecord {
    /// Every secret value of the record, for redaction of anything derived from it.
    pub fn secret_values(&self) -> Vec<&str> {
        self.auth
            .secrets()
            .into_iter()
            .map(|s| s.expose_secret())
            .collect()
    }
}

/// The end user / tenant in the source system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The secret part of a record, by `auth.type`.
#[derive(Clone)]
pub enum Auth {
    OAuth2(OAuth2),
    ApiKey {
        api_key: SecretString,
    },
    Basic {
        username: SecretString,
        password: SecretString,
    },
    Custom {
        fields: BTreeMap<String, SecretString>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Auth::{}([redacted])", self.kind())
    }
}

impl Auth {
    /// The record format's `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OAuth2(_) => "oauth2",
            Self::ApiKey { .. } => "api_key",
            Self::Basic { .. } => "basic",
            Self::Custom { .. } => "custom",
        }
    }

    /// Every secret this auth holds.
    pub fn secrets(&self) -> Vec<&SecretString> {
        match self {
            Self::OAuth2(o) => std::iter::once(&o.access_token)
                .chain(o.refresh_token.as_ref())
                .collect(),
            Self::ApiKey { api_key } => vec![api_key],
            Self::Basic { username, password } => vec![username, password],
            Self::Custom { fields } => fields.values().collect(),
        }
    }
}

/// An OAuth2 token set.
#[derive(Clone)]
pub struct OAuth2 {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub token_type: Option<String>,
    pub scopes: Vec<String>,
    pub expiry: Option<Expiry>,
    pub client_id: Option<String>,
}

impl fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2")
            .field("refresh_token", &self.refresh_token.is_some())
            .field("scopes", &self.scopes)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// Token expiry, normalised once to an absolute UTC instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// When the access token stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was issued, if the source knows.
    pub issued_at: Option<DateTime<Utc>>,
    /// The input's `expires_in` was so large that it only makes sense as milliseconds.
    pub suspect_milliseconds: bool,
}

impl Expiry {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// A non-fatal finding on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWarning {
    pub field: String,
    pub message: String,
}

impl fmt::Display for RecordWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One problem in a record, located to its field path (`auth.access_token`, `owner.id`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// An `expires_in` at or above this many seconds (11.6 days), and a whole number of thousands,
/// is more likely milliseconds than seconds (3600000 = one hour in ms).
const SUSPECT_MILLISECONDS_FROM: i64 = 1_000_000;

/// Validates one parsed JSON value as a v1 record. `now` decides "already expired".
/// Returns every problem found, not only the first. See [`from_json_value`] for a value the
/// caller no longer needs (its strings are moved into the record, not copied).
pub fn from_json_located(
    value: &Value,
    now: DateTime<Utc>,
) -> Result<CredentialRecord, Vec<FieldProblem>> {
    from_json_value(value.clone(), now)
}

/// [`from_json_located`] for an owned value: the record takes its strings and maps out of it.
pub fn from_json_value(
    value: Value,
    now: DateTime<Utc>,
) -> Result<CredentialRecord, Vec<FieldProblem>> {
    from_json_value_with_id(value, now).map_err(|invalid| invalid.problems)
}

/// A record that failed validation.
pub(crate) struct InvalidRecord {
    /// The record's id when it could be read, as [`id_of`] reads it (for the report).
    pub(crate) id: Option<String>,
    pub(crate) problems: Vec<FieldProblem>,
}

/// [`from_json_value`] that keeps the id of a bad record, so the caller need not copy it out
/// of the value beforehand.
pub(crate) fn from_json_value_with_id(
    value: Value,
    now: DateTime<Utc>,
) -> Result<CredentialRecord, InvalidRecord> {
    let mut problems = Problems::default();
    let map = match value {
        Value::Object(map) => map,
        other => {
            problems.add(
                "",
                format!("expected a JSON object, found {}", type_name(&other)),
            );
            return Err(InvalidRecord {
                id: None,
                problems: problems.0,
            });
        }
    };
    let mut top = Fields::new(map, Cow::Borrowed(""), &mut problems);
    // `required_text` refuses exactly what `id_of` does not read back (absent, not a string,
    // blank, control characters), so this is the id the report shows for a bad record.
    let id = top.required_text("id");
    let owner = top
        .required_object("owner")
        .map(|(owner, path)| parse_owner(owner, path, top.problems));
    let service = top.required_text("service");
    let name = top.optional_text("name");
    let auth = top
        .required_object("auth")
        .and_then(|(auth, path)| parse_auth(auth, path, now, top.problems));
    let settings = top.optional_object("settings").unwrap_or_default();
    let metadata = top.optional_object("metadata").unwrap_or_default();
    let targets = top.optional_object("targets").unwrap_or_default();
    for (provider, value) in &targets {
        if !value.is_object() {
            top.problems.add(
                format!("targets.{}", names::escaped_name(provider)),
                format!(
                    "expected an object of overrides, found {}",
                    type_name(value)
                ),
            );
        }
    }
    top.reject_unknown(TOP_FIELDS);

    let owner = owner.flatten();
    if !problems.0.is_empty() {
        return Err(InvalidRecord {
            id,
            problems: problems.0,
        });
    }
    match (id, owner, service, auth) {
        (Some(id), Some(owner), Some(service), Some((auth, warnings))) => Ok(CredentialRecord {
            id,
            owner,
            service,
            name,
            auth,
            settings,
            metadata,
            targets,
            warnings,
        }),
        // Every `None` above has recorded a problem.
        (id, ..) => Err(InvalidRecord {
            id,
            problems: vec![FieldProblem {
                field: String::new(),
                message: "record is incomplete".to_owned(),
            }],
        }),
    }
}

/// The record's `id`, if it can be read even from a record with problems (for the report).
/// An id the record's own rules refuse (blank, control characters) is not read back.
pub fn id_of(value: &Value) -> Option<String> {
    value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty() && !has_control_characters(id))
        .map(str::to_owned)
}

fn parse_owner(
    map: Map<String, Value>,
    path: Cow<'static, str>,
    problems: &mut Problems,
) -> Option<Owner> {
    let mut fields = Fields::new(map, path, problems);
    let id = fields.required_text("id");
    let name = fields.optional_text("name");
    let email = fields.optional_text("email");
    fields.reject_unknown(OWNER_FIELDS);
    Some(Owner {
        id: id?,
        name,
        email,
    })
}

fn parse_auth(
    map: Map<String, Value>,
    path: Cow<'static, str>,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<(Auth, Vec<RecordWarning>)> {
    let mut fields = Fields::new(map, path, problems);
    let kind = fields.required_text("type")?;
    let mut warnings = Vec::new();
    let auth = match kind.as_str() {
        "oauth2" => {
            let access_token = fields.required_secret("access_token");
            let refresh_token = fields.optional_secret("refresh_token");
            let token_type = fields.optional_text("token_type");
            let scopes = fields.optional_string_list("scopes");
            let client_id = fields.optional_text("client_id");
            let expiry = parse_expiry(&mut fields, now, &mut warnings);
            fields.reject_unknown_auth_fields(OAUTH2_FIELDS, AUTH_FIELDS);
            Auth::OAuth2(OAuth2 {
                access_token: access_token?,
                refresh_token,
                token_type,
                scopes,
                expiry: expiry?,
                client_id,
            })
        }
        "api_key" => {
            let api_key = fields.required_secret("api_key");
            fields.reject_unknown_auth_fields(API_KEY_FIELDS, AUTH_FIELDS);
            Auth::ApiKey { api_key: api_key? }
        }
        "basic" => {
            let username = fields.required_secret("username");
            let password = fields.required_secret("password");
            fields.reject_unknown_auth_fields(BASIC_FIELDS, AUTH_FIELDS);
            Auth::Basic {
                username: username?,
                password: password?,
            }
        }
        "custom" => {
            let secrets = fields.required_object("fields").map(|(map, fields_path)| {
                let mut secrets = BTreeMap::new();
                if map.is_empty() {
                    fields
                        .problems
                        .add(fields_path.as_ref(), "must hold at least one secret");
                }
                for (key, value) in map {
                    let key_path = format!("{fields_path}.{}", names::escaped_name(&key));
                    if let Some(secret) = secret_value(value, &key_path, fields.problems) {
                        secrets.insert(key, secret);
                    }
                }
                secrets
            });
            fields.reject_unknown_auth_fields(CUSTOM_FIELDS, AUTH_FIELDS);
            Auth::Custom { fields: secrets? }
        }
        other => {
            // The value is not echoed: a secret pasted here has been seen in the field.
            let hint = names::likely_meant(other, AUTH_TYPES)
                .map(|name| format!(" (did you mean `{name}`?)"))
                .unwrap_or_default();
            let path = fields.field_path("type");
            fields.problems.add(
                path,
                format!(
                    "unknown auth type{hint}; expected one of: {}",
                    AUTH_TYPES.join(", ")
                ),
            );
            return None;
        }
    };
    Some((auth, warnings))
}

/// `Some(None)`: no expiry given; `None`: a problem was recorded.
fn parse_expiry(
    fields: &mut Fields<'_>,
    now: DateTime<Utc>,
    warnings: &mut Vec<RecordWarning>,
) -> Option<Option<Expiry>> {
    let expires_at = fields.optional_instant("expires_at");
    let issued_at = fields.optional_instant("issued_at");
    let expires_in = fields.optional_integer("expires_in");
    let (expires_at, issued_at, expires_in) = (expires_at?, issued_at?, expires_in?);
    let mut suspect_milliseconds = false;
    let absolute = match (expires_at, issued_at, expires_in) {
        (None, _, None) => None,
        (Some(_), _, Some(_)) => {
            fields.problems.add(
                fields.field_path("expires_in"),
                "give either expires_at or issued_at + expires_in, not both",
            );
            return None;
        }
        (Some(at), _, None) => Some(at),
        (None, None, Some(_)) => {
            fields.problems.add(
                fields.field_path("expires_in"),
                "needs issued_at: expires_in counts from the moment the token was issued",
            );
            return None;
        }
        (None, Some(issued), Some(seconds)) => {
            if seconds < 0 {
                fields
                    .problems
                    .add(fields.field_path("expires_in"), "must not be negative");
                return None;
            }
            if seconds >= SUSPECT_MILLISECONDS_FROM && seconds % 1000 == 0 {
                suspect_milliseconds = true;
                // The one place a message shows input: a JSON number that passed the integer
                // check (and below, an instant that parsed as RFC 3339). Secrets are strings
                // in this format, so neither can be one, and the figure is what to fix.
                warnings.push(RecordWarning {
                    field: fields.field_path("expires_in"),
                    message: format!(
                        "{seconds} looks like milliseconds ({} s); expires_in is in seconds ({} days as given)",
                        seconds / 1000,
                        seconds / 86_400
                    ),
                });
            }
            let Some(at) =
                TimeDelta::try_seconds(seconds).and_then(|d| issued.checked_add_signed(d))
            else {
                fields
                    .problems
                    .add(fields.field_path("expires_in"), "is out of range");
                return None;
            };
            Some(at)
        }
    };
    let expiry = absolute.map(|expires_at| Expiry {
        expires_at,
        issued_at,
        suspect_milliseconds,
    });
    if let Some(expiry) = &expiry
        && expiry.is_expired(now)
    {
        warnings.push(RecordWarning {
            field: fields.field_path("access_token"),
            message: format!(
                "already expired at {}",
                expiry
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        });
    }
    Some(expiry)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{from_json_value_with_id, id_of};

    /// The reader reports a bad record's id from validation instead of reading it beforehand
    /// with `id_of`: both must read the same id out of any record.
    #[test]
    fn a_bad_records_id_is_the_one_id_of_reads() {
        let now = chrono::Utc::now();
        let good = json!({"id": "acme-1", "owner": {"id": "acme"}, "service": "slack",
                          "auth": {"type": "api_key", "api_key": "k"}});
        let with_id = |id: Option<serde_json::Value>| {
            let mut record = good.clone();
            let object = record.as_object_mut().unwrap();
            match id {
                Some(id) => object.insert("id".to_owned(), id),
                None => object.remove("id"),
            };
            // A second problem, so that every one of these records is refused.
            object.insert("service".to_owned(), json!(7));
            record
        };
        let cases = [
            with_id(Some(json!("acme-1"))),
            with_id(Some(json!("  padded  "))),
            with_id(Some(json!(""))),
            with_id(Some(json!("   "))),
            with_id(Some(json!("a\u{1b}[2J"))),
            with_id(Some(json!("a\u{85}b"))),
            with_id(Some(json!(42))),
            with_id(Some(json!(null))),
            with_id(Some(json!({"id": "nested"}))),
            with_id(None),
            json!(["acme-1"]),
            json!("acme-1"),
        ];
        for value in cases {
            let expected = id_of(&value);
            let Err(invalid) = from_json_value_with_id(value.clone(), now) else {
                panic!("{value} was accepted");
            };
            assert_eq!(invalid.id, expected, "{value}");
        }
        assert!(from_json_value_with_id(good, now).is_ok());
    }
}
