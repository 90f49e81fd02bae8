//! authport-core: the canonical credential model, the input reader, the [`AuthImporter`]
//! trait, the plugin registry, the error taxonomy and secret types. No network IO.

pub mod catalog;
pub mod error;
pub mod export;
pub mod health;
pub mod importer;
pub mod input;
pub mod links;
pub mod record;
pub mod registry;
pub mod report;
pub mod secret;
pub mod transport;
pub mod webhook;

pub use catalog::{Offer, TargetCatalog};
pub use error::{MappingError, ProviderError};
pub use export::{
    AuthExporter, ExportCounts, ExportFilter, ExportSink, ReadFuture, ReadRetry, SecretValue,
    SourceObject, StructuredSecret, record_to_v1_json, retry_read,
};
pub use health::Health;
pub use importer::{
    AuthImporter, BuildContext, ConfigError, DiscoveryKey, Disposition, EnvSnapshot, ImportOutcome,
    InMemoryMemo, MappedRecord, Memo, PriorImport, ProviderLimits, Removal, RequestGate,
    TargetIdentity, TargetRef, Ungated, VendorRate, VerifyReport,
};
pub use links::{ReconnectLink, ReconnectLinks};
pub use record::{Auth, CredentialRecord, Expiry, OAuth2, Owner, RecordWarning};
pub use registry::{
    Capabilities, CatalogCapability, ExportCapability, Lacks, LinksCapability, ProviderPlugin,
    UnknownProvider, WebhooksCapability, find_capability, find_catalog, find_exporter,
    find_provider, find_webhooks, links_of, names_with, provider_names, providers,
};
pub use report::{
    CLIENT_BINDING_UNKNOWN, ErrorKind, ReportError, ReportLine, SCOPE_DEFICIT, Status,
};
pub use secret::{
    ExposeSecret, FingerprintKey, REDACTED, SecretJson, SecretString, record_tag, redact_json,
};
pub use webhook::{
    HealthEvent, StoredWords, WebhookHeaders, WebhookRefusal, WebhookSource, hmac_sha256_hex,
    hmac_sha256_hex_matches, sha256_hex,
};

// Re-exported so provider crates register with the same `inventory` the registry collects.
pub use inventory;
