//! The auth-only dialog's entry (`GET /external/auth/create/{embeddedId}?code=...&serviceId=...
//! &serviceEnvironmentId=...`) and the codes `generateAuthorizationCode` mints for it. Tray
//! documents the code as single use, expiring after 5 minutes, and minted with the master token
//! for an existing end user. The sandbox answers 200 with what the dialog would collect for a
//! live, unused code and a known service environment of that service, else 403 (code) or 404
//! (service), and marks the code used: a second open is refused.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{Duration, Utc};
use serde_json::json;

use super::{AuthCode, TrayState, random_token};

/// "The code returned by this endpoint is single-use and expires after 5 minutes."
pub const CODE_LIFETIME_SECONDS: i64 = 300;

pub(super) fn routes() -> Router<Arc<TrayState>> {
    Router::new().route("/external/auth/create/{embedded_id}", get(open_dialog))
}

impl TrayState {
    /// Mints a dialog code for the end user `user_id`; `None` when there is no such user.
    pub(crate) fn mint_auth_code(&self, user_id: &str) -> Option<String> {
        let mut inner = self.lock();
        if !inner.users.contains_key(user_id) {
            return None;
        }
        let code = random_token();
        inner.auth_codes.insert(
            code.clone(),
            AuthCode {
                user_id: user_id.to_owned(),
                minted_at: Utc::now(),
                used: false,
            },
        );
        Some(code)
    }

    /// How many dialog codes were minted (for tests).
    pub fn auth_codes_minted(&self) -> usize {
        self.lock().auth_codes.len()
    }
}

async fn open_dialog(
    State(state): State<Arc<TrayState>>,
    Path(embedded_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    let (code, service_id, environment_id) = (
        param("code"),
        param("serviceId"),
        param("serviceEnvironmentId"),
    );
    let known = state
        .catalogue
        .environment(environment_id)
        .is_some_and(|(service, _)| service.id == service_id);
    if !known {
        return (
            StatusCode::NOT_FOUND,
            "unknown service or service environment",
        )
            .into_response();
    }
    let mut inner = state.lock();
    let Some(entry) = inner.auth_codes.get_mut(code) else {
        return (StatusCode::FORBIDDEN, "invalid authorization code").into_response();
    };
    if entry.used || Utc::now() - entry.minted_at > Duration::seconds(CODE_LIFETIME_SECONDS) {
        return (StatusCode::FORBIDDEN, "authorization code expired or used").into_response();
    }
    entry.used = true;
    axum::Json(json!({
        "embedded_id": embedded_id,
        "user_id": entry.user_id,
        "service_id": service_id,
        "service_environment_id": environment_id,
    }))
    .into_response()
}
