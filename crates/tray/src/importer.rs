//! The Tray [`AuthImporter`]: create, update (`prior`), the look-up before a create,
//! reconciliation by auth name, verify and rollback, on top of the catalogue (discovery), the
//! users (end users and their tokens) and the solution step.
//!
//! Only an auth whose name carries the record's mark (its tag) is ever adopted as ours; an
//! auth of the owner with the name the record asked for, without the mark, is the end user's
//! own: skipped (`pre_existing`), or overwritten with `overwrite_existing`, never `created`.

use std::sync::Arc;

use async_trait::async_trait;
use authport_core::{
    AuthImporter, BuildContext, ConfigError, CredentialRecord, DiscoveryKey, Disposition,
    ImportOutcome, MappedRecord, MappingError, PriorImport, ProviderError, Removal, TargetIdentity,
    TargetRef, VerifyReport, record_tag,
};
use authport_kit::{Effect, Method};
use serde_json::{Map, Value, json};

use crate::adopt::{Found, OVERWRITTEN_NOTE, PRE_EXISTING_NOTE, find, incomplete_listing};
use crate::catalogue::Catalogue;
use crate::client::{Resource, RestCall, TrayClient, master_failure};
use crate::config::TrayConfig;
use crate::map::{TrayTarget, map_record, select, update_body};
use crate::solution::{InstanceStep, Solutions};
use crate::target::{MappedTarget, TrayRef};
use crate::users::{UserRef, Users};
use crate::wire::{AuthenticationInfo, AuthenticationNode, CreatedAuthentication};

pub use crate::users::USER_MEMO;

/// Imports end users' authentications into Tray Embedded.
pub struct TrayImporter {
    pub(crate) config: TrayConfig,
    pub(crate) client: TrayClient,
    pub(crate) catalogue: Catalogue,
    pub(crate) users: Arc<Users>,
    solutions: Solutions,
}

impl std::fmt::Debug for TrayImporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrayImporter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Names the record in a message (the kit already scrubbed the record's secrets from it).
fn in_record(error: ProviderError, record_id: &str) -> ProviderError {
    let message = format!("record {record_id}: {}", error.message());
    match error {
        ProviderError::Transient { .. } => ProviderError::transient(message),
        ProviderError::RateLimited { retry_after, .. } => {
            ProviderError::rate_limited(retry_after, message)
        }
        ProviderError::OutcomeUnknown { .. } => ProviderError::outcome_unknown(message),
        ProviderError::Rejected { .. } => ProviderError::rejected(message),
        ProviderError::Fatal { .. } => ProviderError::fatal(message),
    }
}

/// One record's import, with everything its calls need.
struct Job<'a> {
    record: &'a CredentialRecord,
    mapped: &'a MappedRecord,
    target: MappedTarget,
    /// The record's tag: authport's mark in the names of its auths.
    tag: String,
    secrets: &'a [&'a str],
}

impl<'a> Job<'a> {
    /// The job of one record: its mapped target and its tag (authport's mark).
    fn new(
        record: &'a CredentialRecord,
        mapped: &'a MappedRecord,
        secrets: &'a [&'a str],
    ) -> Result<Self, ProviderError> {
        Ok(Job {
            record,
            mapped,
            target: MappedTarget::from_mapped(mapped)?,
            tag: record_tag(&record.id),
            secrets,
        })
    }

    fn user(&self) -> UserRef<'_> {
        UserRef::of(self.record, self.secrets)
    }
}

impl TrayImporter {
    pub fn new(context: &BuildContext) -> Result<Self, ConfigError> {
        let config = TrayConfig::from_context(context)?;
        let client = TrayClient::new(&config, context)?;
        let users = Arc::new(Users::new(client.clone(), context.memo.clone(), &config));
        Ok(Self {
            solutions: Solutions::new(
                config.solution.clone(),
                context.memo.clone(),
                users.clone(),
                config.lookup_before_create,
            ),
            users,
            catalogue: Catalogue::default(),
            client,
            config,
        })
    }

    /// `PUT` of every field (Tray has no partial update) under `name`. `Ok(None)`: the auth
    /// is gone.
    async fn update(
        &self,
        job: &Job<'_>,
        user: UserRef<'_>,
        auth_id: &str,
        name: &str,
    ) -> Result<Option<String>, ProviderError> {
        let mut update = update_body(job.mapped.body.expose());
        if let Some(fields) = update.as_object_mut() {
            fields.insert("name".into(), Value::String(name.to_owned()));
        }
        let answer = self
            .users
            .rest(
                user,
                RestCall {
                    method: &Method::PUT,
                    resource: Resource::Authentication(auth_id),
                    body: Some(&update),
                    effect: Effect::IdempotentWrite,
                    operation: "update authentication",
                    secrets: job.secrets,
                },
            )
            .await;
        match answer {
            Ok((user_id, _)) => Ok(Some(user_id)),
            Err(failure) if failure.is_not_found() => Ok(None),
            Err(failure) => Err(failure.error),
        }
    }

