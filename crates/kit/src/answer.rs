//! The one rule for a 2xx answer that cannot be read, chosen by the call's [`Effect`]: after a
//! create or a write the request may well have taken effect, so the outcome is unknown and the
//! engine reconciles before any retry; a read changed nothing and may simply be asked again.
//!
//! Before the kit held it, the providers had four variants (Tray: by effect; Apideck and
//! Nango: always transient, so an unreadable create answer was retried blind; the scaffold:
//! rejected for reads). This is Tray's, the safe one.

use authport_core::ProviderError;
use authport_core::transport::Effect;
use serde::de::DeserializeOwned;

/// What an unreadable 2xx answer to a call with `effect` means. `message` names the vendor,
/// the operation and the shape expected, never the body (it may echo secrets).
pub fn unreadable_answer(effect: Effect, message: String) -> ProviderError {
    match effect {
        Effect::Read => ProviderError::transient(message),
        Effect::IdempotentWrite | Effect::Create => ProviderError::outcome_unknown(message),
    }
}

/// Reads a 2xx body as `T`; when it cannot be, [`unreadable_answer`] for `effect`. The message
/// is `{vendor} {operation}: the answer is not the expected {what} shape` (serde's own message
/// could quote a value, so it is never used).
pub fn read_answer<T: DeserializeOwned>(
    body: &[u8],
    effect: Effect,
    vendor: &str,
    operation: &str,
    what: &str,
) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|_| {
        unreadable_answer(
            effect,
            format!("{vendor} {operation}: the answer is not the expected {what} shape"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_answer_after_a_write_is_an_unknown_outcome() {
        let read = |effect| read_answer::<Vec<u8>>(b"{\"CANARY\"", effect, "v", "op", "list");
        for (effect, unknown) in [
            (Effect::Read, false),
            (Effect::IdempotentWrite, true),
            (Effect::Create, true),
        ] {
            let error = read(effect).unwrap_err();
            assert_eq!(
                matches!(error, ProviderError::OutcomeUnknown { .. }),
                unknown
            );
            assert_eq!(matches!(error, ProviderError::Transient { .. }), !unknown);
            assert_eq!(
                error.message(),
                "v op: the answer is not the expected list shape"
            );
        }
        assert_eq!(
            read_answer::<Vec<u8>>(b"[1]", Effect::Create, "v", "op", "list"),
            Ok(vec![1])
        );
    }
}
