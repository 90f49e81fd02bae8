//! GraphQL `Json` inputs in the Tray sandbox: `createUserAuthentication`'s `data` / `formData`
//! are accepted both as JSON-encoded strings (as in all of Tray's examples) and as objects, and
//! the auth they create is the same one `viewer.authentications` and REST GET see.

use authport_sandbox::tray::{environment_id, stable_uuid};
use common::Tray;
use serde_json::{Value, json};

use crate::common;

const CREATE: &str = "mutation ($name: String!, $serviceId: String!, $serviceEnvironmentId: String!, $data: Json!, $formData: Json, $hidden: Boolean) { createUserAuthentication(input: {name: $name, serviceId: $serviceId, serviceEnvironmentId: $serviceEnvironmentId, data: $data, formData: $formData, scopes: [], hidden: $hidden}) { authenticationId } }";
const VIEWER: &str = "query { viewer { authentications { edges { node { id name customFields service { id name title version icon } serviceEnvironment { id title } } } pageInfo { hasNextPage hasPreviousPage } } } }";

fn zendesk_env() -> String {
    environment_id("zendesk", 2, "Production")
}

/// Variables for a Zendesk token auth (its schemas require `email`, `api_token` and the
/// `subdomain` user data).
fn create_variables(name: &str, data: Value, form_data: Value) -> Value {
    json!({"name": name, "serviceId": stable_uuid("service:zendesk:2"),
        "serviceEnvironmentId": zendesk_env(), "data": data, "formData": form_data, "hidden": false})
}

fn credentials() -> Value {
    json!({"email": "ops@acme.example", "api_token": "zd-token-1"})
}

fn user_data() -> Value {
    json!({"subdomain": "acme"})
}

#[tokio::test]
async fn json_inputs_are_accepted_as_strings_and_as_objects() {
    let tray = Tray::start().await;
    let token = tray.user_token("acme-42").await;
    let cases = [
        (
            "as strings",
            Value::String(credentials().to_string()),
            Value::String(user_data().to_string()),
        ),
        ("as objects", credentials(), user_data()),
        // One of each.
        (
            "mixed",
            credentials(),
            Value::String(user_data().to_string()),
        ),
    ];
    let mut created = Vec::new();
    for (name, data, form_data) in cases {
        let answer = tray
            .graphql(&token, CREATE, create_variables(name, data, form_data))
            .await;
        assert!(answer.get("errors").is_none(), "{name}: {answer}");
        let id = answer["data"]["createUserAuthentication"]["authenticationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {answer}"))
            .to_owned();
        // Stored as the decoded objects, whatever the encoding of the input.
        let stored = tray.sandbox.tray.auth(&id).unwrap();
        assert_eq!(Value::Object(stored.credentials), credentials(), "{name}");
        assert_eq!(Value::Object(stored.user_data), user_data(), "{name}");
        assert_eq!(stored.name, name);
        created.push((name, id));
    }

    // `viewer.authentications` with the user's token lists each of them.
    let viewer = tray.graphql(&token, VIEWER, json!({})).await;
    let nodes: Vec<&Value> = viewer["data"]["viewer"]["authentications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| &edge["node"])
        .collect();
    assert_eq!(nodes.len(), created.len(), "{viewer}");
    for (name, id) in &created {
        let node = nodes
            .iter()
            .find(|n| n["id"] == json!(id))
            .unwrap_or_else(|| panic!("{name} missing from viewer: {viewer}"));
        assert_eq!(node["name"], json!(name));
        assert_eq!(node["serviceEnvironment"]["id"], json!(zendesk_env()));
        assert_eq!(node["service"]["name"], "zendesk");
        // `Service.version` is a string in GraphQL.
        assert_eq!(node["service"]["version"], "2");
    }

    // REST sees the same auths: metadata, and the decoded values with the owner's token.
    for (name, id) in &created {
        let (status, got) = tray
            .get(&token, &format!("/core/v1/authentications/{id}"))
            .await;
        assert_eq!(status, 200, "{name}: {got}");
        assert_eq!(got["id"], json!(id));
        assert_eq!(got["name"], json!(name));
        assert_eq!(got["serviceEnvironmentId"], json!(zendesk_env()));
        let (status, full) = tray
            .get(&token, &format!("/core/v1/authentications/{id}/full"))
            .await;
        assert_eq!(status, 200, "{name}: {full}");
        assert_eq!(full["credentials"], credentials(), "{name}");
        assert_eq!(full["userData"], user_data(), "{name}");
    }

    // Another user's token sees none of them.
    let other = tray.user_token("globex-7").await;
    let viewer = tray.graphql(&other, VIEWER, json!({})).await;
    assert_eq!(
        viewer["data"]["viewer"]["authentications"]["edges"],
        json!([])
    );
    let (status, _) = tray
        .get(
            &other,
            &format!("/core/v1/authentications/{}", created[0].1),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_json_inputs_are_graphql_errors_and_create_nothing() {
    let tray = Tray::start().await;
    let token = tray.user_token("acme-42").await;
    let cases = [
        ("not json", json!("{not json"), user_data(), "data"),
        ("json array", json!("[1, 2]"), user_data(), "data"),
        ("number", json!(42), user_data(), "data"),
        (
            "bad form data",
            credentials(),
            json!("subdomain=acme"),
            "formData",
        ),
        // Decoded fine, but the environment's schemas still apply.
        ("missing subdomain", credentials(), json!("{}"), "subdomain"),
        (
            "missing api_token",
            json!(r#"{"email": "ops@acme.example"}"#),
            user_data(),
            "api_token",
        ),
    ];
    for (name, data, form_data, mentions) in cases {
        let answer = tray
            .graphql(&token, CREATE, create_variables(name, data, form_data))
            .await;
        assert_eq!(answer["data"], Value::Null, "{name}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(mentions), "{name}: {answer}");
        assert_eq!(
            answer["errors"][0]["path"],
            json!(["createUserAuthentication"]),
            "{name}"
        );
    }
    assert_eq!(tray.sandbox.tray.auth_count(), 0);
}
