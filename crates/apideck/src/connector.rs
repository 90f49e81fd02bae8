//! What discovery learns about one connector: its auth type and form fields, read from the
//! `Connection` Vault answers for it.

use crate::wire::{Connection, FormField};

/// What discovery learned about one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorInfo {
    pub unified_api: String,
    pub service_id: String,
    /// `oauth2`, `apiKey`, `basic`, `custom`, `none` (or a value Apideck adds later).
    pub auth_type: String,
    pub integration_state: Option<String>,
    pub form_fields: Vec<FormField>,
}

impl ConnectorInfo {
    /// Reads a discovered `Connection`; a disabled integration or a connection without
    /// `auth_type` is refused with the reason.
    pub fn from_connection(
        unified_api: &str,
        service_id: &str,
        connection: &Connection,
    ) -> Result<Self, String> {
        if connection.integration_state.as_deref() == Some("disabled") {
            return Err(format!(
                "the {unified_api}/{service_id} integration is disabled for this Apideck application; enable it in the Apideck dashboard"
            ));
        }
        let Some(auth_type) = connection.auth_type.clone() else {
            return Err(format!(
                "apideck did not say which auth type {unified_api}/{service_id} uses"
            ));
        };
        Ok(Self {
            unified_api: unified_api.to_owned(),
            service_id: service_id.to_owned(),
            auth_type,
            integration_state: connection.integration_state.clone(),
            form_fields: connection.form_fields.clone(),
        })
    }

    pub(crate) fn label(&self) -> String {
        format!("{}/{}", self.unified_api, self.service_id)
    }

    pub(crate) fn field(&self, id: &str) -> Option<&FormField> {
        self.form_fields.iter().find(|f| f.id == id)
    }

    pub(crate) fn field_ids(&self) -> String {
        if self.form_fields.is_empty() {
            "none".to_owned()
        } else {
            self.form_fields
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}
