//! The solution step (`[tray.solution]`): one instance per owner, created once the owner's
//! records have filled every auth slot, then enabled after Tray's wait.
//!
//! Each record whose service fills a slot notes its auth in the memo; the record that fills
//! the last slot creates the instance (found by name first when a create's answer may have
//! been lost), and queues the enable. The enable runs in a background task after the wait, so
//! the wait holds no record up; [`Solutions::finish`] awaits those tasks and drains the queue
//! (including what a killed run left) before the run ends.
//!
//! Tray documents no way to list a solution's auth slots; `createSolutionInstance` fails on an
//! unknown or differently cased external id. So the first create is the check: until one has
//! been answered, creates wait for it; when Tray refuses it, that record carries the full
//! explanation and later ones a short reference. A refusal never fails an imported auth.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use authport_core::{CredentialRecord, Memo, ProviderError};
use authport_kit::{CallFailure, Effect};
use serde_json::{Value, json};

use crate::client::GraphqlCall;
use crate::config::SolutionConfig;
use crate::solution_enable::Enabler;
use crate::solution_state::{
    InstanceEntry, SOLUTION_MEMO, SlotEntry, auth_values, config_values, coverage, instance_key,
    instance_name, missing_text, slot_key, wire_config_values,
};
use crate::target::SolutionTarget;
use crate::users::{UserRef, Users};
use crate::wire::{
    CreateSolutionInstanceData, Ignored, UpdateSolutionInstanceData, ViewerSolutionInstancesData,
    queries,
};

/// How the step ended for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceStep {
    /// The record's service fills no slot (or no solution is configured).
    NotConfigured,
    /// The owner's instance was already enabled.
    Enabled(String),
    /// Created (or completed) with every slot filled; enabled after Tray's wait, before the
    /// run ends.
    EnablePending(String),
    /// The owner's records do not fill every slot yet: no enabled instance. `disabled` is the
    /// instance created disabled (`create_incomplete_disabled`).
    Waiting {
        missing: String,
        disabled: Option<String>,
    },
    /// Tray (or the owner's records) refused the step; the text explains it.
    Refused(String),
}

#[derive(Debug, Default)]
enum Check {
    #[default]
    Unanswered,
    Accepted,
    Refused {
        record_id: String,
    },
}

/// Owners are serialised by one of these locks (by hash): flat memory, and two records of one
/// owner never create two instances.
const OWNER_LOCKS: usize = 64;

#[derive(Debug)]
pub struct Solutions {
    config: Option<SolutionConfig>,
    memo: Arc<dyn Memo>,
    users: Arc<Users>,
    lookup_before_create: bool,
    check: tokio::sync::Mutex<Check>,
    owners: Vec<tokio::sync::Mutex<()>>,
    enabler: Option<Enabler>,
}

fn is_refusal(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::Rejected { .. } | ProviderError::Fatal { .. }
    )
}

impl Solutions {
    pub fn new(
        config: Option<SolutionConfig>,
        memo: Arc<dyn Memo>,
        users: Arc<Users>,
        lookup_before_create: bool,
    ) -> Self {
        let enabler = config.as_ref().map(|solution| {
            Enabler::new(
                &solution.solution_id,
                solution.enable_delay_ms,
                memo.clone(),
                users.clone(),
            )
        });
        Self {
            config,
            memo,
            users,
            lookup_before_create,
            check: tokio::sync::Mutex::new(Check::Unanswered),
            owners: (0..OWNER_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            enabler,
        }
    }

    pub fn config(&self) -> Option<&SolutionConfig> {
        self.config.as_ref()
    }

    fn owner_lock(&self, owner: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        owner.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % OWNER_LOCKS as u64).unwrap_or(0);
        &self.owners[index]
    }

    fn instance(&self, solution: &str, owner: &str) -> Option<InstanceEntry> {
        self.memo
            .get(SOLUTION_MEMO, &instance_key(solution, owner))
            .and_then(|text| serde_json::from_str(&text).ok())
            .filter(|entry| *entry != InstanceEntry::Removed)
    }

    fn put_instance(&self, solution: &str, owner: &str, entry: &InstanceEntry) {
        let text = serde_json::to_string(entry).unwrap_or_default();
        self.memo
            .put(SOLUTION_MEMO, &instance_key(solution, owner), &text);
    }

