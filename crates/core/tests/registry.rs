//! The plugin registry, with a provider registered from this test crate.

use authport_core::{
    AuthImporter, BuildContext, ConfigError, CredentialRecord, DiscoveryKey, ImportOutcome,
    MappedRecord, MappingError, PriorImport, ProviderError, ProviderLimits, ProviderPlugin,
    Removal, SecretString, TargetIdentity, TargetRef, VerifyReport, find_provider, provider_names,
};

/// A provider that refuses everything: enough to prove registration and lookup.
#[derive(Debug)]
struct Refusing;

#[async_trait::async_trait]
impl AuthImporter for Refusing {
    async fn discover(&self, _keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        Ok(())
    }
    fn map(&self, record: &CredentialRecord) -> Result<MappedRecord, MappingError> {
        Err(MappingError::new(
            "service",
            format!("`{}` is not supported", record.service),
        ))
    }
    async fn import(
        &self,
        _record: &CredentialRecord,
        _mapped: &MappedRecord,
        _prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        Err(ProviderError::rejected("refusing"))
    }
    async fn reconcile(
        &self,
        _record: &CredentialRecord,
        _mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError> {
        Ok(None)
    }
    async fn verify(&self, _target: &TargetRef) -> Result<VerifyReport, ProviderError> {
        Err(ProviderError::rejected("refusing"))
    }
    async fn remove(&self, _target: &TargetRef) -> Result<Removal, ProviderError> {
        Ok(Removal::AlreadyGone)
    }
    fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            endpoints: vec!["http://127.0.0.1:9".to_owned()],
            account: None,
            credential: SecretString::from("refusing-credential"),
        }
    }
}

const ONE_PER_SECOND: ProviderLimits = ProviderLimits {
    rate: authport_core::VendorRate::Documented {
        per_second: 1.0,
        burst: 1,
    },
    default_concurrency: 1,
};

fn build_refusing(_context: &BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError> {
    Ok(Box::new(Refusing))
}

inventory::submit! {
    ProviderPlugin { name: "zzz-refusing", description: "refuses everything", limits: ONE_PER_SECOND, build: build_refusing, capabilities: authport_core::Capabilities::NONE }
}
inventory::submit! {
    ProviderPlugin { name: "aaa-refusing", description: "refuses everything too", limits: ONE_PER_SECOND, build: build_refusing, capabilities: authport_core::Capabilities::NONE }
}

#[test]
fn registered_providers_are_listed_sorted() {
    assert_eq!(provider_names(), vec!["aaa-refusing", "zzz-refusing"]);
}

#[test]
fn a_provider_is_found_by_name_and_builds() {
    let plugin = find_provider("zzz-refusing").unwrap();
    assert_eq!(plugin.description, "refuses everything");
    let context = BuildContext {
        config: serde_json::Value::Null,
        env: authport_core::EnvSnapshot::default(),
        memo: std::sync::Arc::new(authport_core::InMemoryMemo::default()),
        gate: std::sync::Arc::new(authport_core::Ungated),
        request_timeout: std::time::Duration::from_secs(1),
    };
    assert_eq!(plugin.limits.rate.burst(), Some(1));
    let importer = (plugin.build)(&context).unwrap();
    let identity = importer.identity();
    assert_eq!(identity.endpoints, vec!["http://127.0.0.1:9".to_owned()]);
    let debug = format!("{identity:?}");
    assert!(debug.contains("127.0.0.1:9"), "{debug}");
    assert!(!debug.contains("refusing-credential"), "{debug}");
}

#[test]
fn an_unknown_provider_lists_the_valid_ones() {
    let error = find_provider("tary").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown provider `tary`; registered providers: aaa-refusing, zzz-refusing"
    );
}
