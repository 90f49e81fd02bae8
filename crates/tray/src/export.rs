//! Tray as a source: every end user (`users`, paged, master token) → the user's
//! authentications (`viewer.authentications`, user token) → each one's credentials (REST §4.7
//! Get full authentication, user token) → a canonical v1 record.
//!
//! Get full authentication must be enabled by Tray support for the organisation; a refusal
//! (403) stops the export with that advice. Nothing else in this crate uses it (`verify` reads
//! the metadata GET), so an import never depends on it.
//!
//! [`to_record`] is the pure part; `credentials` types Tray's credentials object by its key set.

use std::collections::BTreeMap;

use async_trait::async_trait;
use authport_core::{
    Auth, AuthExporter, BuildContext, ConfigError, CredentialRecord, ExportCounts, ExportFilter,
    ExportSink, Owner, ProviderError, ReadRetry, Removal, SecretValue, SourceObject, retry_read,
};
use authport_kit::{CallFailure, Effect, Method};
use serde::Deserialize;
use serde_json::{Map, Value, json};

mod credentials;
mod reread;

pub use credentials::snake_case;
use credentials::type_credentials;

use crate::client::{GraphqlCall, Resource, RestCall, TrayClient, master_failure};
use crate::config::TrayConfig;
use crate::users::{UserRef, Users};
use crate::wire::{Connection, queries};

/// Users per `users` page: Tray documents no default or maximum, so a modest explicit one.
const USERS_PAGE_SIZE: i64 = 50;

/// The Tray exporter. Read-only at Tray.
#[derive(Debug)]
pub struct TrayExporter {
    client: TrayClient,
    users: Users,
}

/// Builds the exporter from the `[tray]` section and the environment (no network IO).
pub fn build_exporter(context: &BuildContext) -> Result<Box<dyn AuthExporter>, ConfigError> {
    Ok(Box::new(TrayExporter::new(context)?))
}

impl TrayExporter {
    /// One user's `viewer.authentications` (the export's and the cutover's listing), retried.
    async fn list_auths(
        &self,
        user_ref: UserRef<'_>,
        reads: &dyn ReadRetry,
    ) -> Result<ViewerAuthenticationsData, ProviderError> {
        let no_variables = json!({});
        let list = GraphqlCall {
            document: VIEWER_AUTHENTICATIONS_FOR_EXPORT,
            variables: &no_variables,
            effect: Effect::Read,
            operation: "list authentications",
            secrets: &[],
        };
        retry_read(reads, || async {
            self.users
                .graphql::<ViewerAuthenticationsData>(user_ref, list)
                .await
                .map_err(|failure| failure.error)
        })
        .await
    }

    /// Get full authentication of one auth, without `forceRefresh`, retried.
    async fn full_auth(
        &self,
        user_ref: UserRef<'_>,
        auth_id: &str,
        reads: &dyn ReadRetry,
    ) -> Result<FullAuthentication, ProviderError> {
        let call = RestCall {
            method: &Method::GET,
            resource: Resource::FullAuthentication(auth_id),
            body: None,
            effect: Effect::Read,
            operation: "get full authentication",
            secrets: &[],
        };
        retry_read(reads, || async {
            match self.users.rest(user_ref, call).await {
                Ok((_, body)) => read_full(body.bytes()),
                Err(failure) => Err(full_refusal(failure)),
            }
        })
        .await
    }

    pub fn new(context: &BuildContext) -> Result<Self, ConfigError> {
        let config = TrayConfig::from_context(context)?;
        let client = TrayClient::new(&config, context)?;
        // Every user the export reads is known by its Tray id, so `Users` never looks one up
        // or creates one: it only mints (and re-mints) user tokens.
        let users = Users::new(client.clone(), context.memo.clone(), &config);
        Ok(Self { client, users })
    }

    async fn master<T: serde::de::DeserializeOwned + Send>(
        &self,
        reads: &dyn ReadRetry,
        document: &'static str,
        variables: &Value,
        operation: &'static str,
    ) -> Result<T, ProviderError> {
        let call = GraphqlCall {
            document,
            variables,
            effect: Effect::Read,
            operation,
            secrets: &[],
        };
        retry_read(reads, || async {
            self.client
                .graphql(self.client.master(), call)
                .await
                .map_err(master_failure)
        })
        .await
    }

