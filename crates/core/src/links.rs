//! The optional reconnect side of a provider: [`ReconnectLinks`] names the vendor identifiers
//! an end user's reconnect link needs and mints such links. The importer implements it (it holds
//! the discovered catalogue) and the provider declares it as the `links` capability of its
//! `ProviderPlugin` (see [`crate::links_of`]); the rest of the importer needs no change.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::ProviderError;
use crate::importer::TargetRef;
use crate::record::{CredentialRecord, Owner};

/// A link an end user follows to connect again. The URL grants access to the owner's
/// connection settings until it expires: it goes to the worklist only, never to a log or the
/// state file.
#[derive(Clone, PartialEq, Eq)]
pub struct ReconnectLink {
    pub url: String,
    /// When it stops working (RFC 3339), as the vendor documents it.
    pub expires_at: String,
    /// How the link may be used, in plain words (e.g. single use, 5 minutes).
    pub note: String,
}

impl std::fmt::Debug for ReconnectLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectLink")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Minting reconnect links (called after [`crate::AuthImporter::discover`]).
#[async_trait]
pub trait ReconnectLinks: Send + Sync {
    /// The non-secret vendor identifiers a link for this record needs (Tray `serviceId` /
    /// `serviceEnvironmentId`, Apideck `unified_api` / `service_id`), from the imported object
    /// when there is one, else from the record and the discovered catalogue (read-only calls
    /// at most, e.g. a catalogue listing the provider caches).
    async fn link_ids(
        &self,
        record: &CredentialRecord,
        target: Option<&TargetRef>,
    ) -> Map<String, Value>;

    /// Whether one link serves all of an owner's services (Apideck's Vault session) rather than
    /// one link per service (Tray's auth-only dialog).
    fn one_link_per_owner(&self) -> bool;

    /// Mints one link for `owner` covering `ids` (one entry per service it must reconnect).
    async fn mint(
        &self,
        owner: &Owner,
        ids: &[Map<String, Value>],
    ) -> Result<ReconnectLink, ProviderError>;
}
