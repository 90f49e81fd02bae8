//! The one health taxonomy of an imported connection: what an operator must do about it.
//!
//! Providers map their vendor's words onto it (Apideck's `health`, Nango's `errors[]` and 424,
//! Tray's `changed`/`missing`) in `verify` and in their webhook source; the engine stores and
//! merges only these typed values, so no vendor word reaches it.

use serde::{Deserialize, Serialize};

/// What an operator must do about one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Imported and usable: nothing to do.
    Healthy,
    /// Imported; the target still has to refresh the token (wait, then look again).
    PendingRefresh,
    /// Imported, then a token refresh failed: the end user must connect again.
    RefreshFailed,
    /// Imported, then revoked or otherwise unusable at the target: connect again.
    Revoked,
    /// Imported, then deleted at the target (a webhook said so): connect again.
    Deleted,
    /// The journal has an object the target no longer has.
    Missing,
    /// In the input, never imported (failed or skipped): see `reconnect`.
    NotImported,
    /// Imported, then removed by `authport rollback` (the journal remembers it).
    RolledBack,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::PendingRefresh => "pending_refresh",
            Health::RefreshFailed => "refresh_failed",
            Health::Revoked => "revoked",
            Health::Deleted => "deleted",
            Health::Missing => "missing",
            Health::NotImported => "not_imported",
            Health::RolledBack => "rolled_back",
        }
    }

    /// The target holds a token it can use: `healthy`, and `pending_refresh` (the platform
    /// refreshes the token itself; a refresh that fails turns it into `refresh_failed`). Both
    /// `verify`'s `healthy` and `status`'s exit code follow this.
    pub fn is_usable(self) -> bool {
        matches!(self, Health::Healthy | Health::PendingRefresh)
    }

    /// `status` exits 5 for it: an imported object that is not usable. Records never imported
    /// (`reconnect`'s business) and records rolled back (removed on purpose) do not count.
    pub fn is_problem(self) -> bool {
        !self.is_usable() && !matches!(self, Health::NotImported | Health::RolledBack)
    }

    /// Every word, in the order `status` documents them.
    pub const ALL: [Health; 8] = [
        Health::Healthy,
        Health::PendingRefresh,
        Health::RefreshFailed,
        Health::Revoked,
        Health::Deleted,
        Health::Missing,
        Health::NotImported,
        Health::RolledBack,
    ];

    /// The end user must connect again (`reconnect` lists the record).
    pub fn needs_reconnect(self) -> bool {
        matches!(
            self,
            Health::RefreshFailed | Health::Revoked | Health::Deleted
        )
    }

    /// The reason in plain words, for the worklist.
    pub fn reason(self) -> &'static str {
        match self {
            Health::Healthy => "connected",
            Health::PendingRefresh => "waiting for the first token refresh",
            Health::RefreshFailed => "the imported token could not be refreshed",
            Health::Revoked => "the connection was revoked or is no longer usable",
            Health::Deleted => "the connection was deleted at the target",
            Health::Missing => "the imported connection is gone",
            Health::NotImported => "the credentials could not be imported",
            Health::RolledBack => "the imported connection was removed by rollback",
        }
    }
}

impl std::str::FromStr for Health {
    type Err = UnknownHealth;

    /// The word [`Health::as_str`] gives (what the event store keeps).
    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Health::ALL
            .into_iter()
            .find(|health| health.as_str() == word)
            .ok_or(UnknownHealth)
    }
}

/// A stored word that is not a [`Health`] (a newer authport wrote it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a health word")]
pub struct UnknownHealth;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_itself() {
        for health in Health::ALL {
            assert_eq!(health.as_str().parse::<Health>(), Ok(health));
        }
        assert_eq!("token_refresh.failed".parse::<Health>(), Err(UnknownHealth));
    }
}