    /// One owner's users (normally one) by `externalUserId`.
    async fn users_of(
        &self,
        reads: &dyn ReadRetry,
        owner_id: &str,
    ) -> Result<Vec<ExportUser>, ProviderError> {
        // A few, so duplicates of one external id are all exported rather than one guessed.
        let variables = json!({"externalUserId": owner_id, "first": 10});
        let page: UsersPage = self
            .master(
                reads,
                queries::USERS_BY_EXTERNAL_ID,
                &variables,
                "find user",
            )
            .await?;
        Ok(page
            .users
            .edges
            .into_iter()
            .map(|edge| edge.node)
            .filter(|user| user.external_user_id.as_deref() == Some(owner_id))
            .collect())
    }

    /// Every auth of one user, each handed to the sink.
    async fn export_user(
        &self,
        user: &ExportUser,
        sink: &mut dyn ExportSink,
        counts: &mut ExportCounts,
    ) -> Result<(), ProviderError> {
        counts.owners += 1;
        let owner = user.owner();
        let user_ref = user.user_ref(&owner);
        let listed = self.list_auths(user_ref, sink.reads()).await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                counts.objects += 1;
                return stop_or_report(error, &owner.id, sink).await;
            }
        };
        let listing = listed.viewer.authentications;
        // Tray documents no paging argument for this list (§5.5, §7): what `hasNextPage`
        // leaves out cannot be asked for, so the owner is reported incomplete, never silently.
        let incomplete = listing.has_next_page();
        for auth in listing.into_nodes() {
            counts.objects += 1;
            let full = self.full_auth(user_ref, &auth.id, sink.reads()).await;
            match full.and_then(|full| to_record(&owner, &auth, full)) {
                Ok(record) => sink.record(record).await?,
                Err(error) => stop_or_report(error, &auth.id, sink).await?,
            }
        }
        if incomplete {
            counts.objects += 1;
            let error = ProviderError::rejected(format!(
                "incomplete listing: tray listed only part of owner {}'s authentications (hasNextPage, and viewer.authentications takes no paging arguments); the export of this owner is incomplete",
                owner.id
            ));
            sink.failed(&owner.id, error).await?;
        }
        Ok(())
    }
}

/// A fatal error stops the export; any other is this object's failure.
async fn stop_or_report(
    error: ProviderError,
    source_id: &str,
    sink: &mut dyn ExportSink,
) -> Result<(), ProviderError> {
    match error {
        ProviderError::Fatal { .. } => Err(error),
        other => sink.failed(source_id, other).await,
    }
}

/// A 403 from Get full authentication means the endpoint is not enabled for this org (or the
/// token is not the owner's, which the export never does): nothing can be exported, so stop.
fn full_refusal(failure: CallFailure) -> ProviderError {
    if failure.status == Some(403) {
        return ProviderError::fatal(
            "tray refused Get full authentication (403): it must be enabled by Tray support for this organisation (see docs/tray.md)",
        );
    }
    failure.error
}

fn read_full(body: &[u8]) -> Result<FullAuthentication, ProviderError> {
    // serde's message could quote a credential: name the shape problem only.
    serde_json::from_slice(body).map_err(|_| {
        ProviderError::transient(
            "tray get full authentication: the answer is not the expected shape",
        )
    })
}

#[async_trait]
impl AuthExporter for TrayExporter {
    async fn export(
        &self,
        filter: &ExportFilter,
        sink: &mut dyn ExportSink,
    ) -> Result<ExportCounts, ProviderError> {
        let mut counts = ExportCounts::default();
        if !filter.owners.is_empty() {
            // An owner named twice is exported once.
            let mut owners: Vec<&String> = Vec::new();
            for owner_id in &filter.owners {
                if !owners.contains(&owner_id) {
                    owners.push(owner_id);
                }
            }
            for owner_id in owners {
                let users = self.users_of(sink.reads(), owner_id).await?;
                if users.is_empty() {
                    counts.objects += 1;
                    sink.failed(
                        owner_id,
                        ProviderError::rejected("tray has no end user with this externalUserId"),
                    )
                    .await?;
                }
                for user in &users {
                    self.export_user(user, sink, &mut counts).await?;
                }
            }
            return Ok(counts);
        }
        let mut after: Option<String> = None;
        loop {
            let variables = json!({"first": USERS_PAGE_SIZE, "after": after});
            let page: UsersPage = self
                .master(sink.reads(), USERS_PAGE, &variables, "list users")
                .await?;
            for user in page.users.edges.into_iter().map(|edge| edge.node) {
                self.export_user(&user, sink, &mut counts).await?;
            }
            match page.users.page_info {
                PageInfo {
                    has_next_page: true,
                    end_cursor: Some(cursor),
                } if after.as_ref() != Some(&cursor) => after = Some(cursor),
                _ => break,
            }
        }
        Ok(counts)
    }

