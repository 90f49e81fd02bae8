//! The Nango exporter against the sandbox's emulator over loopback: connections listed page
//! by page, each read with `refresh_token=true`, typed into v1 records.

use std::sync::Arc;

use authport_core::{
    Auth, AuthExporter, AuthImporter, CredentialRecord, DiscoveryKey, ExportFilter, ExposeSecret,
    record_to_v1_json,
};
use authport_testkit::{
    Collected, CountingGate, Sandbox, assert_no_canary, canary, now, record, sandbox,
};
use serde_json::{Map, Value, json};

// Links this crate, so its `inventory::submit!` registers "nango".
use authport_nango as _;

fn exporter(sandbox: &Sandbox, gate: Arc<CountingGate>) -> Box<dyn AuthExporter> {
    let plugin = authport_core::find_exporter("nango").unwrap();
    (plugin.build)(&sandbox.context().gate(gate).build()).unwrap()
}

async fn import(sandbox: &Sandbox, records: &[CredentialRecord]) {
    let importer: Box<dyn AuthImporter> = sandbox.context().provider("nango");
    let keys: Vec<DiscoveryKey> = records
        .iter()
        .map(|r| DiscoveryKey::for_record(r, "nango"))
        .collect();
    importer.discover(&keys).await.unwrap();
    for record in records {
        let mapped = importer.map(record).unwrap();
        importer.import(record, &mapped, None).await.unwrap();
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn three(secret: &str) -> Vec<CredentialRecord> {
    vec![
        record(&json!({"id": "acme-42/hubspot",
            "owner": {"id": "acme-42", "email": "ops@acme.example"}, "service": "hubspot",
            "auth": {"type": "oauth2", "access_token": format!("{secret}-access"),
                "refresh_token": format!("{secret}-refresh"), "expires_at": "2030-01-01T00:00:00Z"},
            "settings": {"portal_id": "123"}, "metadata": {"plan": "gold"}})),
        record(
            &json!({"id": "globex-7/greenhouse", "owner": {"id": "globex-7"},
            "service": "greenhouse", "auth": {"type": "api_key", "api_key": format!("{secret}-key")}}),
        ),
        record(
            &json!({"id": "initech-3/zendesk", "owner": {"id": "initech-3"},
            "service": "zendesk", "settings": {"subdomain": "initech"},
            "auth": {"type": "basic", "username": "it@initech.example", "password": format!("{secret}-pw")}}),
        ),
    ]
}

fn owned_by<'a>(records: &'a [CredentialRecord], owner: &str) -> &'a CredentialRecord {
    records
        .iter()
        .find(|r| r.owner.id == owner)
        .unwrap_or_else(|| panic!("no record of {owner}"))
}

#[tokio::test]
async fn every_connection_comes_back_typed_with_its_refresh_token_and_reads_as_v1() {
    let sandbox = sandbox().await;
    let secret = canary("nango-export");
    import(&sandbox, &three(&secret)).await;
    // Connected in Nango itself, of a type with no canonical kind and no owner tag.
    let oauth1 = canary("oauth1");
    sandbox.nango.precreate_connection(
        "hubspot",
        "legacy-1",
        object(json!({"type": "OAUTH1", "oauth_token": oauth1, "oauth_token_secret": format!("{oauth1}-s")})),
    );
    sandbox.nango.precreate_connection(
        "hubspot",
        "exhausted-1",
        object(json!({"type": "OAUTH2", "access_token": canary("gone")})),
    );
    sandbox.nango.exhaust_refresh("hubspot", "exhausted-1");

    let gate = CountingGate::new();
    let before = sandbox.requests_seen();
    let mut sink = Collected::default();
    let counts = exporter(&sandbox, gate.clone())
        .export(&ExportFilter::default(), &mut sink)
        .await
        .unwrap();
    assert_eq!(gate.count(), sandbox.requests_seen() - before);
    assert_eq!(counts.objects, 5);
    assert_eq!(sink.records.len(), 4);
    assert_eq!(sink.failures.len(), 1);
    assert_eq!(sink.failures[0].0, "hubspot/exhausted-1");
    assert!(sink.failures[0].1.message().contains("424"));

    let hubspot = owned_by(&sink.records, "acme-42");
    assert_eq!(hubspot.service, "hubspot");
    assert_eq!(hubspot.owner.email.as_deref(), Some("ops@acme.example"));
    let Auth::OAuth2(oauth) = &hubspot.auth else {
        panic!("expected oauth2, got {:?}", hubspot.auth)
    };
    assert_eq!(
        oauth.access_token.expose_secret(),
        format!("{secret}-access")
    );
    assert_eq!(
        oauth
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        Some(format!("{secret}-refresh")),
        "read with refresh_token=true"
    );
    assert_eq!(
        oauth.expiry.unwrap().expires_at.to_rfc3339(),
        "2030-01-01T00:00:00+00:00"
    );
    assert_eq!(hubspot.settings["portal_id"], "123");
    assert_eq!(hubspot.metadata["plan"], "gold");
    assert_eq!(hubspot.targets["nango"]["provider_config_key"], "hubspot");
    assert_eq!(
        hubspot.id,
        format!(
            "hubspot/{}",
            hubspot.targets["nango"]["connection_id"].as_str().unwrap()
        )
    );

    let greenhouse = owned_by(&sink.records, "globex-7");
    match &greenhouse.auth {
        Auth::ApiKey { api_key } => assert_eq!(api_key.expose_secret(), format!("{secret}-key")),
        other => panic!("expected api_key, got {other:?}"),
    }
    let zendesk = owned_by(&sink.records, "initech-3");
    match &zendesk.auth {
        Auth::Basic { username, password } => {
            assert_eq!(username.expose_secret(), "it@initech.example");
            assert_eq!(password.expose_secret(), format!("{secret}-pw"));
        }
        other => panic!("expected basic, got {other:?}"),
    }
    assert_eq!(zendesk.settings["subdomain"], "initech");

    // No owner tag: the connection id stands in, with a warning; OAUTH1 is custom, with one.
    let legacy = owned_by(&sink.records, "legacy-1");
    let Auth::Custom { fields } = &legacy.auth else {
        panic!("expected custom, got {:?}", legacy.auth)
    };
    assert_eq!(fields["oauth_token"].expose_secret(), oauth1);
    assert_eq!(
        fields["oauth_token_secret"].expose_secret(),
        format!("{oauth1}-s")
    );
    let fields_warned: Vec<&str> = legacy.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields_warned, ["owner.id", "auth"]);

    for record in &sink.records {
        let json = record_to_v1_json(record);
        let again = authport_core::record::from_json_located(json.expose(), now()).unwrap();
        assert_eq!(again.secret_values(), record.secret_values());
        assert_no_canary("record Debug", &format!("{record:?}"));
        for warning in &record.warnings {
            assert_no_canary("warning", &warning.to_string());
        }
    }
    for (_, error) in &sink.failures {
        assert_no_canary("failure", &error.to_string());
    }
}

