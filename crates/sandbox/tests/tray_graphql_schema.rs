//! Issue 8 item 16: the Tray sandbox's GraphQL is a real GraphQL server over exactly the
//! documented schema. Raw GraphQL over loopback HTTP: documented operations work (with
//! variables or with inline arguments, as in Tray's import guide), undocumented fields and
//! wrongly typed arguments are refused with the standard messages before anything runs, and
//! `createSolutionInstance` refuses an auth slot external id that is unknown or differently
//! cased.

use authport_sandbox::tray::{DEFAULT_MASTER_TOKEN, environment_id, stable_uuid};
use common::Tray;
use serde_json::{Value, json};

use crate::common;

const SOLUTIONS: &str = "query { viewer { solutions(first: 10) { edges { node { id title description tags customFields { key value } configSlots { externalId title defaultValue } } cursor } pageInfo { hasNextPage endCursor } } } }";
const CREATE_INSTANCE: &str = "mutation ($solutionId: ID!, $instanceName: String!, $authValues: [AuthValue!]) { createSolutionInstance(input: {solutionId: $solutionId, instanceName: $instanceName, authValues: $authValues}) { solutionInstance { id name enabled authValues { externalId authId } } } }";
const USERS: &str = "query ($externalUserId: String, $first: Int) { users(criteria: {externalUserId: $externalUserId}, first: $first) { edges { node { id externalUserId } } } }";

/// Schema-suite helpers on the shared Tray client.
trait TrayAuths {
    async fn auth(&self, token: &str) -> String;
}

impl TrayAuths for Tray {
    /// A token auth owned by the token's user, created over GraphQL (the sandbox does not
    /// tie a slot to a service).
    async fn auth(&self, token: &str) -> String {
        let answer = self
            .graphql(
                token,
                "mutation ($name: String!, $serviceId: String!, $serviceEnvironmentId: String!, $data: Json!, $formData: Json) { createUserAuthentication(input: {name: $name, serviceId: $serviceId, serviceEnvironmentId: $serviceEnvironmentId, data: $data, formData: $formData, scopes: []}) { authenticationId } }",
                json!({"name": "acme zendesk", "serviceId": stable_uuid("service:zendesk:2"),
                    "serviceEnvironmentId": environment_id("zendesk", 2, "Production"),
                    "data": json!({"email": "ops@acme.example", "api_token": "zd-1"}).to_string(),
                    "formData": json!({"subdomain": "acme"}).to_string()}),
            )
            .await;
        answer["data"]["createUserAuthentication"]["authenticationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"))
            .to_owned()
    }
}

fn slack_solution() -> String {
    stable_uuid("solution:acme-slack-sync")
}

/// A request refused before execution: only `errors[]`, no `data`, nothing run.
fn refusal(answer: &Value) -> (&str, &str) {
    assert!(answer.get("data").is_none(), "{answer}");
    let errors = answer["errors"].as_array().expect("errors[]");
    assert_eq!(errors.len(), 1, "{answer}");
    assert!(errors[0]["locations"][0]["line"].is_u64(), "{answer}");
    (
        errors[0]["message"].as_str().unwrap_or_default(),
        errors[0]["extensions"]["code"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_documented_solutions_query_answers_the_documented_fields() {
    let tray = Tray::start().await;
    let answer = tray
        .graphql(DEFAULT_MASTER_TOKEN, SOLUTIONS, json!({}))
        .await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let edges = answer["data"]["viewer"]["solutions"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(edges.len(), tray.sandbox.tray.catalogue().solutions.len());
    let slack = edges
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["id"] == json!(slack_solution()))
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(slack["title"], "Acme Slack Sync");
    assert_eq!(slack["description"], Value::Null);
    assert_eq!(slack["tags"], json!([]));
    assert_eq!(slack["customFields"], json!([]));
    assert_eq!(slack["configSlots"][0]["externalId"], "external_channel");
    // Exactly the selected fields, nothing more.
    let mut keys: Vec<&String> = slack.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "configSlots",
            "customFields",
            "description",
            "id",
            "tags",
            "title"
        ]
    );
}

#[tokio::test]
async fn solution_auth_slots_are_refused_like_tray_refuses_them() {
    let tray = Tray::start().await;
    let query =
        "query { viewer { solutions { edges { node { id title authSlots { externalId } } } } } }";
    let answer = tray.graphql(DEFAULT_MASTER_TOKEN, query, json!({})).await;
    let (message, code) = refusal(&answer);
    assert_eq!(
        message,
        r#"Cannot query field "authSlots" on type "Solution"."#
    );
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");

    // An unknown field in a mutation's selection refuses the whole request: nothing is created.
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            "mutation { createExternalUser(input: {name: \"a\", externalUserId: \"a\"}) { userId isTestUser } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refusal(&answer).0,
        r#"Cannot query field "isTestUser" on type "CreateExternalUserPayload"."#
    );
    assert!(tray.sandbox.tray.users().is_empty());

    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            "query { solutions { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refusal(&answer).0,
        r#"Cannot query field "solutions" on type "Query"."#
    );
}

