//! The optional solution-instance step (`[tray.solution]`): after a record's auth exists, find
//! its instance by name or create it with the auth in the configured slot, then enable it.
//!
//! Tray does not document a way to list a solution's auth slots; `createSolutionInstance`
//! fails on an unknown or differently cased slot external id. So the first create is the
//! check: until one has been answered, records wait for it; when Tray refuses it, that record
//! carries the full explanation and later records a short reference, without asking again.
//! A refusal never fails the auth that is already imported: it becomes a warning.

use authport_core::{CredentialRecord, ProviderError};
use authport_kit::{CallFailure, Effect};
use serde_json::json;

use crate::client::GraphqlCall;
use crate::config::SolutionConfig;
use crate::map::auth_name;
use crate::target::MappedTarget;
use crate::users::{UserRef, Users};
use crate::wire::{
    CreateSolutionInstanceData, Ignored, UpdateSolutionInstanceData, ViewerSolutionInstancesData,
    queries,
};

/// How the step ended for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceStep {
    /// No solution is configured for this record's service.
    NotConfigured,
    /// The instance exists and is enabled.
    Enabled(String),
    /// Tray refused the step; the text explains it (for the report's warnings).
    Refused(String),
}

/// Whether Tray has accepted the configured solution and slot yet.
#[derive(Debug, Default)]
enum Check {
    #[default]
    Unanswered,
    Accepted,
    /// Refused while importing this record (its report has the full reason).
    Refused {
        record_id: String,
    },
}

#[derive(Debug)]
pub struct Solutions {
    config: Option<SolutionConfig>,
    check: tokio::sync::Mutex<Check>,
}

impl Solutions {
    pub fn new(config: Option<SolutionConfig>) -> Self {
        Self {
            config,
            check: tokio::sync::Mutex::new(Check::Unanswered),
        }
    }

    fn config_for(&self, service: &str) -> Option<&SolutionConfig> {
        self.config.as_ref().filter(|s| s.applies_to(service))
    }

    /// The instance name: the configured template, else the auth's own (unique) name.
    fn instance_name(&self, record: &CredentialRecord, target: &MappedTarget) -> String {
        match self
            .config_for(&record.service)
            .and_then(|s| s.instance_name_template.as_deref())
        {
            // `{service_title}` renders the service name here, as in earlier releases: names
            // are how instances are found again, so they must not change between versions.
            Some(template) => auth_name(template, record, &target.service),
            None => target.name.clone(),
        }
    }

    /// Finds (by name) or creates the record's instance, and enables it. Transient failures
    /// are errors (the caller turns them into a reconcile); refusals are [`InstanceStep::Refused`].
    pub async fn ensure(
        &self,
        users: &Users,
        user: UserRef<'_>,
        record: &CredentialRecord,
        target: &MappedTarget,
        auth_id: &str,
    ) -> Result<InstanceStep, ProviderError> {
        let Some(solution) = self.config_for(&record.service) else {
            return Ok(InstanceStep::NotConfigured);
        };
        let name = self.instance_name(record, target);
        let variables = json!({"name": name});
        let found: ViewerSolutionInstancesData = match users
            .graphql(
                user,
                GraphqlCall {
                    document: queries::VIEWER_SOLUTION_INSTANCES,
                    variables: &variables,
                    effect: Effect::Read,
                    operation: "find solution instance",
                    secrets: user.secrets,
                },
            )
            .await
        {
            Ok(found) => found,
            Err(failure) => return refused_or_error(failure),
        };
        let existing = found
            .viewer
            .solution_instances
            .into_nodes()
            .find(|node| node.name.as_deref() == Some(name.as_str()));
        let (instance_id, enabled) = match existing {
            Some(node) => (node.id, node.enabled),
            None => match self
                .create(users, user, record, solution, &name, auth_id)
                .await?
            {
                Ok(id) => (id, false),
                Err(refused) => return Ok(InstanceStep::Refused(refused)),
            },
        };
        if !enabled {
            let variables = json!({"id": instance_id});
            let enabled: Result<UpdateSolutionInstanceData, _> = users
                .graphql(
                    user,
                    GraphqlCall {
                        document: queries::ENABLE_SOLUTION_INSTANCE,
                        variables: &variables,
                        effect: Effect::IdempotentWrite,
                        operation: "enable solution instance",
                        secrets: user.secrets,
                    },
                )
                .await;
            if let Err(failure) = enabled {
                return refused_or_error(failure);
            }
        }
        Ok(InstanceStep::Enabled(instance_id))
    }