    /// After a record's auth exists: notes it in its slot and, when the owner's slots are all
    /// filled, creates the instance and queues its enable. Transient failures are errors (the
    /// caller turns them into a reconcile, which comes back here).
    pub async fn step(
        &self,
        user: UserRef<'_>,
        record: &CredentialRecord,
        target: Option<&SolutionTarget>,
        auth_id: &str,
    ) -> Result<InstanceStep, ProviderError> {
        let (Some(solution), Some(target)) = (&self.config, target) else {
            return Ok(InstanceStep::NotConfigured);
        };
        let sid = &solution.solution_id;
        let owner = &record.owner.id;
        let entry = SlotEntry {
            auth_id: auth_id.to_owned(),
            config: target.config.clone(),
        };
        let key = slot_key(sid, owner, &target.auth_external_id);
        // An auth created again (its old one was deleted at Tray) or new config values must
        // reach an instance that already exists.
        let changed = self
            .memo
            .get(SOLUTION_MEMO, &key)
            .and_then(|text| serde_json::from_str::<SlotEntry>(&text).ok())
            .is_some_and(|previous| previous != entry);
        self.memo.put(
            SOLUTION_MEMO,
            &key,
            &serde_json::to_string(&entry).unwrap_or_default(),
        );
        let _owner = self.owner_lock(owner).lock().await;
        let covered = coverage(solution, |slot| {
            self.memo
                .get(SOLUTION_MEMO, &slot_key(sid, owner, slot))
                .and_then(|text| serde_json::from_str(&text).ok())
        });
        let complete = covered.missing.is_empty();
        let values = match config_values(solution, &covered.filled) {
            Ok(values) => values,
            Err(reason) => {
                return Ok(InstanceStep::Refused(format!(
                    "solution instance not created: {reason}"
                )));
            }
        };
        let waiting = |disabled: Option<String>| InstanceStep::Waiting {
            missing: missing_text(&covered.missing),
            disabled,
        };
        let user_id = user.user_id.unwrap_or_default().to_owned();
        let mut existing = self.instance(sid, owner);
        if existing.is_none()
            && self.lookup_before_create
            && (complete || solution.create_incomplete_disabled)
        {
            // No state of it (a new state file): Tray may still have it from an earlier run.
            let name = instance_name(&solution.instance_name_template, record);
            existing = Some(InstanceEntry::Creating { name, complete });
        }
        if let Some(InstanceEntry::Creating { name, .. }) = &existing {
            existing = match self.find(user, sid, name).await? {
                Some((id, true)) => Some(InstanceEntry::Enabled {
                    id,
                    name: name.clone(),
                }),
                Some((id, false)) => Some(InstanceEntry::Created {
                    id,
                    name: name.clone(),
                    // Completed below if the slots say so.
                    complete: false,
                }),
                None => None,
            };
            match &existing {
                Some(entry) => self.put_instance(sid, owner, entry),
                None => self.put_instance(sid, owner, &InstanceEntry::Removed),
            }
        }
        match existing {
            Some(InstanceEntry::Enabled { id, .. }) => {
                if changed
                    && complete
                    && let Some(refused) = self.fill(user, &id, &covered.filled, &values).await?
                {
                    return Ok(refused);
                }
                Ok(InstanceStep::Enabled(id))
            }
            Some(InstanceEntry::Created {
                id, complete: true, ..
            }) => {
                if changed
                    && complete
                    && let Some(refused) = self.fill(user, &id, &covered.filled, &values).await?
                {
                    return Ok(refused);
                }
                // Its enable is queued (by this run or a killed one); finish drains it.
                Ok(InstanceStep::EnablePending(id))
            }
            Some(InstanceEntry::Created { id, name, .. }) => {
                if !complete {
                    return Ok(waiting(Some(id)));
                }
                // A disabled instance (or one found by name) now gets every slot.
                if let Some(refused) = self.fill(user, &id, &covered.filled, &values).await? {
                    return Ok(refused);
                }
                self.put_instance(
                    sid,
                    owner,
                    &InstanceEntry::Created {
                        id: id.clone(),
                        name,
                        complete: true,
                    },
                );
                self.enqueue(owner, &user_id, &id);
                Ok(InstanceStep::EnablePending(id))
            }
            Some(InstanceEntry::Creating { .. } | InstanceEntry::Removed) | None => {
                if !complete && !solution.create_incomplete_disabled {
                    return Ok(waiting(None));
                }
                let name = instance_name(&solution.instance_name_template, record);
                let created = self
                    .create(
                        user,
                        record,
                        solution,
                        &name,
                        &covered.filled,
                        &values,
                        complete,
                    )
                    .await?;
                let id = match created {
                    Ok(id) => id,
                    Err(refused) => return Ok(InstanceStep::Refused(refused)),
                };
                self.put_instance(
                    sid,
                    owner,
                    &InstanceEntry::Created {
                        id: id.clone(),
                        name,
                        complete,
                    },
                );
                if !complete {
                    return Ok(waiting(Some(id)));
                }
                self.enqueue(owner, &user_id, &id);
                Ok(InstanceStep::EnablePending(id))
            }
        }
    }

