//! Who owns the object a record's import would write over, and what to do about it: one set
//! of rules for every provider whose import is an upsert on an address derived from the record
//! (Apideck's connection, Nango's connection id). A provider classifies what it read into
//! [`Existing`] (by authport's record mark in the object's metadata) and [`decide`]s with its
//! own words ([`Words`]).

use authport_core::Disposition;
use authport_core::record::escaped_name;

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
