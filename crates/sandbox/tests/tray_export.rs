//! Contract: the Tray sandbox's Get full authentication (`GET
//! /core/v1/authentications/{id}/full`, tray-api.md §4.7), which `authport export` reads,
//! answers as Tray's published OpenAPI description says: `GetFullUserAuthenticationResult`
//! for the owning end user's token (also with `forceRefresh`), and the spec's error shapes for
//! the master token (end users only), another user (404) and no token (401).

use common::{assert_valid_tray as assert_valid, tray_spec as spec};
use serde_json::{Value, json};

use crate::common;

#[tokio::test]
async fn get_full_authentication_answers_as_the_spec_says() {
    let spec = spec();
    let sandbox = common::start(Default::default()).await;
    let base = sandbox.base_url();
    let master = format!("Bearer {}", authport_sandbox::tray::DEFAULT_MASTER_TOKEN);
    let http = reqwest::Client::new();
    let gql = |query: &str, variables: Value| {
        let request = http
            .post(format!("{base}/graphql"))
            .header("authorization", &master)
            .json(&json!({"query": query, "variables": variables}));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let user_token = |external: &'static str| {
        let gql = &gql;
        async move {
            let created = gql(
                "mutation ($name: String!, $externalUserId: String!) { createExternalUser(input: {name: $name, externalUserId: $externalUserId}) { userId } }",
                json!({"name": external, "externalUserId": external}),
            )
            .await;
            let token = gql(
                "mutation ($userId: ID!) { authorize(input: {userId: $userId}) { accessToken } }",
                json!({"userId": created["data"]["createExternalUser"]["userId"]}),
            )
            .await;
            format!(
                "Bearer {}",
                token["data"]["authorize"]["accessToken"].as_str().unwrap()
            )
        }
    };
    let owner = user_token("globex-7").await;
    let other = user_token("acme-42").await;

    let env_id = authport_sandbox::tray::environment_id("greenhouse", 1, "Production");
    let created: Value = http
        .post(format!("{base}/core/v1/authentications"))
        .header("authorization", &owner)
        .json(
            &json!({"name": "Greenhouse — Globex", "serviceEnvironmentId": env_id,
            "credentials": {"api_key": "the-key"}, "userData": {}, "scopes": []}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let full_url = format!("{base}/core/v1/authentications/{id}/full");

    for url in [full_url.clone(), format!("{full_url}?forceRefresh=true")] {
        let response = http
            .get(&url)
            .header("authorization", &owner)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let full: Value = response.json().await.unwrap();
        assert_valid(&spec, "GetFullUserAuthenticationResult", &full);
        assert_eq!(full["id"], id);
        assert_eq!(full["serviceEnvironmentId"], json!(env_id));
        assert_eq!(full["credentials"], json!({"api_key": "the-key"}));
    }

    for (token, status, schema) in [
        (Some(&master), 403, "Forbidden"),
        (Some(&other), 404, "ResourceNotFound"),
        (None, 401, "Unauthorized"),
    ] {
        let mut request = http.get(&full_url);
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{schema}");
        let body: Value = response.json().await.unwrap();
        assert_valid(&spec, schema, &body);
        assert!(!body.to_string().contains("the-key"), "{schema}: {body}");
    }
    sandbox.stop().await;
}
