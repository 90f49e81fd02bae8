//! Checks of the optional capabilities a provider's plugin declares (`export`, `webhooks`):
//! each runs only when the plugin declares the capability, so a provider that gains one is
//! checked the day it declares it.

use authport_core::{
    AuthExporter, ExportFilter, HealthEvent, WebhookHeaders, WebhookRefusal, WebhookSource,
    record_to_v1_json,
};
use authport_sandbox::faults::{FaultKind, FaultRule, Trigger};

use super::direct::{assert_removed, import};
use super::{Probe, Subject, discover, map};
use crate::canary::{assert_no_canary, canary};
use crate::context::context;
use crate::export::{Attempts, Collected};

/// One webhook delivery as the vendor sends it: headers and the raw body.
#[derive(Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Delivery {
    // Header names only: the signature is a keyed value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Delivery")
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Delivery {
    fn headers(&self) -> WebhookHeaders {
        WebhookHeaders::from_pairs(
            self.headers
                .iter()
                .map(|(name, value)| (name.as_str(), Some(value.as_str()))),
        )
    }

    /// This delivery with the header `name` set to `value` (`None`: left out).
    fn with_header(&self, name: &str, value: Option<String>) -> Self {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(own, _)| !own.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        if let Some(value) = value {
            headers.push((name.to_owned(), value));
        }
        Self {
            headers,
            body: self.body.clone(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(own, _)| own.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Builds a delivery signed as the vendor signs it, about a connection's health (e.g. a failed
/// refresh), from the subject's environment (where the signing secret is).
pub type SignedDelivery = Box<dyn Fn(&[(String, String)]) -> Delivery + Send + Sync>;

/// Export: records imported into the target come back out as valid v1 records holding their
/// secrets; a read that fails once is tried again (the sink's retry); nothing printable about
/// an export (a record's `Debug`, a failure, its error when every read fails) holds a secret;
/// every request is paced. Skipped when the provider declares no export.
pub async fn export_writes_valid_records(subject: &Subject) {
    let Some(export) = subject.plugin.capabilities.export else {
        return;
    };
    let probe = Probe::start(subject, "export_writes_valid_records");
    let importer = probe.importer();
    let ids = ["conformance/export-1", "conformance/export-2"];
    let secrets: Vec<String> = ids.iter().map(|id| canary(&id.replace('/', "-"))).collect();
    let records: Vec<_> = ids
        .iter()
        .zip(&secrets)
        .map(|(id, secret)| subject.record(id, secret))
        .collect();
    discover(&probe, &*importer, &records.iter().collect::<Vec<_>>()).await;
    let mut created = Vec::new();
    for record in &records {
        let mapped = map(&probe, &*importer, record);
        created.push(
            import(&probe, &*importer, record, &mapped, None)
                .await
                .target,
        );
    }

    let built = context()
        .config(subject.config.clone())
        .env(subject.target.env.clone())
        .gate(probe.gate.clone())
        .build();
    let exporter = (export.build)(&built)
        .unwrap_or_else(|e| panic!("{}: {e}", probe.what("the exporter builds")));
    assert_no_canary(
        &probe.what("Debug of the exporter"),
        &format!("{exporter:?}"),
    );
    let collected = export_all(&probe, &*exporter).await;
    for record in &collected.records {
        assert_no_canary(
            &probe.what("Debug of an exported record"),
            &format!("{record:?}"),
        );
        let line = record_to_v1_json(record);
        assert_no_canary(&probe.what("Debug of a v1 line"), &format!("{line:?}"));
        if let Err(problems) = authport_core::record::from_json_located(line.expose(), crate::now())
        {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!(
                "{}: {problems:?}",
                probe.what("an exported record is valid v1")
            );
        }
    }
    for (source_id, error) in &collected.failures {
        assert_no_canary(
            &probe.what("an export failure"),
            &format!("{source_id} {error} {error:?}"),
        );
    }
    for secret in &secrets {
        let arrived = collected
            .records
            .iter()
            .any(|record| super::holds(record_to_v1_json(record).expose(), secret));
        assert!(
            arrived,
            "{}: an imported record's secret is in no exported record",
            probe.what("export")
        );
    }

    // A read answered 500 once is tried again (the sink's retry): the export completes.
    subject.set_faults(vec![FaultRule::new(
        Some("GET"),
        "/",
        FaultKind::ErrorBeforeApply,
        Trigger::Nth(vec![1]),
    )]);
    let mut retried = Collected::with_reads(Attempts(2));
    let result = exporter
        .export(&ExportFilter::default(), &mut retried)
        .await;
    subject.clear_faults();
    assert_clean_export(&probe, "an export with one failed read", &result, &retried);
    assert!(
        result.is_ok() && retried.records.len() >= collected.records.len(),
        "{}: {result:?}",
        probe.what("a failed read is tried again")
    );

    // Whatever the server does to every read, untried again, nothing the export reports (its
    // error, a failure) holds a secret.
    for kind in [
        FaultKind::ErrorBeforeApply,
        FaultKind::DropBeforeApply,
        FaultKind::TooManyRequests {
            retry_after_secs: Some(1),
        },
    ] {
        let step = format!("an export with {kind:?} on every read");
        subject.set_faults(vec![FaultRule::new(
            Some("GET"),
            "/",
            kind,
            Trigger::Probability(1.0),
        )]);
        let mut failing = Collected::with_reads(Attempts(1));
        let result = exporter
            .export(&ExportFilter::default(), &mut failing)
            .await;
        let injected = subject.target.faults.injected();
        subject.clear_faults();
        assert_ne!(
            injected,
            Default::default(),
            "{}: no fault fired",
            probe.what(&step)
        );
        assert!(
            result.is_err() || !failing.failures.is_empty(),
            "{}: no failure reported",
            probe.what(&step)
        );
        assert_clean_export(&probe, &step, &result, &failing);
    }

    for target in &created {
        assert_removed(&probe, &*importer, target).await;
    }
    probe.assert_paced();
}

/// Nothing printable about an export's result or what its sink got holds a secret.
fn assert_clean_export(
    probe: &Probe<'_>,
    step: &str,
    result: &Result<authport_core::ExportCounts, authport_core::ProviderError>,
    sink: &Collected,
) {
    let error = match result {
        Ok(counts) => format!("{counts:?}"),
        Err(error) => format!("{error} {error:?}"),
    };
    let failures: Vec<String> = sink
        .failures
        .iter()
        .map(|(id, error)| format!("{id} {error} {error:?}"))
        .collect();
    assert_no_canary(
        &probe.what(step),
        &format!("{error} {failures:?} {:?}", sink.records),
    );
}

async fn export_all(probe: &Probe<'_>, exporter: &dyn AuthExporter) -> Collected {
    let mut collected = Collected::with_reads(Attempts(1));
    if let Err(error) = exporter
        .export(&ExportFilter::default(), &mut collected)
        .await
    {
        assert_no_canary(&probe.what("export error"), &format!("{error} {error:?}"));
        panic!("{}: {error}", probe.what("export"));
    }
    collected
}

/// Webhooks: the provider's source, built from the subject's environment, accepts a delivery
/// signed as the vendor signs it and parses it to a `HealthEvent` that says something about
/// health; a body changed after signing, a wrong signature and a missing one are refused with
/// 401; no refusal, event or `Debug` holds a secret. Skipped when the provider declares no
/// webhooks; a provider that declares them must give the suite a delivery
/// ([`Subject::webhook`]).
pub fn webhooks_verify_and_parse(subject: &Subject) {
    let Some(webhooks) = subject.plugin.capabilities.webhooks else {
        return;
    };
    let what = |step: &str| format!("{} webhooks_verify_and_parse: {step}", subject.name());
    let delivery = subject.webhook.as_ref().unwrap_or_else(|| {
        panic!(
            "{}",
            what("the provider declares webhooks: give the suite a signed delivery (Subject::webhook)")
        )
    })(&subject.target.env);
    let built = context()
        .config(subject.config.clone())
        .env(subject.target.env.clone())
        .build();
    let source = (webhooks.build)(&built).unwrap_or_else(|e| panic!("{}: {e}", what("builds")));
    assert_no_canary(&what("Debug of the source"), &format!("{source:?}"));
    if let Some(missing) = source.missing_setting() {
        panic!(
            "{}: {missing}",
            what("the subject's environment lacks a setting")
        );
    }

    let event = accepted(&*source, &delivery, &what);
    assert!(
        !event.id.is_empty() && event.id.len() <= 200,
        "{}",
        what("the event id")
    );
    assert!(!event.kind.is_empty(), "{}", what("the event's kind"));
    assert!(
        event.health.is_some(),
        "{}",
        what("the sample delivery says something about health")
    );
    assert_no_canary(&what("Debug of the event"), &format!("{event:?}"));

    let header = source.signature_header();
    let signature = delivery
        .header(header)
        .unwrap_or_else(|| panic!("{}", what(&format!("the delivery carries {header}"))))
        .to_owned();
    let tampered = Delivery {
        headers: delivery.headers.clone(),
        body: tamper(&delivery.body),
    };
    let forged = [
        ("a body changed after signing", tampered),
        (
            "a wrong signature",
            delivery.with_header(header, Some(wrong(&signature))),
        ),
        ("no signature", delivery.with_header(header, None)),
    ];
    for (case, forged) in forged {
        let refusal = source
            .verify(&forged.headers(), &forged.body)
            .err()
            .unwrap_or_else(|| panic!("{}", what(&format!("{case} is accepted"))));
        assert_eq!(refusal.status, 401, "{}", what(case));
        assert_clean_refusal(&refusal, &what(case));
    }
}

fn accepted(
    source: &dyn WebhookSource,
    delivery: &Delivery,
    what: &dyn Fn(&str) -> String,
) -> HealthEvent {
    if let Err(refusal) = source.verify(&delivery.headers(), &delivery.body) {
        assert_clean_refusal(&refusal, &what("refusal"));
        panic!("{}: {refusal}", what("a signed delivery verifies"));
    }
    source.parse(&delivery.body).unwrap_or_else(|refusal| {
        assert_clean_refusal(&refusal, &what("refusal"));
        panic!("{}: {refusal}", what("a signed delivery parses"))
    })
}

fn assert_clean_refusal(refusal: &WebhookRefusal, what: &str) {
    assert_no_canary(what, &format!("{refusal} {refusal:?}"));
}

/// `body` with its first letter's case flipped: a change no canonical form (sorted keys,
/// whitespace) hides, as a changed key or value. Appends one when the body has no letter.
fn tamper(body: &[u8]) -> Vec<u8> {
    let mut tampered = body.to_vec();
    match tampered.iter_mut().find(|byte| byte.is_ascii_alphabetic()) {
        Some(letter) => *letter ^= 0x20,
        None => tampered.push(b'x'),
    }
    tampered
}

/// `signature` with its last character changed (same length and alphabet, so only its value
/// is wrong).
fn wrong(signature: &str) -> String {
    let mut chars: Vec<char> = signature.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = match *last {
            '0' => '1',
            'a' => 'b',
            'A' => 'B',
            _ if last.is_ascii_digit() => '0',
            _ if last.is_ascii_uppercase() => 'A',
            _ => 'a',
        };
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_signature_differs_only_in_value() {
        for signature in ["ab09", "ABCD", "x=", "00"] {
            let forged = wrong(signature);
            assert_ne!(forged, signature);
            assert_eq!(forged.len(), signature.len());
        }
    }

    #[test]
    fn a_tampered_body_differs_in_a_letter() {
        assert_eq!(tamper(br#"{"type":1}"#), br#"{"Type":1}"#.to_vec());
        assert_eq!(tamper(b"[1]"), b"[1]x".to_vec());
    }

    #[test]
    fn a_delivery_shows_header_names_only() {
        let delivery = Delivery {
            headers: vec![("X-Sig".to_owned(), canary("signature"))],
            body: b"{}".to_vec(),
        };
        assert_no_canary("Debug of a delivery", &format!("{delivery:?}"));
        let without = delivery.with_header("x-sig", None);
        assert!(without.headers.is_empty());
        assert_eq!(delivery.header("x-SIG"), Some(canary("signature").as_str()));
    }
}
