//! Checks that drive the provider through `dyn AuthImporter`, step by step, as the engine
//! would.

use authport_core::{
    AuthImporter, CredentialRecord, Disposition, ImportOutcome, MappedRecord, PriorImport,
    ProviderError, Removal, TargetRef, VerifyReport,
};
use authport_sandbox::faults::{FaultKind, FaultRule, Trigger};
use futures_util::future::join_all;
use serde_json::Value;

use super::{Probe, Subject, discover, map};
use crate::canary::{assert_no_canary, canary};

/// An import creates exactly one object, and that object verifies healthy.
pub async fn import_once(subject: &Subject) {
    let probe = Probe::start(subject, "import_once");
    let importer = probe.importer();
    let record = subject.record("conformance/import-once", &canary("import-once"));
    discover(&probe, &*importer, &[&record]).await;
    let mapped = map(&probe, &*importer, &record);
    let before = subject.object_count();
    let outcome = import(&probe, &*importer, &record, &mapped, None).await;
    assert_eq!(
        outcome.disposition,
        Disposition::Created,
        "{}",
        probe.what("a first import")
    );
    probe.assert_objects(before + 1, "after one import");
    assert!(
        verify(&probe, &*importer, &outcome.target).await.healthy(),
        "{}",
        probe.what("the created object verifies")
    );
    assert_removed(&probe, &*importer, &outcome.target).await;
    probe.assert_objects(before, "after removing it");
    probe.assert_paced();
}

/// With `prior`, a record whose content changed is `Updated` in place: no second object.
pub async fn update_on_changed_content(subject: &Subject) {
    let probe = Probe::start(subject, "update_on_changed_content");
    let importer = probe.importer();
    let id = "conformance/update";
    let first = subject.record(id, &canary("update-v1"));
    let changed = subject.record(id, &canary("update-v2"));
    discover(&probe, &*importer, &[&first]).await;
    let before = subject.object_count();
    let mapped = map(&probe, &*importer, &first);
    let created = import(&probe, &*importer, &first, &mapped, None).await;
    let mapped = map(&probe, &*importer, &changed);
    let prior = PriorImport {
        target: created.target.clone(),
    };
    let updated = import(&probe, &*importer, &changed, &mapped, Some(&prior)).await;
    assert_eq!(
        updated.disposition,
        Disposition::Updated,
        "{}",
        probe.what("an import with prior")
    );
    probe.assert_objects(before + 1, "after the update");
    assert!(
        verify(&probe, &*importer, &updated.target).await.healthy(),
        "{}",
        probe.what("the updated object verifies")
    );
    assert_removed(&probe, &*importer, &updated.target).await;
    probe.assert_objects(before, "after removing it");
    probe.assert_paced();
}