#[tokio::test]
async fn the_owner_filter_lists_by_the_end_user_tag() {
    let sandbox = sandbox().await;
    import(&sandbox, &three(&canary("filter"))).await;
    let mut sink = Collected::default();
    let filter = ExportFilter {
        owners: vec!["globex-7".into(), "initech-3".into(), "globex-7".into()],
    };
    let counts = exporter(&sandbox, CountingGate::new())
        .export(&filter, &mut sink)
        .await
        .unwrap();
    let mut owners: Vec<&str> = sink.records.iter().map(|r| r.owner.id.as_str()).collect();
    owners.sort_unstable();
    assert_eq!(owners, ["globex-7", "initech-3"]);
    assert_eq!(counts.owners, 2);
}

#[tokio::test]
async fn connections_are_listed_page_by_page_and_each_read_once() {
    let sandbox = sandbox().await;
    for n in 0..250 {
        sandbox.nango.precreate_connection(
            "greenhouse",
            &format!("paged-{n:03}"),
            object(json!({"type": "API_KEY", "apiKey": format!("key-{n}")})),
        );
    }
    let gate = CountingGate::new();
    let mut sink = Collected::default();
    exporter(&sandbox, gate.clone())
        .export(&ExportFilter::default(), &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.records.len(), 250);
    let mut ids: Vec<&str> = sink.records.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 250, "every connection exactly once");
    // Three pages of 100 (the last one short) and one read per connection.
    assert_eq!(gate.count(), 3 + 250);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_waited_out_and_retried() {
    use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
    let sandbox = sandbox().await;
    import(&sandbox, &three(&canary("retry"))).await;
    sandbox.set_faults(FaultPlan {
        rules: vec![
            FaultRule::new(
                Some("GET"),
                "/connections",
                FaultKind::TooManyRequests {
                    retry_after_secs: Some(0),
                },
                Trigger::Burst { first: 1, count: 2 },
            ),
            FaultRule::new(
                Some("GET"),
                "/connections/",
                FaultKind::ErrorBeforeApply,
                Trigger::Nth(vec![2]),
            ),
        ],
        ..FaultPlan::default()
    });
    let mut sink = Collected::default();
    exporter(&sandbox, CountingGate::new())
        .export(&ExportFilter::default(), &mut sink)
        .await
        .unwrap();
    assert!(sink.failures.is_empty(), "{:?}", sink.failures);
    assert_eq!(sink.records.len(), 3);
    assert!(sandbox.faults.injected().too_many_requests >= 2);
    assert_eq!(sandbox.faults.injected().error_before, 1);
}

#[tokio::test]
async fn an_owner_with_no_connection_is_named_as_a_failure_not_passed_over() {
    let sandbox = sandbox().await;
    import(&sandbox, &three(&canary("nobody"))).await;
    let mut sink = Collected::default();
    let filter = ExportFilter {
        owners: vec!["globex-7".into(), "nobody".into(), "nobody".into()],
    };
    let counts = exporter(&sandbox, CountingGate::new())
        .export(&filter, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.records.len(), 1);
    let failed: Vec<(&str, String)> = sink
        .failures
        .iter()
        .map(|(owner, error)| (owner.as_str(), error.to_string()))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "nobody");
    assert!(
        failed[0]
            .1
            .contains("no connection tagged with this end_user_id"),
        "{failed:?}"
    );
    assert_eq!(counts.objects, 2);
}
