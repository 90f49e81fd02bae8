//! Tray's JSON, as published in `trayapi.yaml` (REST) and the Embedded API docs (GraphQL).
//! Only this crate knows these shapes.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `PublicConnectorList`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorList {
    pub elements: Vec<Connector>,
}

/// `PublicConnector`.
#[derive(Debug, Clone, Deserialize)]
pub struct Connector {
    pub name: String,
    /// The decimal connector version, e.g. `"9.0"`.
    pub version: String,
    pub title: String,
    pub service: ConnectorService,
}

/// `ConnectorServiceReference`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorService {
    pub id: String,
    pub name: String,
    /// An integer in REST, a string in GraphQL: accept both.
    #[serde(deserialize_with = "integer_or_numeric_string")]
    pub version: i64,
}

/// `PublicServiceEnvironmentList`.
#[derive(Debug, Clone, Deserialize)]
pub struct EnvironmentList {
    pub elements: Vec<ServiceEnvironment>,
}

/// `PublicServiceEnvironment`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEnvironment {
    pub id: String,
    pub title: String,
    pub authentication_type: String,
    #[serde(default)]
    pub user_data_schema: Value,
    #[serde(default)]
    pub credentials_schema: Value,
    /// Items are `{scope, description}` objects in Tray's examples; strings are tolerated.
    #[serde(default)]
    pub scopes: Vec<Value>,
}

impl ServiceEnvironment {
    pub fn scope_names(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter_map(|item| match item {
                Value::String(scope) => Some(scope.clone()),
                other => other
                    .get("scope")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
            .collect()
    }

    /// OAuth environments (`oauth1`, `oauth2`, `oauth2password`, ...).
    pub fn is_oauth(&self) -> bool {
        self.authentication_type.starts_with("oauth")
    }
}

/// `CreatePublicUserAuthenticationResult`.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedAuthentication {
    pub id: String,
}

/// `GetUserAuthenticationResult` (no secrets).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationInfo {
    pub id: String,
    pub name: String,
    pub service_environment_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Tray's REST error body `{"message", "code"}` (also GraphQL's transport-level failures).
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

impl ErrorBody {
    /// The text an error message quotes: `message`, with `code` when Tray gives one.
    pub fn text(self) -> String {
        match self.code {
            Some(code) if !code.is_empty() => format!("{} ({code})", self.message),
            _ => self.message,
        }
    }
}

/// One entry of a GraphQL `errors[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphqlError {
    pub message: String,
    #[serde(default)]
    pub extensions: Option<Value>,
}

impl GraphqlError {
    /// Tray's rate-limit error: message `Rate limit exceeded` or code `access_not_allowed`
    /// with that message family.
    pub fn is_rate_limit(&self) -> bool {
        let code = self
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str);
        self.message.eq_ignore_ascii_case("Rate limit exceeded")
            || (code == Some("access_not_allowed")
                && self.message.to_ascii_lowercase().contains("rate"))
    }

    /// A refused bearer reported inside the envelope rather than as HTTP 401.
    pub fn is_unauthorized(&self) -> bool {
        self.message.eq_ignore_ascii_case("unauthorized")
    }
}

/// The GraphQL response envelope; `data` is read into the operation's own type afterwards
/// (with `errors`, `data` may be null or partial).
#[derive(Debug, Clone, Deserialize)]
pub struct GraphqlResponse {
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub errors: Vec<GraphqlError>,
}

/// A Relay connection (`edges { node }`), as Tray's GraphQL returns lists.
#[derive(Debug, Clone, Deserialize)]
pub struct Connection<T> {
    #[serde(default = "Vec::new")]
    pub edges: Vec<Edge<T>>,
    /// Present when the query selects it.
    #[serde(default, rename = "pageInfo")]
    pub page_info: Option<ConnectionPageInfo>,
}

/// The part of Relay's `PageInfo` a listing needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPageInfo {
    pub has_next_page: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Edge<T> {
    pub node: T,
}

