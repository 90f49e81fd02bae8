//! The emulator's two-slot solution (two auth slots and a config slot): case-sensitive slots,
//! and enabling with an empty slot as the SDL's `errorOnEnablingWithMissingValues` reads.

use authport_sandbox::tray::{DEFAULT_MASTER_TOKEN, stable_uuid};
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn call(&self, bearer: &str, query: &str, variables: Value) -> Value {
        self.http
            .post(&self.url)
            .header("authorization", format!("Bearer {bearer}"))
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

const CREATE: &str = "mutation ($solutionId: ID!, $instanceName: String!, $authValues: [AuthValue!], $configValues: [ConfigValue!]) { createSolutionInstance(input: {solutionId: $solutionId, instanceName: $instanceName, authValues: $authValues, configValues: $configValues}) { solutionInstance { id enabled } } }";
const ENABLE: &str = "mutation ($id: ID!, $strict: Boolean) { updateSolutionInstance(input: {solutionInstanceId: $id, enabled: true, errorOnEnablingWithMissingValues: $strict}) { solutionInstance { id enabled } } }";

/// A user with a token and one auth per service given: (token, auth ids).
async fn user_with_auths(client: &Client, owner: &str, services: &[&str]) -> (String, Vec<String>) {
    let created = client
        .call(
            DEFAULT_MASTER_TOKEN,
            "mutation ($name: String!, $externalUserId: String!) { createExternalUser(input: {name: $name, externalUserId: $externalUserId}) { userId } }",
            json!({"name": owner, "externalUserId": owner}),
        )
        .await;
    let user_id = created["data"]["createExternalUser"]["userId"].clone();
    let token = client
        .call(
            DEFAULT_MASTER_TOKEN,
            "mutation ($userId: ID!) { authorize(input: {userId: $userId}) { accessToken } }",
            json!({"userId": user_id}),
        )
        .await["data"]["authorize"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
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
        let answer = client
            .call(
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
    let sandbox = authport_sandbox::start(Default::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        url: format!("{}/graphql", sandbox.base_url()),
    };
    let solution_id = stable_uuid("solution:acme-mailchimp-to-slack");
    let (token, auths) = user_with_auths(&client, "acme-42", &["mailchimp", "slack"]).await;

    // A differently cased slot external id fails the create (Tray's import guide).
    let wrong = client
        .call(
            &token,
            CREATE,
            json!({"solutionId": solution_id, "instanceName": "x",
                "authValues": [{"externalId": "External_Mailchimp_Authentication", "authId": auths[0]}]}),
        )
        .await;
    assert!(wrong["errors"][0]["message"].is_string(), "{wrong}");
    assert!(sandbox.tray.instances().is_empty());

    // Only the Mailchimp slot filled, no channel: an instance with empty slots.
    let half = client
        .call(
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
    let strict = client
        .call(&token, ENABLE, json!({"id": half_id, "strict": true}))
        .await;
    assert_eq!(
        strict["errors"][0]["message"],
        json!("Solution instance has missing values"),
        "{strict}"
    );
    assert!(!sandbox.tray.instances()[0].enabled, "nothing changed");
    // Without the flag Tray enables it anyway, empty slot and all: clients must not enable
    // an instance before every slot is filled.
    let lax = client.call(&token, ENABLE, json!({"id": half_id})).await;
    assert_eq!(
        lax["data"]["updateSolutionInstance"]["solutionInstance"]["enabled"],
        json!(true),
        "{lax}"
    );

    // Every slot filled: the strict enable succeeds.
    let full = client
        .call(
            &token,
            CREATE,
            json!({"solutionId": solution_id, "instanceName": "full",
                "authValues": [{"externalId": "external_mailchimp_authentication", "authId": auths[0]},
                               {"externalId": "external_slack_authentication", "authId": auths[1]}],
                "configValues": [{"externalId": "external_slack_channel", "value": "\"#sales\""}]}),
        )
        .await;
    let full_id = full["data"]["createSolutionInstance"]["solutionInstance"]["id"].clone();
    let strict = client
        .call(&token, ENABLE, json!({"id": full_id, "strict": true}))
        .await;
    assert_eq!(
        strict["data"]["updateSolutionInstance"]["solutionInstance"]["enabled"],
        json!(true),
        "{strict}"
    );
    let stored = sandbox
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
    sandbox.tray.wait_for_instances(2).await;
    sandbox.stop().await;
}
