//! [`AuthImporter`] for Nango: discovery of the integrations, the pre-existing check, the
//! upsert, verify and remove over [`NangoClient`]; mapping is the pure [`crate::map`].

use std::fmt;

use async_trait::async_trait;
use authport_core::Health;
use authport_core::record::escaped_name;
use authport_core::{
    AuthImporter, BuildContext, ConfigError, CredentialRecord, DiscoveryKey, Disposition,
    ImportOutcome, MappedRecord, MappingError, PriorImport, ProviderError, Removal, TargetIdentity,
    TargetRef, VerifyReport,
};
use authport_kit::binding::{TargetClient, split_scopes};
use authport_kit::ownership::{self, Existing, Words};
use authport_kit::{DiscoveryCache, check_binding, payload_of};
use serde_json::{Map, json};

use crate::client::{Lookup, NangoClient};
use crate::config::NangoConfig;
use crate::map::map_record;
use crate::resolve::resolve_destination;
use crate::target::{NangoRef, PROVIDER};
use crate::wire::{Connection, Integration};

/// The Nango importer.
pub struct NangoImporter {
    pub(crate) config: NangoConfig,
    pub(crate) client: NangoClient,
    /// The environment's integrations: one `GET /integrations` per run answers every service.
    pub(crate) integrations: DiscoveryCache<(), Vec<Integration>>,
    /// Each integration's OAuth client id and scopes, read once per integration a record
    /// resolves to (`include=credentials`; the client secret is never kept).
    pub(crate) clients: DiscoveryCache<String, TargetClient>,
}

impl fmt::Debug for NangoImporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NangoImporter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NangoImporter {
    /// The importer for `config`; its HTTP client takes the context's gate, timeout and
    /// proxy settings. No network IO.
    pub fn new(config: NangoConfig, context: &BuildContext) -> Result<Self, ConfigError> {
        let client = NangoClient::new(&config, context)?;
        Ok(Self {
            config,
            client,
            integrations: DiscoveryCache::default(),
            clients: DiscoveryCache::default(),
        })
    }
}

/// What Nango's integration says of its OAuth client: the client id and the scopes
/// (`"a,b"`), when it has OAuth credentials.
pub fn target_client(credentials: Option<crate::wire::IntegrationClient>) -> TargetClient {
    let credentials = credentials.unwrap_or_default();
    TargetClient {
        client_id: credentials.client_id.filter(|id| !id.trim().is_empty()),
        scopes: credentials
            .scopes
            .map(|scopes| split_scopes(&scopes))
            .filter(|scopes| !scopes.is_empty()),
    }
}

/// Owner listings read before the pre-existing decision stop after this many pages of
/// [`OWNER_PAGE_SIZE`]: an owner with more connections than that is not an end user.
const OWNER_PAGES_MAX: u64 = 20;
const OWNER_PAGE_SIZE: u64 = 100;

/// Nango's words in the ownership notes.
const WORDS: Words = Words {
    section: "nango",
    object: "connection",
    foreign: "a connection with this id",
};

/// The record id authport marked a connection with, if any.
fn marker_of(connection: &Connection) -> Option<&str> {
    ownership::marker_in(connection.metadata.as_ref())
}

/// Classifies the connection with the record's id in its integration, if any.
pub fn classify_existing(connection: Option<&Connection>, record_id: &str) -> Existing {
    match connection {
        None => Existing::Absent,
        Some(connection) => Existing::by_marker(marker_of(connection), record_id, None),
    }
}

/// What to do about it ([`authport_kit::ownership::decide`] in Nango's words).
pub fn decide(
    existing: &Existing,
    has_prior: bool,
    overwrite_existing: bool,
) -> (Disposition, Option<String>) {
    ownership::decide(existing, has_prior, overwrite_existing, WORDS)
}