    async fn reread(
        &self,
        object: &SourceObject,
        reads: &dyn ReadRetry,
    ) -> Result<Option<CredentialRecord>, ProviderError> {
        self.reread_one(object, reads).await
    }

    async fn retire(
        &self,
        object: &SourceObject,
        reads: &dyn ReadRetry,
    ) -> Result<Removal, ProviderError> {
        self.retire_one(object, reads).await
    }
}

// Tray's shapes read by the export only (§4.7, §5.4 without criteria, §5.5 with the service).

/// §5.4 without criteria, every end user page by page.
pub const USERS_PAGE: &str = "query ($first: Int, $after: String) { users(first: $first, after: $after) { edges { node { id name externalUserId } cursor } pageInfo { hasNextPage endCursor } } }";
/// §5.5 with the fields a record needs (service name and version, custom fields).
pub const VIEWER_AUTHENTICATIONS_FOR_EXPORT: &str = "query { viewer { authentications { edges { node { id name customFields service { id name version } serviceEnvironment { id title } } } pageInfo { hasNextPage hasPreviousPage } } } }";

#[derive(Debug, Deserialize)]
struct UsersPage {
    users: UserConnection,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserConnection {
    #[serde(default)]
    edges: Vec<UserEdge>,
    page_info: PageInfo,
}

#[derive(Debug, Deserialize)]
struct UserEdge {
    node: ExportUser,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

/// An end user (`ExternalUser`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportUser {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub external_user_id: Option<String>,
}

impl ExportUser {
    /// The record's owner: the external user id, or Tray's own id for a user without one.
    pub fn owner(&self) -> Owner {
        Owner {
            id: self
                .external_user_id
                .clone()
                .filter(|id| !id.trim().is_empty())
                .unwrap_or_else(|| self.id.clone()),
            name: self.name.clone().filter(|n| !n.trim().is_empty()),
            email: None,
        }
    }

