//! The connectors the emulated Unify application offers, with their auth types and form fields.
//!
//! Form field ids of real connectors are only visible through Apideck's API; the ids here are
//! plausible choices for the sandbox, not a record of Apideck's catalogue.

use serde_json::{Value, json};

/// How a connector authenticates (`AuthType` in vault.yml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    OAuth2,
    ApiKey,
    Basic,
    Custom,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    pub id: String,
    pub label: String,
    /// `text`, `password`, `url`, ...
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub unified_api: String,
    pub service_id: String,
    pub name: String,
    pub auth_type: AuthType,
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

/// The default catalogue: every connector the bundled example file and the tests need.
pub fn default_catalogue() -> Vec<Connector> {
    let text =
        |id: &str, label: &str, required: bool| FormField::new(id, label, "text", required, false);
    let url =
        |id: &str, label: &str, required: bool| FormField::new(id, label, "url", required, false);
    let secret = |id: &str, label: &str| FormField::new(id, label, "password", true, true);
    vec![
        Connector::new(
            "crm",
            "salesforce",
            "Salesforce",
            AuthType::OAuth2,
            vec![url("instance_url", "Instance URL", false)],
        ),
        Connector::new("crm", "hubspot", "HubSpot", AuthType::OAuth2, vec![]),
        Connector::new("crm", "pipedrive", "Pipedrive", AuthType::OAuth2, vec![]),
        Connector::new(
            "accounting",
            "quickbooks",
            "QuickBooks",
            AuthType::OAuth2,
            vec![text("realm_id", "Company ID (realm id)", true)],
        ),
        Connector::new("accounting", "xero", "Xero", AuthType::OAuth2, vec![]),
        Connector::new(
            "ats",
            "greenhouse",
            "Greenhouse",
            AuthType::ApiKey,
            vec![secret("api_key", "Harvest API Key")],
        ),
        Connector::new(
            "crm",
            "activecampaign",
            "ActiveCampaign",
            AuthType::ApiKey,
            vec![
                secret("api_key", "API Key"),
                url("instance_url", "Account URL", true),
            ],
        ),
        Connector::new(
            "ticketing",
            "zendesk",
            "Zendesk",
            AuthType::Basic,
            vec![
                FormField::new("username", "Email address", "email", true, false),
                secret("password", "API token"),
                text("subdomain", "Subdomain", true),
            ],
        ),
    ]
}
