//! [`AuthImporter`] for Nango: discovery of the integrations, the pre-existing check, the
//! upsert, verify and remove over [`NangoClient`]; mapping is the pure [`crate::map`].

use std::fmt;

use async_trait::async_trait;
use authport_core::{
    AuthImporter, BuildContext, ConfigError, CredentialRecord, DiscoveryKey, Disposition,
    ImportOutcome, MappedRecord, MappingError, PriorImport, ProviderError, Removal, TargetIdentity,
    TargetRef, VerifyReport,
};
use authport_kit::DiscoveryCache;
use serde_json::{Map, Value, json};

use crate::client::{Lookup, NangoClient};
use crate::config::NangoConfig;
use crate::map::{RECORD_ID_METADATA_KEY, map_record};
use crate::resolve::resolve_destination;
use crate::target::{NangoRef, PROVIDER};
use crate::wire::{Connection, Integration};

/// The Nango importer.
pub struct NangoImporter {
    config: NangoConfig,
    client: NangoClient,
    /// The environment's integrations: one `GET /integrations` per run answers every service.
    integrations: DiscoveryCache<(), Vec<Integration>>,
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
        })
    }
}

/// How a record's connection stands before the upsert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Absent,
    /// A connection authport imported for this very record (metadata marker).
    Ours,
    /// A connection someone else made (no marker, or another record's).
    Foreign,
}

/// Classifies the connection with the record's id in its integration, if any.
pub fn classify_existing(connection: Option<&Connection>, record_id: &str) -> Existing {
    let Some(connection) = connection else {
        return Existing::Absent;
    };
    let marker = connection
        .metadata
        .as_ref()
        .and_then(|m| m.get(RECORD_ID_METADATA_KEY))
        .and_then(Value::as_str);
    if marker == Some(record_id) {
        Existing::Ours
    } else {
        Existing::Foreign
    }
}

/// What to do about it: the disposition to report (`Skipped`: send nothing) and a note.
pub fn decide(
    existing: &Existing,
    has_prior: bool,
    overwrite_existing: bool,
) -> (Disposition, Option<String>) {
    if has_prior {
        return (Disposition::Updated, None);
    }
    match existing {
        Existing::Absent | Existing::Ours => (Disposition::Created, None),
        Existing::Foreign if overwrite_existing => (
            Disposition::Updated,
            Some(
                "overwrote a pre-existing connection (overwrite_existing); rollback leaves it in place"
                    .to_owned(),
            ),
        ),
        Existing::Foreign => (
            Disposition::Skipped,
            Some(
                "a connection with this id already exists and was not imported by authport; not overwritten (set [nango] overwrite_existing = true to replace it)"
                    .to_owned(),
            ),
        ),
    }
}

/// The verify report of a read: healthy only when the connection exists, Nango can refresh
/// it, and its `errors[]` is empty.
pub fn verify_report(lookup: &Lookup) -> VerifyReport {
    let mut detail = Map::new();
    let (healthy, status) = match lookup {
        Lookup::Missing => (false, "missing".to_owned()),
        Lookup::RefreshExhausted => (false, "refresh_exhausted".to_owned()),
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
                None => (true, "ok".to_owned()),
                Some(_) if kinds.contains(&"auth") => (false, "auth_error".to_owned()),
                Some(kind) => (false, format!("{kind}_error")),
            }
        }
    };
    VerifyReport {
        healthy,
        status,
        detail,
    }
}

#[async_trait]
impl AuthImporter for NangoImporter {
    async fn discover(&self, _keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        // One list answers every service; which integration a record takes is `map`'s job.
        let _integrations = self
            .integrations
            .get_or_discover(&(), || async {
                self.client.list_integrations().await.map(Ok)
            })
            .await?;
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
        map_record(record, &destination)
    }

    async fn import(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        let at = NangoRef::from_map(&mapped.target)?;
        let secrets = record.secret_values();
        let existing = if prior.is_some() {
            Existing::Ours
        } else {
            // The upsert would overwrite what is there: look first, without credentials.
            let found = self.client.find_connections(&at.connection_id).await?;
            classify_existing(
                found
                    .iter()
                    .find(|c| c.provider_config_key == at.provider_config_key),
                &record.id,
            )
        };
        let (disposition, decision_note) =
            decide(&existing, prior.is_some(), self.config.overwrite_existing);
        if disposition == Disposition::Skipped {
            return Ok(ImportOutcome {
                disposition,
                target: TargetRef::from(&at),
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
            target: TargetRef::from(&at),
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
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
