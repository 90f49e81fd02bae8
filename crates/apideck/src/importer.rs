//! [`AuthImporter`] for Apideck Vault: discovery, the pre-existing check, import, verify and
//! rollback over [`VaultClient`]; mapping is delegated to the pure [`crate::map`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use authport_core::Health;
use authport_core::{
    AuthImporter, BuildContext, ConfigError, CredentialRecord, DiscoveryKey, Disposition,
    ImportOutcome, MappedRecord, MappingError, PriorImport, ProviderError, Removal, TargetIdentity,
    TargetRef, VerifyReport,
};
use authport_kit::ownership::{self, Existing, Words};
use authport_kit::{DiscoveryCache, payload_of};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::client::{Lookup, VaultClient};
use crate::config::{ApideckConfig, PreExistingCheck, ValidateAfterImport};
use crate::connector::ConnectorInfo;
use crate::consumers::{ConsumerListing, SentUnchecked, list_consumers};
use crate::expiry::{SendClock, render_at_send_bytes};
use crate::map::{MapOptions, map_record_at};
use crate::target::{ApideckRef, PROVIDER, ResolvedTarget, resolve_target};
use crate::wire::{Connection, ImportedConnection};

/// `(unified_api, service_id)`.
type ConnectorKey = (String, String);

/// Retryable failures of the consumer listing before the run stops trying it (each failed try
/// costs one request; the records meanwhile are read one by one, as without the listing).
const LISTING_ATTEMPTS: u32 = 3;

/// The Apideck Vault importer.
pub struct ApideckImporter {
    pub(crate) config: ApideckConfig,
    pub(crate) client: VaultClient,
    /// The run's clock, fixed at build time so mapping is deterministic within a run; it also
    /// renders absolute expiries when imports are sent ([`render_at_send`]).
    now: DateTime<Utc>,
    /// `now` as the import renders it into bodies, formatted once.
    send_clock: SendClock,
    /// What discovery learned per connector: the connector, or why its records cannot be
    /// imported.
    catalogue: DiscoveryCache<ConnectorKey, ConnectorInfo>,
    /// The run's one listing of consumers (single-flight, on the first import that needs it),
    /// or why it is not used.
    consumers: DiscoveryCache<(), ConsumerListing>,
    listing_failures: AtomicU32,
    /// The pairs this run imported without reading them first (the listing cannot see them).
    sent_unchecked: SentUnchecked,
}

