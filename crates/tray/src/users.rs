//! Tray's end users and their tokens: the owner id → Tray user id look-up (the state's memo,
//! then `users(criteria)`, then `createExternalUser` when allowed), user tokens (cached,
//! re-minted when old and, once, on a 401), and each owner's list of authentications (read
//! once per run for the look-up before a create, again by every reconcile).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authport_core::{CredentialRecord, ExposeSecret, Memo, ProviderError, SecretString};
use authport_kit::{Body, CallFailure, DiscoveryCache, Effect};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::client::{GraphqlCall, RestCall, TrayClient, master_failure};
use crate::config::TrayConfig;
use crate::wire::{
    AuthenticationListing, AuthorizeData, CreateExternalUserData, UsersData,
    ViewerAuthenticationsData, queries,
};

/// Memo namespace for owner id -> Tray user id (kept in the state file across runs).
pub const USER_MEMO: &str = "tray.user_id";
/// Re-mint user tokens before Tray's 2-day expiry.
const TOKEN_MAX_AGE: Duration = Duration::from_secs(47 * 3600);

/// On whose behalf a call is made: the end user behind an owner id.
#[derive(Debug, Clone, Copy)]
pub struct UserRef<'a> {
    /// The record's `owner.id` (Tray's `externalUserId`).
    pub external_user_id: &'a str,
    /// The name for `createExternalUser` (the owner's name, else the id).
    pub name: Option<&'a str>,
    /// The Tray user id when already known (from the state).
    pub user_id: Option<&'a str>,
    /// The record's secret values: scrubbed from anything Tray answers.
    pub secrets: &'a [&'a str],
}

impl<'a> UserRef<'a> {
    pub fn of(record: &'a CredentialRecord, secrets: &'a [&'a str]) -> Self {
        Self {
            external_user_id: &record.owner.id,
            name: record.owner.name.as_deref(),
            user_id: None,
            secrets,
        }
    }

    pub fn with_user_id(self, user_id: &'a str) -> Self {
        Self {
            user_id: Some(user_id),
            ..self
        }
    }
}

/// The end user behind one owner id, resolved lazily and cached for the run.
#[derive(Default)]
struct UserSlot {
    user_id: Option<String>,
    /// Created by this run: it cannot own an auth from an earlier run.
    created_now: bool,
    token: Option<(SecretString, Instant)>,
}

/// Imports' view of Tray's end users.
pub struct Users {
    client: TrayClient,
    memo: Arc<dyn Memo>,
    create_users: bool,
    is_test_user: bool,
    /// One async lock per owner id, so two records of one owner never create two users.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UserSlot>>>>,
    /// Each owner's authentications as last listed (by owner id).
    listed: DiscoveryCache<String, AuthenticationListing>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

impl Users {
    pub fn new(client: TrayClient, memo: Arc<dyn Memo>, config: &TrayConfig) -> Self {
        Self {
            client,
            memo,
            create_users: config.create_users,
            is_test_user: config.is_test_user,
            slots: Mutex::new(HashMap::new()),
            listed: DiscoveryCache::default(),
        }
    }

    fn slot(&self, external_user_id: &str) -> Arc<tokio::sync::Mutex<UserSlot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(external_user_id.to_owned())
            .or_default()
            .clone()
    }

    /// A master-token GraphQL call.
    async fn master<T: DeserializeOwned>(&self, call: GraphqlCall<'_>) -> Result<T, ProviderError> {
        self.client
            .graphql(self.client.master(), call)
            .await
            .map_err(master_failure)
    }

    /// The owner's Tray user id if the user already exists: the state's memo, then
    /// `users(criteria)`. Read-only: never creates anything.
    async fn find_user(&self, user: UserRef<'_>) -> Result<Option<String>, ProviderError> {
        let owner_id = user.external_user_id;
        if let Some(user_id) = self.memo.get(USER_MEMO, owner_id) {
            return Ok(Some(user_id));
        }
        let variables = json!({"externalUserId": owner_id, "first": 2});
        let data: UsersData = self
            .master(GraphqlCall {
                document: queries::USERS_BY_EXTERNAL_ID,
                variables: &variables,
                effect: Effect::Read,
                operation: "find user",
                secrets: user.secrets,
            })
            .await?;
        let found: Vec<String> = data
            .users
            .into_nodes()
            .filter(|node| node.external_user_id.as_deref() == Some(owner_id))
            .map(|node| node.id)
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => {
                self.memo.put(USER_MEMO, owner_id, one);
                Ok(Some(one.clone()))
            }
            _ => Err(ProviderError::rejected(format!(
                "tray has several end users with externalUserId {owner_id}: resolve the duplicates first"
            ))),
        }
    }

