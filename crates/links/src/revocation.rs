//! `authport links revoke --owner ID [--service S]`: which links a revocation covers. The
//! runner keeps the revocations in the state; the broker asks [`is_revoked`] on every request.

use serde::{Deserialize, Serialize};

use crate::token::LinkClaims;

/// One revocation: every link of the owner (with the provider), or only those of one service.
/// It covers links signed before and after it alike (claims carry no issue time, so that a
/// re-run gives the same links): new links for the owner need the revocation lifted first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub provider: String,
    pub owner_id: String,
    /// `None`: all the owner's services.
    pub service: Option<String>,
}

impl Revocation {
    pub fn covers(&self, claims: &LinkClaims) -> bool {
        self.provider == claims.provider
            && self.owner_id == claims.owner_id
            && self
                .service
                .as_ref()
                .is_none_or(|service| *service == claims.service)
    }
}

/// Whether any of `revocations` covers the link.
pub fn is_revoked(revocations: &[Revocation], claims: &LinkClaims) -> bool {
    revocations
        .iter()
        .any(|revocation| revocation.covers(claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use authport_core::Health;

    fn claims(provider: &str, owner: &str, service: &str) -> LinkClaims {
        LinkClaims {
            provider: provider.to_owned(),
            owner_id: owner.to_owned(),
            service: service.to_owned(),
            reason: Health::Revoked,
            expires_at: 0,
        }
    }

    fn revocation(owner: &str, service: Option<&str>) -> Revocation {
        Revocation {
            provider: "tray".to_owned(),
            owner_id: owner.to_owned(),
            service: service.map(str::to_owned),
        }
    }

    #[test]
    fn an_owner_revocation_covers_all_its_services_and_nothing_else() {
        let all = [revocation("o1", None)];
        assert!(is_revoked(&all, &claims("tray", "o1", "slack")));
        assert!(is_revoked(&all, &claims("tray", "o1", "github")));
        assert!(!is_revoked(&all, &claims("tray", "o2", "slack")));
        assert!(!is_revoked(&all, &claims("apideck", "o1", "slack")));
        assert!(!is_revoked(&all, &claims("tray", "O1", "slack")));
    }

    #[test]
    fn a_service_revocation_covers_that_service_only() {
        let one = [revocation("o1", Some("slack"))];
        assert!(is_revoked(&one, &claims("tray", "o1", "slack")));
        assert!(!is_revoked(&one, &claims("tray", "o1", "github")));
        assert!(!is_revoked(&[], &claims("tray", "o1", "slack")));
    }

    #[test]
    fn revocations_round_trip_through_the_state() {
        let stored = revocation("o1", Some("slack"));
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(
            json,
            r#"{"provider":"tray","owner_id":"o1","service":"slack"}"#
        );
        assert_eq!(serde_json::from_str::<Revocation>(&json).unwrap(), stored);
    }
}
