//! The Tray [`AuthImporter`]: discovery cache, end users and their tokens, create/update,
//! reconciliation by auth name, solution instances, verify and rollback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use authport_core::{
    AuthImporter, BuildContext, ConfigError, CredentialRecord, DiscoveryKey, Disposition,
    ExposeSecret, ImportOutcome, MappedRecord, MappingError, Memo, Owner, PriorImport,
    ProviderError, Removal, SecretString, TargetIdentity, TargetRef, VerifyReport,
};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{CallFailure, Effect, TrayClient};
use crate::config::TrayConfig;
use crate::map::{ResolvedTarget, Selection, TrayTarget, auth_name, map_record, select};
use crate::wire::{
    AuthenticationInfo, Connector, ConnectorList, CreatedAuthentication, EnvironmentList,
    ServiceEnvironment, queries,
};

/// Memo namespace for owner id -> Tray user id (kept in the state file across runs).
pub const USER_MEMO: &str = "tray.user_id";
/// Re-mint user tokens before Tray's 2-day expiry.
const TOKEN_MAX_AGE: Duration = Duration::from_secs(47 * 3600);
const PAGE_SIZE: u64 = 50;

/// The end user behind one owner id, resolved lazily and cached for the run.
#[derive(Default)]
struct UserSlot {
    user_id: Option<String>,
    token: Option<(SecretString, Instant)>,
}

#[derive(Default)]
struct Discovered {
    connectors: Option<Vec<Connector>>,
    environments: HashMap<(String, i64), Result<Vec<ServiceEnvironment>, String>>,
    targets: HashMap<Selection, Result<Arc<ResolvedTarget>, MappingError>>,
}

/// Imports end users' authentications into Tray Embedded.
pub struct TrayImporter {
    config: TrayConfig,
    client: TrayClient,
    memo: Arc<dyn Memo>,
    discovered: RwLock<Discovered>,
    /// One async lock per owner id, so two records of one owner never create two users.
    users: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UserSlot>>>>,
}

impl std::fmt::Debug for TrayImporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrayImporter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Replaces any of the record's secrets in a vendor message, and names the record.
fn scrub(error: ProviderError, record_id: Option<&str>, secrets: &[&str]) -> ProviderError {
    let mut message = error.message().to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        message = message.replace(secret, authport_core::REDACTED);
    }
    if let Some(id) = record_id {
        message = format!("record {id}: {message}");
    }
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

/// A master-token failure: 401 means the configuration is wrong, so nothing can succeed.
fn master_failure(failure: CallFailure) -> ProviderError {
    if failure.unauthorized {
        return ProviderError::fatal(
            "tray refused the master token (401): check TRAY_MASTER_TOKEN and TRAY_REGION",
        );
    }
    failure.error
}