/// Reconcile finds nothing for a record never written. After a write that was applied but
/// whose answer was lost, the error is `OutcomeUnknown` (then reconcile adopts the object, or
/// finds nothing and a new import is safe) or, for an idempotent write, `Transient` (then a
/// retry is safe): either way exactly one object, reported `Created` (so rollback removes it).
pub async fn reconcile_adopts_after_lost_answer(subject: &Subject) {
    let probe = Probe::start(subject, "reconcile_adopts_after_lost_answer");
    let importer = probe.importer();
    let never = subject.record("conformance/never-written", &canary("never-written"));
    let lost = subject.record("conformance/lost-answer", &canary("lost-answer"));
    discover(&probe, &*importer, &[&never, &lost]).await;
    let mapped = map(&probe, &*importer, &never);
    let found = importer.reconcile(&never, &mapped).await;
    assert!(
        matches!(found, Ok(None)),
        "{}: {found:?}",
        probe.what("reconcile of a record never written")
    );

    let before = subject.object_count();
    let mapped = map(&probe, &*importer, &lost);
    subject.set_faults(vec![
        subject.write_rule(FaultKind::DropAfterApply, Trigger::Nth(vec![1])),
    ]);
    let answer = importer.import(&lost, &mapped, None).await;
    let injected = subject.target.faults.injected().drop_after;
    subject.clear_faults();
    assert_eq!(
        injected,
        1,
        "{}: the WriteRequest matched no request",
        probe.what("dropping the write's answer")
    );
    probe.assert_objects(before + 1, "the lost write was applied");
    let outcome = match &answer {
        // The write may have happened: the engine reconciles before anything else.
        Err(error @ ProviderError::OutcomeUnknown { .. }) => {
            assert_clean_error(&probe, "the lost answer", error);
            match importer.reconcile(&lost, &mapped).await {
                Ok(Some(adopted)) => {
                    assert_clean_outcome(&probe, "the adopted outcome", &adopted);
                    adopted
                }
                Ok(None) => import(&probe, &*importer, &lost, &mapped, None).await,
                Err(error) => {
                    assert_clean_error(&probe, "reconcile", &error);
                    panic!("{}: {error}", probe.what("reconcile after a lost answer"))
                }
            }
        }
        // An idempotent write (an upsert): the provider says a plain retry is safe.
        Err(error @ ProviderError::Transient { .. }) => {
            assert_clean_error(&probe, "the lost answer", error);
            import(&probe, &*importer, &lost, &mapped, None).await
        }
        other => panic!(
            "{}: expected OutcomeUnknown (or Transient for an idempotent write), got {other:?}",
            probe.what("a write whose answer was lost")
        ),
    };
    assert_eq!(
        outcome.disposition,
        Disposition::Created,
        "{}",
        probe.what("the write this tool made, once resolved")
    );
    probe.assert_objects(before + 1, "after reconcile");
    assert!(
        verify(&probe, &*importer, &outcome.target).await.healthy(),
        "{}",
        probe.what("the reconciled object verifies")
    );
    assert_removed(&probe, &*importer, &outcome.target).await;
    probe.assert_objects(before, "after removing it");
    probe.assert_paced();
}

/// Verify reads an imported object back as healthy, and a removed one as unhealthy (an
/// answer, not an error).
pub async fn verify_reads_back(subject: &Subject) {
    let probe = Probe::start(subject, "verify_reads_back");
    let importer = probe.importer();
    let record = subject.record("conformance/verify", &canary("verify"));
    discover(&probe, &*importer, &[&record]).await;
    let mapped = map(&probe, &*importer, &record);
    let outcome = import(&probe, &*importer, &record, &mapped, None).await;
    let report = verify(&probe, &*importer, &outcome.target).await;
    assert!(
        report.healthy(),
        "{}: {report:?}",
        probe.what("after import")
    );
    assert!(!report.status.is_empty(), "{}", probe.what("status word"));
    assert_removed(&probe, &*importer, &outcome.target).await;
    let report = verify(&probe, &*importer, &outcome.target).await;
    assert!(
        !report.healthy(),
        "{}: {report:?}",
        probe.what("after removal")
    );
    probe.assert_paced();
}

/// `remove` takes away the one object it is given, nothing else, and says `AlreadyGone` when
/// it is asked again.
pub async fn rollback_removes_only_what_was_created(subject: &Subject) {
    let probe = Probe::start(subject, "rollback_removes_only_what_was_created");
    let importer = probe.importer();
    let first = subject.record("conformance/remove-first", &canary("remove-first"));
    let second = subject.record("conformance/remove-second", &canary("remove-second"));
    discover(&probe, &*importer, &[&first, &second]).await;
    let before = subject.object_count();
    let mapped = map(&probe, &*importer, &first);
    let first = import(&probe, &*importer, &first, &mapped, None).await;
    let mapped = map(&probe, &*importer, &second);
    let second = import(&probe, &*importer, &second, &mapped, None).await;
    probe.assert_objects(before + 2, "after two imports");
    assert_removed(&probe, &*importer, &first.target).await;
    probe.assert_objects(before + 1, "after removing one");
    assert!(
        verify(&probe, &*importer, &second.target).await.healthy(),
        "{}",
        probe.what("the other object is untouched")
    );
    let again = importer.remove(&first.target).await;
    assert!(
        matches!(again, Ok(Removal::AlreadyGone)),
        "{}: {again:?}",
        probe.what("removing it again")
    );
    probe.assert_objects(before + 1, "after removing it again");
    assert_removed(&probe, &*importer, &second.target).await;
    probe.assert_objects(before, "after removing both");
    probe.assert_paced();
}