#[tokio::test]
async fn wrongly_typed_arguments_are_refused_with_the_standard_messages() {
    let tray = Tray::start().await;
    // A variable value of the wrong type.
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            USERS,
            json!({"externalUserId": "acme", "first": "five"}),
        )
        .await;
    let (message, code) = refusal(&answer);
    assert_eq!(
        message,
        r#"Variable "$first" got invalid value "five"; Int cannot represent non-integer value: "five""#
    );
    assert_eq!(code, "BAD_USER_INPUT");

    // A variable declared with a type the argument does not take.
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            "query ($first: String) { users(first: $first) { edges { node { id } } } }",
            json!({"first": "5"}),
        )
        .await;
    let (message, code) = refusal(&answer);
    assert_eq!(
        message,
        r#"Variable "$first" of type "String" used in position expecting type "Int"."#
    );
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");

    // A required input field given null, and an unknown argument.
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            "mutation ($userId: ID!) { authorize(input: {userId: $userId}) { accessToken } }",
            json!({"userId": null}),
        )
        .await;
    assert_eq!(
        refusal(&answer).0,
        r#"Variable "$userId" of non-null type "ID!" must not be null."#
    );
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            "query { users(limit: 5) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refusal(&answer).0,
        r#"Unknown argument "limit" on field "Query.users"."#
    );

    // An inline literal of the wrong type, and a wrongly typed input field.
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            "query { users(first: \"five\") { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let (message, code) = refusal(&answer);
    assert_eq!(message, r#"Int cannot represent non-integer value: "five""#);
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            "mutation ($userId: ID!) { authorize(input: {userId: $userId}) { accessToken } }",
            json!({"userId": true}),
        )
        .await;
    assert_eq!(
        refusal(&answer).0,
        r#"Variable "$userId" got invalid value true; ID cannot represent value: true"#
    );
    assert_eq!(tray.sandbox.tray.minted_token_count(), 0);
}

#[tokio::test]
async fn inline_arguments_work_as_in_trays_import_guide() {
    let tray = Tray::start().await;
    // No variables at all: the arguments are read from the document.
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            "mutation { createExternalUser(input: {name: \"Acme\", externalUserId: \"acme-1\", isTestUser: true}) { userId clientMutationId } }",
            json!({}),
        )
        .await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let user = tray.sandbox.tray.user_by_external_id("acme-1").unwrap();
    assert!(user.is_test_user);
    assert_eq!(
        answer["data"]["createExternalUser"]["userId"],
        json!(user.id)
    );
    assert_eq!(
        answer["data"]["createExternalUser"]["clientMutationId"],
        Value::Null
    );

    let token = tray.user_token("acme-2").await;
    let auth_id = tray.auth(&token).await;
    let guide = format!(
        "mutation {{ createSolutionInstance(input: {{ solutionId: \"{}\", instanceName: \"some instance name\", authValues: [{{ externalId: \"external_slack_authentication\", authId: \"{auth_id}\" }}] }}) {{ solutionInstance {{ id name enabled created authValues {{ externalId authId }} }} }} }}",
        slack_solution()
    );
    let answer = tray.graphql(&token, &guide, json!({})).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let instance = &answer["data"]["createSolutionInstance"]["solutionInstance"];
    assert_eq!(instance["name"], "some instance name");
    assert_eq!(instance["enabled"], false);
    assert_eq!(
        instance["authValues"],
        json!([{"externalId": "external_slack_authentication", "authId": auth_id}])
    );
    let id = instance["id"].as_str().unwrap();
    let enable = format!(
        "mutation {{ updateSolutionInstance(input: {{solutionInstanceId: \"{id}\", enabled: true}}) {{ solutionInstance {{ id enabled }} }} }}"
    );
    let answer = tray.graphql(&token, &enable, json!({})).await;
    assert_eq!(
        answer["data"]["updateSolutionInstance"]["solutionInstance"]["enabled"], true,
        "{answer}"
    );
    assert!(tray.sandbox.tray.instances()[0].enabled);
}

