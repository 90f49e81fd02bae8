//! The sandbox's Tray catalogue: services, connectors, service environments and solutions.
//!
//! Schemas are deliberately written in the loose dialects Tray publishes (draft-03 `required:
//! true` on properties, draft-04 `required` arrays, `id`/`schema` keys, `advanced`, `format:
//! password`, even the `tytpe` typo from Tray's own NetSuite example), so clients are tested
//! against what the real API returns rather than against tidy JSON Schema.

use serde_json::{Value, json};

/// Everything the emulated Tray organisation offers.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub services: Vec<ServiceDef>,
    pub solutions: Vec<SolutionDef>,
}

/// One service version (Tray keys environments by service name + integer service version).
#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub id: String,
    pub name: String,
    pub title: String,
    pub version: i64,
    /// Connectors (programmatic name, decimal connector version) that use this service version.
    pub connectors: Vec<(String, String)>,
    pub environments: Vec<EnvironmentDef>,
}

/// A service environment as `GET .../environments` lists it.
#[derive(Debug, Clone)]
pub struct EnvironmentDef {
    pub id: String,
    pub title: String,
    pub authentication_type: String,
    pub credentials_schema: Value,
    pub user_data_schema: Value,
    /// `(scope, description)` pairs.
    pub scopes: Vec<(String, String)>,
}

/// A published solution with its auth slots (external ids are case-sensitive).
#[derive(Debug, Clone)]
pub struct SolutionDef {
    pub id: String,
    pub title: String,
    pub auth_slots: Vec<AuthSlotDef>,
    pub config_slots: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AuthSlotDef {
    pub external_id: String,
    pub title: String,
    pub service_name: String,
}

/// A stable, UUID-shaped id derived from a seed (FNV-1a), so catalogue ids are the same in
/// every run and snapshot.
pub fn stable_uuid(seed: &str) -> String {
    fn fnv(seed: &str, salt: u64) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for byte in seed.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }
    let high = fnv(seed, 0);
    let low = fnv(seed, 0x9e37_79b9_7f4a_7c15);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        (low >> 48) & 0xfff,
        low & 0xffff_ffff_ffff
    )
}

/// The id of environment `title` of service `name` in the default catalogue.
pub fn environment_id(service: &str, version: i64, title: &str) -> String {
    stable_uuid(&format!("env:{service}:{version}:{title}"))
}

/// `(title, authentication type, credentials schema, user-data schema, scopes)`.
type EnvironmentSpec<'a> = (&'a str, &'a str, Value, Value, &'a [(&'a str, &'a str)]);

fn service(
    name: &str,
    title: &str,
    version: i64,
    connectors: &[(&str, &str)],
    environments: Vec<EnvironmentSpec<'_>>,
) -> ServiceDef {
    ServiceDef {
        id: stable_uuid(&format!("service:{name}:{version}")),
        name: name.to_owned(),
        title: title.to_owned(),
        version,
        connectors: connectors
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        environments: environments
            .into_iter()
            .map(
                |(env_title, kind, credentials, user_data, scopes)| EnvironmentDef {
                    id: environment_id(name, version, env_title),
                    title: env_title.to_owned(),
                    authentication_type: kind.to_owned(),
                    credentials_schema: credentials,
                    user_data_schema: user_data,
                    scopes: scopes
                        .iter()
                        .map(|(s, d)| ((*s).to_owned(), (*d).to_owned()))
                        .collect(),
                },
            )
            .collect(),
    }
}

const SLACK_SCOPES: &[(&str, &str)] = &[
    (
        "channels:read",
        "Access information about user's public channels",
    ),
    ("channels:history", "Access user's public channels"),
    ("chat:write", "Send messages as the app"),
    ("users:read", "Access your workspace's profile information"),
];
const HUBSPOT_SCOPES: &[(&str, &str)] = &[
    ("oauth", "Basic OAuth access"),
    ("crm.objects.contacts.read", "Read contacts"),
    ("crm.objects.contacts.write", "Write contacts"),
    ("crm.objects.companies.read", "Read companies"),
];
const SALESFORCE_SCOPES: &[(&str, &str)] = &[
    ("api", "Access and manage your data"),
    ("refresh_token", "Perform requests at any time"),
    ("full", "Full access"),
];
const QUICKBOOKS_SCOPES: &[(&str, &str)] = &[(
    "com.intuit.quickbooks.accounting",
    "QuickBooks Online accounting",
)];
const ZENDESK_SCOPES: &[(&str, &str)] = &[("read", "Read access"), ("write", "Write access")];
const NO_SCOPES: &[(&str, &str)] = &[];