/// No secret (the record's, with characters that JSON and URLs escape, or the vendor
/// credential) shows in any error, `Debug`, target ref or note, whatever the server does.
pub async fn every_error_scrubbed(subject: &Subject) {
    let probe = Probe::start(subject, "every_error_scrubbed");
    let importer = probe.importer();
    assert_no_canary(
        &probe.what("Debug of the importer"),
        &format!("{importer:?}"),
    );
    let identity = importer.identity();
    assert_no_canary(
        &probe.what("Debug of the identity"),
        &format!("{identity:?}"),
    );
    assert_no_canary(
        &probe.what("the identity's endpoints"),
        &identity.endpoints.join(" "),
    );
    let secret = format!("{}\"/+&= %", canary("scrub"));
    let record = subject.record("conformance/scrub", &secret);
    discover(&probe, &*importer, &[&record]).await;
    let mapped = map(&probe, &*importer, &record);
    let created = import(&probe, &*importer, &record, &mapped, None).await;
    let prior = PriorImport {
        target: created.target.clone(),
    };
    let faults = [
        FaultKind::ErrorBeforeApply,
        FaultKind::ErrorAfterApply,
        FaultKind::DropBeforeApply,
        FaultKind::DropAfterApply,
        FaultKind::TooManyRequests {
            retry_after_secs: Some(1),
        },
    ];
    for kind in faults {
        let step = format!("{kind:?} on every request");
        subject.set_faults(vec![FaultRule::new(
            None,
            "",
            kind.clone(),
            Trigger::Probability(1.0),
        )]);
        let fresh = probe.importer();
        let results: Vec<(&str, String)> = vec![
            (
                "discover",
                debug_err(discover_result(subject, &*fresh, &record).await),
            ),
            (
                "update",
                debug_err(importer.import(&record, &mapped, Some(&prior)).await),
            ),
            (
                "reconcile",
                debug_err(importer.reconcile(&record, &mapped).await),
            ),
            ("verify", debug_err(importer.verify(&created.target).await)),
            ("remove", debug_err(importer.remove(&created.target).await)),
        ];
        let injected = subject.target.faults.injected();
        subject.clear_faults();
        assert_ne!(
            injected,
            Default::default(),
            "{}: no fault fired",
            probe.what(&step)
        );
        for (call, text) in results {
            assert_no_canary(&probe.what(&format!("{call} with {step}")), &text);
        }
    }
    if let Some(refused) = subject.refused {
        let value = subject.checked(refused, "conformance/refused", &secret);
        let record = crate::files::record_at(&value, chrono::Utc::now());
        discover(&probe, &*importer, &[&record]).await;
        let mapped = map(&probe, &*importer, &record);
        match importer.import(&record, &mapped, None).await {
            Err(error @ ProviderError::Rejected { .. }) => {
                assert_clean_error(&probe, "the target's refusal", &error)
            }
            other => panic!(
                "{}: expected Rejected, got {other:?}",
                probe.what("a record the target refuses")
            ),
        }
    }
    // A fault may have removed the object (remove applied, answer lost): clean up either way.
    let removed = importer.remove(&created.target).await;
    assert!(
        matches!(removed, Ok(Removal::Removed | Removal::AlreadyGone)),
        "{}: {removed:?}",
        probe.what("cleanup")
    );
    probe.assert_paced();
}

