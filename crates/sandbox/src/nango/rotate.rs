//! Test control (not Nango's API): rotate a connection's credentials right after its next
//! reads, as Nango refreshing a token on its own would do after an export (`migrate --cutover`
//! tests). `POST /_sandbox/nango/rotate-after-read` with `{"provider_config_key", "connection_id",
//! "times"}`, or [`NangoState::rotate_after_read`]: each of the next `times` answers of
//! `GET /connections/{id}` for it is followed by a rotation of every token (each
//! keeps its old text, so a canary stays a canary).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::{ConnectionKey, Inner, NangoState};
use crate::rotation::{rotate, take_due};

impl NangoState {
    /// Rotates the connection's credentials right after each of its next `times` reads.
    pub fn rotate_after_read(&self, provider_config_key: &str, connection_id: &str, times: u32) {
        self.lock().rotate_after_read.insert(
            (provider_config_key.to_owned(), connection_id.to_owned()),
            times,
        );
    }

    /// How many rotations the sandbox made (every connection).
    pub fn rotations(&self) -> u64 {
        self.lock().rotations
    }
}

/// Called with the lock held, after a read of `key` was answered.
pub(super) fn after_read(inner: &mut Inner, key: &ConnectionKey) {
    if !take_due(&mut inner.rotate_after_read, key) {
        return;
    }
    inner.rotations += 1;
    let round = inner.rotations;
    if let Some(stored) = inner.connections.get_mut(key) {
        rotate(&mut stored.credentials, round);
    }
}

#[derive(Deserialize)]
struct RotateRequest {
    provider_config_key: String,
    connection_id: String,
    times: u32,
}

pub(super) fn routes(state: Arc<NangoState>) -> Router {
    Router::new()
        .route("/_sandbox/nango/rotate-after-read", post(set_rotation))
        .with_state(state)
}

async fn set_rotation(
    State(state): State<Arc<NangoState>>,
    axum::Json(request): axum::Json<RotateRequest>,
) -> Response {
    state.rotate_after_read(
        &request.provider_config_key,
        &request.connection_id,
        request.times,
    );
    StatusCode::NO_CONTENT.into_response()
}