    /// The owner's Tray user id for a reconnect link: found, else created (unless the config
    /// forbids it), since Tray mints dialog codes for existing end users only.
    pub async fn user_for_link(&self, user: UserRef<'_>) -> Result<String, ProviderError> {
        match self.existing_user(user).await? {
            Some(user_id) => Ok(user_id),
            None => self.create_user(user).await,
        }
    }

    /// `createExternalUser`, unless the config forbids it.
    async fn create_user(&self, user: UserRef<'_>) -> Result<String, ProviderError> {
        let owner_id = user.external_user_id;
        if !self.create_users {
            return Err(ProviderError::rejected(format!(
                "tray has no end user with externalUserId {owner_id} and user creation is disabled (create_users = false)"
            )));
        }
        let variables = json!({
            "name": user.name.unwrap_or(owner_id),
            "externalUserId": owner_id,
            "isTestUser": self.is_test_user,
        });
        let data: CreateExternalUserData = self
            .master(GraphqlCall {
                document: queries::CREATE_EXTERNAL_USER,
                variables: &variables,
                effect: Effect::Create,
                operation: "create user",
                secrets: user.secrets,
            })
            .await?;
        let user_id = data.create_external_user.user_id;
        self.memo.put(USER_MEMO, owner_id, &user_id);
        Ok(user_id)
    }

    /// The owner's Tray user id from the run cache or [`Self::find_user`]; `None` when the
    /// user does not exist. For reconciliation, which must not create anything.
    pub async fn existing_user(&self, user: UserRef<'_>) -> Result<Option<String>, ProviderError> {
        let slot = self.slot(user.external_user_id);
        let mut slot = slot.lock().await;
        if slot.user_id.is_none() {
            slot.user_id = self.find_user(user).await?;
        }
        Ok(slot.user_id.clone())
    }

    /// The owner's user id and a user token, creating the user and minting the token as
    /// needed. A token equal to `rejected` (Tray answered 401 to it) is minted again.
    async fn user_token(
        &self,
        user: UserRef<'_>,
        rejected: Option<&SecretString>,
    ) -> Result<(String, SecretString), ProviderError> {
        let slot = self.slot(user.external_user_id);
        let mut slot = slot.lock().await;
        let user_id = match (&slot.user_id, user.user_id) {
            (Some(id), _) => id.clone(),
            (None, Some(known)) => known.to_owned(),
            (None, None) => match self.find_user(user).await? {
                Some(found) => found,
                None => {
                    let created = self.create_user(user).await?;
                    slot.created_now = true;
                    created
                }
            },
        };
        slot.user_id = Some(user_id.clone());
        let usable = slot.token.as_ref().filter(|(token, minted)| {
            minted.elapsed() < TOKEN_MAX_AGE
                && rejected.is_none_or(|r| r.expose_secret() != token.expose_secret())
        });
        if let Some((token, _)) = usable {
            return Ok((user_id, token.clone()));
        }
        let variables = json!({"userId": user_id});
        // Minting a token changes nothing worth reconciling: a second one is harmless.
        let data: AuthorizeData = self
            .master(GraphqlCall {
                document: queries::AUTHORIZE,
                variables: &variables,
                effect: Effect::Read,
                operation: "create user token",
                secrets: user.secrets,
            })
            .await?;
        let token = data.authorize.access_token;
        slot.token = Some((token.clone(), Instant::now()));
        Ok((user_id, token))
    }