    async fn create(&self, job: &Job<'_>) -> Result<(String, String), ProviderError> {
        let (user_id, created) = self
            .users
            .rest_json::<CreatedAuthentication>(
                job.user(),
                RestCall {
                    method: &Method::POST,
                    resource: Resource::Authentications,
                    body: Some(job.mapped.body.expose()),
                    effect: Effect::Create,
                    operation: "create authentication",
                    secrets: job.secrets,
                },
            )
            .await
            .map_err(|failure| failure.error)?;
        Ok((user_id, created.id))
    }

    /// After the auth exists: the solution step. A transient failure there is reported as
    /// `OutcomeUnknown`, so the engine reconciles (which adopts the auth and comes back to the
    /// step) instead of creating a second auth; a refusal becomes a warning on the record.
    async fn complete(
        &self,
        job: &Job<'_>,
        user_id: String,
        auth: Placed,
        disposition: Disposition,
        mut notes: Vec<String>,
    ) -> Result<ImportOutcome, ProviderError> {
        let auth_id = auth.id;
        let user = job.user().with_user_id(&user_id);
        let step = self
            .solutions
            .step(user, job.record, job.target.solution.as_ref(), &auth_id)
            .await
            .map_err(|e| {
                ProviderError::outcome_unknown(format!(
                    "authentication {auth_id} is in place but the solution instance step failed: {}",
                    e.message()
                ))
            })?;
        let owner = &job.record.owner.id;
        let solution_instance_id = match step {
            InstanceStep::NotConfigured => None,
            InstanceStep::Enabled(id) => {
                notes.push(format!(
                    "solution instance {id} of owner {owner} is enabled"
                ));
                Some(id)
            }
            InstanceStep::EnablePending(id) => {
                notes.push(format!(
                    "solution instance {id} of owner {owner} created with every slot filled; enabled after tray's wait, before the run ends"
                ));
                Some(id)
            }
            InstanceStep::Waiting { missing, disabled } => {
                notes.push(match &disabled {
                    Some(id) => format!(
                        "solution instance {id} of owner {owner} created disabled: missing {missing}; a run that imports it completes and enables the instance"
                    ),
                    None => format!(
                        "no solution instance for owner {owner} yet: missing {missing}; the record that fills it (later in this run or in a later run) creates the instance"
                    ),
                });
                disabled
            }
            InstanceStep::Refused(reason) => {
                notes.push(reason);
                None
            }
        };
        let target = TrayRef {
            authentication_id: auth_id,
            user_id,
            external_user_id: job.record.owner.id.clone(),
            service_environment_id: job.target.service_environment_id.clone(),
            name: auth.name,
            solution_instance_id,
            solution_id: job.target.solution.as_ref().map(|s| s.solution_id.clone()),
            pre_existing: auth.pre_existing,
        };
        Ok(ImportOutcome {
            disposition,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            target: target.into_target_ref(),
        })
    }