impl<T> Connection<T> {
    /// Tray says there is more than this answer holds.
    pub fn has_next_page(&self) -> bool {
        self.page_info
            .as_ref()
            .is_some_and(|info| info.has_next_page)
    }

    pub fn into_nodes(self) -> impl Iterator<Item = T> {
        self.edges.into_iter().map(|edge| edge.node)
    }
}

/// `users(criteria)` (§5.4).
#[derive(Debug, Clone, Deserialize)]
pub struct UsersData {
    pub users: Connection<ExternalUser>,
}

/// `ExternalUser`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalUser {
    pub id: String,
    #[serde(default)]
    pub external_user_id: Option<String>,
}

/// `createExternalUser` (§5.2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateExternalUserData {
    pub create_external_user: CreatedUser,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedUser {
    pub user_id: String,
}

/// `authorize` (§5.3). `SecretString`'s `Debug` is redacted.
#[derive(Debug, Deserialize)]
pub struct AuthorizeData {
    pub authorize: Authorized,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorized {
    pub access_token: authport_core::SecretString,
}

/// `viewer { authentications }` (§5.5).
#[derive(Debug, Clone, Deserialize)]
pub struct ViewerAuthenticationsData {
    pub viewer: ViewerAuthentications,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ViewerAuthentications {
    pub authentications: Connection<AuthenticationNode>,
}

/// `Authentication` as listed (no secrets).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationNode {
    pub id: String,
    pub name: String,
    pub service_environment: EnvironmentReference,
}

/// One owner's authentications as `viewer.authentications` answered them. `complete` is
/// false when Tray said `hasNextPage: true`: that field takes no paging argument (§5.5, §7),
/// so the rest cannot be asked for, and an auth missing here may still exist.
#[derive(Debug, Clone, Default)]
pub struct AuthenticationListing {
    pub nodes: Vec<AuthenticationNode>,
    pub complete: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnvironmentReference {
    pub id: String,
}

/// `viewer { solutionInstances }`.
#[derive(Debug, Clone, Deserialize)]
pub struct ViewerSolutionInstancesData {
    pub viewer: ViewerSolutionInstances,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewerSolutionInstances {
    pub solution_instances: Connection<SolutionInstance>,
}

/// `SolutionInstance`, the fields authport selects.
#[derive(Debug, Clone, Deserialize)]
pub struct SolutionInstance {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub enabled: bool,
    /// Selected by the look-up only (`solution { id }`, §5.8's `SolutionInstance.solution`).
    #[serde(default)]
    pub solution: Option<SolutionReference>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SolutionReference {
    pub id: String,
}

/// `createSolutionInstance` (§5.8).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSolutionInstanceData {
    pub create_solution_instance: SolutionInstancePayload,
}

/// `updateSolutionInstance` (§5.9).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSolutionInstanceData {
    pub update_solution_instance: SolutionInstancePayload,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SolutionInstancePayload {
    pub solution_instance: SolutionInstance,
}

/// A mutation whose payload authport does not read (`removeSolutionInstance`).
#[derive(Debug, Clone, Deserialize)]
pub struct Ignored {}

fn integer_or_numeric_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("service version is not an integer")),
        Value::String(text) => text
            .parse()
            .map_err(|_| serde::de::Error::custom("service version is not an integer")),
        _ => Err(serde::de::Error::custom(
            "service version is not an integer",
        )),
    }
}

pub mod queries {
    //! The GraphQL documents authport sends (arguments always as variables). Each uses only
    //! operations, arguments and fields that tray-api.md documents, except where noted.