/// Every request the server sees was preceded by a gate permit, also when records are
/// imported, verified and removed concurrently.
pub async fn every_request_paced(subject: &Subject) {
    let probe = Probe::start(subject, "every_request_paced");
    let importer = probe.importer();
    let records: Vec<CredentialRecord> = (0..4)
        .map(|i| subject.record(&format!("conformance/paced-{i}"), &canary("paced")))
        .collect();
    let refs: Vec<&CredentialRecord> = records.iter().collect();
    discover(&probe, &*importer, &refs).await;
    let before = subject.object_count();
    let mapped: Vec<MappedRecord> = records
        .iter()
        .map(|record| map(&probe, &*importer, record))
        .collect();
    let outcomes = join_all(
        records
            .iter()
            .zip(&mapped)
            .map(|(record, mapped)| import(&probe, &*importer, record, mapped, None)),
    )
    .await;
    probe.assert_objects(before + records.len(), "after concurrent imports");
    let reports = join_all(
        outcomes
            .iter()
            .map(|outcome| verify(&probe, &*importer, &outcome.target)),
    )
    .await;
    assert!(
        reports.iter().all(|r| r.healthy()),
        "{}",
        probe.what("verify")
    );
    join_all(
        outcomes
            .iter()
            .map(|outcome| assert_removed(&probe, &*importer, &outcome.target)),
    )
    .await;
    probe.assert_objects(before, "after concurrent removals");
    probe.assert_paced();
}

/// Imports, checking that neither the error nor the outcome holds a secret.
pub(super) async fn import(
    probe: &Probe<'_>,
    importer: &dyn AuthImporter,
    record: &CredentialRecord,
    mapped: &MappedRecord,
    prior: Option<&PriorImport>,
) -> ImportOutcome {
    match importer.import(record, mapped, prior).await {
        Ok(outcome) => {
            assert_clean_outcome(probe, "import outcome", &outcome);
            outcome
        }
        Err(error) => {
            assert_clean_error(probe, "import", &error);
            panic!(
                "{}: {error}",
                probe.what(&format!("import of {}", record.id))
            )
        }
    }
}

pub(super) async fn verify(
    probe: &Probe<'_>,
    importer: &dyn AuthImporter,
    target: &TargetRef,
) -> VerifyReport {
    match importer.verify(target).await {
        Ok(report) => {
            let printed = serde_json::to_string(&report).unwrap_or_default();
            assert_no_canary(
                &probe.what("verify report"),
                &format!("{printed} {report:?}"),
            );
            report
        }
        Err(error) => {
            assert_clean_error(probe, "verify", &error);
            panic!("{}: {error}", probe.what("verify"))
        }
    }
}

pub(super) async fn assert_removed(
    probe: &Probe<'_>,
    importer: &dyn AuthImporter,
    target: &TargetRef,
) {
    match importer.remove(target).await {
        Ok(Removal::Removed) => {}
        Ok(Removal::AlreadyGone) => panic!("{}: already gone", probe.what("remove")),
        Err(error) => {
            assert_clean_error(probe, "remove", &error);
            panic!("{}: {error}", probe.what("remove"))
        }
    }
}

fn assert_clean_outcome(probe: &Probe<'_>, what: &str, outcome: &ImportOutcome) {
    assert!(
        !outcome.target.0.is_empty(),
        "{}: an empty target ref",
        probe.what(what)
    );
    let stored = Value::Object(outcome.target.0.clone()).to_string();
    assert_no_canary(&probe.what(&format!("{what}'s target ref")), &stored);
    assert_no_canary(&probe.what(what), &format!("{outcome:?}"));
}

fn assert_clean_error(probe: &Probe<'_>, what: &str, error: &ProviderError) {
    assert_no_canary(
        &probe.what(&format!("{what} error")),
        &format!("{error} {error:?}"),
    );
}

async fn discover_result(
    subject: &Subject,
    importer: &dyn AuthImporter,
    record: &CredentialRecord,
) -> Result<(), ProviderError> {
    let key = authport_core::DiscoveryKey::for_record(record, subject.name());
    importer.discover(&[key]).await
}

/// Everything printable about a result: `Display` and `Debug` of an error, `Debug` of a value.
fn debug_err<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(error) => format!("{error} {error:?}"),
    }
}