    /// `updateSolutionInstance(authValues, configValues)`: every slot of an existing
    /// instance. `Some(step)` is a refusal for the report.
    async fn fill(
        &self,
        user: UserRef<'_>,
        id: &str,
        filled: &[(String, SlotEntry)],
        values: &BTreeMap<String, Value>,
    ) -> Result<Option<InstanceStep>, ProviderError> {
        let variables = json!({
            "id": id,
            "authValues": auth_values(filled),
            "configValues": wire_config_values(values),
        });
        let updated: Result<UpdateSolutionInstanceData, CallFailure> = self
            .users
            .graphql(
                user,
                GraphqlCall {
                    document: queries::UPDATE_SOLUTION_INSTANCE_VALUES,
                    variables: &variables,
                    effect: Effect::IdempotentWrite,
                    operation: "fill solution instance",
                    secrets: user.secrets,
                },
            )
            .await;
        match updated {
            Ok(_) => Ok(None),
            Err(failure) => refused_or_error(failure).map(Some),
        }
    }

    /// Forgets the auth in whichever of the owner's slots holds it (rollback): a later import
    /// must not put a deleted auth into an instance.
    pub fn forget_auth(&self, owner: &str, auth_id: &str) {
        let Some(solution) = &self.config else {
            return;
        };
        for slot in solution.slots.keys() {
            let key = slot_key(&solution.solution_id, owner, slot);
            let held = self
                .memo
                .get(SOLUTION_MEMO, &key)
                .and_then(|text| serde_json::from_str::<SlotEntry>(&text).ok())
                .is_some_and(|entry| entry.auth_id == auth_id);
            if held {
                // The memo has no delete: an unreadable entry is an empty slot.
                self.memo.put(SOLUTION_MEMO, &key, "");
            }
        }
    }

