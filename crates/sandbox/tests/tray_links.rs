//! `generateAuthorizationCode` and the auth-only dialog of the Tray emulator over real HTTP,
//! as Tray documents them ("Create new auths"): the mutation needs the master token and an
//! existing end user and answers `{authorizationCode, clientMutationId}`; the code opens the
//! dialog for a service and one of its environments once, within 5 minutes.

use authport_sandbox::RunningSandbox;
use authport_sandbox::tray::{DEFAULT_MASTER_TOKEN, environment_id, stable_uuid};
use common::Tray;
use serde_json::json;

use crate::common;

const GENERATE: &str = "mutation ($userId: ID!) { generateAuthorizationCode(input: {userId: $userId, clientMutationId: \"m1\"}) { authorizationCode clientMutationId } }";

async fn open(sandbox: &RunningSandbox, code: &str, service: &str, environment: &str) -> u16 {
    let url = format!(
        "{}/external/auth/create/acme?code={code}&serviceId={service}&serviceEnvironmentId={environment}",
        sandbox.base_url()
    );
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_code_opens_the_dialog_once_for_a_service_environment() {
    let tray = Tray::start().await;
    let (user_id, _) = tray.user("acme-42").await;
    let answer = tray
        .graphql(DEFAULT_MASTER_TOKEN, GENERATE, json!({"userId": user_id}))
        .await;
    let payload = &answer["data"]["generateAuthorizationCode"];
    assert_eq!(payload["clientMutationId"], "m1", "{answer}");
    let code = payload["authorizationCode"].as_str().expect("a code");
    let service = stable_uuid("service:zendesk:2");
    let environment = environment_id("zendesk", 2, "Production");
    // A service that does not own the environment is refused, and does not spend the code.
    assert_eq!(
        open(&tray.sandbox, code, "not-a-service", &environment).await,
        404
    );
    assert_eq!(open(&tray.sandbox, code, &service, &environment).await, 200);
    assert_eq!(
        open(&tray.sandbox, code, &service, &environment).await,
        403,
        "single use"
    );
    assert_eq!(
        open(&tray.sandbox, "not-a-code", &service, &environment).await,
        403
    );
    assert_eq!(tray.sandbox.tray.auth_codes_minted(), 1);
}

#[tokio::test]
async fn only_the_master_token_mints_codes_for_existing_users() {
    let tray = Tray::start().await;
    let (user_id, user_token) = tray.user("acme-42").await;
    let answer = tray
        .graphql(&user_token, GENERATE, json!({"userId": user_id}))
        .await;
    assert!(answer["errors"].is_array(), "{answer}");
    let answer = tray
        .graphql(DEFAULT_MASTER_TOKEN, GENERATE, json!({"userId": "nobody"}))
        .await;
    assert_eq!(answer["errors"][0]["message"], "User not found", "{answer}");
    assert_eq!(tray.sandbox.tray.auth_codes_minted(), 0);
}
