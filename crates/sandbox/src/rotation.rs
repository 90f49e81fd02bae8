//! The source-side token rotation the Tray and Nango emulators share (test control, not a
//! vendor API): a countdown of reads after which an object's tokens rotate, and the rotation
//! itself, as a source refreshing tokens on its own after an export would do (`migrate
//! --cutover` tests).

use std::borrow::Borrow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Takes one rotation due for `key` from `due` (set by a `rotate_after_read` control); `true`
/// when one was left.
pub(crate) fn take_due<K, Q>(due: &mut BTreeMap<K, u32>, key: &Q) -> bool
where
    K: Ord + Borrow<Q>,
    Q: Ord + ?Sized,
{
    match due.get_mut(key) {
        Some(left) if *left > 0 => {
            *left -= 1;
            true
        }
        _ => false,
    }
}

/// A new value for every token: the old text and the rotation's number (so a canary stays a
/// canary).
pub(crate) fn rotate(credentials: &mut Map<String, Value>, round: u64) {
    for (key, value) in credentials.iter_mut() {
        // The tokens a refresh changes, never a setting stored beside them.
        if !matches!(key.as_str(), "access_token" | "refresh_token") {
            continue;
        }
        if let Value::String(text) = value {
            *text = format!("{text}~rotated{round}");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_rotation_keeps_the_old_text_and_the_type() {
        let mut credentials =
            json!({"type": "OAUTH2", "access_token": "CANARY-a", "expires_in": 3600})
                .as_object()
                .cloned()
                .unwrap();
        rotate(&mut credentials, 2);
        assert_eq!(credentials["type"], "OAUTH2");
        assert_eq!(credentials["access_token"], "CANARY-a~rotated2");
        assert_eq!(credentials["expires_in"], 3600);
    }

    #[test]
    fn a_countdown_gives_as_many_rotations_as_were_asked() {
        let mut due = BTreeMap::from([("a".to_owned(), 2)]);
        assert!(take_due(&mut due, "a"));
        assert!(take_due(&mut due, "a"));
        assert!(!take_due(&mut due, "a"));
        assert!(!take_due(&mut due, "b"));
    }
}
