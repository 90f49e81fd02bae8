//! Client binding and scopes: the one comparison every provider's `map` makes (issue 19).
//!
//! An OAuth token can be refreshed only by the client it was issued to (RFC 6749 §6), so a
//! record whose `auth.client_id` is not the target's client for its service is refused before
//! any write ([`ErrorKind::ClientMismatch`]). When either side is unknown the record is
//! imported with the warning [`CLIENT_BINDING_UNKNOWN`]. Where the target's scopes are known,
//! the scopes the record lacks are named in a [`SCOPE_DEFICIT`] warning; the engine fails the
//! record instead under `--require-scopes`, so providers know nothing of that flag.
//!
//! Client ids and scopes are public identifiers: messages name them. A client secret never
//! comes here.

use std::collections::BTreeMap;

use authport_core::{
    Auth, CLIENT_BINDING_UNKNOWN, CredentialRecord, ErrorKind, MappingError, SCOPE_DEFICIT,
};
use serde::Deserialize;

/// The config keys every provider section accepts for the binding:
/// `[<provider>.oauth_clients]` (service -> client id) and `[<provider>.oauth_scopes]`
/// (service -> scopes).
pub const BINDING_KEYS: [&str; 2] = ["oauth_clients", "oauth_scopes"];

/// `[<provider>.oauth_clients]` and `[<provider>.oauth_scopes]`, flattened into a provider's
/// raw config section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BindingSettings {
    #[serde(default)]
    pub oauth_clients: BTreeMap<String, String>,
    #[serde(default)]
    pub oauth_scopes: BTreeMap<String, Vec<String>>,
}

/// What is known of the target's OAuth client for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetClient {
    pub client_id: Option<String>,
    /// The scopes the target asks for (`None`: not known, nothing compared).
    pub scopes: Option<Vec<String>>,
}

impl BindingSettings {
    /// The target's client for `service`: what the operator declared, else what the target
    /// said (`discovered`, Nango's integration). The declaration wins: it is the override.
    pub fn target_client(&self, service: &str, discovered: Option<&TargetClient>) -> TargetClient {
        let found = discovered.cloned().unwrap_or_default();
        TargetClient {
            client_id: self
                .oauth_clients
                .get(service)
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty())
                .or(found.client_id),
            scopes: self.oauth_scopes.get(service).cloned().or(found.scopes),
        }
    }
}

/// Scopes as a vendor writes them in one string (`"a,b"`, `"a b"`): a list, blanks dropped.
pub fn split_scopes(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The binding check of one record against its target's client: the warnings to add, or the
/// `client_mismatch` error. Records that are not OAuth are not bound to a client: no finding.
/// `provider` names the config section in the advice (`[tray.oauth_clients]`).
pub fn check_binding(
    record: &CredentialRecord,
    target: &TargetClient,
    provider: &str,
) -> Result<Vec<String>, MappingError> {
    let Auth::OAuth2(oauth) = &record.auth else {
        return Ok(Vec::new());
    };
    let mut warnings = Vec::new();
    let ours = oauth
        .client_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    match (ours, target.client_id.as_deref()) {
        (Some(ours), Some(theirs)) if ours != theirs => {
            return Err(MappingError::new(
                "auth.client_id",
                format!(
                    "the token was issued to OAuth client `{ours}`, but the target's client for service `{}` is `{theirs}`: the target could never refresh it (RFC 6749 §6); the end user must connect again",
                    record.service
                ),
            )
            .with_kind(ErrorKind::ClientMismatch));
        }
        (Some(_), Some(_)) => {}
        (None, _) => warnings.push(format!(
            "{CLIENT_BINDING_UNKNOWN}: the record has no auth.client_id"
        )),
        (Some(_), None) => warnings.push(format!(
            "{CLIENT_BINDING_UNKNOWN}: no OAuth client is known for service `{}` at the target (declare it in [{provider}.oauth_clients])",
            record.service
        )),
    }
    if let Some(wanted) = &target.scopes {
        let missing = missing_scopes(&oauth.scopes, wanted);
        if !missing.is_empty() {
            warnings.push(format!(
                "{SCOPE_DEFICIT}: the grant lacks scope(s) the target asks for: {}",
                missing.join(", ")
            ));
        }
    }
    Ok(warnings)
}

/// The scopes of `wanted` that `granted` does not hold, in `wanted`'s order, compared exactly
/// (scopes are case-sensitive strings, RFC 6749 §3.3).
pub fn missing_scopes(granted: &[String], wanted: &[String]) -> Vec<String> {
    let granted: Vec<&str> = granted.iter().flat_map(|s| s.split(' ')).collect();
    let mut missing: Vec<String> = Vec::new();
    for scope in wanted.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !granted.contains(&scope) && !missing.iter().any(|m| m == scope) {
            missing.push(scope.to_owned());
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn missing_scopes_keep_the_target_order_once() {
        let granted = strings(&["read", "write offline"]);
        let wanted = strings(&["admin", "read", "offline", "admin", " "]);
        assert_eq!(missing_scopes(&granted, &wanted), strings(&["admin"]));
        assert!(missing_scopes(&granted, &[]).is_empty());
    }

    #[test]
    fn the_declaration_overrides_the_discovered_client() {
        let settings = BindingSettings {
            oauth_clients: BTreeMap::from([("xero".to_owned(), " ours ".to_owned())]),
            oauth_scopes: BTreeMap::new(),
        };
        let found = TargetClient {
            client_id: Some("theirs".to_owned()),
            scopes: Some(strings(&["a"])),
        };
        let client = settings.target_client("xero", Some(&found));
        assert_eq!(client.client_id.as_deref(), Some("ours"));
        assert_eq!(client.scopes, Some(strings(&["a"])));
        assert_eq!(
            settings.target_client("slack", None),
            TargetClient::default()
        );
    }

    #[test]
    fn scopes_split_on_commas_and_blanks() {
        assert_eq!(split_scopes("a,b c,,"), strings(&["a", "b", "c"]));
    }
}
