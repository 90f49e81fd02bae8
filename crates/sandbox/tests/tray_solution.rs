//! The emulator's two-slot solution (two auth slots and a config slot): case-sensitive slots,
//! and enabling with an empty slot as the SDL's `errorOnEnablingWithMissingValues` reads.

use authport_sandbox::tray::stable_uuid;
use common::Tray;
use serde_json::json;

use crate::common;

const CREATE: &str = "mutation ($solutionId: ID!, $instanceName: String!, $authValues: [AuthValue!], $configValues: [ConfigValue!]) { createSolutionInstance(input: {solutionId: $solutionId, instanceName: $instanceName, authValues: $authValues, configValues: $configValues}) { solutionInstance { id enabled } } }";
const ENABLE: &str = "mutation ($id: ID!, $strict: Boolean) { updateSolutionInstance(input: {solutionInstanceId: $id, enabled: true, errorOnEnablingWithMissingValues: $strict}) { solutionInstance { id enabled } } }";

/// A user with a token and one auth per service given: (token, auth ids).
async fn user_with_auths(tray: &Tray, owner: &str, services: &[&str]) -> (String, Vec<String>) {
    let token = tray.user_token(owner).await;
    let mut auths = Vec::new();
    for service in services {
        let (service_id, environment) = match *service {
            "slack" => (
                stable_uuid("service:slack:4"),
                authport_sandbox::tray::environment_id("slack", 4, "acme slack oauth"),
            ),
            _ => (
                stable_uuid("service:mailchimp:1"),
                authport_sandbox::tray::environment_id("mailchimp", 1, "mailchimp acme oauth"),
            ),
        };
        let answer = tray
            .graphql(
                &token,
                "mutation ($name: String!, $serviceId: String!, $serviceEnvironmentId: String!, $data: Json!) { createUserAuthentication(input: {name: $name, serviceId: $serviceId, serviceEnvironmentId: $serviceEnvironmentId, data: $data, scopes: []}) { authenticationId } }",
                json!({"name": format!("{owner} {service}"), "serviceId": service_id,
                    "serviceEnvironmentId": environment, "data": "{\"access_token\":\"t\"}"}),
            )
            .await;
        auths.push(
            answer["data"]["createUserAuthentication"]["authenticationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{answer}"))
                .to_owned(),
        );
    }
    (token, auths)
}

#[tokio::test]
async fn enabling_with_an_empty_slot_errors_only_when_asked_to() {
    let tray = Tray::start().await;
    let solution_id = stable_uuid("solution:acme-mailchimp-to-slack");
    let (token, auths) = user_with_auths(&tray, "acme-42", &["mailchimp", "slack"]).await;

    // A differently cased slot external id fails the create (Tray's import guide).
    let wrong = tray
        .graphql(
            &token,
            CREATE,
            json!({"solutionId": solution_id, "instanceName": "x",
                "authValues": [{"externalId": "External_Mailchimp_Authentication", "authId": auths[0]}]}),
        )
        .await;
    assert!(wrong["errors"][0]["message"].is_string(), "{wrong}");
    assert!(tray.sandbox.tray.instances().is_empty());

    // Only the Mailchimp slot filled, no channel: an instance with empty slots.
    let half = tray
        .graphql(
            &token,
            CREATE,
            json!({"solutionId": solution_id, "instanceName": "half",
                "authValues": [{"externalId": "external_mailchimp_authentication", "authId": auths[0]}]}),
        )
        .await;
    let half_id = half["data"]["createSolutionInstance"]["solutionInstance"]["id"].clone();
    assert_eq!(
        half["data"]["createSolutionInstance"]["solutionInstance"]["enabled"],
        json!(false),
        "new instances start disabled"
    );
    let strict = tray
        .graphql(&token, ENABLE, json!({"id": half_id, "strict": true}))
        .await;
    assert_eq!(
        strict["errors"][0]["message"],
        json!("Solution instance has missing values"),
        "{strict}"
    );
    assert!(!tray.sandbox.tray.instances()[0].enabled, "nothing changed");
    // Without the flag Tray enables it anyway, empty slot and all: clients must not enable
    // an instance before every slot is filled.
    let lax = tray.graphql(&token, ENABLE, json!({"id": half_id})).await;
    assert_eq!(
        lax["data"]["updateSolutionInstance"]["solutionInstance"]["enabled"],
        json!(true),
        "{lax}"
    );

    // Every slot filled: the strict enable succeeds.
    let full = tray
        .graphql(
            &token,
            CREATE,
            json!({"solutionId": solution_id, "instanceName": "full",
                "authValues": [{"externalId": "external_mailchimp_authentication", "authId": auths[0]},
                               {"externalId": "external_slack_authentication", "authId": auths[1]}],
                "configValues": [{"externalId": "external_slack_channel", "value": "\"#sales\""}]}),
        )
        .await;
    let full_id = full["data"]["createSolutionInstance"]["solutionInstance"]["id"].clone();
    let strict = tray
        .graphql(&token, ENABLE, json!({"id": full_id, "strict": true}))
        .await;
    assert_eq!(
        strict["data"]["updateSolutionInstance"]["solutionInstance"]["enabled"],
        json!(true),
        "{strict}"
    );
    let stored = tray
        .sandbox
        .tray
        .instances()
        .into_iter()
        .find(|i| i.name == "full")
        .unwrap();
    assert_eq!(stored.auth_values.len(), 2);
    assert_eq!(
        stored.config_values,
        vec![(
            "external_slack_channel".to_owned(),
            Some(json!("\"#sales\""))
        )]
    );
    tray.sandbox.tray.wait_for_instances(2).await;
    tray.sandbox.stop().await;
}
