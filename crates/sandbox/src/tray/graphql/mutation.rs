//! The `Mutation` root: the documented mutations authport uses (§5.2, §5.3, §5.6-§5.9), plus
//! `removeSolutionInstance` (in Tray's published SDL, not in tray-api.md).

use async_graphql::{Context, ID, Object, Result};
use chrono::Utc;
use serde_json::{Map, Value};

use super::query::{caller, instance_node, master_only, resolver_error, state};
use super::types::{
    AuthValue, AuthorizeInput, AuthorizePayload, ConfigValue, CreateExternalUserInput,
    CreateExternalUserPayload, CreateSolutionInstanceInput, CreateSolutionInstancePayload,
    CreateUserAuthenticationInput, CreateUserAuthenticationPayload, GenerateAuthorizationCodeInput,
    GenerateAuthorizationCodePayload, Json, RemoveSolutionInstanceInput,
    RemoveSolutionInstancePayload, RemoveUserAuthenticationInput, RemoveUserAuthenticationPayload,
    UpdateSolutionInstanceInput, UpdateSolutionInstancePayload,
};
use crate::tray::catalogue::SolutionDef;
use crate::tray::validate::{check_object, check_value_shapes};
use crate::tray::{
    Caller, Owner, StoredAuth, StoredInstance, StoredUser, TrayState, UserToken, random_token,
    random_uuid,
};

/// Solution instances belong to end users: the master token cannot create or change them.
fn user_only(ctx: &Context<'_>) -> Result<()> {
    match caller(ctx) {
        Caller::User(_) => Ok(()),
        Caller::Master => Err(resolver_error(
            "This operation needs an end user's token",
            "access_not_allowed",
        )),
    }
}

/// A `Json` input holding an object: a JSON-encoded string (Tray's examples) or an object.
fn json_object(name: &str, value: &Json) -> Result<Map<String, Value>> {
    let decoded = match &value.0 {
        Value::String(text) => serde_json::from_str::<Value>(text).ok(),
        other => Some(other.clone()),
    };
    match decoded {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(resolver_error(
            &format!("{name} is not a valid Json object"),
            "BAD_USER_INPUT",
        )),
    }
}

/// Checks `authValues` against the solution's auth slots and the caller's auths. External ids
/// match case-sensitively: "the mutation will fail" otherwise (Tray's import guide).
fn checked_auth_values(
    state: &TrayState,
    owner: &Owner,
    solution: &SolutionDef,
    values: &[AuthValue],
) -> Result<Vec<(String, String)>> {
    let mut checked = Vec::new();
    for value in values {
        if !solution
            .auth_slots
            .iter()
            .any(|slot| slot.external_id == value.external_id)
        {
            return Err(resolver_error(
                "No auth slot with this external id in the solution",
                "BAD_USER_INPUT",
            ));
        }
        let owned = state
            .lock()
            .auths
            .get(&value.auth_id)
            .is_some_and(|auth| &auth.owner == owner);
        if !owned {
            return Err(resolver_error("Authentication not found", "NOT_FOUND"));
        }
        checked.push((value.external_id.clone(), value.auth_id.clone()));
    }
    Ok(checked)
}

/// Checks `configValues` against the solution's config slots (case-sensitive too).
fn checked_config_values(
    solution: &SolutionDef,
    values: &[ConfigValue],
) -> Result<Vec<(String, Option<Value>)>> {
    values
        .iter()
        .map(|value| {
            if solution.config_slots.contains(&value.external_id) {
                Ok((
                    value.external_id.clone(),
                    value.value.as_ref().map(|v| v.0.clone()),
                ))
            } else {
                Err(resolver_error(
                    "No config slot with this external id in the solution",
                    "BAD_USER_INPUT",
                ))
            }
        })
        .collect()
}