    /// Runs `call` with the owner's user token; a 401 means the token expired (they live two
    /// days, a migration can run longer), so it is minted again once and the call repeated.
    /// Returns the Tray user id with the call's result.
    async fn with_token<T, Call, Answer>(
        &self,
        user: UserRef<'_>,
        call: Call,
    ) -> Result<(String, T), CallFailure>
    where
        Call: Fn(SecretString) -> Answer,
        Answer: Future<Output = Result<T, CallFailure>>,
    {
        let as_failure = |error: ProviderError| CallFailure {
            status: None,
            vendor_text: String::new(),
            error,
        };
        let (user_id, token) = self.user_token(user, None).await.map_err(as_failure)?;
        match call(token.clone()).await {
            Err(failure) if failure.is_unauthorized() => {
                let (_, fresh) = self
                    .user_token(user.with_user_id(&user_id), Some(&token))
                    .await
                    .map_err(as_failure)?;
                Ok((user_id, call(fresh).await?))
            }
            Err(failure) => Err(failure),
            Ok(answer) => Ok((user_id, answer)),
        }
    }

    /// A REST call with the owner's user token. Returns the Tray user id and the answer.
    pub async fn rest(
        &self,
        user: UserRef<'_>,
        call: RestCall<'_>,
    ) -> Result<(String, Body), CallFailure> {
        self.with_token(
            user,
            |token| async move { self.client.rest(&token, call).await },
        )
        .await
    }

    /// A REST call with the owner's user token whose answer is read as `T`, by the kit's rule
    /// for an unreadable answer (after a create: outcome unknown).
    pub async fn rest_json<T: DeserializeOwned>(
        &self,
        user: UserRef<'_>,
        call: RestCall<'_>,
    ) -> Result<(String, T), CallFailure> {
        self.with_token(user, |token| async move {
            self.client.rest_json::<T>(&token, call).await
        })
        .await
    }

    /// A GraphQL call with the owner's user token.
    pub async fn graphql<T: DeserializeOwned>(
        &self,
        user: UserRef<'_>,
        call: GraphqlCall<'_>,
    ) -> Result<T, CallFailure> {
        let (_, data) = self
            .with_token(user, |token| async move {
                self.client.graphql::<T>(&token, call).await
            })
            .await?;
        Ok(data)
    }

    /// The owner's authentications for the look-up before a create: listed once per owner per
    /// run (or taken from the last reconcile), and empty (and complete) without a listing when
    /// this run created the user. Creates the user when needed, as the create that follows
    /// would.
    pub async fn authentications_before_create(
        &self,
        user: UserRef<'_>,
    ) -> Result<(String, Arc<AuthenticationListing>), ProviderError> {
        let (user_id, _) = self.user_token(user, None).await?;
        let created_now = self.slot(user.external_user_id).lock().await.created_now;
        if created_now {
            let nothing_yet = AuthenticationListing {
                nodes: Vec::new(),
                complete: true,
            };
            return Ok((user_id, Arc::new(nothing_yet)));
        }
        let user = user.with_user_id(&user_id);
        let listed = self
            .listed
            .get_or_discover(&user.external_user_id.to_owned(), || async {
                self.list(user).await.map(Ok)
            })
            .await?;
        // The listing never caches a refusal (`Ok(Err)`): one is not produced above.
        let listed = listed.map_err(ProviderError::rejected)?;
        Ok((user_id, listed))
    }

    /// The owner's authentications as Tray has them now (for reconcile, after a write that
    /// may have landed), remembered for later look-ups of this owner.
    pub async fn authentications_now(
        &self,
        user: UserRef<'_>,
    ) -> Result<AuthenticationListing, ProviderError> {
        let listed = self.list(user).await?;
        self.listed
            .insert(user.external_user_id.to_owned(), Ok(listed.clone()));
        Ok(listed)
    }

    async fn list(&self, user: UserRef<'_>) -> Result<AuthenticationListing, ProviderError> {
        let data: ViewerAuthenticationsData = self
            .graphql(
                user,
                GraphqlCall {
                    document: queries::VIEWER_AUTHENTICATIONS,
                    variables: &json!({}),
                    effect: Effect::Read,
                    operation: "list authentications",
                    secrets: user.secrets,
                },
            )
            .await
            .map_err(|failure| failure.error)?;
        let authentications = data.viewer.authentications;
        let complete = !authentications.has_next_page();
        Ok(AuthenticationListing {
            nodes: authentications.into_nodes().collect(),
            complete,
        })
    }
}
