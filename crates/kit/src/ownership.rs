//! Who owns the object a record's import would write over, and what to do about it: one set
//! of rules for every provider whose import is an upsert on an address derived from the record
//! (Apideck's connection, Nango's connection id). A provider classifies what it read into
//! [`Existing`] (by authport's record mark in the object's metadata) and [`decide`]s with its
//! own words ([`Words`]).

use authport_core::Disposition;
use authport_core::record::escaped_name;
use serde_json::{Map, Value};

/// The metadata key authport marks an object with, holding the id of the record it imported:
/// how a later run tells its own object from someone else's.
pub const RECORD_ID_METADATA_KEY: &str = "authport_record_id";

/// The record id an object's metadata is marked with, if any.
pub fn marker_in(metadata: Option<&Map<String, Value>>) -> Option<&str> {
    metadata
        .and_then(|m| m.get(RECORD_ID_METADATA_KEY))
        .and_then(Value::as_str)
}

/// How a record's object stands before the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// Nothing there (a 404, or a placeholder the vendor shows for every consumer).
    Absent,
    /// An object authport wrote for this very record (its mark is the record's id).
    Ours,
    /// Someone else's object that holds no credentials yet: writing fills it, overwrites
    /// nothing. `state` is the vendor's word for it.
    ForeignEmpty { state: String },
    /// Someone else's object that holds credentials (or may: the safe side). `state` is the
    /// vendor's word when it has one; `marker` the record id authport marked it with (another
    /// record's: an earlier run under other ids, or another state), `None` without the mark.
    Foreign {
        state: Option<String>,
        marker: Option<String>,
    },
}

impl Existing {
    /// Classifies an object that is there by its mark: ours when it is `record_id`.
    pub fn by_marker(marker: Option<&str>, record_id: &str, state: Option<String>) -> Self {
        match marker {
            Some(marker) if marker == record_id => Existing::Ours,
            marker => Existing::Foreign {
                state,
                marker: marker.map(str::to_owned),
            },
        }
    }
}

/// A provider's words in the notes.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// The config section holding `overwrite_existing` (`apideck`).
    pub section: &'static str,
    /// What the vendor calls the object (`connection`).
    pub object: &'static str,
    /// How a foreign object is described when it is skipped (`a connection with credentials`).
    pub foreign: &'static str,
}

/// What to do: the disposition to report (`Skipped`: send nothing) and a note. With a prior
/// import of this record the object is ours to update; a foreign one is overwritten only with
/// `overwrite_existing`, and reported `Updated` so that rollback leaves it in place.
pub fn decide(
    existing: &Existing,
    has_prior: bool,
    overwrite_existing: bool,
    words: Words,
) -> (Disposition, Option<String>) {
    if has_prior {
        return (Disposition::Updated, None);
    }
    match existing {
        Existing::Absent | Existing::Ours => (Disposition::Created, None),
        Existing::ForeignEmpty { state } => (
            Disposition::Updated,
            Some(format!(
                "{} existed before (state {state}); rollback leaves it in place",
                words.object
            )),
        ),
        Existing::Foreign { state, .. } if overwrite_existing => (
            Disposition::Updated,
            Some(format!(
                "overwrote a pre-existing {} ({}); rollback leaves it in place",
                words.object,
                match state {
                    Some(state) => format!("state {state}"),
                    None => "overwrite_existing".to_owned(),
                }
            )),
        ),
        Existing::Foreign { state, marker } => (
            Disposition::Skipped,
            Some(format!(
                "{} already exists{}, {}; not overwritten (set [{}] overwrite_existing = true to replace it)",
                words.foreign,
                state
                    .as_deref()
                    .map(|state| format!(" (state {state})"))
                    .unwrap_or_default(),
                made_by(marker.as_deref()),
                words.section,
            )),
        ),
    }
}

/// Who made an object, as far as its metadata tells: never more than is known.
pub fn made_by(marker: Option<&str>) -> String {
    match marker {
        Some(marker) => format!(
            "imported by authport for record `{}` (another record id: an earlier run, or another state)",
            escaped_name(marker)
        ),
        None => "without authport's record mark (not imported by authport)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: Words = Words {
        section: "v",
        object: "connection",
        foreign: "a connection with credentials",
    };

    fn note(existing: Existing, overwrite: bool) -> (Disposition, String) {
        let (disposition, note) = decide(&existing, false, overwrite, WORDS);
        (disposition, note.unwrap_or_default())
    }

    #[test]
    fn the_mark_is_read_from_the_metadata() {
        let metadata = |value: Value| value.as_object().cloned();
        let marked = metadata(serde_json::json!({RECORD_ID_METADATA_KEY: "r-1", "x": 1}));
        assert_eq!(marker_in(marked.as_ref()), Some("r-1"));
        let unmarked = metadata(serde_json::json!({RECORD_ID_METADATA_KEY: 7}));
        assert_eq!(marker_in(unmarked.as_ref()), None);
        assert_eq!(marker_in(None), None);
    }

    #[test]
    fn ours_is_found_by_the_mark_and_foreign_objects_are_never_claimed() {
        assert_eq!(
            Existing::by_marker(Some("r-1"), "r-1", None),
            Existing::Ours
        );
        assert_eq!(
            Existing::by_marker(Some("r-2"), "r-1", Some("authorized".into())),
            Existing::Foreign {
                state: Some("authorized".into()),
                marker: Some("r-2".into())
            }
        );
        assert_eq!(
            Existing::by_marker(None, "r-1", None),
            Existing::Foreign {
                state: None,
                marker: None
            }
        );
    }

    #[test]
    fn a_foreign_object_is_overwritten_only_when_allowed_and_never_rolled_back() {
        for existing in [Existing::Absent, Existing::Ours] {
            assert_eq!(
                decide(&existing, false, false, WORDS),
                (Disposition::Created, None)
            );
        }
        let foreign = |state: Option<&str>, marker: Option<&str>| Existing::Foreign {
            state: state.map(str::to_owned),
            marker: marker.map(str::to_owned),
        };
        assert_eq!(
            decide(&foreign(None, None), true, false, WORDS),
            (Disposition::Updated, None),
            "a prior import of this record updates"
        );
        assert_eq!(
            note(foreign(Some("callable"), None), true),
            (
                Disposition::Updated,
                "overwrote a pre-existing connection (state callable); rollback leaves it in place"
                    .to_owned()
            )
        );
        assert_eq!(
            note(foreign(None, None), true).1,
            "overwrote a pre-existing connection (overwrite_existing); rollback leaves it in place"
        );
        assert_eq!(
            note(foreign(Some("callable"), Some("r-2")), false),
            (
                Disposition::Skipped,
                "a connection with credentials already exists (state callable), imported by authport for record `r-2` (another record id: an earlier run, or another state); not overwritten (set [v] overwrite_existing = true to replace it)".to_owned()
            )
        );
        assert_eq!(
            note(foreign(None, None), false).1,
            "a connection with credentials already exists, without authport's record mark (not imported by authport); not overwritten (set [v] overwrite_existing = true to replace it)"
        );
        assert_eq!(
            note(
                Existing::ForeignEmpty {
                    state: "added".into()
                },
                false
            ),
            (
                Disposition::Updated,
                "connection existed before (state added); rollback leaves it in place".to_owned()
            )
        );
    }
}