    /// §5.4.
    pub const USERS_BY_EXTERNAL_ID: &str = "query ($externalUserId: String, $first: Int, $after: String) { users(criteria: {externalUserId: $externalUserId}, first: $first, after: $after) { edges { node { id name externalUserId } cursor } pageInfo { hasNextPage endCursor } } }";
    /// §5.2.
    pub const CREATE_EXTERNAL_USER: &str = "mutation ($name: String!, $externalUserId: String!, $isTestUser: Boolean) { createExternalUser(input: {name: $name, externalUserId: $externalUserId, isTestUser: $isTestUser}) { userId } }";
    /// §5.3.
    /// Tray's "Create new auths": a single-use dialog code (5 minutes), master token.
    pub const GENERATE_AUTHORIZATION_CODE: &str = "mutation ($userId: ID!) { generateAuthorizationCode(input: {userId: $userId}) { authorizationCode } }";
    pub const AUTHORIZE: &str =
        "mutation ($userId: ID!) { authorize(input: {userId: $userId}) { accessToken } }";
    /// §5.5 (no arguments, no paging).
    pub const VIEWER_AUTHENTICATIONS: &str = "query { viewer { authentications { edges { node { id name serviceEnvironment { id title } } } pageInfo { hasNextPage hasPreviousPage } } } }";
    /// §8 names `solutionInstances(criteria: {name})` for reconciliation (an assumption of
    /// tray-api.md); no other argument is used. Instance names are unique per owner; the
    /// solution id is checked on the answer.
    pub const VIEWER_SOLUTION_INSTANCES: &str = "query ($name: String) { viewer { solutionInstances(criteria: {name: $name}) { edges { node { id name enabled solution { id } } } } } }";
    /// §5.8, every auth slot and config slot at once. An unknown or differently cased external
    /// id makes it fail: that is how a wrong slot is found (slots are not queryable).
    pub const CREATE_SOLUTION_INSTANCE: &str = "mutation ($solutionId: ID!, $instanceName: String!, $authValues: [AuthValue!], $configValues: [ConfigValue!]) { createSolutionInstance(input: {solutionId: $solutionId, instanceName: $instanceName, authValues: $authValues, configValues: $configValues}) { solutionInstance { id enabled } } }";
    /// §5.9 with the documented `authValues` and `configValues` inputs: completes an instance
    /// created disabled. Never `errorOnEnablingWithMissingValues` (2021 SDL only).
    pub const UPDATE_SOLUTION_INSTANCE_VALUES: &str = "mutation ($id: ID!, $authValues: [AuthValue!], $configValues: [ConfigValue!]) { updateSolutionInstance(input: {solutionInstanceId: $id, authValues: $authValues, configValues: $configValues}) { solutionInstance { id enabled } } }";
    /// §5.9, `enabled: true` inline as in Tray's example.
    pub const ENABLE_SOLUTION_INSTANCE: &str = "mutation ($id: ID!) { updateSolutionInstance(input: {solutionInstanceId: $id, enabled: true}) { solutionInstance { id enabled } } }";
    /// Not in tray-api.md (assumed from Tray's Embedded API): rollback of an instance.
    pub const REMOVE_SOLUTION_INSTANCE: &str = "mutation ($solutionInstanceId: ID!) { removeSolutionInstance(input: {solutionInstanceId: $solutionInstanceId}) { clientMutationId } }";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(entry: Value, expect: bool) {
        let error: GraphqlError = serde_json::from_value(entry.clone()).unwrap();
        assert_eq!(error.is_rate_limit(), expect, "{entry}");
    }

    #[test]
    fn rate_limit_errors_are_recognised() {
        // Tray's documented entry.
        check(
            json!({"message": "Rate limit exceeded", "path": ["users"],
                "extensions": {"name": "PreconditionError", "code": "access_not_allowed"}}),
            true,
        );
        check(json!({"message": "Rate limit exceeded"}), true);
        check(
            json!({"message": "rate limited", "extensions": {"code": "access_not_allowed"}}),
            true,
        );
        // `access_not_allowed` alone is also Tray's code for a refused token: not a rate limit
        // (retrying it would never succeed).
        check(
            json!({"message": "You are not authorized to access this resource",
                "extensions": {"code": "access_not_allowed"}}),
            false,
        );
        check(json!({"message": "User not found"}), false);
    }
}
