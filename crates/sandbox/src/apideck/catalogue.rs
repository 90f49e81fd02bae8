//! The connectors the emulated Unify application offers, with their auth types and form fields,
//! seeded from `fixtures/apideck-catalogue.json` (a connector's `integration_state` is
//! `configured` unless the fixture says otherwise).
//!
//! Form field ids of real connectors are only visible through Apideck's API; the ids here are
//! plausible choices for the sandbox, not a record of Apideck's catalogue.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Value, json};

/// How a connector authenticates (`AuthType` in vault.yml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthType {
    #[serde(rename = "oauth2")]
    OAuth2,
    #[serde(rename = "apiKey")]
    ApiKey,
    #[serde(rename = "basic")]
    Basic,
    #[serde(rename = "custom")]
    Custom,
    #[serde(rename = "none")]
    None,
}
impl AuthType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth2 => "oauth2",
            Self::ApiKey => "apiKey",
            Self::Basic => "basic",
            Self::Custom => "custom",
            Self::None => "none",
        }
    }
}

/// App-level set-up of an integration (`IntegrationState` in vault.yml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationState {
    Disabled,
    NeedsConfiguration,
    Configured,
}

impl IntegrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::NeedsConfiguration => "needs_configuration",
            Self::Configured => "configured",
        }
    }
}

/// One form field of a connector (`FormField` in vault.yml, the parts the sandbox uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormField {
    pub id: String,
    pub label: String,
    /// `text`, `password`, `url`, ...
    #[serde(rename = "type")]
    pub field_type: String,
    pub required: bool,
    pub sensitive: bool,
}

impl FormField {
    pub fn new(id: &str, label: &str, field_type: &str, required: bool, sensitive: bool) -> Self {
        Self {
            id: id.to_owned(),
            label: label.to_owned(),
            field_type: field_type.to_owned(),
            required,
            sensitive,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "label": self.label,
            "type": self.field_type,
            "required": self.required,
            "sensitive": self.sensitive,
            "custom_field": false,
            "allow_custom_values": false,
            "disabled": false,
            "hidden": false,
            "deprecated": false,
        })
    }
}

/// A connector enabled (or not) for the emulated application.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connector {
    pub unified_api: String,
    pub service_id: String,
    pub name: String,
    pub auth_type: AuthType,
    #[serde(default = "configured")]
    pub integration_state: IntegrationState,
    pub form_fields: Vec<FormField>,
}

impl Connector {
    pub fn new(
        unified_api: &str,
        service_id: &str,
        name: &str,
        auth_type: AuthType,
        form_fields: Vec<FormField>,
    ) -> Self {
        Self {
            unified_api: unified_api.to_owned(),
            service_id: service_id.to_owned(),
            name: name.to_owned(),
            auth_type,
            integration_state: IntegrationState::Configured,
            form_fields,
        }
    }

    /// Ids of the form fields that must be filled before the connection is callable.
    pub fn required_field_ids(&self) -> impl Iterator<Item = &str> {
        self.form_fields
            .iter()
            .filter(|f| f.required)
            .map(|f| f.id.as_str())
    }

    /// The connector as a `Connection` that a consumer has not added yet (state `available`):
    /// what discovery sees. Also used by the provider's snapshot tests as catalogue data.
    pub fn available_connection_json(&self) -> Value {
        json!({
            "id": format!("{}+{}", self.unified_api, self.service_id),
            "service_id": self.service_id,
            "unified_api": self.unified_api,
            "name": self.name,
            "auth_type": self.auth_type.as_str(),
            "integration_state": self.integration_state.as_str(),
            "enabled": self.integration_state != IntegrationState::Disabled,
            "state": "available",
            "status": "live",
            "form_fields": self.form_fields.iter().map(FormField::to_json).collect::<Vec<_>>(),
            "settings": null,
            "metadata": null,
        })
    }
}

fn configured() -> IntegrationState {
    IntegrationState::Configured
}

/// The bundled catalogue, parsed once.
static BUNDLED: LazyLock<Vec<Connector>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../fixtures/apideck-catalogue.json"))
        .expect("the bundled Apideck catalogue fixture is valid")
});

/// The default catalogue: every connector the bundled example file and the tests need.
pub fn default_catalogue() -> Vec<Connector> {
    BUNDLED.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_fixture_loads_with_wire_names() {
        let catalogue = default_catalogue();
        assert_eq!(catalogue.len(), 8);
        let zendesk = catalogue
            .iter()
            .find(|c| c.service_id == "zendesk")
            .expect("zendesk");
        assert_eq!(zendesk.auth_type, AuthType::Basic);
        assert_eq!(zendesk.integration_state, IntegrationState::Configured);
        assert_eq!(
            zendesk.required_field_ids().collect::<Vec<_>>(),
            ["username", "password", "subdomain"]
        );
        let greenhouse = catalogue
            .iter()
            .find(|c| c.service_id == "greenhouse")
            .expect("greenhouse");
        assert_eq!(
            greenhouse.form_fields,
            [FormField::new(
                "api_key",
                "Harvest API Key",
                "password",
                true,
                true
            )]
        );
    }
}
