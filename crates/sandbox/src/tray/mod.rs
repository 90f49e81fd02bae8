//! The Tray emulator (filled in by the tray issue).

use std::sync::Arc;

/// Options of the Tray emulator.
#[derive(Debug, Clone, Default)]
pub struct TrayOptions {}

/// The Tray emulator's state.
#[derive(Debug)]
pub struct TrayState {}

impl TrayState {
    pub fn new(_options: TrayOptions) -> Arc<Self> {
        Arc::new(Self {})
    }

    /// Environment variables holding the sandbox's fake credentials for this vendor.
    pub fn credentials_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

pub fn router(_state: Arc<TrayState>) -> axum::Router {
    axum::Router::new()
}
