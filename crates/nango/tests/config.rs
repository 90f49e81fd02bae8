//! `[nango]` and `NANGO_*`: the environment wins, base URL rules, unknown keys, allow-list
//! `Debug`, and the plugin's default rate (the free plan's 200 requests per minute).

use authport_core::{EnvSnapshot, find_provider};
use authport_nango::config::{DEFAULT_API_URL, NangoConfig};
use authport_testkit::{assert_no_canary, canary};
use serde_json::{Value, json};

fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
    EnvSnapshot::from_pairs(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn the_environment_wins_and_the_cloud_is_the_default() {
    let key = canary("nango-key");
    let section = json!({"secret_key": "file-key", "api_url": "https://nango.internal.example"});
    let config = NangoConfig::from_sources(&section, &env(&[("NANGO_SECRET_KEY", &key)])).unwrap();
    assert_eq!(config.api_base(), "https://nango.internal.example");
    let config =
        NangoConfig::from_sources(&Value::Null, &env(&[("NANGO_SECRET_KEY", &key)])).unwrap();
    assert_eq!(config.api_base(), DEFAULT_API_URL);
    let config = NangoConfig::from_sources(
        &section,
        &env(&[
            ("NANGO_SECRET_KEY", &key),
            ("NANGO_API_URL", "http://localhost:3003"),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.api_base(),
        "http://localhost:3003",
        "self-hosted on loopback"
    );
    assert_no_canary("Debug of the config", &format!("{config:?}"));
    assert!(!format!("{config:?}").contains("file-key"));
}

#[test]
fn bad_settings_are_refused_without_quoting_values() {
    let key = canary("nango-key");
    let check = |section: Value, pairs: &[(&str, &str)], words: &str| {
        let error = NangoConfig::from_sources(&section, &env(pairs)).expect_err("refused");
        let text = error.to_string();
        assert!(text.contains(words), "{text}");
        assert_no_canary("config error", &text);
        assert!(!text.contains("SECRET-VALUE"), "{text}");
    };
    check(Value::Null, &[], "NANGO_SECRET_KEY");
    check(json!({"secret_key": ""}), &[], "NANGO_SECRET_KEY");
    check(
        json!({}),
        &[
            ("NANGO_SECRET_KEY", &key),
            ("NANGO_API_URL", "http://nango.example.com"),
        ],
        "NANGO_API_URL",
    );
    check(
        json!({"api_url": "https://user:SECRET-VALUE@nango.example"}),
        &[("NANGO_SECRET_KEY", &key)],
        "api_url",
    );
    check(
        json!({"SECRET-VALUE": 1}),
        &[("NANGO_SECRET_KEY", &key)],
        "not a setting",
    );
    check(json!({"secret_key": 5}), &[], "secret_key must be a string");
    check(
        json!({"overwrite_existing": "SECRET-VALUE"}),
        &[("NANGO_SECRET_KEY", &key)],
        "overwrite_existing",
    );
    check(
        json!({"integrations": {"aws": {"custom": {"type": "API_KEY", "fields": {"a": "password"}}}}}),
        &[("NANGO_SECRET_KEY", &key)],
        "[nango.integrations.aws] custom",
    );
    check(json!({"secret_key": "has space"}), &[], "printable ASCII");
}

#[test]
fn the_plugin_never_exceeds_the_free_plans_200_per_minute() {
    let plugin = find_provider("nango").expect("registered");
    let limits = plugin.limits;
    assert_eq!(limits, authport_nango::LIMITS);
    let authport_core::VendorRate::Documented { per_second, burst } = limits.rate else {
        panic!("Nango documents its limit");
    };
    // A token bucket sends at most burst + rate x 60 in any minute.
    let most_in_a_minute = f64::from(burst) + per_second * 60.0;
    assert!(most_in_a_minute <= 200.0 + 1e-9, "{most_in_a_minute}");
    assert!(
        most_in_a_minute >= 195.0,
        "close to the plan's figure: {most_in_a_minute}"
    );
}