impl fmt::Debug for ApideckImporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApideckImporter")
            .field("config", &self.config)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl ApideckImporter {
    /// The importer for `config`; its HTTP client takes the context's gate, timeout and
    /// proxy settings. No network IO.
    pub fn new(config: ApideckConfig, context: &BuildContext) -> Result<Self, ConfigError> {
        let client = VaultClient::new(&config, context)?;
        let now = Utc::now();
        Ok(Self {
            config,
            client,
            now,
            send_clock: SendClock::new(now),
            catalogue: DiscoveryCache::default(),
            consumers: DiscoveryCache::default(),
            listing_failures: AtomicU32::new(0),
            sent_unchecked: SentUnchecked::default(),
        })
    }

    /// Replaces the run's clock (tests pin it to make expiry decisions reproducible).
    pub fn with_clock(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self.send_clock = SendClock::new(now);
        self
    }

    fn map_options(&self) -> MapOptions {
        MapOptions {
            suspect_milliseconds: self.config.suspect_milliseconds,
            allow_incomplete_settings: self.config.allow_incomplete_settings,
            now: self.now,
        }
    }

    async fn discover_connector(
        &self,
        unified_api: &str,
        service_id: &str,
    ) -> Result<Result<ConnectorInfo, String>, ProviderError> {
        // A read with a fixed consumer id: Vault answers with the connector's catalogue entry
        // (state `available` for a consumer without it) and creates nothing.
        let at = ApideckRef {
            consumer_id: self.config.discovery_consumer_id.clone(),
            unified_api: unified_api.to_owned(),
            service_id: service_id.to_owned(),
            connection_id: None,
        };
        let reason = match self.client.get_connection(&at, &[]).await? {
            Lookup::Found(connection) => {
                return Ok(ConnectorInfo::from_connection(
                    unified_api,
                    service_id,
                    &connection,
                ));
            }
            Lookup::NotFound(reason) => reason,
        };
        // Should Vault answer 404 for a consumer that lacks the connection, the app-wide list
        // (no consumer needed) still tells an enabled connector from an unknown one.
        let listed = self.client.list_connections(unified_api).await?;
        Ok(
            match listed
                .iter()
                .find(|c| c.service_id.as_deref() == Some(service_id))
            {
                Some(connection) => {
                    ConnectorInfo::from_connection(unified_api, service_id, connection)
                }
                None => Err(format!(
                    "connector {unified_api}/{service_id} is unknown or not enabled for this Apideck application ({reason})"
                )),
            },
        )
    }

    /// Whether the import of `at` must first read the connection (the pre-existing check).
    /// Only a usable listing that shows the consumer without that service, or does not show
    /// the consumer, answers `false`, and only once per pair in a run; any doubt answers `true`.
    async fn needs_check(&self, at: &ApideckRef) -> Result<bool, ProviderError> {
        if self.config.pre_existing_check == PreExistingCheck::PerConnection {
            return Ok(true);
        }
        match self
            .consumers
            .get_or_discover(&(), || self.list_consumers_once())
            .await
        {
            Ok(Ok(listing)) => {
                Ok(listing.check_or_claim(&at.consumer_id, &at.service_id, &self.sent_unchecked))
            }
            Ok(Err(_unusable)) => Ok(true),
            // A 401 or a plan limit stops the run, as it would on the connection's read.
            Err(error @ ProviderError::Fatal { .. }) => Err(error),
            Err(_retryable) => Ok(true),
        }
    }

    /// One try at the listing. `Ok(Err(_))` is cached: the run checks record by record.
    async fn list_consumers_once(&self) -> Result<Result<ConsumerListing, String>, ProviderError> {
        let unusable = match list_consumers(&self.client).await {
            Ok(Ok(listing)) => {
                tracing::debug!(
                    "apideck: consumer list read; records of unlisted pairs are imported without a prior read"
                );
                return Ok(Ok(listing));
            }
            Ok(Err(unusable)) => unusable,
            Err(error @ ProviderError::Fatal { .. }) => return Err(error),
            Err(error)
                if error.is_retryable()
                    && self.listing_failures.fetch_add(1, Ordering::SeqCst) + 1
                        < LISTING_ATTEMPTS =>
            {
                return Err(error);
            }
            Err(error) => format!("{} ({})", error.kind(), error.message()),
        };
        tracing::warn!(
            "apideck: the consumer list is not used ({unusable}); every connection is read before its import"
        );
        Ok(Err(unusable))
    }

    /// The reads before an import, shared by the import and the dry run's prediction.
    /// `secrets` are the record's (scrubbed from any message of the read).
    async fn before_write(
        &self,
        record: &CredentialRecord,
        secrets: &[&str],
        at: &ApideckRef,
        prior: Option<&PriorImport>,
    ) -> Result<(Disposition, Option<String>), ProviderError> {
        let existing = if prior.is_some() {
            Existing::Ours
        } else if !self.needs_check(at).await? {
            // The run's consumer list shows no connection here (see `crate::consumers`).
            Existing::Absent
        } else {
            // Pre-existing check: import is an upsert and would overwrite what is there.
            match self.client.get_connection(at, secrets).await? {
                Lookup::Found(connection) => classify_existing(Some(&connection), &record.id),
                Lookup::NotFound(_) => Existing::Absent,
            }
        };
        Ok(decide(
            &existing,
            prior.is_some(),
            self.config.overwrite_existing,
        ))
    }

    fn validate_wanted(&self, auth_type: Option<&str>) -> bool {
        match self.config.validate_after_import {
            ValidateAfterImport::Never => false,
            ValidateAfterImport::NonOauth => auth_type.is_some_and(|t| t != "oauth2"),
            ValidateAfterImport::Always => true,
        }
    }
}

/// Apideck's words in the ownership notes.
const WORDS: Words = Words {
    section: "apideck",
    object: "connection",
    foreign: "a connection with credentials",
};

/// Classifies the connection found before an import: absent when the connector is merely
/// `available` to the consumer; a foreign `added` one holds no grant yet; any other state
/// (`authorized`, `callable`, `invalid`, or one Apideck adds later) is assumed to hold
/// credentials, the safe side.
pub fn classify_existing(connection: Option<&Connection>, record_id: &str) -> Existing {
    let Some(connection) = connection else {
        return Existing::Absent;
    };
    let state = connection.state.clone().unwrap_or_default();
    if state.is_empty() || state == "available" {
        return Existing::Absent;
    }
    let marker = ownership::marker_in(connection.metadata.as_ref());
    match Existing::by_marker(marker, record_id, Some(state)) {
        Existing::Foreign {
            state: Some(state), ..
        } if state == "added" => Existing::ForeignEmpty { state },
        existing => existing,
    }
}

