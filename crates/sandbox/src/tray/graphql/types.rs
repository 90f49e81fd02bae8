//! The object, input and scalar types of Tray's Embedded GraphQL schema, as documented
//! (tray-api.md §5, and Tray's published SDL for the shapes §5 names without spelling out).
//! Only documented fields exist here: anything else is a validation error, as at Tray.

use async_graphql::{
    ID, InputObject, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject,
    Value as GqlValue,
};
use serde_json::Value;

/// Tray's `Json` scalar: any JSON value. Inputs usually arrive as JSON-encoded strings
/// (every Tray example does that); decoding is up to the resolver that reads them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Json(pub Value);

#[Scalar(name = "Json")]
impl ScalarType for Json {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        value
            .into_json()
            .map(Json)
            .map_err(|_| InputValueError::custom("not a JSON value"))
    }

    fn to_value(&self) -> GqlValue {
        GqlValue::from_json(self.0.clone()).unwrap_or(GqlValue::Null)
    }
}

/// Tray's `DateTime` scalar: "An ISO-8601 encoded UTC date as string".
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DateTime(pub String);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        match value {
            GqlValue::String(text) => Ok(DateTime(text)),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> GqlValue {
        GqlValue::String(self.0.clone())
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct PageInfo {
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
    pub start_cursor: Option<String>,
    pub has_previous_page: bool,
}

// ---- users (§5.4) ----

#[derive(Debug, Default, InputObject)]
pub(crate) struct UserSearchCriteria {
    pub external_user_id: Option<String>,
    pub name: Option<String>,
    pub user_id: Option<String>,
    /// Listed by the current docs (not by the 2021 SDL).
    pub is_test_user: Option<bool>,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ExternalUser {
    pub id: ID,
    pub name: String,
    pub external_user_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct UserConnectionEdge {
    pub node: ExternalUser,
    pub cursor: String,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct UserConnection {
    pub edges: Vec<UserConnectionEdge>,
    pub page_info: PageInfo,
}

// ---- authentications (§5.5) ----

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Service {
    pub id: ID,
    pub name: String,
    /// A string in GraphQL, unlike REST's integer (§9 #5).
    pub version: String,
    pub title: String,
    pub icon: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ServiceEnvironment {
    pub id: ID,
    #[graphql(
        deprecation = "Please use id as an identifier of the environment and title for human-readable purposes"
    )]
    pub name: String,
    pub title: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Authentication {
    pub id: ID,
    pub name: String,
    pub custom_fields: Option<Json>,
    pub service: Service,
    pub service_environment: ServiceEnvironment,
}

/// Authentication edges have no cursor.
#[derive(Debug, SimpleObject)]
pub(crate) struct AuthenticationEdge {
    pub node: Authentication,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct AuthenticationConnection {
    pub edges: Vec<AuthenticationEdge>,
    pub page_info: PageInfo,
}

// ---- solutions (§5.8) ----

#[derive(Debug, Default, InputObject)]
pub(crate) struct SolutionSearchCriteria {
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct CustomField {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ConfigSlot {
    pub external_id: String,
    pub title: String,
    pub default_value: Json,
}

/// The documented fields only: a solution's auth slots are not queryable.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Solution {
    pub id: ID,
    pub title: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub custom_fields: Vec<CustomField>,
    pub config_slots: Vec<ConfigSlot>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct SolutionConnectionEdge {
    pub node: Solution,
    pub cursor: String,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct SolutionConnection {
    pub edges: Vec<SolutionConnectionEdge>,
    pub page_info: PageInfo,
}

// ---- solution instances (§5.8, §5.9) ----

#[derive(Debug, Default, InputObject)]
pub(crate) struct SolutionInstanceSearchCriteria {
    pub id: Option<String>,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub solution_id: Option<String>,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct AuthSlotValue {
    pub external_id: String,
    pub auth_id: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ConfigSlotValue {
    pub external_id: String,
    pub value: Option<Json>,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct WorkflowInstance {
    pub id: ID,
    pub source_workflow_id: String,
    pub source_workflow_name: String,
    pub trigger_url: Option<String>,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct WorkflowInstanceConnectionEdge {
    pub node: WorkflowInstance,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct WorkflowInstanceConnection {
    pub edges: Vec<WorkflowInstanceConnectionEdge>,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct SolutionInstanceSolutionVersionFlags {
    pub has_newer_version: bool,
    pub requires_user_input_to_update_version: bool,
    pub requires_system_input_to_update_version: bool,
}

#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct SolutionInstance {
    pub id: ID,
    pub solution: Solution,
    pub name: String,
    pub enabled: bool,
    pub auth_values: Vec<AuthSlotValue>,
    pub config_values: Vec<ConfigSlotValue>,
    pub workflows: WorkflowInstanceConnection,
    pub solution_version_flags: SolutionInstanceSolutionVersionFlags,
    pub created: DateTime,
    pub owner: String,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct SolutionInstanceConnectionEdge {
    pub node: SolutionInstance,
    pub cursor: String,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct SolutionInstanceConnection {
    pub edges: Vec<SolutionInstanceConnectionEdge>,
    pub page_info: PageInfo,
    pub total_count: i32,
}

// ---- mutation inputs and payloads ----

#[derive(Debug, InputObject)]
pub(crate) struct CreateExternalUserInput {
    pub name: String,
    pub external_user_id: String,
    pub is_test_user: Option<bool>,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct CreateExternalUserPayload {
    pub user_id: ID,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, InputObject)]
pub(crate) struct AuthorizeInput {
    pub user_id: ID,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct AuthorizePayload {
    pub access_token: String,
    pub client_mutation_id: Option<String>,
}

/// `generateAuthorizationCode(input: {userId})`, master token (Tray's "Create new auths").
#[derive(Debug, InputObject)]
pub(crate) struct GenerateAuthorizationCodeInput {
    pub user_id: ID,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct GenerateAuthorizationCodePayload {
    pub authorization_code: String,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, InputObject)]
pub(crate) struct CreateUserAuthenticationInput {
    pub name: String,
    pub service_id: String,
    pub service_environment_id: String,
    pub data: Json,
    pub form_data: Option<Json>,
    pub scopes: Option<Vec<String>>,
    pub hidden: Option<bool>,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct CreateUserAuthenticationPayload {
    pub authentication_id: String,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, InputObject)]
pub(crate) struct RemoveUserAuthenticationInput {
    pub authentication_id: ID,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct RemoveUserAuthenticationPayload {
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, Clone, InputObject)]
pub(crate) struct AuthValue {
    pub external_id: String,
    pub auth_id: String,
}

#[derive(Debug, Clone, InputObject)]
pub(crate) struct ConfigValue {
    pub external_id: String,
    pub value: Option<Json>,
}

#[derive(Debug, InputObject)]
pub(crate) struct CreateSolutionInstanceInput {
    pub solution_id: ID,
    pub instance_name: String,
    pub auth_values: Option<Vec<AuthValue>>,
    pub config_values: Option<Vec<ConfigValue>>,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct CreateSolutionInstancePayload {
    pub solution_instance: SolutionInstance,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, InputObject)]
pub(crate) struct UpdateSolutionInstanceInput {
    pub solution_instance_id: ID,
    pub instance_name: Option<String>,
    pub enabled: Option<bool>,
    pub auth_values: Option<Vec<AuthValue>>,
    pub config_values: Option<Vec<ConfigValue>>,
    /// In Tray's 2021 SDL; accepted and ignored.
    pub error_on_enabling_with_missing_values: Option<bool>,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct UpdateSolutionInstancePayload {
    pub solution_instance: SolutionInstance,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, InputObject)]
pub(crate) struct RemoveSolutionInstanceInput {
    pub solution_instance_id: ID,
    pub client_mutation_id: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub(crate) struct RemoveSolutionInstancePayload {
    pub client_mutation_id: Option<String>,
}
