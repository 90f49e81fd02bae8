//! authport-core: the canonical credential model, the input reader, the [`AuthImporter`]
//! trait, the plugin registry, the error taxonomy and secret types. No network IO.

pub mod catalog;
pub mod error;
pub mod export;
pub mod importer;
pub mod input;
pub mod links;
pub mod record;
pub mod registry;
pub mod report;
pub mod secret;
pub mod transport;

pub use catalog::{CatalogPlugin, Offer, TargetCatalog, catalog_names, find_catalog};
pub use error::{MappingError, ProviderError};
pub use export::{
    AuthExporter, ExportCounts, ExportFilter, ExportSink, ExporterPlugin, NoExporter, SecretValue,
    StructuredSecret, exporters, find_exporter, read_retry_delay, record_to_v1_json, retry_read,
};
pub use importer::{
    AuthImporter, BuildContext, ConfigError, DiscoveryKey, Disposition, EnvSnapshot, ImportOutcome,
    InMemoryMemo, MappedRecord, Memo, PriorImport, ProviderLimits, Removal, RequestGate,
    TargetIdentity, TargetRef, Ungated, VerifyReport,
};
pub use links::{ReconnectLink, ReconnectLinks};
pub use record::{Auth, CredentialRecord, Expiry, OAuth2, Owner, RecordWarning};
pub use registry::{ProviderPlugin, UnknownProvider, find_provider, provider_names, providers};
pub use report::{ErrorKind, ReportError, ReportLine, Status};
pub use secret::{
    ExposeSecret, FingerprintKey, REDACTED, SecretJson, SecretString, record_tag, redact_json,
};

// Re-exported so provider crates register with the same `inventory` the registry collects.
pub use inventory;