/// What to do about it ([`authport_kit::ownership::decide`] in Apideck's words).
pub fn decide(
    existing: &Existing,
    has_prior: bool,
    overwrite_existing: bool,
) -> (Disposition, Option<String>) {
    ownership::decide(existing, has_prior, overwrite_existing, WORDS)
}

/// `state X, health Y`, for notes, written at the end of `note`.
fn push_state_words(note: &mut String, connection: &ImportedConnection) {
    for (label, word) in [
        ("state ", connection.state.as_deref()),
        (", health ", connection.health.as_deref()),
    ] {
        note.push_str(label);
        note.push_str(word.unwrap_or("unknown"));
    }
}

/// The verify report of a read: the status word is the connection state, or
/// `pending_refresh` for a callable connection whose token Vault still has to refresh; the
/// [`Health`] is [`health_of`] Vault's words.
pub fn verify_report(connection: Option<&Connection>) -> VerifyReport {
    let mut detail = Map::new();
    let Some(connection) =
        connection.filter(|c| c.state.as_deref().is_some_and(|s| s != "available"))
    else {
        return VerifyReport {
            health: Health::Missing,
            status: "missing".to_owned(),
            detail,
        };
    };
    let state = connection.state.clone().unwrap_or_default();
    for (key, value) in [
        ("state", &connection.state),
        ("health", &connection.health),
        ("auth_type", &connection.auth_type),
        ("integration_state", &connection.integration_state),
        ("connection_id", &connection.id),
    ] {
        if let Some(value) = value {
            detail.insert(key.to_owned(), json!(value));
        }
    }
    if let Some(failed_at) = &connection.last_refresh_failed_at {
        detail.insert("last_refresh_failed_at".to_owned(), failed_at.clone());
    }
    let status = if state == "callable" && connection.health.as_deref() == Some("pending_refresh") {
        "pending_refresh".to_owned()
    } else {
        state.clone()
    };
    VerifyReport {
        health: health_of(
            &state,
            connection.health.as_deref(),
            connection.last_refresh_failed_at.as_ref(),
        ),
        status,
        detail,
    }
}

/// What Vault's words for an existing connection mean: `health: revoked` is revoked; a set
/// `last_refresh_failed_at` while `health` is not `ok` is a failed refresh (Vault shows
/// `pending_refresh` while it keeps retrying, so this is checked first); a `callable`
/// connection is healthy, or pending its first refresh; any other state (`authorized` without
/// its settings, `added`, `invalid`, `health: needs_auth`...) is unusable until the end user
/// connects again, which `status` calls revoked.
pub fn health_of(
    state: &str,
    health: Option<&str>,
    last_refresh_failed_at: Option<&Value>,
) -> Health {
    if health == Some("revoked") {
        Health::Revoked
    } else if is_set(last_refresh_failed_at) && health != Some("ok") {
        Health::RefreshFailed
    } else if state != "callable" {
        Health::Revoked
    } else if health == Some("pending_refresh") {
        Health::PendingRefresh
    } else {
        Health::Healthy
    }
}

/// A timestamp that says a refresh failed: set, and not Vault's "never" (`0`, empty).
fn is_set(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => !s.trim().is_empty() && s != "0",
        Some(_) => true,
    }
}

#[async_trait]
impl AuthImporter for ApideckImporter {
    async fn discover(&self, keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        // Once per connector, not per record. Records whose target cannot be resolved, or whose
        // connector is unusable (the cached reason), get their error from `map`.
        let wanted: BTreeSet<ConnectorKey> = keys
            .iter()
            .filter_map(|key| {
                resolve_target(&key.service, key.target.as_ref(), &self.config.services).ok()
            })
            .map(|target| (target.unified_api, target.service_id))
            .collect();
        for key in wanted {
            let (unified_api, service_id) = &key;
            let _connector_or_reason = self
                .catalogue
                .get_or_discover(&key, || self.discover_connector(unified_api, service_id))
                .await?;
        }
        Ok(())
    }