fn empty() -> Value {
    json!({})
}

impl Default for Catalogue {
    fn default() -> Self {
        let slack_user_data = json!({
            "advanced": [],
            "additionalProperties": false,
            "type": "object",
            "properties": {
                "signing_secret": {"format": "password", "type": "string",
                    "title": "Slash command signing secret",
                    "description": "Used in the slack trigger version 5.0 and later to verify slash commands"}
            }
        });
        let services = vec![
            service(
                "slack",
                "Slack",
                4,
                &[("slack", "9.0"), ("slack", "9.1")],
                vec![
                    (
                        "Production",
                        "oauth2",
                        empty(),
                        slack_user_data.clone(),
                        SLACK_SCOPES,
                    ),
                    (
                        "acme slack oauth",
                        "oauth2",
                        empty(),
                        slack_user_data,
                        SLACK_SCOPES,
                    ),
                ],
            ),
            // An older service version still used by an older connector: clients must pick the
            // service version of the highest connector version, not the first match.
            service(
                "slack",
                "Slack",
                3,
                &[("slack", "8.1")],
                vec![("Production", "oauth2", empty(), empty(), SLACK_SCOPES)],
            ),
            service(
                "mailchimp",
                "Mailchimp",
                1,
                &[("mailchimp", "8.2")],
                vec![
                    ("Production", "oauth2", empty(), empty(), NO_SCOPES),
                    (
                        "mailchimp acme oauth",
                        "oauth2",
                        empty(),
                        empty(),
                        NO_SCOPES,
                    ),
                ],
            ),
            service(
                "airtable",
                "Airtable",
                2,
                &[("airtable", "3.1")],
                vec![(
                    "Production",
                    "token",
                    // Draft-04 style: a `required` array and `$schema`.
                    json!({
                        "$schema": "http://json-schema.org/draft-04/schema#",
                        "type": "object",
                        "properties": {
                            "access_token": {"type": "string", "title": "Personal access token", "format": "password"}
                        },
                        "required": ["access_token"],
                        "additionalProperties": false
                    }),
                    empty(),
                    NO_SCOPES,
                )],
            ),
            service(
                "zendesk",
                "Zendesk",
                2,
                &[("zendesk", "4.0")],
                vec![
                    (
                        "Production",
                        "token",
                        // Draft-03 style: `required: true` on each property.
                        json!({
                            "type": "object",
                            "schema": "http://json-schema.org/draft-03/schema",
                            "properties": {
                                "email": {"type": "string", "title": "Email", "required": true},
                                "api_token": {"type": "string", "title": "API token", "format": "password", "required": true}
                            },
                            "additionalProperties": false
                        }),
                        json!({
                            "type": "object",
                            "properties": {
                                "subdomain": {"type": "string", "title": "Subdomain", "required": true,
                                    "description": "The part before .zendesk.com"}
                            },
                            "advanced": []
                        }),
                        NO_SCOPES,
                    ),
                    (
                        "acme zendesk oauth",
                        "oauth2",
                        empty(),
                        json!({"type": "object", "properties": {"subdomain": {"type": "string", "required": true}}}),
                        ZENDESK_SCOPES,
                    ),
                ],
            ),
            service(
                "netsuite",
                "NetSuite",
                1,
                &[("netsuite", "2.3")],
                vec![(
                    "Production",
                    "token",
                    // Tray's own published example, typo (`tytpe`) included.
                    json!({
                        "id": "http://jsonschema.net",
                        "type": "object",
                        "schema": "http://json-schema.org/draft-03/schema",
                        "properties": {
                            "email": {"id": "http://jsonschema.net/key", "title": "Email", "type": "string", "description": "The user email of the account."},
                            "password": {"id": "http://jsonschema.net/password", "title": "Password", "type": "string", "description": "The user password of the account.", "format": "password"},
                            "account": {"title": "Account", "tytpe": "string", "description": "The account ID."},
                            "role": {"title": "Role", "type": "integer", "description": "The role ID."}
                        },
                        "additionalProperties": false,
                        "required": ["email", "password", "account", "role"]
                    }),
                    empty(),
                    NO_SCOPES,
                )],
            ),
            service(
                "salesforce",
                "Salesforce",
                3,
                &[("salesforce", "8.5")],
                vec![
                    ("Production", "oauth2", empty(), empty(), SALESFORCE_SCOPES),
                    (
                        "acme salesforce oauth",
                        "oauth2",
                        empty(),
                        empty(),
                        SALESFORCE_SCOPES,
                    ),
                ],
            ),
            service(
                "hubspot",
                "HubSpot",
                2,
                &[("hubspot", "5.1")],
                vec![
                    ("Production", "oauth2", empty(), empty(), HUBSPOT_SCOPES),
                    (
                        "acme hubspot oauth",
                        "oauth2",
                        empty(),
                        empty(),
                        HUBSPOT_SCOPES,
                    ),
                ],
            ),
            service(
                "sqs",
                "AWS SQS",
                1,
                &[("sqs", "3.2")],
                vec![(
                    "Production",
                    "token",
                    json!({
                        "type": "object",
                        "properties": {
                            "access_key_id": {"type": "string", "title": "Access key ID", "required": true},
                            "secret_access_key": {"type": "string", "title": "Secret access key", "format": "password", "required": true}
                        },
                        "additionalProperties": false
                    }),
                    json!({
                        "type": "object",
                        "properties": {
                            "region": {"type": "string", "title": "Region", "required": true,
                                "enum": ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]}
                        },
                        "additionalProperties": false
                    }),
                    NO_SCOPES,
                )],
            ),
            service(
                "activecampaign",
                "ActiveCampaign",
                1,
                &[("activecampaign", "2.0")],
                vec![(
                    "Production",
                    "token",
                    json!({"type": "object", "properties": {"api_key": {"type": "string", "title": "API key", "required": true}}}),
                    json!({"type": "object", "properties": {"account_url": {"type": "string", "title": "Account URL", "required": true}}}),
                    NO_SCOPES,
                )],
            ),
            service(
                "greenhouse",
                "Greenhouse",
                1,
                &[("greenhouse", "1.3")],
                vec![(
                    "Production",
                    "token",
                    json!({"type": "object", "properties": {"api_key": {"type": "string", "title": "Harvest API key"}}, "required": ["api_key"]}),
                    empty(),
                    NO_SCOPES,
                )],
            ),
            service(
                "quickbooks",
                "QuickBooks Online",
                2,
                &[("quickbooks", "4.0")],
                vec![
                    ("Production", "oauth2", empty(), empty(), QUICKBOOKS_SCOPES),
                    (
                        "initech quickbooks oauth",
                        "oauth2",
                        empty(),
                        empty(),
                        QUICKBOOKS_SCOPES,
                    ),
                ],
            ),
        ];
        let solutions = vec![
            SolutionDef {
                id: stable_uuid("solution:acme-slack-sync"),
                title: "Acme Slack Sync".to_owned(),
                auth_slots: vec![AuthSlotDef {
                    external_id: "external_slack_authentication".to_owned(),
                    title: "Slack".to_owned(),
                    service_name: "slack".to_owned(),
                }],
                config_slots: vec!["external_channel".to_owned()],
            },
            // Two auth slots and a config slot, as in Tray's "Mailchimp audiences to Slack"
            // kind of solution: an owner needs both auths for a working instance.
            SolutionDef {
                id: stable_uuid("solution:acme-mailchimp-to-slack"),
                title: "Acme Mailchimp to Slack".to_owned(),
                auth_slots: vec![
                    AuthSlotDef {
                        external_id: "external_mailchimp_authentication".to_owned(),
                        title: "Mailchimp".to_owned(),
                        service_name: "mailchimp".to_owned(),
                    },
                    AuthSlotDef {
                        external_id: "external_slack_authentication".to_owned(),
                        title: "Slack".to_owned(),
                        service_name: "slack".to_owned(),
                    },
                ],
                config_slots: vec!["external_slack_channel".to_owned()],
            },
            SolutionDef {
                id: stable_uuid("solution:acme-hubspot-sync"),
                title: "Acme HubSpot Sync".to_owned(),
                auth_slots: vec![AuthSlotDef {
                    external_id: "External_HubSpot_Authentication".to_owned(),
                    title: "HubSpot".to_owned(),
                    service_name: "hubspot".to_owned(),
                }],
                config_slots: Vec::new(),
            },
        ];
        Self {
            services,
            solutions,
        }
    }
}

impl Catalogue {
    pub fn environment(&self, id: &str) -> Option<(&ServiceDef, &EnvironmentDef)> {
        self.services.iter().find_map(|service| {
            service
                .environments
                .iter()
                .find(|env| env.id == id)
                .map(|env| (service, env))
        })
    }

    pub fn solution(&self, id: &str) -> Option<&SolutionDef> {
        self.solutions.iter().find(|s| s.id == id)
    }
}
