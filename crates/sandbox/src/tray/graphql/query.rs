//! The `Query` root (`viewer`, `users`), Relay paging, and the conversions from the store to
//! the documented object types.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, ID, Object, Result};
use chrono::Utc;
use serde_json::Value;

use super::types::{
    AuthSlotValue, Authentication, AuthenticationConnection, AuthenticationEdge, ConfigSlot,
    ConfigSlotValue, DateTime, ExternalUser, Json, PageInfo, Service, ServiceEnvironment, Solution,
    SolutionConnection, SolutionConnectionEdge, SolutionInstance, SolutionInstanceConnection,
    SolutionInstanceConnectionEdge, SolutionInstanceSearchCriteria,
    SolutionInstanceSolutionVersionFlags, SolutionSearchCriteria, UserConnection,
    UserConnectionEdge, UserSearchCriteria, WorkflowInstanceConnection,
};
use crate::tray::catalogue::SolutionDef;
use crate::tray::{Caller, Owner, StoredAuth, StoredInstance, StoredUser, TrayState};

/// A resolver error as Tray words them: a message plus `extensions.code` and `time_thrown`.
pub(super) fn resolver_error(message: &str, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, extensions| {
        extensions.set("code", code);
        extensions.set("time_thrown", Utc::now().to_rfc3339());
    })
}

pub(super) fn state<'a>(ctx: &Context<'a>) -> &'a Arc<TrayState> {
    ctx.data_unchecked::<Arc<TrayState>>()
}

pub(super) fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    ctx.data_unchecked::<Caller>()
}

/// Operations that only the org's master token may call (§2).
pub(super) fn master_only(ctx: &Context<'_>) -> Result<()> {
    match caller(ctx) {
        Caller::Master => Ok(()),
        Caller::User(_) => Err(resolver_error(
            "You are not authorized to access this resource",
            "access_not_allowed",
        )),
    }
}