    fn map(&self, record: &CredentialRecord) -> Result<MappedRecord, MappingError> {
        let ResolvedTarget {
            unified_api,
            service_id,
            overrides,
        } = resolve_target(
            &record.service,
            record.targets.get(PROVIDER),
            &self.config.services,
        )?;
        // The ids move into the key and back: no copy of them per record.
        let key = (unified_api, service_id);
        let discovered = self.catalogue.get(&key);
        let (unified_api, service_id) = key;
        let target = ResolvedTarget {
            unified_api,
            service_id,
            overrides,
        };
        match discovered {
            Some(Ok(connector)) => {
                // Vault does not expose its OAuth clients: the operator declares them.
                let client = self.config.binding.target_client(&record.service, None);
                let warnings = authport_kit::check_binding(record, &client, PROVIDER)?;
                let mut mapped = map_record_at(
                    record,
                    &target,
                    &connector,
                    &self.map_options(),
                    &self.send_clock,
                )?;
                mapped.notes.extend(warnings);
                Ok(mapped)
            }
            Some(Err(reason)) => Err(MappingError::new("service", reason)),
            None => Err(MappingError::new(
                format!("targets.{PROVIDER}"),
                format!(
                    "connector {}/{} was not discovered before mapping",
                    target.unified_api, target.service_id
                ),
            )),
        }
    }

    async fn import(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        let at: &ApideckRef = payload_of(mapped, PROVIDER)?;
        let secrets = record.secret_values();
        let (disposition, decision_note) = self.before_write(record, &secrets, at, prior).await?;
        if disposition == Disposition::Skipped {
            return Ok(ImportOutcome {
                disposition,
                target: TargetRef::from(at),
                note: decision_note,
            });
        }

        // The one rendering of the mapped body for the wire: an absolute expiry becomes
        // `issued_at` + `expires_in` at the run's clock (see `crate::expiry`), serialized
        // straight from the mapped body.
        let body = render_at_send_bytes(mapped.body.expose(), &self.send_clock);
        let connection = self.client.import_serialized(at, body, &secrets).await?;
        // The notes, `; `-separated: the decision's, the state, the validation's.
        let mut note = match decision_note {
            Some(mut decision_note) => {
                decision_note.push_str("; ");
                decision_note
            }
            None => String::with_capacity(64),
        };
        push_state_words(&mut note, &connection);
        if self.validate_wanted(connection.auth_type.as_deref()) {
            match self.client.validate(at, &secrets).await {
                Ok(validated) => {
                    note.push_str("; validated: state ");
                    note.push_str(validated.state.as_deref().unwrap_or("unknown"));
                }
                // The import itself succeeded; a failed validation is worth a note, not a failure.
                Err(error) => note.push_str(&format!("; validation failed: {error}")),
            }
        }
        Ok(ImportOutcome {
            disposition,
            target: at.target_with_connection_id(connection.id),
            note: Some(note),
        })
    }

    async fn predict_skip(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<Option<String>, ProviderError> {
        let at: &ApideckRef = payload_of(mapped, PROVIDER)?;
        let (disposition, note) = self
            .before_write(record, &record.secret_values(), at, prior)
            .await?;
        Ok(note.filter(|_| disposition == Disposition::Skipped))
    }

    async fn reconcile(
        &self,
        _record: &CredentialRecord,
        _mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError> {
        // Import is an upsert: sending it again is always safe, and it carries the current
        // tokens (adopting what is there might keep older ones). `import` recognises the
        // connection as ours by its metadata marker, so it is not mistaken for a pre-existing one.
        Ok(None)
    }

    async fn verify(&self, target: &TargetRef) -> Result<VerifyReport, ProviderError> {
        let at = ApideckRef::try_from(target)?;
        Ok(match self.client.get_connection(&at, &[]).await? {
            Lookup::Found(connection) => verify_report(Some(&connection)),
            Lookup::NotFound(_) => verify_report(None),
        })
    }

    async fn remove(&self, target: &TargetRef) -> Result<Removal, ProviderError> {
        // Only the connection: deleting a consumer would delete connections authport never made.
        self.client.delete(&ApideckRef::try_from(target)?).await
    }

    fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            endpoints: vec![self.config.api_base().to_owned()],
            account: Some(self.config.app_id.clone()),
            credential: self.config.api_key.clone(),
        }
    }
}
