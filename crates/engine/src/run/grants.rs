//! Shared grants (issue 19 item 1): two records holding one OAuth grant would become two
//! connections refreshing against each other. The grant is the record's refresh token, else
//! (OAuth without one) its access token, known only by its keyed hash
//! ([`crate::state::RunKeys::grant_key`]: HMAC under the state's salt and the vendor
//! credential; `validate`, which has neither, uses a random key that lives for the run).
//!
//! In one input the first record in input order keeps the grant, each later one fails
//! `shared_grant` naming the first one's id and line (`SeenIds::first_grant`: 64 bits of the
//! hash with that id and line in the throw-away index, so memory stays flat). Across runs the
//! journal's `grants` table does the same with the full hash (`StateStore::prepare_with_grant`).

use authport_core::{Auth, CredentialRecord, SecretString};

use crate::dedupe::SeenIds;
use crate::state::{Key, RunKeys};

/// Which token stands for the grant, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantToken {
    Refresh,
    Access,
}

impl GrantToken {
    fn words(self) -> &'static str {
        match self {
            GrantToken::Refresh => "auth.refresh_token",
            GrantToken::Access => "auth.access_token (it has no refresh token)",
        }
    }

    /// Hashed with the token, so the two kinds never match each other.
    fn label(self) -> &'static [u8] {
        match self {
            GrantToken::Refresh => b"refresh",
            GrantToken::Access => b"access",
        }
    }
}

/// The token that identifies the record's grant: OAuth's refresh token, else its access
/// token; none for other auth kinds.
pub fn grant_token(record: &CredentialRecord) -> Option<(&SecretString, GrantToken)> {
    match &record.auth {
        Auth::OAuth2(oauth) => Some(match &oauth.refresh_token {
            Some(refresh) => (refresh, GrantToken::Refresh),
            None => (&oauth.access_token, GrantToken::Access),
        }),
        _ => None,
    }
}

/// One record's grant: the journal's key and which token it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key: Key,
    pub token: GrantToken,
}

impl Grant {
    /// The 64 bits of the key the in-file index keeps.
    fn short(&self) -> i64 {
        let [a, b, c, d, e, f, g, h, ..] = *self.key.as_bytes();
        i64::from_be_bytes([a, b, c, d, e, f, g, h])
    }
}

/// How the reader checks grants: with the run's keys, refusing repeats unless allowed.
#[derive(Debug, Clone)]
pub struct GrantCheck {
    pub keys: RunKeys,
    /// `--allow-shared-grants`: keys are still computed (the journal keeps them), no record
    /// is refused for sharing one.
    pub shared_allowed: bool,
}

impl GrantCheck {
    pub fn grant(&self, record: &CredentialRecord) -> Option<Grant> {
        grant_token(record).map(|(token, kind)| Grant {
            key: self.keys.grant_key(kind.label(), token),
            token: kind,
        })
    }

    /// `Err(message)` when an earlier record of this input holds `grant` (and sharing is not
    /// allowed); otherwise the record holds it from now on when it is the first.
    pub fn check_in_input(
        &self,
        seen: &mut SeenIds,
        grant: &Grant,
        file: &str,
        line: u64,
        id: &str,
    ) -> anyhow::Result<Result<(), String>> {
        if self.shared_allowed {
            return Ok(Ok(()));
        }
        Ok(match seen.first_grant(grant.short(), line, id)? {
            None => Ok(()),
            Some((first_line, first_id)) => Err(format!(
                "{file}:{line}: {}",
                shared_message(grant.token, &first_id, Some(first_line))
            )),
        })
    }
}

/// The `shared_grant` message: names the first record (and its line when in this input),
/// never the token.
pub fn shared_message(token: GrantToken, first_id: &str, first_line: Option<u64>) -> String {
    let place = match first_line {
        Some(line) => format!("record `{first_id}` (line {line}) of this input"),
        None => format!("record `{first_id}`, imported by an earlier run with this --state"),
    };
    format!(
        "{}: the same grant as {place}; one grant is imported once (two connections refreshing it invalidate each other); only the first is imported. Pass --allow-shared-grants if the provider does not rotate refresh tokens",
        token.words()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use authport_core::{FingerprintKey, SecretString};

    fn check(shared_allowed: bool) -> GrantCheck {
        let key = FingerprintKey::derive(&SecretString::from("vendor".to_owned()), b"salt");
        GrantCheck {
            keys: RunKeys::new(key),
            shared_allowed,
        }
    }

    fn record(refresh: Option<&str>, access: &str) -> CredentialRecord {
        let mut auth = serde_json::json!({"type": "oauth2", "access_token": access});
        if let Some(refresh) = refresh {
            auth["refresh_token"] = serde_json::json!(refresh);
        }
        let value = serde_json::json!({
            "id": "r", "owner": {"id": "o"}, "service": "xero", "auth": auth,
        });
        authport_core::record::from_json_located(&value, chrono::Utc::now())
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn the_refresh_token_is_the_grant_else_the_access_token() {
        let check = check(false);
        let a = check
            .grant(&record(Some("CANARY-r1"), "CANARY-a1"))
            .unwrap();
        let b = check
            .grant(&record(Some("CANARY-r1"), "CANARY-a2"))
            .unwrap();
        let c = check.grant(&record(None, "CANARY-r1")).unwrap();
        assert_eq!(a, b, "same refresh token, other access token: one grant");
        assert_eq!(a.token, GrantToken::Refresh);
        assert_eq!(c.token, GrantToken::Access);
        assert_ne!(
            a.key, c.key,
            "a refresh token never matches an access token"
        );
        assert!(!format!("{a:?}").contains("CANARY"));
        let api_key = serde_json::json!({
            "id": "k", "owner": {"id": "o"}, "service": "s",
            "auth": {"type": "api_key", "api_key": "CANARY-k"},
        });
        let api_key = authport_core::record::from_json_located(&api_key, chrono::Utc::now())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(check.grant(&api_key), None);
    }

    #[test]
    fn a_later_record_names_the_first_by_id_and_line_never_the_token() {
        let check = check(false);
        let mut seen = SeenIds::new().unwrap();
        let grant = check
            .grant(&record(Some("CANARY-r1"), "CANARY-a1"))
            .unwrap();
        assert_eq!(
            check
                .check_in_input(&mut seen, &grant, "in.jsonl", 3, "first")
                .unwrap(),
            Ok(())
        );
        let message = check
            .check_in_input(&mut seen, &grant, "in.jsonl", 9, "second")
            .unwrap()
            .unwrap_err();
        assert!(
            message.starts_with("in.jsonl:9: auth.refresh_token:"),
            "{message}"
        );
        assert!(message.contains("record `first` (line 3)"), "{message}");
        assert!(!message.contains("CANARY"), "{message}");
        // Allowed: both pass.
        let allowed = self::check(true);
        assert_eq!(
            allowed
                .check_in_input(&mut seen, &grant, "in.jsonl", 10, "third")
                .unwrap(),
            Ok(())
        );
    }
}
