//! `generateAuthorizationCode` and the auth-only dialog of the Tray emulator over real HTTP,
//! as Tray documents them ("Create new auths"): the mutation needs the master token and an
//! existing end user and answers `{authorizationCode, clientMutationId}`; the code opens the
//! dialog for a service and one of its environments once, within 5 minutes.

use authport_sandbox::RunningSandbox;
use authport_sandbox::tray::{DEFAULT_MASTER_TOKEN, environment_id, stable_uuid};
use serde_json::{Value, json};

const GENERATE: &str = "mutation ($userId: ID!) { generateAuthorizationCode(input: {userId: $userId, clientMutationId: \"m1\"}) { authorizationCode clientMutationId } }";

async fn start() -> RunningSandbox {
    authport_sandbox::start(Default::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn graphql(sandbox: &RunningSandbox, token: &str, query: &str, variables: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", sandbox.base_url()))
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn user(sandbox: &RunningSandbox, external: &str) -> (String, String) {
    let created = graphql(
        sandbox,
        DEFAULT_MASTER_TOKEN,
        "mutation ($n: String!) { createExternalUser(input: {name: $n, externalUserId: $n}) { userId } }",
        json!({"n": external}),
    )
    .await;
    let user_id = created["data"]["createExternalUser"]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = graphql(
        sandbox,
        DEFAULT_MASTER_TOKEN,
        "mutation ($u: ID!) { authorize(input: {userId: $u}) { accessToken } }",
        json!({"u": user_id}),
    )
    .await;
    let token = token["data"]["authorize"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    (user_id, token)
}

async fn open(sandbox: &RunningSandbox, code: &str, service: &str, environment: &str) -> u16 {
    let url = format!(
        "{}/external/auth/create/acme?code={code}&serviceId={service}&serviceEnvironmentId={environment}",
        sandbox.base_url()
    );
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_code_opens_the_dialog_once_for_a_service_environment() {
    let sandbox = start().await;
    let (user_id, _) = user(&sandbox, "acme-42").await;
    let answer = graphql(
        &sandbox,
        DEFAULT_MASTER_TOKEN,
        GENERATE,
        json!({"userId": user_id}),
    )
    .await;
    let payload = &answer["data"]["generateAuthorizationCode"];
    assert_eq!(payload["clientMutationId"], "m1", "{answer}");
    let code = payload["authorizationCode"].as_str().expect("a code");
    let service = stable_uuid("service:zendesk:2");
    let environment = environment_id("zendesk", 2, "Production");
    // A service that does not own the environment is refused, and does not spend the code.
    assert_eq!(
        open(&sandbox, code, "not-a-service", &environment).await,
        404
    );
    assert_eq!(open(&sandbox, code, &service, &environment).await, 200);
    assert_eq!(
        open(&sandbox, code, &service, &environment).await,
        403,
        "single use"
    );
    assert_eq!(
        open(&sandbox, "not-a-code", &service, &environment).await,
        403
    );
    assert_eq!(sandbox.tray.auth_codes_minted(), 1);
}

#[tokio::test]
async fn only_the_master_token_mints_codes_for_existing_users() {
    let sandbox = start().await;
    let (user_id, user_token) = user(&sandbox, "acme-42").await;
    let answer = graphql(&sandbox, &user_token, GENERATE, json!({"userId": user_id})).await;
    assert!(answer["errors"].is_array(), "{answer}");
    let answer = graphql(
        &sandbox,
        DEFAULT_MASTER_TOKEN,
        GENERATE,
        json!({"userId": "nobody"}),
    )
    .await;
    assert_eq!(answer["errors"][0]["message"], "User not found", "{answer}");
    assert_eq!(sandbox.tray.auth_codes_minted(), 0);
}
