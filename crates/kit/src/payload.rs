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
