//! Which services rotate refresh tokens: `data/rotation.json` (data, not code: one object per
//! service with its slugs, the reuse window and the source), read once at first use. A run
//! counts its records whose refresh token a copy elsewhere would kill, and says what to do.

use std::collections::HashMap;
use std::sync::OnceLock;

use authport_core::{Auth, CredentialRecord};
use serde::Deserialize;

const DATA: &str = include_str!("../../data/rotation.json");

/// One service's rotation profile, as the data file says it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RotationProfile {
    pub slugs: Vec<String>,
    /// A refresh returns a new refresh token.
    pub rotates: bool,
    /// The previous refresh token stops working (after `reuse_window`).
    pub old_token_revoked: bool,
    #[serde(default)]
    pub condition: Option<String>,
    pub reuse_window: String,
    pub source: String,
    /// `vendor`, or `per cutover.md` (not re-checked).
    pub verified: String,
}

impl RotationProfile {
    /// A copy refreshed elsewhere goes stale and dies: the import needs a hand-over.
    pub fn kills_stale_copies(&self) -> bool {
        self.rotates && self.old_token_revoked
    }
}

#[derive(Debug, Deserialize)]
struct DataFile {
    /// Prose for the file's readers.
    #[serde(rename = "about")]
    _about: String,
    services: Vec<RotationProfile>,
}

fn parse(text: &str) -> Result<HashMap<String, RotationProfile>, String> {
    let file: DataFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut by_slug = HashMap::new();
    for profile in file.services {
        for slug in &profile.slugs {
            if by_slug.insert(slug.clone(), profile.clone()).is_some() {
                return Err(format!("the slug {slug} is listed twice"));
            }
        }
    }
    Ok(by_slug)
}

fn profiles() -> &'static HashMap<String, RotationProfile> {
    static PROFILES: OnceLock<HashMap<String, RotationProfile>> = OnceLock::new();
    // The file is checked by this module's tests; a broken one cannot reach a release.
    PROFILES.get_or_init(|| parse(DATA).unwrap_or_default())
}

/// The profile of a service slug (case-insensitive), if the data file lists it.
pub fn profile(service: &str) -> Option<&'static RotationProfile> {
    profiles().get(&service.to_ascii_lowercase())
}

/// Whether this record holds a refresh token that its service rotates and revokes: while the
/// source still refreshes it, the imported copy goes stale.
pub fn holds_rotating_refresh_token(record: &CredentialRecord) -> bool {
    matches!(&record.auth, Auth::OAuth2(oauth) if oauth.refresh_token.is_some())
        && profile(&record.service).is_some_and(RotationProfile::kills_stale_copies)
}

/// What to do about `count` records with rotating refresh tokens (summary and dry run).
pub fn advice(count: u64) -> String {
    format!(
        "{count} record(s) hold refresh tokens their service rotates (docs/cutover.md, Rotation): stop refreshing them at the source before the import, or use `migrate --cutover`; otherwise the imported copies go stale at the source's next refresh"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_file_parses_and_every_entry_names_its_source() {
        let profiles = parse(DATA).unwrap();
        assert!(profiles.len() >= 7);
        for (slug, profile) in &profiles {
            assert_eq!(slug, &slug.to_ascii_lowercase(), "slugs are lower case");
            assert!(profile.source.starts_with("https://"), "{slug}");
            assert!(!profile.reuse_window.is_empty(), "{slug}");
            assert!(
                profile.verified.starts_with("vendor") || profile.verified == "per cutover.md",
                "{slug}: {}",
                profile.verified
            );
        }
        // cutover.md §1, as the file holds it.
        assert!(profile("xero").unwrap().kills_stale_copies());
        assert!(profile("Jira").unwrap().kills_stale_copies());
        assert!(profile("box").unwrap().kills_stale_copies());
        assert!(!profile("google").unwrap().rotates);
        assert!(!profile("outlook").unwrap().kills_stale_copies());
        assert_eq!(profile("hubspot"), None);
    }

    #[test]
    fn a_slug_listed_twice_is_refused() {
        let text = r#"{"about": "", "services": [
            {"slugs": ["a"], "rotates": true, "old_token_revoked": true, "reuse_window": "x", "source": "https://a", "verified": "vendor"},
            {"slugs": ["a"], "rotates": false, "old_token_revoked": false, "reuse_window": "x", "source": "https://a", "verified": "vendor"}
        ]}"#;
        assert!(parse(text).unwrap_err().contains("twice"));
    }

    #[test]
    fn the_advice_names_both_remedies() {
        let text = advice(3);
        assert!(text.starts_with("3 record(s)"));
        assert!(text.contains("stop refreshing them at the source"));
        assert!(text.contains("migrate --cutover"));
    }
}
