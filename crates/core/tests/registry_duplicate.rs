//! Two providers registered under one name: the registry refuses to list them. This lives in a
//! test binary of its own because the duplicate poisons every registry call in the binary.

use authport_core::{
    AuthImporter, BuildContext, ConfigError, ProviderLimits, ProviderPlugin, providers,
};

const LIMITS: ProviderLimits = ProviderLimits {
    rate: authport_core::VendorRate::Documented {
        per_second: 1.0,
        burst: 1,
    },
    default_concurrency: 1,
};

fn build_nothing(_context: &BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError> {
    Err(ConfigError::new("not buildable"))
}

inventory::submit! {
    ProviderPlugin { name: "twin", description: "first", limits: LIMITS, build: build_nothing, capabilities: authport_core::Capabilities::NONE }
}
inventory::submit! {
    ProviderPlugin { name: "twin", description: "second", limits: LIMITS, build: build_nothing, capabilities: authport_core::Capabilities::NONE }
}

#[test]
fn a_duplicate_name_panics_with_a_clear_message() {
    let outcome = std::panic::catch_unwind(providers);
    let panic = outcome.expect_err("a duplicate provider name must panic");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert_eq!(
        message,
        "two providers are registered under the name `twin`; provider names must be unique"
    );
}