/// Whether an auth slot or config slot of the instance has no value.
///
/// Tray's 2021 SDL has `errorOnEnablingWithMissingValues: Boolean` on `updateSolutionInstance`
/// and nothing more (tray-api.md §5.9). The emulator reads it literally [assume]: with `true`,
/// enabling an instance with an empty slot is an error and nothing changes; without it, the
/// instance is enabled with the empty slot (what clients must avoid by filling every slot).
pub(crate) fn has_missing_values(solution: &SolutionDef, instance: &StoredInstance) -> bool {
    let auth_missing = solution.auth_slots.iter().any(|slot| {
        !instance
            .auth_values
            .iter()
            .any(|(external_id, _)| *external_id == slot.external_id)
    });
    let config_missing = solution.config_slots.iter().any(|slot| {
        !instance
            .config_values
            .iter()
            .any(|(external_id, value)| external_id == slot && value.is_some())
    });
    auth_missing || config_missing
}

#[derive(Debug)]
pub(crate) struct Mutation;

#[Object]
impl Mutation {
    /// §5.2, master token.
    async fn create_external_user(
        &self,
        ctx: &Context<'_>,
        input: CreateExternalUserInput,
    ) -> Result<CreateExternalUserPayload> {
        master_only(ctx)?;
        let user = StoredUser {
            id: random_uuid(),
            name: input.name,
            external_user_id: input.external_user_id,
            is_test_user: input.is_test_user.unwrap_or(false),
        };
        let id = user.id.clone();
        state(ctx).lock().users.insert(id.clone(), user);
        Ok(CreateExternalUserPayload {
            user_id: ID(id),
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// §5.3, master token: mints a user token valid for 2 days.
    async fn authorize(
        &self,
        ctx: &Context<'_>,
        input: AuthorizeInput,
    ) -> Result<AuthorizePayload> {
        master_only(ctx)?;
        let mut inner = state(ctx).lock();
        if !inner.users.contains_key(input.user_id.as_str()) {
            return Err(resolver_error("User not found", "NOT_FOUND"));
        }
        let token = random_token();
        inner.tokens.insert(
            token.clone(),
            UserToken {
                user_id: input.user_id.0,
                minted_at: Utc::now(),
                uses: 0,
                expired: false,
            },
        );
        Ok(AuthorizePayload {
            access_token: token,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Master token: a single-use code for the end user's auth-only dialog, valid 5 minutes
    /// (Tray's "Create new auths"; see `tray/dialog.rs`).
    async fn generate_authorization_code(
        &self,
        ctx: &Context<'_>,
        input: GenerateAuthorizationCodeInput,
    ) -> Result<GenerateAuthorizationCodePayload> {
        master_only(ctx)?;
        let Some(code) = state(ctx).mint_auth_code(input.user_id.as_str()) else {
            return Err(resolver_error("User not found", "NOT_FOUND"));
        };
        Ok(GenerateAuthorizationCodePayload {
            authorization_code: code,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// §5.6, the legacy import path: `data`/`formData` are `Json` (string or object) and are
    /// checked against the environment's schemas like REST create.
    async fn create_user_authentication(
        &self,
        ctx: &Context<'_>,
        input: CreateUserAuthenticationInput,
    ) -> Result<CreateUserAuthenticationPayload> {
        let state = state(ctx);
        let credentials = json_object("data", &input.data)?;
        let user_data = match &input.form_data {
            Some(form) => json_object("formData", form)?,
            None => Map::new(),
        };
        let Some((_, environment)) = state.catalogue.environment(&input.service_environment_id)
        else {
            return Err(resolver_error("Service environment not found", "NOT_FOUND"));
        };
        let mut problems = check_value_shapes("data", &credentials);
        problems.extend(check_object(
            "data",
            &environment.credentials_schema,
            &credentials,
        ));
        problems.extend(check_object(
            "formData",
            &environment.user_data_schema,
            &user_data,
        ));
        if !problems.is_empty() {
            return Err(resolver_error(
                &format!("Schema validation errors: [{}]", problems.join(", ")),
                "BAD_USER_INPUT",
            ));
        }
        let auth = StoredAuth {
            id: random_uuid(),
            owner: caller(ctx).owner(),
            name: input.name,
            service_environment_id: input.service_environment_id,
            credentials,
            user_data,
            scopes: input.scopes.unwrap_or_default(),
            updates: 0,
        };
        let id = auth.id.clone();
        state.lock().auths.insert(id.clone(), auth);
        Ok(CreateUserAuthenticationPayload {
            authentication_id: id,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// §5.7.
    async fn remove_authentication(
        &self,
        ctx: &Context<'_>,
        input: RemoveUserAuthenticationInput,
    ) -> Result<RemoveUserAuthenticationPayload> {
        let caller = caller(ctx);
        let mut inner = state(ctx).lock();
        let visible = inner
            .auths
            .get(input.authentication_id.as_str())
            .is_some_and(|auth| caller.can_see(&auth.owner));
        if !visible {
            return Err(resolver_error("Authentication not found", "NOT_FOUND"));
        }
        inner.auths.remove(input.authentication_id.as_str());
        Ok(RemoveUserAuthenticationPayload {
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// §5.8, user token. New instances start disabled.
    async fn create_solution_instance(
        &self,
        ctx: &Context<'_>,
        input: CreateSolutionInstanceInput,
    ) -> Result<CreateSolutionInstancePayload> {
        user_only(ctx)?;
        let state = state(ctx);
        let owner = caller(ctx).owner();
        let Some(solution) = state.catalogue.solution(input.solution_id.as_str()) else {
            return Err(resolver_error("Solution not found", "NOT_FOUND"));
        };
        let auth_values = checked_auth_values(
            state,
            &owner,
            solution,
            input.auth_values.as_deref().unwrap_or_default(),
        )?;
        let config_values =
            checked_config_values(solution, input.config_values.as_deref().unwrap_or_default())?;
        let instance = StoredInstance {
            id: random_uuid(),
            owner,
            solution_id: solution.id.clone(),
            name: input.instance_name,
            enabled: false,
            created: Utc::now(),
            auth_values,
            config_values,
        };
        let node = instance_node(state, &instance);
        state.lock().instances.insert(instance.id.clone(), instance);
        state.instances_changed.notify_waiters();
        Ok(CreateSolutionInstancePayload {
            solution_instance: node,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// §5.9, user token; `enabled: true` is the last step of an import.
    async fn update_solution_instance(
        &self,
        ctx: &Context<'_>,
        input: UpdateSolutionInstanceInput,
    ) -> Result<UpdateSolutionInstancePayload> {
        user_only(ctx)?;
        let state = state(ctx);
        let owner = caller(ctx).owner();
        let Some(current) = state
            .lock()
            .instances
            .get(input.solution_instance_id.as_str())
            .filter(|i| i.owner == owner)
            .cloned()
        else {
            return Err(resolver_error("Solution instance not found", "NOT_FOUND"));
        };
        let mut updated = current;
        if let Some(solution) = state.catalogue.solution(&updated.solution_id) {
            if let Some(values) = &input.auth_values {
                updated.auth_values = checked_auth_values(state, &owner, solution, values)?;
            }
            if let Some(values) = &input.config_values {
                updated.config_values = checked_config_values(solution, values)?;
            }
        }
        if input.enabled == Some(true)
            && input.error_on_enabling_with_missing_values == Some(true)
            && let Some(solution) = state.catalogue.solution(&updated.solution_id)
            && has_missing_values(solution, &updated)
        {
            return Err(resolver_error(
                "Solution instance has missing values",
                "BAD_USER_INPUT",
            ));
        }
        if let Some(enabled) = input.enabled {
            updated.enabled = enabled;
        }
        if let Some(name) = input.instance_name {
            updated.name = name;
        }
        let node = instance_node(state, &updated);
        state.lock().instances.insert(updated.id.clone(), updated);
        Ok(UpdateSolutionInstancePayload {
            solution_instance: node,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Not in tray-api.md; in Tray's published (2021) SDL. Rollback of an instance.
    async fn remove_solution_instance(
        &self,
        ctx: &Context<'_>,
        input: RemoveSolutionInstanceInput,
    ) -> Result<RemoveSolutionInstancePayload> {
        let caller = caller(ctx);
        let mut inner = state(ctx).lock();
        let visible = inner
            .instances
            .get(input.solution_instance_id.as_str())
            .is_some_and(|instance| caller.can_see(&instance.owner));
        if !visible {
            return Err(resolver_error("Solution instance not found", "NOT_FOUND"));
        }
        inner.instances.remove(input.solution_instance_id.as_str());
        Ok(RemoveSolutionInstancePayload {
            client_mutation_id: input.client_mutation_id,
        })
    }
}
