//! Which of an owner's listed auths is a record's: authport's own (its name carries the
//! record's mark, the tag), the end user's own (the name the record asked for, without the
//! mark: `pre_existing`), neither, or unknown when Tray listed the owner's auths only in part.
//! Pure: the importer does the listing and acts on the answer.

use authport_core::ProviderError;

use crate::target::MappedTarget;
use crate::wire::{AuthenticationListing, AuthenticationNode};

/// What an owner's listing holds for one record.
#[derive(Debug)]
pub(crate) enum Found<'a> {
    /// The record's own auth from an earlier write: its marked name, same environment.
    Ours(&'a AuthenticationNode),
    /// The end user's own auth with the name the record asked for, without authport's mark.
    PreExisting(&'a AuthenticationNode),
    /// Neither, in a listing Tray says is complete.
    Absent,
    /// Neither, but Tray listed only part of the owner's auths: either may exist unseen.
    Unknown,
}

/// Looks for the record's auth among the owner's. The mark (the record's tag in the name) is
/// what makes an auth ours: a same-named one without it is never adopted.
pub(crate) fn find<'a>(
    listing: &'a AuthenticationListing,
    target: &MappedTarget,
    tag: &str,
) -> Found<'a> {
    let in_environment =
        |node: &&AuthenticationNode| node.service_environment.id == target.service_environment_id;
    let ours = listing
        .nodes
        .iter()
        .filter(in_environment)
        .find(|node| node.name == target.name && node.name.contains(tag));
    if let Some(ours) = ours {
        return Found::Ours(ours);
    }
    let theirs = target.unmarked_name.as_ref().and_then(|unmarked| {
        listing
            .nodes
            .iter()
            .filter(in_environment)
            .find(|node| &node.name == unmarked)
    });
    match theirs {
        Some(theirs) => Found::PreExisting(theirs),
        None if listing.complete => Found::Absent,
        None => Found::Unknown,
    }
}

/// Tray answered part of the owner's auths (`hasNextPage`) and documents no way to ask for
/// the rest: the record's auth may exist unseen, so nothing is created for it.
pub(crate) fn incomplete_listing(owner: &str) -> ProviderError {
    ProviderError::rejected(format!(
        "incomplete listing: tray listed only part of owner {owner}'s authentications (hasNextPage, and viewer.authentications takes no paging arguments), so this record's auth may exist unseen; not created (remove unused auths of this owner at tray, or import with the state of the run that created it)"
    ))
}

pub(crate) const PRE_EXISTING_NOTE: &str = "the end user already has an auth with this name (not made by authport: it lacks the record's mark); left as it is (set [tray] overwrite_existing = true to replace its credentials)";
pub(crate) const OVERWRITTEN_NOTE: &str = "overwrote the end user's own auth with this name (overwrite_existing); rollback leaves it in place";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EnvironmentReference;

    fn node(id: &str, name: &str, environment: &str) -> AuthenticationNode {
        AuthenticationNode {
            id: id.to_owned(),
            name: name.to_owned(),
            service_environment: EnvironmentReference {
                id: environment.to_owned(),
            },
        }
    }

    fn target(unmarked_name: Option<&str>) -> MappedTarget {
        MappedTarget {
            service: "greenhouse".into(),
            service_version: 1,
            service_environment: "Production".into(),
            service_environment_id: "env-1".into(),
            authentication_type: "token".into(),
            name: "Acme Greenhouse (00aa)".into(),
            unmarked_name: unmarked_name.map(str::to_owned),
            external_user_id: "acme-42".into(),
            solution: None,
        }
    }

    /// `(listed nodes, complete, the target's unmarked name)` -> what `find` says, by id.
    fn check(nodes: Vec<AuthenticationNode>, complete: bool, unmarked: Option<&str>, expect: &str) {
        let listing = AuthenticationListing {
            nodes: nodes.clone(),
            complete,
        };
        let found = match find(&listing, &target(unmarked), "00aa") {
            Found::Ours(node) => format!("ours {}", node.id),
            Found::PreExisting(node) => format!("theirs {}", node.id),
            Found::Absent => "absent".to_owned(),
            Found::Unknown => "unknown".to_owned(),
        };
        assert_eq!(
            found, expect,
            "{nodes:?} complete={complete} unmarked={unmarked:?}"
        );
    }

    #[test]
    fn only_an_auth_with_the_records_mark_is_ours() {
        let ours = node("a-ours", "Acme Greenhouse (00aa)", "env-1");
        let theirs = node("a-theirs", "Acme Greenhouse", "env-1");
        let elsewhere = node("a-else", "Acme Greenhouse (00aa)", "env-2");
        let theirs_elsewhere = node("a-else2", "Acme Greenhouse", "env-2");
        check(
            vec![theirs.clone(), ours.clone()],
            true,
            Some("Acme Greenhouse"),
            "ours a-ours",
        );
        check(
            vec![theirs.clone()],
            true,
            Some("Acme Greenhouse"),
            "theirs a-theirs",
        );
        // Without an unmarked name (the mark came from the template) nothing is theirs.
        check(vec![theirs.clone()], true, None, "absent");
        // Another environment is another auth.
        check(
            vec![elsewhere, theirs_elsewhere],
            true,
            Some("Acme Greenhouse"),
            "absent",
        );
        // A partial listing: what it shows decides; silence is not absence.
        check(vec![ours], false, Some("Acme Greenhouse"), "ours a-ours");
        check(
            vec![theirs],
            false,
            Some("Acme Greenhouse"),
            "theirs a-theirs",
        );
        check(Vec::new(), false, Some("Acme Greenhouse"), "unknown");
        check(Vec::new(), true, Some("Acme Greenhouse"), "absent");
    }

    #[test]
    fn an_incomplete_listing_names_the_owner() {
        let error = incomplete_listing("acme-42");
        assert_eq!(error.kind().as_str(), "rejected");
        assert!(
            error.message().starts_with("incomplete listing: "),
            "{error}"
        );
        assert!(error.message().contains("acme-42"), "{error}");
    }
}
