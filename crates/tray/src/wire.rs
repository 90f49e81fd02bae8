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

/// Tray's REST error body `{"message", "code"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
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
}

/// The GraphQL response envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphqlResponse {
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub errors: Vec<GraphqlError>,
}

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
    //! The GraphQL documents authport sends (arguments always as variables).

    pub const USERS_BY_EXTERNAL_ID: &str = "query ($externalUserId: String, $first: Int, $after: String) { users(criteria: {externalUserId: $externalUserId}, first: $first, after: $after) { edges { node { id name externalUserId } cursor } pageInfo { hasNextPage endCursor } } }";
    pub const CREATE_EXTERNAL_USER: &str = "mutation ($name: String!, $externalUserId: String!, $isTestUser: Boolean) { createExternalUser(input: {name: $name, externalUserId: $externalUserId, isTestUser: $isTestUser}) { userId } }";
    pub const AUTHORIZE: &str =
        "mutation ($userId: ID!) { authorize(input: {userId: $userId}) { accessToken } }";
    pub const VIEWER_AUTHENTICATIONS: &str = "query { viewer { authentications { edges { node { id name serviceEnvironment { id title } } } pageInfo { hasNextPage hasPreviousPage } } } }";
    pub const VIEWER_SOLUTIONS: &str = "query ($first: Int, $after: String) { viewer { solutions(first: $first, after: $after) { edges { node { id title authSlots { externalId } } cursor } pageInfo { hasNextPage endCursor } } } }";
    pub const VIEWER_SOLUTION_INSTANCES: &str = "query ($name: String, $solutionId: String, $first: Int) { viewer { solutionInstances(criteria: {name: $name, solutionId: $solutionId}, first: $first) { edges { node { id name enabled } cursor } pageInfo { hasNextPage endCursor } } } }";
    pub const CREATE_SOLUTION_INSTANCE: &str = "mutation ($solutionId: ID!, $instanceName: String!, $authValues: [AuthValue!]) { createSolutionInstance(input: {solutionId: $solutionId, instanceName: $instanceName, authValues: $authValues}) { solutionInstance { id enabled } } }";
    pub const ENABLE_SOLUTION_INSTANCE: &str = "mutation ($solutionInstanceId: ID!) { updateSolutionInstance(input: {solutionInstanceId: $solutionInstanceId, enabled: true}) { solutionInstance { id enabled } } }";
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
