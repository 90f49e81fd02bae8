//! Reading a provider's typed payload back from a [`MappedRecord`] (see
//! `authport_core::importer::Payload`): `map` puts it in, `import`, `reconcile` and
//! `predict_skip` take it out without parsing the printable `target`.

use std::any::Any;

use authport_core::{MappedRecord, ProviderError};

/// The payload of type `T` that `provider`'s `map` put in. A record mapped elsewhere (another
/// provider, a hand-built test value) is a programming mistake: the run stops.
pub fn payload_of<'m, T: Any>(
    mapped: &'m MappedRecord,
    provider: &str,
) -> Result<&'m T, ProviderError> {
    mapped.payload::<T>().ok_or_else(|| {
        ProviderError::fatal(format!(
            "{provider}: the mapped record does not carry this provider's payload (it was not mapped by {provider})"
        ))
    })
}

#[cfg(test)]
mod tests {
    use authport_core::importer::Payload;
    use authport_core::{ProviderError, SecretJson};
    use serde_json::{Map, json};

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Where {
        id: String,
    }

    fn mapped(payload: Payload) -> MappedRecord {
        MappedRecord {
            target: Map::new(),
            body: SecretJson::new(json!({"key": "CANARY-payload"})),
            notes: Vec::new(),
            payload,
        }
    }

    #[test]
    fn the_payload_comes_back_typed_and_only_as_its_own_type() {
        let record = mapped(Payload::new(Where { id: "w-1".into() }));
        assert_eq!(payload_of::<Where>(&record, "v").unwrap().id, "w-1");
        let error = payload_of::<String>(&record, "v").unwrap_err();
        assert!(matches!(error, ProviderError::Fatal { .. }), "{error}");
        let error = payload_of::<Where>(&mapped(Payload::none()), "v").unwrap_err();
        assert!(error.message().contains("not mapped by v"), "{error}");
    }

    #[test]
    fn debug_says_only_whether_a_payload_is_present() {
        let record = mapped(Payload::new(Where {
            id: "CANARY-id".into(),
        }));
        let shown = format!("{record:?}");
        assert!(shown.contains("Payload(present)"), "{shown}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert_eq!(format!("{:?}", Payload::none()), "Payload(none)");
    }
}