    /// The user as the export's reads address it (its `owner`, its Tray id, no secrets).
    pub(crate) fn user_ref<'a>(&'a self, owner: &'a Owner) -> UserRef<'a> {
        UserRef {
            external_user_id: &owner.id,
            name: owner.name.as_deref(),
            user_id: Some(&self.id),
            secrets: &[],
        }
    }
}

#[derive(Debug, Deserialize)]
struct ViewerAuthenticationsData {
    viewer: ViewerAuthentications,
}

#[derive(Debug, Deserialize)]
struct ViewerAuthentications {
    authentications: Connection<ListedAuthentication>,
}

/// An `Authentication` as listed (no secrets).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedAuthentication {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub custom_fields: Option<Value>,
    pub service: ListedService,
    pub service_environment: ListedEnvironment,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListedService {
    pub name: String,
    /// A string in GraphQL (§9 #5).
    #[serde(default)]
    pub version: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListedEnvironment {
    pub id: String,
}

/// `GetFullUserAuthenticationResult`. Credentials are read straight into secret types.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FullAuthentication {
    pub id: String,
    #[serde(default)]
    pub user_data: Map<String, Value>,
    #[serde(default)]
    pub credentials: BTreeMap<String, SecretValue>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// One listed auth and its full form → a v1 record. Pure.
pub fn to_record(
    owner: &Owner,
    listed: &ListedAuthentication,
    full: FullAuthentication,
) -> Result<CredentialRecord, ProviderError> {
    let mut warnings = Vec::new();
    let typed = type_credentials(full.credentials, &mut warnings)?;
    let auth = match typed.auth {
        Auth::OAuth2(mut oauth) => {
            oauth.scopes = full
                .scopes
                .filter(|s| !s.is_empty())
                .or(typed.scopes)
                .unwrap_or_default();
            Auth::OAuth2(oauth)
        }
        other => other,
    };
    // Settings the import stored among the credentials join the user data (which wins).
    let mut settings = typed.settings;
    settings.extend(full.user_data);
    let mut metadata = Map::new();
    if let Some(Value::Object(fields)) = listed.custom_fields.as_ref().map(parse_json_text)
        && !fields.is_empty()
    {
        metadata.insert("tray_custom_fields".into(), Value::Object(fields));
    }
    let mut tray = Map::new();
    tray.insert(
        "service_environment".into(),
        json!(listed.service_environment.id),
    );
    tray.insert("service_name".into(), json!(listed.service.name));
    if let Some(version) = listed.service.version.as_ref().and_then(version_number) {
        tray.insert("service_version".into(), json!(version));
    }
    let mut targets = Map::new();
    targets.insert("tray".into(), Value::Object(tray));
    Ok(CredentialRecord {
        id: full.id,
        owner: owner.clone(),
        service: listed.service.name.clone(),
        name: Some(listed.name.clone()).filter(|n| !n.trim().is_empty()),
        auth,
        settings,
        metadata,
        targets,
        warnings,
    })
}

/// `customFields` is `Json`: an object, or (as Tray sends `Json` inputs) its JSON text.
fn parse_json_text(value: &Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

fn version_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tray_s_published_example_becomes_an_oauth2_record() {
        // The 200 example of Get full authentication in tray-platform-api.yaml.
        let full: FullAuthentication = serde_json::from_value(json!({
            "id": "123e4567-aaaa-aaaa-aaaa-aaaaaa614174",
            "name": "Example authentication",
            "serviceEnvironmentId": "123e4567-aaaa-aaaa-aaaa-aaaaaa614174",
            "userData": {"userId": "123e4567-aaaa-aaaa-aaaa-aaaaaa614174"},
            "credentials": {"accessToken": "XXXXX", "tokenType": "Bearer", "expiresIn": 3600},
            "scopes": ["read", "write"],
            "onPremAgentGroupId": "123e4567-aaaa-aaaa-aaaa-aaaaaa614174"
        }))
        .unwrap();
        let listed: ListedAuthentication = serde_json::from_value(json!({
            "id": "123e4567-aaaa-aaaa-aaaa-aaaaaa614174", "name": "Example authentication",
            "customFields": "{\"team\":\"sales\"}",
            "service": {"name": "slack", "version": "4"},
            "serviceEnvironment": {"id": "123e4567-aaaa-aaaa-aaaa-aaaaaa614174"}
        }))
        .unwrap();
        let owner = Owner {
            id: "acme-42".into(),
            name: None,
            email: None,
        };
        let record = to_record(&owner, &listed, full).unwrap();
        let Auth::OAuth2(oauth) = &record.auth else {
            panic!("expected oauth2, got {:?}", record.auth)
        };
        use authport_core::ExposeSecret as _;
        assert_eq!(oauth.access_token.expose_secret(), "XXXXX");
        assert_eq!(oauth.token_type.as_deref(), Some("Bearer"));
        assert_eq!(oauth.scopes, ["read", "write"]);
        assert!(oauth.expiry.is_none());
        assert_eq!(record.warnings.len(), 1);
        assert_eq!(record.warnings[0].field, "auth.expires_in");
        assert_eq!(record.service, "slack");
        assert_eq!(
            record.settings["userId"],
            "123e4567-aaaa-aaaa-aaaa-aaaaaa614174"
        );
        assert_eq!(
            record.metadata["tray_custom_fields"],
            json!({"team": "sales"})
        );
        assert_eq!(
            Value::Object(record.targets["tray"].as_object().unwrap().clone()),
            json!({"service_environment": "123e4567-aaaa-aaaa-aaaa-aaaaaa614174",
                "service_name": "slack", "service_version": 4})
        );
    }

    #[test]
    fn a_refused_full_read_stops_the_export_and_other_failures_do_not() {
        let failure = |status| CallFailure {
            status: Some(status),
            vendor_text: String::new(),
            error: ProviderError::rejected("tray get full authentication: refused"),
        };
        let refused = full_refusal(failure(403));
        assert_eq!(refused.kind().as_str(), "fatal");
        assert!(refused.message().contains("Tray support"), "{refused}");
        assert_eq!(full_refusal(failure(404)).kind().as_str(), "rejected");
    }
}