    async fn import_job(
        &self,
        job: &Job<'_>,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        if let Some(prior) = prior {
            let prior = TrayRef::from_target_ref(&prior.target)?;
            let user = job.user().with_user_id(&prior.user_id);
            // The end user's own auth keeps its name: it never gets authport's mark.
            let placed = if prior.pre_existing {
                Placed::theirs(prior.authentication_id, prior.name)
            } else {
                Placed::ours(prior.authentication_id, job)
            };
            // A 404 means it was deleted at Tray since: it is created again below.
            if let Some(user_id) = self.update(job, user, &placed.id, &placed.name).await? {
                return self
                    .complete(job, user_id, placed, Disposition::Updated, Vec::new())
                    .await;
            }
        }
        if self.config.lookup_before_create {
            let (user_id, listing) = self.users.authentications_before_create(job.user()).await?;
            let user = job.user().with_user_id(&user_id);
            match find(&listing, &job.target, &job.tag) {
                Found::Ours(own) => {
                    // Ours from an earlier run whose state is not here: bring it up to date
                    // instead of creating a second one.
                    let placed = Placed::ours(own.id.clone(), job);
                    if let Some(user_id) = self.update(job, user, &placed.id, &placed.name).await? {
                        let note = "found at tray by its name (no state for it): updated in place instead of creating a second one";
                        return self
                            .complete(
                                job,
                                user_id,
                                placed,
                                Disposition::Created,
                                vec![note.to_owned()],
                            )
                            .await;
                    }
                }
                Found::PreExisting(theirs) if self.config.overwrite_existing => {
                    let placed = Placed::theirs(theirs.id.clone(), theirs.name.clone());
                    if let Some(user_id) = self.update(job, user, &placed.id, &placed.name).await? {
                        return self
                            .complete(
                                job,
                                user_id,
                                placed,
                                Disposition::Updated,
                                vec![OVERWRITTEN_NOTE.to_owned()],
                            )
                            .await;
                    }
                }
                Found::PreExisting(theirs) => return Ok(self.skipped(job, &user_id, theirs)),
                Found::Unknown => return Err(incomplete_listing(&job.record.owner.id)),
                Found::Absent => {}
            }
        }
        let (user_id, auth_id) = self.create(job).await?;
        let placed = Placed::ours(auth_id, job);
        self.complete(job, user_id, placed, Disposition::Created, Vec::new())
            .await
    }

    /// The end user's own auth, left alone: reported with its id, never journalled.
    fn skipped(&self, job: &Job<'_>, user_id: &str, theirs: &AuthenticationNode) -> ImportOutcome {
        let target = TrayRef {
            authentication_id: theirs.id.clone(),
            user_id: user_id.to_owned(),
            external_user_id: job.record.owner.id.clone(),
            service_environment_id: job.target.service_environment_id.clone(),
            name: theirs.name.clone(),
            solution_instance_id: None,
            solution_id: None,
            pre_existing: true,
        };
        ImportOutcome {
            disposition: Disposition::Skipped,
            note: Some(PRE_EXISTING_NOTE.to_owned()),
            target: target.into_target_ref(),
        }
    }

    /// The dry run's half of [`Self::import_job`]: the same listing, read-only (no Tray user
    /// is created to look), and the same decision. The note of a predicted skip, if any.
    async fn predict_job(
        &self,
        job: &Job<'_>,
        prior: Option<&PriorImport>,
    ) -> Result<Option<String>, ProviderError> {
        if prior.is_some() || !self.config.lookup_before_create {
            return Ok(None);
        }
        let Some(user_id) = self.users.existing_user(job.user()).await? else {
            return Ok(None);
        };
        let listing = self
            .users
            .authentications_now(job.user().with_user_id(&user_id))
            .await?;
        match find(&listing, &job.target, &job.tag) {
            Found::PreExisting(_) if !self.config.overwrite_existing => {
                Ok(Some(PRE_EXISTING_NOTE.to_owned()))
            }
            Found::Unknown => Err(incomplete_listing(&job.record.owner.id)),
            _ => Ok(None),
        }
    }

    async fn reconcile_job(&self, job: &Job<'_>) -> Result<Option<ImportOutcome>, ProviderError> {
        // Read-only: an owner with no Tray user cannot own the auth yet, so there is nothing
        // to adopt (and no user is created just to look).
        let Some(user_id) = self.users.existing_user(job.user()).await? else {
            return Ok(None);
        };
        let user = job.user().with_user_id(&user_id);
        let listing = self.users.authentications_now(user).await?;
        match find(&listing, &job.target, &job.tag) {
            Found::Ours(own) => {
                let placed = Placed::ours(own.id.clone(), job);
                self.complete(job, user_id, placed, Disposition::Created, Vec::new())
                    .await
                    .map(Some)
            }
            // Our write did not land. With `overwrite_existing` the import that follows
            // overwrites theirs; without, the record is the end user's: skipped.
            Found::PreExisting(_) if self.config.overwrite_existing => Ok(None),
            Found::PreExisting(theirs) => Ok(Some(self.skipped(job, &user_id, theirs))),
            Found::Absent => Ok(None),
            Found::Unknown => Err(incomplete_listing(&job.record.owner.id)),
        }
    }
}

/// The auth an import wrote to, with the name it has at Tray.
struct Placed {
    id: String,
    name: String,
    /// The end user's own (overwritten with `overwrite_existing`).
    pre_existing: bool,
}

impl Placed {
    fn ours(id: String, job: &Job<'_>) -> Self {
        Self {
            id,
            name: job.target.name.clone(),
            pre_existing: false,
        }
    }

    fn theirs(id: String, name: String) -> Self {
        Self {
            id,
            name,
            pre_existing: true,
        }
    }
}

