//! How a key of the input may appear in a message.
//!
//! Values never appear in a message. Keys fall into two kinds:
//! - Names the format fixes (`id`, `owner.email`, `auth.access_token`, ...). A key in such an
//!   object that the format does not know is **never echoed**, not even escaped and cut short:
//!   an unknown key is exactly what a secret pasted in the wrong place looks like, and a secret
//!   such as `sk_live_...` passes any "looks like an identifier" test. The message names the
//!   object it is in, the names allowed there, and, when the key is one or two typing mistakes
//!   away from an allowed name, that name (our text, not the input's).
//! - Names the operator chooses (`auth.fields.*`, `targets.*`, `settings.*`, `metadata.*`). They
//!   are the operator's declared field names, shown in plans and in providers' messages too, so
//!   they are printed to locate a problem, but only through [`escaped_name`]: control characters
//!   escaped and at most [`MAX_NAME_CHARS`] characters.

use super::{AUTH_FIELDS, OWNER_FIELDS, TOP_FIELDS};

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// The longest operator-chosen name printed in full.
pub const MAX_NAME_CHARS: usize = 64;

/// An operator-chosen key as it may appear in a message: control characters, quotes and
/// backslashes escaped, cut at [`MAX_NAME_CHARS`] characters.
pub fn escaped_name(key: &str) -> String {
    let mut shown: String = key
        .chars()
        .take(MAX_NAME_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if key.chars().nth(MAX_NAME_CHARS).is_some() {
        shown.push('…');
    }
    shown
}

/// The allowed name that `input` most likely misspells: equal ignoring ASCII case, or at most
/// one edit away (two for names of five or more characters), counting a swap of neighbouring
/// letters as one edit. Returns our own name, so the input is never echoed.
pub fn likely_meant(input: &str, allowed: &[&'static str]) -> Option<&'static str> {
    let input = input.trim().to_ascii_lowercase();
    allowed
        .iter()
        .map(|&name| (name, edit_distance(&input, name)))
        .filter(|&(name, distance)| distance <= if name.len() >= 5 { 2 } else { 1 })
        .min_by_key(|&(_, distance)| distance)
        .map(|(name, _)| name)
}

/// Optimal string alignment distance (insert, delete, substitute, swap neighbours), over bytes:
/// the names compared against are ASCII. Inputs longer than any name are cut off early.
fn edit_distance(input: &str, name: &str) -> usize {
    let (a, b) = (input.as_bytes(), name.as_bytes());
    if a.len() > b.len() + 2 {
        return usize::MAX;
    }
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The message for the keys of one object that the format does not know (never their names).
/// `top_level` says the object is the record itself, which has no field path to print.
pub fn unknown_fields_message(
    unknown: &[&str],
    allowed: &[&'static str],
    top_level: bool,
) -> String {
    let mut hints: Vec<&str> = Vec::new();
    for hint in unknown.iter().filter_map(|key| likely_meant(key, allowed)) {
        if !hints.contains(&hint) {
            hints.push(hint);
        }
    }
    let place = if top_level { "top-level " } else { "" };
    let what = match unknown.len() {
        1 => format!("unknown {place}field (its name is not shown"),
        n => format!("{n} unknown {place}fields (their names are not shown"),
    };
    let hint = if hints.is_empty() {
        String::new()
    } else {
        format!("; did you mean `{}`?", hints.join("`, `"))
    };
    format!("{what}{hint}); expected one of: {}", allowed.join(", "))
}

/// Where a repeated key is, as `(field path, message)`, printing names by the rules above: the
/// path stops at the object holding an unknown key, and the message says so.
pub fn duplicate_key_problem(path: &[PathSegment]) -> (String, String) {
    const MESSAGE: &str = "repeated key: each key may appear only once in an object";
    #[derive(Clone, Copy)]
    enum Place {
        Top,
        Owner,
        Auth,
        OperatorNamed,
    }
    let mut shown = String::new();
    let mut place = Place::Top;
    for segment in path {
        let key = match segment {
            PathSegment::Index(index) => {
                shown.push_str(&format!("[{index}]"));
                place = Place::OperatorNamed;
                continue;
            }
            PathSegment::Key(key) => key,
        };
        let allowed: &[&str] = match place {
            Place::Top => TOP_FIELDS,
            Place::Owner => OWNER_FIELDS,
            Place::Auth => AUTH_FIELDS,
            Place::OperatorNamed => &[],
        };
        let name = match place {
            Place::OperatorNamed => escaped_name(key),
            _ if allowed.contains(&key.as_str()) => key.clone(),
            _ => {
                return (
                    shown,
                    format!("{MESSAGE} (at or inside an unknown field, whose name is not shown)"),
                );
            }
        };
        if !shown.is_empty() {
            shown.push('.');
        }
        shown.push_str(&name);
        place = match (place, key.as_str()) {
            (Place::Top, "owner") => Place::Owner,
            (Place::Top, "auth") => Place::Auth,
            _ => Place::OperatorNamed,
        };
    }
    (shown, MESSAGE.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn likely_meant_suggests_only_close_allowed_names() {
        let allowed = &["id", "owner", "service", "settings", "api_key", "oauth2"];
        let check = |input: &str, expect: Option<&str>| {
            assert_eq!(likely_meant(input, allowed), expect, "{input}");
        };
        check("setings", Some("settings"));
        check("servcie", Some("service"));
        check("apikey", Some("api_key"));
        check("OAuth2", Some("oauth2"));
        check("ID", Some("id"));
        check("xy", None);
        check("sk_live_4eC39HqLyjWDarjtT1zdp7dc", None);
        check("", None);
    }

    #[test]
    fn escaped_names_show_no_control_character_and_are_capped() {
        assert_eq!(escaped_name("client_secret"), "client_secret");
        assert_eq!(escaped_name("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        let long = "x".repeat(MAX_NAME_CHARS + 5);
        assert_eq!(
            escaped_name(&long),
            format!("{}…", "x".repeat(MAX_NAME_CHARS))
        );
    }
}