/// Relay paging arguments.
#[derive(Debug, Default, Clone)]
pub(super) struct Paging {
    pub first: Option<i32>,
    pub last: Option<i32>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One page: the items with their indices (cursors are opaque `cursor:N`), and its PageInfo.
pub(super) fn page<T>(items: Vec<T>, paging: &Paging) -> Result<(Vec<(usize, T)>, PageInfo)> {
    let count = |n: Option<i32>, name: &str| -> Result<Option<usize>> {
        match n {
            Some(n) if n < 0 => Err(resolver_error(
                &format!("Argument \"{name}\" must be a non-negative integer"),
                "BAD_USER_INPUT",
            )),
            other => Ok(other.map(|n| n as usize)),
        }
    };
    let first = count(paging.first, "first")?;
    let last = count(paging.last, "last")?;
    let index = |cursor: &Option<String>| {
        cursor
            .as_deref()
            .and_then(|c| c.strip_prefix("cursor:"))
            .and_then(|n| n.parse::<usize>().ok())
    };
    let total = items.len();
    let mut start = index(&paging.after).map_or(0, |n| n + 1).min(total);
    let mut end = index(&paging.before)
        .map_or(total, |n| n.min(total))
        .max(start);
    if let Some(first) = first {
        end = end.min(start.saturating_add(first));
    }
    if let Some(last) = last {
        start = start.max(end.saturating_sub(last));
    }
    let info = PageInfo {
        start_cursor: (start < end).then(|| cursor(start)),
        end_cursor: (start < end).then(|| cursor(end - 1)),
        has_next_page: end < total,
        has_previous_page: start > 0,
    };
    let selected = items
        .into_iter()
        .enumerate()
        .skip(start)
        .take(end - start)
        .collect();
    Ok((selected, info))
}

pub(super) fn cursor(index: usize) -> String {
    format!("cursor:{index}")
}

fn user_node(user: &StoredUser) -> ExternalUser {
    ExternalUser {
        id: ID(user.id.clone()),
        name: user.name.clone(),
        external_user_id: Some(user.external_user_id.clone()),
    }
}

fn auth_node(state: &TrayState, auth: &StoredAuth) -> Authentication {
    let (service, environment) = match state.catalogue.environment(&auth.service_environment_id) {
        Some((service, environment)) => (
            Service {
                id: ID(service.id.clone()),
                name: service.name.clone(),
                version: service.version.to_string(),
                title: service.title.clone(),
                // The catalogue has no icons; the field is non-null.
                icon: String::new(),
            },
            ServiceEnvironment {
                id: ID(environment.id.clone()),
                name: environment.title.clone(),
                title: environment.title.clone(),
            },
        ),
        // Only auths inserted directly by tests can name an unknown environment.
        None => (
            Service {
                id: ID(String::new()),
                name: String::new(),
                version: String::new(),
                title: String::new(),
                icon: String::new(),
            },
            ServiceEnvironment {
                id: ID(auth.service_environment_id.clone()),
                name: String::new(),
                title: String::new(),
            },
        ),
    };
    Authentication {
        id: ID(auth.id.clone()),
        name: auth.name.clone(),
        custom_fields: None,
        service,
        service_environment: environment,
    }
}

pub(super) fn solution_node(solution: &SolutionDef) -> Solution {
    Solution {
        id: ID(solution.id.clone()),
        title: solution.title.clone(),
        description: None,
        tags: Vec::new(),
        custom_fields: Vec::new(),
        config_slots: solution
            .config_slots
            .iter()
            .map(|slot| ConfigSlot {
                external_id: slot.clone(),
                title: slot.clone(),
                default_value: Json(Value::String("null".to_owned())),
            })
            .collect(),
    }
}

pub(super) fn instance_node(state: &TrayState, instance: &StoredInstance) -> SolutionInstance {
    let solution = state
        .catalogue
        .solution(&instance.solution_id)
        .map(solution_node)
        .unwrap_or_else(|| Solution {
            id: ID(instance.solution_id.clone()),
            title: String::new(),
            description: None,
            tags: Vec::new(),
            custom_fields: Vec::new(),
            config_slots: Vec::new(),
        });
    SolutionInstance {
        id: ID(instance.id.clone()),
        solution,
        name: instance.name.clone(),
        enabled: instance.enabled,
        auth_values: instance
            .auth_values
            .iter()
            .map(|(external_id, auth_id)| AuthSlotValue {
                external_id: external_id.clone(),
                auth_id: auth_id.clone(),
            })
            .collect(),
        config_values: instance
            .config_values
            .iter()
            .map(|(external_id, value)| ConfigSlotValue {
                external_id: external_id.clone(),
                value: value.clone().map(Json),
            })
            .collect(),
        workflows: WorkflowInstanceConnection { edges: Vec::new() },
        solution_version_flags: SolutionInstanceSolutionVersionFlags {
            has_newer_version: false,
            requires_user_input_to_update_version: false,
            requires_system_input_to_update_version: false,
        },
        created: DateTime(instance.created.to_rfc3339()),
        owner: match &instance.owner {
            Owner::User(id) => id.clone(),
            Owner::Org => "org".to_owned(),
        },
    }
}

#[derive(Debug)]
pub(crate) struct Query;

#[Object]
impl Query {
    async fn viewer(&self) -> Viewer {
        Viewer
    }