#[async_trait]
impl AuthImporter for TrayImporter {
    async fn discover(&self, keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        self.catalogue
            .discover(&self.client, &self.config, keys)
            .await
    }

    fn map(&self, record: &CredentialRecord) -> Result<MappedRecord, MappingError> {
        let target = TrayTarget::parse(record.targets.get("tray"))?;
        let selection = select(&record.service, &target, &self.config);
        let resolved = self.catalogue.target(&selection)?;
        let warnings = crate::catalogue::check_binding(record, &resolved, &self.config)?;
        let mut mapped = map_record(record, &target, &resolved, &self.config)?;
        mapped.notes.extend(warnings);
        Ok(mapped)
    }

    async fn import(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        let secrets = record.secret_values();
        let job = Job::new(record, mapped, &secrets)?;
        self.import_job(&job, prior)
            .await
            .map_err(|e| in_record(e, &record.id))
    }

    async fn predict_skip(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<Option<String>, ProviderError> {
        let secrets = record.secret_values();
        let job = Job::new(record, mapped, &secrets)?;
        self.predict_job(&job, prior)
            .await
            .map_err(|e| in_record(e, &record.id))
    }

    async fn reconcile(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError> {
        let secrets = record.secret_values();
        let job = Job::new(record, mapped, &secrets)?;
        self.reconcile_job(&job)
            .await
            .map_err(|e| in_record(e, &record.id))
    }

    async fn verify(&self, target: &TargetRef) -> Result<VerifyReport, ProviderError> {
        let target = TrayRef::from_target_ref(target)?;
        let answer = self
            .client
            .rest_json::<AuthenticationInfo>(
                self.client.master(),
                RestCall {
                    method: &Method::GET,
                    resource: Resource::Authentication(&target.authentication_id),
                    body: None,
                    effect: Effect::Read,
                    operation: "get authentication",
                    secrets: &[],
                },
            )
            .await;
        match answer {
            Ok(info) => {
                let unchanged = target.name == info.name
                    && target.service_environment_id == info.service_environment_id;
                let mut detail = Map::new();
                detail.insert("id".into(), json!(info.id));
                detail.insert("name".into(), json!(info.name));
                detail.insert(
                    "service_environment_id".into(),
                    json!(info.service_environment_id),
                );
                detail.insert("scopes".into(), json!(info.scopes));
                // `changed`: the authentication was renamed or moved to another service
                // environment, so the record's solution no longer finds it: connect again.
                let (health, status) = if unchanged {
                    (authport_core::Health::Healthy, "present")
                } else {
                    (authport_core::Health::Revoked, "changed")
                };
                Ok(VerifyReport {
                    health,
                    status: status.to_owned(),
                    detail,
                })
            }
            Err(failure) if failure.is_not_found() => Ok(VerifyReport {
                health: authport_core::Health::Missing,
                status: "missing".to_owned(),
                detail: Map::<String, Value>::new(),
            }),
            Err(failure) => Err(master_failure(failure)),
        }
    }

    async fn remove(&self, target: &TargetRef) -> Result<Removal, ProviderError> {
        let target = TrayRef::from_target_ref(target)?;
        // The owner's instance goes before any of its auths.
        if target.solution_id.is_some() || target.solution_instance_id.is_some() {
            let user = UserRef {
                external_user_id: &target.external_user_id,
                name: None,
                user_id: Some(&target.user_id),
                secrets: &[],
            };
            self.solutions
                .remove(
                    user,
                    target.solution_id.as_deref(),
                    target.solution_instance_id.as_deref(),
                )
                .await?;
        }
        let answer = self
            .client
            .rest(
                self.client.master(),
                RestCall {
                    method: &Method::DELETE,
                    resource: Resource::Authentication(&target.authentication_id),
                    body: None,
                    effect: Effect::IdempotentWrite,
                    operation: "delete authentication",
                    secrets: &[],
                },
            )
            .await;
        let removal = match answer {
            Ok(_) => Removal::Removed,
            Err(failure) if failure.is_not_found() => Removal::AlreadyGone,
            Err(failure) => return Err(master_failure(failure)),
        };
        self.solutions
            .forget_auth(&target.external_user_id, &target.authentication_id);
        Ok(removal)
    }

    async fn finish(&self) -> Result<(), ProviderError> {
        self.solutions.finish().await
    }

    fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            endpoints: vec![
                self.config.api_base.to_string(),
                self.config.graphql_url.to_string(),
            ],
            account: None,
            credential: self.config.master_token.clone(),
        }
    }
}