#[tokio::test]
async fn create_solution_instance_refuses_unknown_and_differently_cased_external_ids() {
    let tray = Tray::start().await;
    let token = tray.user_token("acme-3").await;
    let auth_id = tray.auth(&token).await;
    for external_id in [
        "no_such_slot",
        "External_Slack_Authentication",
        "EXTERNAL_SLACK_AUTHENTICATION",
    ] {
        let answer = tray
            .graphql(
                &token,
                CREATE_INSTANCE,
                json!({"solutionId": slack_solution(), "instanceName": "acme",
                    "authValues": [{"externalId": external_id, "authId": auth_id}]}),
            )
            .await;
        assert_eq!(answer["data"], Value::Null, "{external_id}: {answer}");
        let error = &answer["errors"][0];
        assert_eq!(error["path"], json!(["createSolutionInstance"]), "{answer}");
        assert_eq!(
            error["message"],
            "No auth slot with this external id in the solution"
        );
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    }
    assert!(tray.sandbox.tray.instances().is_empty());

    // The exact external id is accepted.
    let answer = tray
        .graphql(
            &token,
            CREATE_INSTANCE,
            json!({"solutionId": slack_solution(), "instanceName": "acme",
                "authValues": [{"externalId": "external_slack_authentication", "authId": auth_id}]}),
        )
        .await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(tray.sandbox.tray.instances().len(), 1);
}

#[tokio::test]
async fn solution_instances_belong_to_end_users() {
    let tray = Tray::start().await;
    let answer = tray
        .graphql(
            DEFAULT_MASTER_TOKEN,
            CREATE_INSTANCE,
            json!({"solutionId": slack_solution(), "instanceName": "org"}),
        )
        .await;
    assert_eq!(answer["data"], Value::Null, "{answer}");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"],
        "access_not_allowed"
    );
    // And end users cannot call master-token operations.
    let token = tray.user_token("acme-4").await;
    let answer = tray
        .graphql(
            &token,
            USERS,
            json!({"externalUserId": "acme-4", "first": 1}),
        )
        .await;
    assert_eq!(answer["data"], Value::Null, "{answer}");
    assert_eq!(answer["errors"][0]["path"], json!(["users"]));
}

#[tokio::test]
async fn bearer_checks_come_before_the_schema() {
    let tray = Tray::start().await;
    let url = format!("{}/graphql", tray.sandbox.base_url());
    // An undocumented field with a bad token, and with none: 401, Tray's plain body.
    let body = json!({"query": "query { viewer { solutions { edges { node { authSlots { externalId } } } } } }"});
    for token in [Some("not-a-token"), None] {
        let mut request = tray.http.post(&url).json(&body);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer, json!({"message": "Unauthorized"}));
    }
    // Counted under the root field, like every request.
    assert_eq!(tray.sandbox.tray.call_count("graphql viewer"), 2);
}

/// Issue 17 item 6: `viewer.authentications` takes no paging arguments (tray-api.md §5.5, §7),
/// as at Tray; with the sandbox's page-size control an answer holds part of the owner's auths
/// and says so with `hasNextPage`, which a client cannot follow.
#[tokio::test]
async fn viewer_authentications_takes_no_paging_arguments_and_can_answer_part() {
    let tray = Tray::start().await;
    let token = tray.user_token("acme-5").await;
    for _ in 0..3 {
        tray.auth(&token).await;
    }
    let list = "query { viewer { authentications { edges { node { id } } pageInfo { hasNextPage hasPreviousPage } } } }";
    let answer = tray.graphql(&token, list, json!({})).await;
    let connection = &answer["data"]["viewer"]["authentications"];
    assert_eq!(connection["edges"].as_array().unwrap().len(), 3, "{answer}");
    assert_eq!(connection["pageInfo"]["hasNextPage"], false);

    tray.sandbox.tray.set_authentications_page_size(Some(2));
    let answer = tray.graphql(&token, list, json!({})).await;
    let connection = &answer["data"]["viewer"]["authentications"];
    assert_eq!(connection["edges"].as_array().unwrap().len(), 2, "{answer}");
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);

    let paged = "query { viewer { authentications(first: 2) { edges { node { id } } } } }";
    let answer = tray.graphql(&token, paged, json!({})).await;
    assert_eq!(
        answer["errors"][0]["message"],
        "Unknown argument \"first\" on field \"Viewer.authentications\".",
        "{answer}"
    );
}