/// `"9.10"` > `"9.2"`: compare connector versions numerically, part by part.
fn version_key(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

impl TrayImporter {
    pub fn new(context: &BuildContext) -> Result<Self, ConfigError> {
        let config = TrayConfig::from_context(context)?;
        let client = TrayClient::new(
            config.api_base.clone(),
            config.graphql_url.clone(),
            config.request_timeout,
            context.gate.clone(),
        )
        .map_err(ConfigError::new)?;
        Ok(Self {
            config,
            client,
            memo: context.memo.clone(),
            discovered: RwLock::new(Discovered::default()),
            users: Mutex::new(HashMap::new()),
        })
    }

    fn master(&self) -> &SecretString {
        &self.config.master_token
    }

    async fn master_get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        operation: &str,
    ) -> Result<T, CallFailure> {
        let (_, body) = self
            .client
            .rest(
                Method::GET,
                path,
                self.master(),
                None,
                Effect::Repeatable,
                operation,
            )
            .await?;
        serde_json::from_slice(&body.0).map_err(|_| CallFailure {
            status: None,
            unauthorized: false,
            error: ProviderError::transient(format!("tray {operation}: unexpected answer shape")),
        })
    }

    async fn connectors(&self) -> Result<Vec<Connector>, ProviderError> {
        if let Some(connectors) = self
            .discovered
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .connectors
            .clone()
        {
            return Ok(connectors);
        }
        let list: ConnectorList = self
            .master_get("/core/v1/connectors", "list connectors")
            .await
            .map_err(master_failure)?;
        self.discovered
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .connectors = Some(list.elements.clone());
        Ok(list.elements)
    }

    async fn environments(
        &self,
        service: &str,
        version: i64,
    ) -> Result<Result<Vec<ServiceEnvironment>, String>, ProviderError> {
        let key = (service.to_owned(), version);
        if let Some(cached) = self
            .discovered
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .environments
            .get(&key)
        {
            return Ok(cached.clone());
        }
        let path = format!("/core/v1/services/{service}/versions/{version}/environments");
        let result = match self
            .master_get::<EnvironmentList>(&path, "list service environments")
            .await
        {
            Ok(list) => Ok(list.elements),
            Err(failure) if failure.is_not_found() => {
                Err(format!("tray has no service {service} version {version}"))
            }
            Err(failure) => return Err(master_failure(failure)),
        };
        self.discovered
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .environments
            .insert(key, result.clone());
        Ok(result)
    }

    async fn resolve(
        &self,
        selection: &Selection,
    ) -> Result<Result<Arc<ResolvedTarget>, MappingError>, ProviderError> {
        let connectors = self.connectors().await?;
        let name = &selection.service_name;
        let candidates: Vec<&Connector> = connectors
            .iter()
            .filter(|c| &c.service.name == name || &c.name == name)
            .filter(|c| {
                selection
                    .service_version
                    .is_none_or(|v| c.service.version == v)
            })
            .collect();
        // The service version of the highest connector version, unless pinned.
        let Some(connector) = candidates.iter().max_by_key(|c| version_key(&c.version)) else {
            return Ok(Err(MappingError::new(
                "service",
                format!(
                    "tray has no connector for service {name}{}",
                    selection
                        .service_version
                        .map(|v| format!(" version {v}"))
                        .unwrap_or_default()
                ),
            )));
        };
        let service = &connector.service;
        let environments = match self.environments(&service.name, service.version).await? {
            Ok(environments) => environments,
            Err(message) => return Ok(Err(MappingError::new("service", message))),
        };
        let wanted = &selection.environment;
        let Some(environment) = environments
            .iter()
            .find(|e| &e.title == wanted || &e.id == wanted)
        else {
            let available: Vec<&str> = environments.iter().map(|e| e.title.as_str()).collect();
            return Ok(Err(MappingError::new(
                "targets.tray.service_environment",
                format!(
                    "tray service {} version {} has no environment `{wanted}`; available: {}",
                    service.name,
                    service.version,
                    available.join(", ")
                ),
            )));
        };
        Ok(Ok(Arc::new(ResolvedTarget::new(
            service.name.clone(),
            connector.title.clone(),
            service.version,
            environment.clone(),
        ))))
    }

    /// Checks the configured solution and its auth slot external id (case-sensitive).
    async fn check_solution(&self) -> Result<(), ProviderError> {
        let Some(solution) = &self.config.solution else {
            return Ok(());
        };
        let mut after: Option<String> = None;
        loop {
            let data = self
                .client
                .graphql(
                    self.master(),
                    queries::VIEWER_SOLUTIONS,
                    json!({"first": PAGE_SIZE, "after": after}),
                    Effect::Repeatable,
                    "list solutions",
                )
                .await
                .map_err(master_failure)?;
            let connection = &data["viewer"]["solutions"];
            for edge in connection["edges"].as_array().into_iter().flatten() {
                let node = &edge["node"];
                if node["id"].as_str() != Some(solution.solution_id.as_str()) {
                    continue;
                }
                let slots: Vec<&str> = node["authSlots"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["externalId"].as_str())
                    .collect();
                if slots.contains(&solution.auth_external_id.as_str()) {
                    return Ok(());
                }
                let hint = slots
                    .iter()
                    .find(|s| s.eq_ignore_ascii_case(&solution.auth_external_id))
                    .map(|s| format!(" (external ids are case-sensitive: did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(ProviderError::fatal(format!(
                    "tray solution {} has no auth slot `{}`{hint}; its auth slots: {}",
                    solution.solution_id,
                    solution.auth_external_id,
                    slots.join(", ")
                )));
            }
            match connection["pageInfo"]["endCursor"].as_str() {
                Some(cursor) if connection["pageInfo"]["hasNextPage"] == json!(true) => {
                    after = Some(cursor.to_owned())
                }
                _ => break,
            }
        }
        Err(ProviderError::fatal(format!(
            "tray solution {} was not found with this master token",
            solution.solution_id
        )))
    }

    fn user_slot(&self, external_user_id: &str) -> Arc<tokio::sync::Mutex<UserSlot>> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users
            .entry(external_user_id.to_owned())
            .or_default()
            .clone()
    }

    /// The owner's Tray user id if the user already exists: the state's memo, then
    /// `users(criteria)`. Read-only: never creates anything.
    async fn find_user(&self, owner: &Owner) -> Result<Option<String>, ProviderError> {
        if let Some(user_id) = self.memo.get(USER_MEMO, &owner.id) {
            return Ok(Some(user_id));
        }
        let data = self
            .client
            .graphql(
                self.master(),
                queries::USERS_BY_EXTERNAL_ID,
                json!({"externalUserId": owner.id, "first": 2}),
                Effect::Repeatable,
                "find user",
            )
            .await
            .map_err(master_failure)?;
        let edges = data["users"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found: Vec<&str> = edges
            .iter()
            .filter(|e| e["node"]["externalUserId"].as_str() == Some(owner.id.as_str()))
            .filter_map(|e| e["node"]["id"].as_str())
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => {
                self.memo.put(USER_MEMO, &owner.id, one);
                Ok(Some((*one).to_owned()))
            }
            _ => Err(ProviderError::rejected(format!(
                "tray has several end users with externalUserId {}: resolve the duplicates first",
                owner.id
            ))),
        }
    }

    /// The owner's Tray user id: [`Self::find_user`], else `createExternalUser` (unless the
    /// config forbids it).
    async fn find_or_create_user(&self, owner: &Owner) -> Result<String, ProviderError> {
        if let Some(user_id) = self.find_user(owner).await? {
            return Ok(user_id);
        }
        if !self.config.create_users {
            return Err(ProviderError::rejected(format!(
                "tray has no end user with externalUserId {} and user creation is disabled (create_users = false)",
                owner.id
            )));
        }
        let name = owner.name.clone().unwrap_or_else(|| owner.id.clone());
        let data = self
            .client
            .graphql(
                self.master(),
                queries::CREATE_EXTERNAL_USER,
                json!({"name": name, "externalUserId": owner.id, "isTestUser": self.config.is_test_user}),
                Effect::Creates,
                "create user",
            )
            .await
            .map_err(master_failure)?;
        let user_id = data["createExternalUser"]["userId"]
            .as_str()
            .ok_or_else(|| {
                ProviderError::rejected("tray graphql create user: the answer has no userId")
            })?
            .to_owned();
        self.memo.put(USER_MEMO, &owner.id, &user_id);
        Ok(user_id)
    }

    /// The owner's Tray user id from the run cache or [`Self::find_user`]; `None` when the
    /// user does not exist. For reconciliation, which must not create anything.
    async fn existing_user(&self, owner: &Owner) -> Result<Option<String>, ProviderError> {
        let slot = self.user_slot(&owner.id);
        let mut slot = slot.lock().await;
        if slot.user_id.is_none() {
            slot.user_id = self.find_user(owner).await?;
        }
        Ok(slot.user_id.clone())
    }

    /// A user token for the owner, minted when missing, old, or equal to `rejected`.
    async fn user_token(
        &self,
        owner: &Owner,
        known_user_id: Option<&str>,
        rejected: Option<&SecretString>,
    ) -> Result<(String, SecretString), ProviderError> {
        let slot = self.user_slot(&owner.id);
        let mut slot = slot.lock().await;
        if slot.user_id.is_none() {
            slot.user_id = match known_user_id {
                Some(id) => Some(id.to_owned()),
                None => Some(self.find_or_create_user(owner).await?),
            };
        }
        let user_id = slot.user_id.clone().unwrap_or_default();
        let stale = match (&slot.token, rejected) {
            (None, _) => true,
            (Some((token, minted)), rejected) => {
                minted.elapsed() > TOKEN_MAX_AGE
                    || rejected.is_some_and(|r| r.expose_secret() == token.expose_secret())
            }
        };
        if stale {
            let data = self
                .client
                .graphql(
                    self.master(),
                    queries::AUTHORIZE,
                    json!({"userId": user_id}),
                    Effect::Repeatable,
                    "create user token",
                )
                .await
                .map_err(master_failure)?;
            let token = data["authorize"]["accessToken"].as_str().ok_or_else(|| {
                ProviderError::rejected(
                    "tray graphql create user token: the answer has no accessToken",
                )
            })?;
            slot.token = Some((SecretString::from(token.to_owned()), Instant::now()));
        }
        let token = slot
            .token
            .as_ref()
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| SecretString::from(String::new()));
        Ok((user_id, token))
    }

    /// Runs `call` with the owner's user token; a 401 means the token expired (they live two
    /// days, a migration can run longer), so it is minted again once and the call repeated.
    /// Returns the Tray user id with the call's result.
    async fn with_user_token<T, Call, Answer>(
        &self,
        owner: &Owner,
        user_id: Option<&str>,
        call: Call,
    ) -> Result<(String, T), CallFailure>
    where
        Call: Fn(SecretString) -> Answer,
        Answer: std::future::Future<Output = Result<T, CallFailure>>,
    {
        let as_failure = |error: ProviderError| CallFailure {
            status: None,
            unauthorized: false,
            error,
        };
        let (user_id, token) = self
            .user_token(owner, user_id, None)
            .await
            .map_err(as_failure)?;
        match call(token.clone()).await {
            Err(failure) if failure.unauthorized => {
                let (_, fresh) = self
                    .user_token(owner, Some(&user_id), Some(&token))
                    .await
                    .map_err(as_failure)?;
                Ok((user_id, call(fresh).await?))
            }
            Err(failure) => Err(failure),
            Ok(answer) => Ok((user_id, answer)),
        }
    }

    /// A REST call with the owner's user token (re-minted once on 401).
    #[allow(clippy::too_many_arguments)] // the REST call's own arguments plus the owner
    async fn user_rest(
        &self,
        owner: &Owner,
        user_id: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
        effect: Effect,
        operation: &str,
    ) -> Result<(String, Vec<u8>), CallFailure> {
        let (user_id, (_, body)) = self
            .with_user_token(owner, user_id, |token| {
                let method = method.clone();
                async move {
                    self.client
                        .rest(method, path, &token, body, effect, operation)
                        .await
                }
            })
            .await?;
        Ok((user_id, body.0))
    }

    /// A GraphQL call with the owner's user token (re-minted once on 401).
    async fn user_graphql(
        &self,
        owner: &Owner,
        user_id: Option<&str>,
        query: &str,
        variables: Value,
        effect: Effect,
        operation: &str,
    ) -> Result<Value, CallFailure> {
        let (_, data) = self
            .with_user_token(owner, user_id, |token| {
                let variables = variables.clone();
                async move {
                    self.client
                        .graphql(&token, query, variables, effect, operation)
                        .await
                }
            })
            .await?;
        Ok(data)
    }

    fn lookup(&self, record: &CredentialRecord) -> Result<Arc<ResolvedTarget>, MappingError> {
        let target = TrayTarget::parse(record.targets.get("tray"))?;
        let selection = select(&record.service, &target, &self.config);
        let discovered = self.discovered.read().unwrap_or_else(|e| e.into_inner());
        match discovered.targets.get(&selection) {
            Some(result) => result.clone(),
            None => Err(MappingError::new(
                "service",
                format!(
                    "tray service {} was not discovered for this run",
                    selection.service_name
                ),
            )),
        }
    }

    fn solution_for(&self, record: &CredentialRecord) -> Option<&crate::config::SolutionConfig> {
        self.config
            .solution
            .as_ref()
            .filter(|s| s.applies_to(&record.service))
    }

    fn instance_name(&self, record: &CredentialRecord, mapped: &MappedRecord) -> String {
        let service_title = mapped
            .target
            .get("service")
            .and_then(Value::as_str)
            .unwrap_or(&record.service);
        match self
            .solution_for(record)
            .and_then(|s| s.instance_name_template.as_deref())
        {
            Some(template) => auth_name(template, record, service_title),
            None => mapped
                .target
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&record.id)
                .to_owned(),
        }
    }

    /// Creates (unless one of this name exists) and enables the record's solution instance.
    async fn ensure_instance(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        user_id: &str,
        auth_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let Some(solution) = self.solution_for(record) else {
            return Ok(None);
        };
        let owner = &record.owner;
        let name = self.instance_name(record, mapped);
        let data = self
            .user_graphql(
                owner,
                Some(user_id),
                queries::VIEWER_SOLUTION_INSTANCES,
                json!({"name": name, "solutionId": solution.solution_id, "first": 5}),
                Effect::Repeatable,
                "find solution instance",
            )
            .await
            .map_err(|f| f.error)?;
        let existing = data["viewer"]["solutionInstances"]["edges"]
            .as_array()
            .and_then(|edges| {
                edges
                    .iter()
                    .map(|e| &e["node"])
                    .find(|n| n["name"].as_str() == Some(name.as_str()))
                    .cloned()
            });
        let (instance_id, enabled) = match existing {
            Some(node) => (
                node["id"].as_str().unwrap_or_default().to_owned(),
                node["enabled"] == json!(true),
            ),
            None => {
                let data = self
                    .user_graphql(owner, Some(user_id), queries::CREATE_SOLUTION_INSTANCE,
                        json!({"solutionId": solution.solution_id, "instanceName": name, "authValues": [{"externalId": solution.auth_external_id, "authId": auth_id}]}),
                        Effect::Creates, "create solution instance")
                    .await
                    .map_err(|f| f.error)?;
                let id = data["createSolutionInstance"]["solutionInstance"]["id"]
                    .as_str()
                    .ok_or_else(|| {
                        ProviderError::rejected(
                            "tray graphql create solution instance: the answer has no id",
                        )
                    })?;
                // Tray asks for a pause between create and enable; this only delays this record.
                tokio::time::sleep(solution.enable_delay()).await;
                (id.to_owned(), false)
            }
        };
        if !enabled {
            self.user_graphql(
                owner,
                Some(user_id),
                queries::ENABLE_SOLUTION_INSTANCE,
                json!({"solutionInstanceId": instance_id}),
                Effect::Repeatable,
                "enable solution instance",
            )
            .await
            .map_err(|f| f.error)?;
        }
        Ok(Some(instance_id))
    }

    fn target_ref(
        record: &CredentialRecord,
        mapped: &MappedRecord,
        user_id: &str,
        auth_id: &str,
        instance_id: Option<String>,
    ) -> TargetRef {
        let mut map = Map::new();
        map.insert("authentication_id".into(), json!(auth_id));
        map.insert("user_id".into(), json!(user_id));
        map.insert("external_user_id".into(), json!(record.owner.id));
        for key in ["service_environment_id", "name"] {
            if let Some(value) = mapped.target.get(key) {
                map.insert(key.into(), value.clone());
            }
        }
        if let Some(instance_id) = instance_id {
            map.insert("solution_instance_id".into(), json!(instance_id));
        }
        TargetRef(map)
    }

    /// After the auth exists: the instance step. Any failure here is reported as
    /// `OutcomeUnknown`, so the engine reconciles (which adopts the auth and finishes the
    /// instance) instead of creating a second auth.
    async fn finish(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        user_id: &str,
        auth_id: &str,
        disposition: Disposition,
        known_instance: Option<String>,
    ) -> Result<ImportOutcome, ProviderError> {
        let instance_id = match known_instance {
            Some(id) => Some(id),
            None => self.ensure_instance(record, mapped, user_id, auth_id).await.map_err(|e| {
                ProviderError::outcome_unknown(format!("authentication {auth_id} is in place but the solution instance step failed: {}", e.message()))
            })?,
        };
        Ok(ImportOutcome {
            disposition,
            note: instance_id
                .as_ref()
                .map(|_| "solution instance enabled".to_owned()),
            target: Self::target_ref(record, mapped, user_id, auth_id, instance_id),
        })
    }

    async fn import_inner(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        let body = mapped.body.expose();
        let owner = &record.owner;
        if let Some(prior) = prior
            && let Some(auth_id) = prior.target.get_str("authentication_id")
        {
            // Tray's PUT does not support partial updates: send every field.
            let update = json!({"name": body["name"], "userData": body["userData"], "credentials": body["credentials"], "scopes": body["scopes"]});
            let path = format!("/core/v1/authentications/{auth_id}");
            match self
                .user_rest(
                    owner,
                    prior.target.get_str("user_id"),
                    Method::PUT,
                    &path,
                    Some(&update),
                    Effect::Repeatable,
                    "update authentication",
                )
                .await
            {
                Ok((user_id, _)) => {
                    let instance = prior
                        .target
                        .get_str("solution_instance_id")
                        .map(str::to_owned);
                    return self
                        .finish(
                            record,
                            mapped,
                            &user_id,
                            auth_id,
                            Disposition::Updated,
                            instance,
                        )
                        .await;
                }
                // Deleted at Tray since: create it again below.
                Err(failure) if failure.is_not_found() => {}
                Err(failure) => return Err(failure.error),
            }
        }
        let (user_id, answer) = self
            .user_rest(
                owner,
                None,
                Method::POST,
                "/core/v1/authentications",
                Some(body),
                Effect::Creates,
                "create authentication",
            )
            .await
            .map_err(|f| f.error)?;
        let created: CreatedAuthentication = serde_json::from_slice(&answer).map_err(|_| {
            ProviderError::outcome_unknown("tray create authentication: the answer has no id")
        })?;
        self.finish(
            record,
            mapped,
            &user_id,
            &created.id,
            Disposition::Created,
            None,
        )
        .await
    }

    async fn reconcile_inner(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError> {
        let name = mapped
            .target
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let environment_id = mapped
            .target
            .get("service_environment_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Read-only: an owner with no Tray user cannot own the auth yet, so there is nothing
        // to adopt (and no user is created just to look).
        let Some(user_id) = self.existing_user(&record.owner).await? else {
            return Ok(None);
        };
        let data = self
            .user_graphql(
                &record.owner,
                Some(&user_id),
                queries::VIEWER_AUTHENTICATIONS,
                json!({}),
                Effect::Repeatable,
                "list authentications",
            )
            .await
            .map_err(|f| f.error)?;
        let found = data["viewer"]["authentications"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|edge| &edge["node"])
            .find(|node| {
                node["name"].as_str() == Some(name)
                    && node["serviceEnvironment"]["id"]
                        .as_str()
                        .is_none_or(|id| id == environment_id)
            })
            .and_then(|node| node["id"].as_str().map(str::to_owned));
        let Some(auth_id) = found else {
            return Ok(None);
        };
        self.finish(
            record,
            mapped,
            &user_id,
            &auth_id,
            Disposition::Created,
            None,
        )
        .await
        .map(Some)
    }
}

#[async_trait]
impl AuthImporter for TrayImporter {
    async fn discover(&self, keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        self.connectors().await?;
        for key in keys {
            // A bad `targets.tray` is the record's problem: `map` reports it, located.
            let Ok(target) = TrayTarget::parse(key.target.as_ref()) else {
                continue;
            };
            let selection = select(&key.service, &target, &self.config);
            if self
                .discovered
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .targets
                .contains_key(&selection)
            {
                continue;
            }
            let resolved = self.resolve(&selection).await?;
            self.discovered
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .targets
                .insert(selection, resolved);
        }
        self.check_solution().await
    }

    fn map(&self, record: &CredentialRecord) -> Result<MappedRecord, MappingError> {
        let target = TrayTarget::parse(record.targets.get("tray"))?;
        let resolved = self.lookup(record)?;
        map_record(record, &target, &resolved, &self.config)
    }

    async fn import(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        self.import_inner(record, mapped, prior)
            .await
            .map_err(|e| scrub(e, Some(&record.id), &record.secret_values()))
    }

    async fn reconcile(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError> {
        self.reconcile_inner(record, mapped)
            .await
            .map_err(|e| scrub(e, Some(&record.id), &record.secret_values()))
    }

    async fn verify(&self, target: &TargetRef) -> Result<VerifyReport, ProviderError> {
        let Some(auth_id) = target.get_str("authentication_id") else {
            return Err(ProviderError::rejected(
                "the state has no tray authentication_id for this record",
            ));
        };
        let path = format!("/core/v1/authentications/{auth_id}");
        match self
            .master_get::<AuthenticationInfo>(&path, "get authentication")
            .await
        {
            Ok(info) => {
                let name_matches = target.get_str("name").is_none_or(|n| n == info.name);
                let environment_matches = target
                    .get_str("service_environment_id")
                    .is_none_or(|e| e == info.service_environment_id);
                let mut detail = Map::new();
                detail.insert("id".into(), json!(info.id));
                detail.insert("name".into(), json!(info.name));
                detail.insert(
                    "service_environment_id".into(),
                    json!(info.service_environment_id),
                );
                detail.insert("scopes".into(), json!(info.scopes));
                let healthy = name_matches && environment_matches;
                Ok(VerifyReport {
                    healthy,
                    status: if healthy { "present" } else { "changed" }.to_owned(),
                    detail,
                })
            }
            Err(failure) if failure.is_not_found() => Ok(VerifyReport {
                healthy: false,
                status: "missing".to_owned(),
                detail: Map::new(),
            }),
            Err(failure) => Err(master_failure(failure)),
        }
    }

    async fn remove(&self, target: &TargetRef) -> Result<Removal, ProviderError> {
        let Some(auth_id) = target.get_str("authentication_id") else {
            return Err(ProviderError::rejected(
                "the state has no tray authentication_id for this record",
            ));
        };
        if let (Some(instance_id), Some(external_user_id)) = (
            target.get_str("solution_instance_id"),
            target.get_str("external_user_id"),
        ) {
            let owner = Owner {
                id: external_user_id.to_owned(),
                name: None,
                email: None,
            };
            match self
                .user_graphql(
                    &owner,
                    target.get_str("user_id"),
                    queries::REMOVE_SOLUTION_INSTANCE,
                    json!({"solutionInstanceId": instance_id}),
                    Effect::Repeatable,
                    "remove solution instance",
                )
                .await
            {
                Ok(_) => {}
                // Already gone is fine for a rollback.
                Err(failure)
                    if failure
                        .error
                        .message()
                        .to_ascii_lowercase()
                        .contains("not found") => {}
                Err(failure) => return Err(failure.error),
            }
        }
        let path = format!("/core/v1/authentications/{auth_id}");
        match self
            .client
            .rest(
                Method::DELETE,
                &path,
                self.master(),
                None,
                Effect::Repeatable,
                "delete authentication",
            )
            .await
        {
            Ok(_) => Ok(Removal::Removed),
            Err(failure) if failure.is_not_found() => Ok(Removal::AlreadyGone),
            Err(failure) => Err(master_failure(failure)),
        }
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