    /// `createSolutionInstance`, checked as described in the module comment. `Ok(Err(text))`
    /// is a refusal for the report.
    async fn create(
        &self,
        users: &Users,
        user: UserRef<'_>,
        record: &CredentialRecord,
        solution: &SolutionConfig,
        name: &str,
        auth_id: &str,
    ) -> Result<Result<String, String>, ProviderError> {
        let check = self.check.lock().await;
        if let Check::Refused { record_id } = &*check {
            return Ok(Err(format!(
                "solution instance not created: tray refused the [tray.solution] step for record `{record_id}` (its report line has the reason)"
            )));
        }
        // Only a create made before Tray has answered one holds the lock until it is
        // answered; once one was accepted, the others run freely.
        let mut first = matches!(*check, Check::Unanswered).then_some(check);
        let variables = json!({
            "solutionId": solution.solution_id,
            "instanceName": name,
            "authValues": [{"externalId": solution.auth_external_id, "authId": auth_id}],
        });
        let created: Result<CreateSolutionInstanceData, CallFailure> = users
            .graphql(
                user,
                GraphqlCall {
                    document: queries::CREATE_SOLUTION_INSTANCE,
                    variables: &variables,
                    effect: Effect::Create,
                    operation: "create solution instance",
                    secrets: user.secrets,
                },
            )
            .await;
        let outcome = match created {
            Ok(data) => Ok(data.create_solution_instance.solution_instance.id),
            Err(failure) if is_refusal(&failure.error) => {
                let reason = refusal_text(solution, &failure);
                if let Some(check) = first.as_mut() {
                    tracing::warn!("record {}: {reason}", record.id);
                    **check = Check::Refused {
                        record_id: record.id.clone(),
                    };
                }
                return Ok(Err(reason));
            }
            Err(failure) => return Err(failure.error),
        };
        if let Some(check) = first.as_mut() {
            **check = Check::Accepted;
        }
        drop(first);
        // Tray asks for a pause between create and enable; this only delays this record.
        tokio::time::sleep(solution.enable_delay()).await;
        Ok(outcome)
    }

    /// Removes an instance at rollback; one that is already gone is fine.
    pub async fn remove(
        &self,
        users: &Users,
        user: UserRef<'_>,
        instance_id: &str,
    ) -> Result<(), ProviderError> {
        let variables = json!({"solutionInstanceId": instance_id});
        let removed: Result<Ignored, CallFailure> = users
            .graphql(
                user,
                GraphqlCall {
                    document: queries::REMOVE_SOLUTION_INSTANCE,
                    variables: &variables,
                    effect: Effect::IdempotentWrite,
                    operation: "remove solution instance",
                    secrets: &[],
                },
            )
            .await;
        match removed {
            Ok(_) => Ok(()),
            Err(failure)
                if failure.is_not_found()
                    || failure
                        .vendor_text
                        .to_ascii_lowercase()
                        .contains("not found") =>
            {
                Ok(())
            }
            Err(failure) => Err(failure.error),
        }
    }
}

/// A failure the same request would meet again: Tray refused the step.
fn is_refusal(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::Rejected { .. } | ProviderError::Fatal { .. }
    )
}

fn refused_or_error(failure: CallFailure) -> Result<InstanceStep, ProviderError> {
    if is_refusal(&failure.error) {
        return Ok(InstanceStep::Refused(format!(
            "solution instance not created: {}",
            failure.error.message()
        )));
    }
    Err(failure.error)
}

/// The explanation of a refused `createSolutionInstance`. Tray's message for an unknown slot
/// is not documented, so the likely causes are named whatever it says.
fn refusal_text(solution: &SolutionConfig, failure: &CallFailure) -> String {
    format!(
        "solution instance not created: {}; check [tray.solution] solution_id `{}` and auth_external_id `{}` \
         (auth slot external ids are case-sensitive: copy it from the solution editor); \
         the authentication is imported, and the next run creates the instance once the configuration is fixed",
        failure.error.message(),
        solution.solution_id,
        solution.auth_external_id
    )
}