/// The note of a record skipped because its owner already has `other` in the integration.
pub fn second_connection_note(other: &Connection, others: usize) -> String {
    let more = match others {
        0 | 1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    format!(
        "the owner already has a connection in integration `{}` (connection `{}`{more}, {}); no second connection created (set [nango] allow_second_connection = true to create it)",
        escaped_name(&other.provider_config_key),
        escaped_name(&other.connection_id),
        ownership::made_by(marker_of(other)),
    )
}

/// The verify report of a read: healthy only when the connection exists, Nango can refresh
/// it, and its `errors[]` is empty. The status word is Nango's; the [`Health`]:
/// - 404: missing;
/// - 424 "Connection refresh exhausted": revoked (Nango gave up refreshing; the end user must
///   connect again);
/// - an `auth` error in `errors[]` (Nango records one when a refresh fails, nango-api.md §4):
///   refresh failed;
/// - any other error (`sync`, ...): revoked, as `status` has always counted a connection Nango
///   flags as unusable.
pub fn verify_report(lookup: &Lookup) -> VerifyReport {
    let mut detail = Map::new();
    let (health, status) = match lookup {
        Lookup::Missing => (Health::Missing, "missing".to_owned()),
        Lookup::RefreshExhausted => (Health::Revoked, "refresh_exhausted".to_owned()),
        Lookup::Found(connection) => {
            if let Some(id) = connection.id {
                detail.insert("id".to_owned(), json!(id));
            }
            if let Some(provider) = &connection.provider {
                detail.insert("provider".to_owned(), json!(provider));
            }
            let kinds: Vec<&str> = connection.errors.iter().map(|e| e.kind.as_str()).collect();
            detail.insert("errors".to_owned(), json!(kinds));
            match kinds.first() {
                None => (Health::Healthy, "ok".to_owned()),
                Some(_) if kinds.contains(&"auth") => {
                    (Health::RefreshFailed, "auth_error".to_owned())
                }
                Some(kind) => (Health::Revoked, format!("{kind}_error")),
            }
        }
    };
    VerifyReport {
        health,
        status,
        detail,
    }
}

impl NangoImporter {
    /// The reads before an upsert, shared by the import and the dry run's prediction: the
    /// connection with the record's id (the upsert would overwrite it), then, for a new one,
    /// the owner's other connections in the integration (a second one is not made unasked).
    async fn before_write(
        &self,
        record: &CredentialRecord,
        at: &NangoRef,
        prior: Option<&PriorImport>,
    ) -> Result<(Disposition, Option<String>), ProviderError> {
        if prior.is_some() {
            return Ok(decide(
                &Existing::Ours,
                true,
                self.config.overwrite_existing,
            ));
        }
        // Without credentials, and without the refresh a read of one connection may trigger.
        let found = self.client.find_connections(&at.connection_id).await?;
        let existing = classify_existing(
            found
                .iter()
                .find(|c| c.provider_config_key == at.provider_config_key),
            &record.id,
        );
        let decision = decide(&existing, false, self.config.overwrite_existing);
        if existing != Existing::Absent || self.config.allow_second_connection {
            return Ok(decision);
        }
        let others = self.owner_connections(&record.owner.id, at).await?;
        match others.first() {
            Some(other) => Ok((
                Disposition::Skipped,
                Some(second_connection_note(other, others.len())),
            )),
            None => Ok(decision),
        }
    }

    /// The owner's connections in `at`'s integration other than `at` (by the `end_user_id`
    /// tag every import sets and Nango recommends), read page by page until a short page or
    /// one that repeats what was seen (the page base is not documented).
    async fn owner_connections(
        &self,
        owner: &str,
        at: &NangoRef,
    ) -> Result<Vec<Connection>, ProviderError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut others = Vec::new();
        for page in 0..OWNER_PAGES_MAX {
            let listed = self
                .client
                .list_connections_page(Some(owner), page, OWNER_PAGE_SIZE)
                .await?;
            let short = (listed.len() as u64) < OWNER_PAGE_SIZE;
            let mut new = false;
            for connection in listed {
                let key = (
                    connection.provider_config_key.clone(),
                    connection.connection_id.clone(),
                );
                if !seen.insert(key) {
                    continue;
                }
                new = true;
                if connection.provider_config_key == at.provider_config_key
                    && connection.connection_id != at.connection_id
                {
                    others.push(connection);
                }
            }
            if short || !new {
                break;
            }
        }
        Ok(others)
    }
}

