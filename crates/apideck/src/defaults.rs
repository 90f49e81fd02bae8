//! Built-in targets for common services, used when neither the record's `targets.apideck` nor
//! `[apideck.services.<service>]` names one. Documented in `docs/apideck.md`; keep both in step.

use crate::config::TargetOverride;

/// One row of the built-in table.
#[derive(Debug, Clone, Copy)]
pub struct BuiltInTarget {
    /// Canonical service slug of the record.
    pub service: &'static str,
    pub unified_api: &'static str,
    pub service_id: &'static str,
    /// `(record setting name, connector form field id)` renames.
    pub setting_aliases: &'static [(&'static str, &'static str)],
}

const fn row(
    service: &'static str,
    unified_api: &'static str,
    service_id: &'static str,
) -> BuiltInTarget {
    BuiltInTarget {
        service,
        unified_api,
        service_id,
        setting_aliases: &[],
    }
}

pub const BUILT_IN_TARGETS: &[BuiltInTarget] = &[
    BuiltInTarget {
        setting_aliases: &[("account_url", "instance_url")],
        ..row("activecampaign", "crm", "activecampaign")
    },
    row("bamboohr", "hris", "bamboohr"),
    row("freshdesk", "ticketing", "freshdesk"),
    row("greenhouse", "ats", "greenhouse"),
    row("hubspot", "crm", "hubspot"),
    row("jira", "issue-tracking", "jira"),
    row("lever", "ats", "lever"),
    row("netsuite", "accounting", "netsuite"),
    row("pipedrive", "crm", "pipedrive"),
    row("quickbooks", "accounting", "quickbooks"),
    row("salesforce", "crm", "salesforce"),
    row("shopify", "ecommerce", "shopify"),
    row("xero", "accounting", "xero"),
    row("zendesk", "ticketing", "zendesk"),
    row("zoho-crm", "crm", "zoho-crm"),
];

/// The built-in target of `service`, if there is one.
pub fn built_in_target(service: &str) -> Option<TargetOverride> {
    BUILT_IN_TARGETS
        .iter()
        .find(|row| row.service == service)
        .map(|row| TargetOverride {
            unified_api: Some(row.unified_api.to_owned()),
            service_id: Some(row.service_id.to_owned()),
            settings_map: row
                .setting_aliases
                .iter()
                .map(|(from, to)| ((*from).to_owned(), Some((*to).to_owned())))
                .collect(),
            ..TargetOverride::default()
        })
}
