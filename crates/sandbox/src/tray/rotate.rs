//! Test control (not Tray's API): rotate an authentication's credentials right after its next
//! reads, as a live source that refreshes tokens on its own would do after an export
//! (`migrate --cutover` tests). `POST /_sandbox/tray/rotate-after-read` with
//! `{"id": "<auth id>", "times": n}`, or [`TrayState::rotate_after_read`]: each of the next `n`
//! Get full authentication answers of that auth is followed by a rotation of every token in
//! its credentials (each keeps its old text, so a canary stays a canary).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::TrayState;

impl TrayState {
    /// Rotates the credentials of `auth_id` right after each of its next `times` full reads.
    pub fn rotate_after_read(&self, auth_id: &str, times: u32) {
        self.lock()
            .rotate_after_read
            .insert(auth_id.to_owned(), times);
    }

    /// How many rotations the sandbox made (every auth).
    pub fn rotations(&self) -> u64 {
        self.lock().rotations
    }

    /// Called after a full read of `auth_id` was answered.
    pub(super) fn after_full_read(&self, auth_id: &str) {
        let mut inner = self.lock();
        let due = match inner.rotate_after_read.get_mut(auth_id) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        if !due {
            return;
        }
        inner.rotations += 1;
        let round = inner.rotations;
        if let Some(auth) = inner.auths.get_mut(auth_id) {
            rotate(&mut auth.credentials, round);
        }
    }
}

/// A new value for every token: the old text and the rotation's number.
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

#[derive(Deserialize)]
struct RotateRequest {
    id: String,
    times: u32,
}

pub(super) fn routes() -> Router<Arc<TrayState>> {
    Router::new().route("/_sandbox/tray/rotate-after-read", post(set_rotation))
}

async fn set_rotation(
    State(state): State<Arc<TrayState>>,
    axum::Json(request): axum::Json<RotateRequest>,
) -> Response {
    state.rotate_after_read(&request.id, request.times);
    StatusCode::NO_CONTENT.into_response()
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
}
