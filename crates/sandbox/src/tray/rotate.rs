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
use super::TrayState;
use crate::rotation::{rotate, take_due};

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
        if !take_due(&mut inner.rotate_after_read, auth_id) {
            return;
        }
        inner.rotations += 1;
        let round = inner.rotations;
        if let Some(auth) = inner.auths.get_mut(auth_id) {
            rotate(&mut auth.credentials, round);
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