    /// The owner's instance of this solution named `name`: (id, enabled).
    async fn find(
        &self,
        user: UserRef<'_>,
        solution_id: &str,
        name: &str,
    ) -> Result<Option<(String, bool)>, ProviderError> {
        let variables = json!({"name": name});
        let found: ViewerSolutionInstancesData = match self
            .users
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
            Err(failure) => return Err(failure.error),
        };
        Ok(found
            .viewer
            .solution_instances
            .into_nodes()
            .find(|node| {
                node.name.as_deref() == Some(name)
                    && node.solution.as_ref().is_none_or(|s| s.id == solution_id)
            })
            .map(|node| (node.id, node.enabled)))
    }

    /// `createSolutionInstance`, checked as the module comment says. `Ok(Err(text))` is a
    /// refusal for the report. The intent is in the memo before the request is sent.
    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        user: UserRef<'_>,
        record: &CredentialRecord,
        solution: &SolutionConfig,
        name: &str,
        filled: &[(String, SlotEntry)],
        values: &BTreeMap<String, Value>,
        complete: bool,
    ) -> Result<Result<String, String>, ProviderError> {
        let check = self.check.lock().await;
        if let Check::Refused { record_id } = &*check {
            return Ok(Err(format!(
                "solution instance not created: tray refused the [tray.solution] step for record `{record_id}` (its report line has the reason)"
            )));
        }
        let mut first = matches!(*check, Check::Unanswered).then_some(check);
        self.put_instance(
            &solution.solution_id,
            &record.owner.id,
            &InstanceEntry::Creating {
                name: name.to_owned(),
                complete,
            },
        );
        let variables = json!({
            "solutionId": solution.solution_id,
            "instanceName": name,
            "authValues": auth_values(filled),
            "configValues": wire_config_values(values),
        });
        let created: Result<CreateSolutionInstanceData, CallFailure> = self
            .users
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
        match created {
            Ok(data) => {
                if let Some(check) = first.as_mut() {
                    **check = Check::Accepted;
                }
                Ok(Ok(data.create_solution_instance.solution_instance.id))
            }
            Err(failure) if is_refusal(&failure.error) => {
                // Refused: nothing was created.
                self.put_instance(
                    &solution.solution_id,
                    &record.owner.id,
                    &InstanceEntry::Removed,
                );
                let reason = refusal_text(solution, &failure);
                if let Some(check) = first.as_mut() {
                    tracing::warn!("record {}: {reason}", record.id);
                    **check = Check::Refused {
                        record_id: record.id.clone(),
                    };
                }
                Ok(Err(reason))
            }
            Err(failure) => Err(failure.error),
        }
    }

    fn enqueue(&self, owner: &str, user_id: &str, instance_id: &str) {
        if let Some(enabler) = &self.enabler {
            enabler.enqueue(owner, user_id, instance_id);
        }
    }

    /// Awaits this run's enables and drains the queue (see [`Enabler::finish`]).
    pub async fn finish(&self) -> Result<(), ProviderError> {
        match &self.enabler {
            Some(enabler) => enabler.finish().await,
            None => Ok(()),
        }
    }

    /// Removes the owner's instance at rollback (before any of its auths); one already gone
    /// is fine. `known` is the instance id the state's record has, if any.
    pub async fn remove(
        &self,
        user: UserRef<'_>,
        solution_id: Option<&str>,
        known: Option<&str>,
    ) -> Result<(), ProviderError> {
        let entry = solution_id.and_then(|sid| {
            self.memo
                .get(SOLUTION_MEMO, &instance_key(sid, user.external_user_id))
                .and_then(|text| serde_json::from_str::<InstanceEntry>(&text).ok())
        });
        let id = match (&entry, solution_id) {
            (Some(InstanceEntry::Removed), _) => None,
            (Some(InstanceEntry::Creating { name, .. }), Some(sid)) => {
                self.find(user, sid, name).await?.map(|(id, _)| id)
            }
            (Some(other), _) => other.id().map(str::to_owned),
            (None, _) => known.map(str::to_owned),
        };
        if let Some(id) = id {
            self.remove_instance(user, &id).await?;
        }
        if let Some(sid) = solution_id
            && entry.is_some()
        {
            self.put_instance(sid, user.external_user_id, &InstanceEntry::Removed);
        }
        Ok(())
    }

    async fn remove_instance(
        &self,
        user: UserRef<'_>,
        instance_id: &str,
    ) -> Result<(), ProviderError> {
        let variables = json!({"solutionInstanceId": instance_id});
        let removed: Result<Ignored, CallFailure> = self
            .users
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

fn refused_or_error(failure: CallFailure) -> Result<InstanceStep, ProviderError> {
    if is_refusal(&failure.error) {
        return Ok(InstanceStep::Refused(format!(
            "solution instance not completed: {}",
            failure.error.message()
        )));
    }
    Err(failure.error)
}

/// The explanation of a refused `createSolutionInstance`. Tray's message for an unknown slot
/// is not documented, so the likely causes are named whatever it says.
fn refusal_text(solution: &SolutionConfig, failure: &CallFailure) -> String {
    format!(
        "solution instance not created: {}; check [tray.solution] solution_id `{}` and the slots' external ids {} \
         (external ids are case-sensitive: copy them from the solution editor); \
         the authentications are imported, and the next run creates the instance once the configuration is fixed",
        failure.error.message(),
        solution.solution_id,
        solution
            .slots
            .keys()
            .map(|slot| format!("`{slot}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