    /// §5.4, master token only.
    async fn users(
        &self,
        ctx: &Context<'_>,
        criteria: Option<UserSearchCriteria>,
        first: Option<i32>,
        last: Option<i32>,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<UserConnection> {
        master_only(ctx)?;
        let criteria = criteria.unwrap_or_default();
        let matching: Vec<StoredUser> = state(ctx)
            .lock()
            .users
            .values()
            .filter(|u| {
                criteria
                    .external_user_id
                    .as_ref()
                    .is_none_or(|e| &u.external_user_id == e)
            })
            .filter(|u| criteria.name.as_ref().is_none_or(|n| &u.name == n))
            .filter(|u| criteria.user_id.as_ref().is_none_or(|id| &u.id == id))
            .filter(|u| criteria.is_test_user.is_none_or(|t| u.is_test_user == t))
            .cloned()
            .collect();
        let paging = Paging {
            first,
            last,
            before,
            after,
        };
        let (selected, page_info) = page(matching, &paging)?;
        Ok(UserConnection {
            edges: selected
                .iter()
                .map(|(index, user)| UserConnectionEdge {
                    node: user_node(user),
                    cursor: cursor(*index),
                })
                .collect(),
            page_info,
        })
    }
}

/// The caller's own view: a user token sees its user's objects, the master token the org's.
#[derive(Debug)]
pub(crate) struct Viewer;

#[Object]
impl Viewer {
    async fn solutions(
        &self,
        ctx: &Context<'_>,
        criteria: Option<SolutionSearchCriteria>,
        first: Option<i32>,
        last: Option<i32>,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<SolutionConnection> {
        let wanted_tags = criteria.and_then(|c| c.tags).unwrap_or_default();
        // The catalogue's solutions carry no tags: any tag filter matches none of them.
        let solutions: Vec<SolutionDef> = if wanted_tags.is_empty() {
            state(ctx).catalogue.solutions.clone()
        } else {
            Vec::new()
        };
        let paging = Paging {
            first,
            last,
            before,
            after,
        };
        let (selected, page_info) = page(solutions, &paging)?;
        Ok(SolutionConnection {
            edges: selected
                .iter()
                .map(|(index, solution)| SolutionConnectionEdge {
                    node: solution_node(solution),
                    cursor: cursor(*index),
                })
                .collect(),
            page_info,
        })
    }

    async fn solution_instances(
        &self,
        ctx: &Context<'_>,
        criteria: Option<SolutionInstanceSearchCriteria>,
        first: Option<i32>,
        last: Option<i32>,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<SolutionInstanceConnection> {
        let state = state(ctx);
        let owner = caller(ctx).owner();
        let criteria = criteria.unwrap_or_default();
        let instances: Vec<StoredInstance> = state
            .lock()
            .instances
            .values()
            .filter(|i| i.owner == owner)
            .filter(|i| criteria.id.as_ref().is_none_or(|id| &i.id == id))
            .filter(|i| criteria.name.as_ref().is_none_or(|n| &i.name == n))
            .filter(|i| {
                criteria
                    .solution_id
                    .as_ref()
                    .is_none_or(|s| &i.solution_id == s)
            })
            .filter(|i| {
                criteria
                    .owner
                    .as_ref()
                    .is_none_or(|o| i.owner == Owner::User(o.clone()))
            })
            .cloned()
            .collect();
        let total = i32::try_from(instances.len()).unwrap_or(i32::MAX);
        let paging = Paging {
            first,
            last,
            before,
            after,
        };
        let (selected, page_info) = page(instances, &paging)?;
        Ok(SolutionInstanceConnection {
            edges: selected
                .iter()
                .map(|(index, instance)| SolutionInstanceConnectionEdge {
                    node: instance_node(state, instance),
                    cursor: cursor(*index),
                })
                .collect(),
            page_info,
            total_count: total,
        })
    }

    /// §5.5: no arguments, no paging, edges without cursors. The master token sees the org's
    /// own auths, not the end users'. An answer holds at most the sandbox's page size (unset:
    /// all), and says so with `hasNextPage`: Tray documents the flag but no way to follow it.
    async fn authentications(&self, ctx: &Context<'_>) -> AuthenticationConnection {
        let state = state(ctx);
        let owner = caller(ctx).owner();
        let auths: Vec<StoredAuth> = state
            .lock()
            .auths
            .values()
            .filter(|a| a.owner == owner)
            .cloned()
            .collect();
        let page_size = state.authentications_page_size();
        AuthenticationConnection {
            edges: auths
                .iter()
                .take(page_size)
                .map(|auth| AuthenticationEdge {
                    node: auth_node(state, auth),
                })
                .collect(),
            page_info: PageInfo {
                end_cursor: None,
                has_next_page: auths.len() > page_size,
                start_cursor: None,
                has_previous_page: false,
            },
        }
    }
}
