//! The Apideck emulator (filled in by the apideck issue).

use std::sync::Arc;

/// Options of the Apideck emulator.
#[derive(Debug, Clone, Default)]
pub struct ApideckOptions {}

/// The Apideck emulator's state.
#[derive(Debug)]
pub struct ApideckState {}

impl ApideckState {
    pub fn new(_options: ApideckOptions) -> Arc<Self> {
        Arc::new(Self {})
    }

    /// Environment variables holding the sandbox's fake credentials for this vendor.
    pub fn credentials_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

pub fn router(_state: Arc<ApideckState>) -> axum::Router {
    axum::Router::new()
}
