//! Contract: the Tray sandbox's Get full authentication (`GET
//! /core/v1/authentications/{id}/full`, tray-api.md §4.7), which `authport export` reads,
//! answers as Tray's published OpenAPI description says: `GetFullUserAuthenticationResult`
//! for the owning end user's token (also with `forceRefresh`), and the spec's error shapes for
//! the master token (end users only), another user (404) and no token (401). One
//! `(method, path template, status, body)` table, driven by the testkit's contract loop.

use authport_sandbox::tray::DEFAULT_MASTER_TOKEN;
use authport_testkit::contract::{self, Case, Server};
use common::{Tray, TraySpec, as_user, tray_spec as spec};
use serde_json::json;

use crate::common;

const FULL: &str = "/core/v1/authentications/{authentication-id}/full";
const AUTHENTICATIONS: &str = "/core/v1/authentications";

#[tokio::test]
async fn get_full_authentication_answers_as_the_spec_says() {
    let spec = TraySpec(spec());
    let tray = Tray::start().await;
    let server = Server::new(tray.sandbox.base_url());
    let owner = tray.user_token("globex-7").await;
    let other = tray.user_token("acme-42").await;

    let env_id = authport_sandbox::tray::environment_id("greenhouse", 1, "Production");
    let create = json!({"name": "Greenhouse — Globex", "serviceEnvironmentId": env_id,
        "credentials": {"api_key": "the-key"}, "userData": {}, "scopes": []});
    let created = contract::run(
        &server,
        &spec,
        &[as_user(
            Case::new("POST", AUTHENTICATIONS, AUTHENTICATIONS, 200).send(create),
            &owner,
        )],
    )
    .await;
    let id = created[0].body["id"].as_str().expect("an id").to_owned();
    let full = format!("/core/v1/authentications/{id}/full");
    let read = json!({"id": id, "serviceEnvironmentId": env_id,
                      "credentials": {"api_key": "the-key"}});

    let cases = [
        as_user(Case::new("GET", FULL, &full, 200), &owner).fields(read.clone()),
        as_user(
            Case::new("GET", FULL, format!("{full}?forceRefresh=true"), 200),
            &owner,
        )
        .fields(read),
        as_user(Case::new("GET", FULL, &full, 403), DEFAULT_MASTER_TOKEN),
        as_user(Case::new("GET", FULL, &full, 404), &other),
        Case::new("GET", FULL, &full, 401),
    ];
    let answers = contract::run(&server, &spec, &cases).await;
    for refused in &answers[2..] {
        assert!(!refused.text.contains("the-key"), "{}", refused.text);
    }
    tray.sandbox.stop().await;
}
