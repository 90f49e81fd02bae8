//! Which integration a record goes to, pure: `targets.nango.provider_config_key`, else
//! `[nango.services.<service>]`, else `[nango] provider_config_key`, else the one integration
//! whose `provider` is the record's service. Several such integrations is a located mapping
//! error, never a guess.

use authport_core::MappingError;
use serde_json::Value;

use crate::config::{NangoConfig, RecordTarget};
use crate::map::Destination;
use crate::target::PROVIDER;
use crate::wire::Integration;

/// Resolves a record's destination against the discovered integrations.
pub fn resolve_destination(
    service: &str,
    record_target: Option<&Value>,
    config: &NangoConfig,
    integrations: &[Integration],
) -> Result<Destination, MappingError> {
    let field = format!("targets.{PROVIDER}");
    let from_record = match record_target {
        None => RecordTarget::default(),
        Some(value) => RecordTarget::from_record(value, &field)?,
    };
    let chosen = from_record
        .provider_config_key
        .clone()
        .map(|key| (key, format!("{field}.provider_config_key")))
        .or_else(|| {
            let key = config.services.get(service)?.provider_config_key.clone()?;
            Some((
                key,
                format!("[nango.services.{service}] provider_config_key"),
            ))
        })
        .or_else(|| {
            let key = config.provider_config_key.clone()?;
            Some((key, "[nango] provider_config_key".to_owned()))
        });
    let provider_config_key = match chosen {
        Some((key, source)) => {
            if !integrations.iter().any(|i| i.unique_key == key) {
                return Err(MappingError::new(
                    if source.starts_with("targets.") {
                        source.clone()
                    } else {
                        "service".to_owned()
                    },
                    format!(
                        "integration `{key}` (from {source}) does not exist in this Nango environment"
                    ),
                ));
            }
            key
        }
        None => by_provider(service, integrations, &field)?,
    };
    let custom = from_record.custom.or_else(|| {
        config
            .integrations
            .get(&provider_config_key)
            .and_then(|settings| settings.custom.clone())
    });
    if let Some(map) = &custom {
        crate::config::check_custom_map(map)
            .map_err(|problem| MappingError::new(format!("{field}.custom"), problem))?;
    }
    Ok(Destination {
        provider_config_key,
        connection_id: from_record.connection_id,
        custom,
    })
}

/// The one integration whose `provider` is `service`.
fn by_provider(
    service: &str,
    integrations: &[Integration],
    field: &str,
) -> Result<String, MappingError> {
    let matching: Vec<&str> = integrations
        .iter()
        .filter(|i| i.provider == service)
        .map(|i| i.unique_key.as_str())
        .collect();
    match matching.as_slice() {
        [only] => Ok((*only).to_owned()),
        [] => Err(MappingError::new(
            "service",
            format!(
                "no Nango integration uses provider `{service}`; create one, or set {field}.provider_config_key or [nango.services.{service}]"
            ),
        )),
        several => Err(MappingError::new(
            "service",
            format!(
                "{} Nango integrations use provider `{service}` ({}); say which with {field}.provider_config_key or [nango.services.{service}]",
                several.len(),
                several.join(", ")
            ),
        )),
    }
}