#[async_trait]
impl AuthImporter for NangoImporter {
    async fn discover(&self, keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        // One list answers every service; which integration a record takes is `map`'s job.
        let integrations = self
            .integrations
            .get_or_discover(&(), || async {
                self.client.list_integrations().await.map(Ok)
            })
            .await?;
        let Ok(integrations) = integrations else {
            return Ok(());
        };
        // The OAuth client of each integration these keys resolve to, once per integration.
        // A key that does not resolve fails its records in `map`, with the reason.
        for key in keys {
            let Ok(destination) = resolve_destination(
                &key.service,
                key.target.as_ref(),
                &self.config,
                &integrations,
            ) else {
                continue;
            };
            let unique_key = destination.provider_config_key;
            // Never a cached `Err`: the closure answers `Ok` or fails (and is asked again).
            let _client = self
                .clients
                .get_or_discover(&unique_key, || async {
                    let client = self.client.integration_client(&unique_key).await?;
                    Ok::<_, ProviderError>(Ok(target_client(client)))
                })
                .await?;
        }
        Ok(())
    }

    fn map(&self, record: &CredentialRecord) -> Result<MappedRecord, MappingError> {
        let integrations = match self.integrations.get(&()) {
            Some(Ok(integrations)) => integrations,
            Some(Err(reason)) => return Err(MappingError::new("service", reason)),
            None => {
                return Err(MappingError::new(
                    format!("targets.{PROVIDER}"),
                    "the Nango integrations were not discovered before mapping",
                ));
            }
        };
        let destination = resolve_destination(
            &record.service,
            record.targets.get(PROVIDER),
            &self.config,
            &integrations,
        )?;
        let discovered = match self.clients.get(&destination.provider_config_key) {
            Some(Ok(client)) => Some(client),
            _ => None,
        };
        let client = self
            .config
            .binding
            .target_client(&record.service, discovered.as_deref());
        // Before the body is built: a token the target could never refresh is not mapped.
        let warnings = check_binding(record, &client, PROVIDER)?;
        let mut mapped = map_record(record, &destination)?;
        mapped.notes.extend(warnings);
        Ok(mapped)
    }

    async fn import(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        let at: &NangoRef = payload_of(mapped, PROVIDER)?;
        let secrets = record.secret_values();
        let (disposition, decision_note) = self.before_write(record, at, prior).await?;
        if disposition == Disposition::Skipped {
            return Ok(ImportOutcome {
                disposition,
                target: TargetRef::from(at),
                note: decision_note,
            });
        }
        let connection = self.client.upsert(mapped.body.expose(), &secrets).await?;
        let mut notes: Vec<String> = decision_note.into_iter().collect();
        if !connection.errors.is_empty() {
            notes.push(format!(
                "nango reports {} connection error(s)",
                connection.errors.len()
            ));
        }
        Ok(ImportOutcome {
            disposition,
            target: TargetRef::from(at),
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    async fn predict_skip(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<Option<String>, ProviderError> {
        let at: &NangoRef = payload_of(mapped, PROVIDER)?;
        let (disposition, note) = self.before_write(record, at, prior).await?;
        Ok(note.filter(|_| disposition == Disposition::Skipped))
    }

    async fn reconcile(
        &self,
        _record: &CredentialRecord,
        _mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError> {
        // The import is an upsert on a connection id derived from the record: sending it again
        // is always safe and carries the current tokens. `import` recognises an earlier write
        // of this record by its metadata marker, so it is not mistaken for a pre-existing one.
        Ok(None)
    }

    async fn verify(&self, target: &TargetRef) -> Result<VerifyReport, ProviderError> {
        let at = NangoRef::try_from(target)?;
        let lookup = self.client.get_connection(&at, &[]).await?;
        Ok(verify_report(&lookup))
    }

    async fn remove(&self, target: &TargetRef) -> Result<Removal, ProviderError> {
        self.client.delete(&NangoRef::try_from(target)?).await
    }

    fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            endpoints: vec![self.config.api_base().to_owned()],
            account: None,
            credential: self.config.secret_key.clone(),
        }
    }
}
