//! Configuration refusals: base URLs and regions (no server needed).

use authport_testkit::{CANARY, canary, context};

// Links the provider so `find_provider("tray")` sees its registration.
use authport_tray as _;

/// Builds the provider with the master token and one more variable; returns the refusal.
fn refusal(setting: &str, value: &str) -> String {
    let built = context()
        .var("TRAY_MASTER_TOKEN", &canary("tray-master-token"))
        .var(setting, value)
        .try_provider("tray");
    match built {
        Ok(provider) => panic!("{setting}={value} was accepted: {provider:?}"),
        Err(error) => error.message,
    }
}

#[test]
fn plain_http_is_refused_for_remote_hosts() {
    let message = refusal("TRAY_API_URL", "http://api.tray.io");
    assert!(message.contains("must use https"), "{message}");
    assert!(!message.contains(CANARY), "{message}");
}

/// Issue 8 item 11: base URLs with credentials, a query or a fragment are refused, and the
/// message names the setting, never the value.
#[test]
fn tray_urls_with_credentials_or_a_query_are_refused_without_quoting_them() {
    for (setting, value) in [
        ("TRAY_API_URL", "https://user:hunter2pw@api.tray.io"),
        ("TRAY_API_URL", "https://hunter2pw@api.tray.io"),
        ("TRAY_API_URL", "https://api.tray.io/?token=hunter2pw"),
        ("TRAY_GRAPHQL_URL", "https://tray.io/graphql?key=hunter2pw"),
        ("TRAY_GRAPHQL_URL", "https://tray.io/graphql#hunter2pw"),
        ("TRAY_REGION", "hunter2pw"),
    ] {
        let message = refusal(setting, value);
        assert!(message.contains(setting), "{value}: {message}");
        assert!(
            !message.contains("hunter2pw") && !message.contains(CANARY),
            "{value}: {message}"
        );
    }
}

#[test]
fn loopback_urls_may_be_plain_http_in_any_case() {
    for url in ["http://127.0.0.1:9", "http://LOCALHOST:9", "http://[::1]:9"] {
        context()
            .var("TRAY_MASTER_TOKEN", &canary("tray-master-token"))
            .var("TRAY_API_URL", url)
            .var("TRAY_GRAPHQL_URL", &format!("{url}/graphql"))
            .provider("tray");
    }
}

/// Builds the provider with this `[tray]` section; returns the refusal.
fn solution_refusal(section: serde_json::Value) -> String {
    let built = context()
        .var("TRAY_MASTER_TOKEN", &canary("tray-master-token"))
        .config(section)
        .try_provider("tray");
    match built {
        Ok(provider) => panic!("accepted: {provider:?}"),
        Err(error) => error.message,
    }
}

/// Issue 11: the one-slot form of earlier releases is refused with how to migrate it, and the
/// message quotes none of the configured values.
#[test]
fn the_old_single_slot_solution_form_is_refused_with_a_migration_hint() {
    let message = solution_refusal(serde_json::json!({"solution": {
        "solution_id": "s-hunter2pw", "auth_external_id": "external_hunter2pw_authentication",
        "services": ["slack"]}}));
    assert!(message.contains("slots = {"), "{message}");
    assert!(message.contains("case-sensitive"), "{message}");
    assert!(!message.contains("hunter2pw"), "{message}");
}

#[test]
fn solution_slots_are_checked() {
    for (section, expect) in [
        (serde_json::json!({"solution_id": "s"}), "needs `slots`"),
        (
            serde_json::json!({"solution_id": "s", "slots": {"a": "slack", "b": "slack"}}),
            "one slot per service",
        ),
        (
            serde_json::json!({"solution_id": "s", "slots": {"a": "slack"},
                "instance_name_template": "{record.id}"}),
            "owner fields only",
        ),
        (
            serde_json::json!({"solution_id": "s", "slots": {"a": "slack"}, "nope": 1}),
            "invalid [tray] config: `solution` has a key that is not a setting",
        ),
    ] {
        let message = solution_refusal(serde_json::json!({ "solution": section }));
        assert!(message.contains(expect), "{expect}: {message}");
        // An unknown key could be a secret pasted in the wrong place: never echoed.
        assert!(!message.contains("nope"), "{message}");
    }
}

/// Issue 17 item 16: a config slot's value may be a secret a workflow needs; the solution
/// step's `Debug` names the slots, never their values.
#[test]
fn debug_of_the_solution_step_never_shows_a_config_value() {
    let secret = canary("tray-config-slot-value");
    let built = context()
        .var("TRAY_MASTER_TOKEN", &canary("tray-master-token"))
        .config(serde_json::json!({"solution": {
            "solution_id": "s", "slots": {"external_slack": "slack"},
            "config_values": {"external_api_key": secret}}}))
        .build();
    let config = authport_tray::TrayConfig::from_context(&built).expect("the config is valid");
    let solution = config.solution.expect("a solution step");
    let shown = format!("{solution:?} {config:?}", config = built);
    assert!(shown.contains("external_api_key"), "{shown}");
    assert!(!shown.contains(CANARY), "{shown}");
}

/// Issue 18: the kit's settings loader reads `[tray]`: the master token is trimmed and refused
/// when it could not travel in a header, a URL's problem names where it came from, and an
/// unknown key is counted, never named.
#[test]
fn the_master_token_and_urls_are_read_by_the_kits_loader() {
    let token = canary("tray-master-token");
    context()
        .var("TRAY_MASTER_TOKEN", &format!(" {token}\n"))
        .provider("tray");
    let refusal = |builder: authport_testkit::ContextBuilder| match builder.try_provider("tray") {
        Ok(provider) => panic!("accepted: {provider:?}"),
        Err(error) => error.message,
    };
    let injected = format!("{token}\r\nX-Injected: 1");
    for (builder, expect) in [
        (
            context().var("TRAY_MASTER_TOKEN", &injected),
            "printable ASCII",
        ),
        (context(), "TRAY_MASTER_TOKEN"),
        (
            context().config(
                serde_json::json!({"master_token": token, "api_url": "http://api.tray.io"}),
            ),
            "[tray] api_url must use https",
        ),
        (
            context().config(serde_json::json!({"master_token": token, CANARY: 1})),
            "not a setting",
        ),
    ] {
        let message = refusal(builder);
        assert!(message.contains(expect), "{expect}: {message}");
        assert!(!message.contains(CANARY), "{message}");
    }
}
