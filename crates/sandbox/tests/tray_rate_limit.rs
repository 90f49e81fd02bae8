//! The Tray sandbox's rate limit (tray-api.md §6): 30 requests/second with bursts up to 50,
//! off by default, switchable with `TrayOptions::rate_limit` / `TrayState::set_rate_limit`.
//! REST answers 429 with a `{"message"}` body and no Retry-After; GraphQL answers HTTP 200 with
//! Tray's documented `errors` entry. No sleeping: requests are fired at once and counted.

use authport_sandbox::tray::{DEFAULT_MASTER_TOKEN, RateLimit, TrayOptions};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::common;

const USERS_QUERY: &str = "query ($externalUserId: String, $first: Int) { users(criteria: {externalUserId: $externalUserId}, first: $first) { edges { node { id } } } }";

async fn start(rate_limit: Option<RateLimit>) -> RunningSandbox {
    let config = SandboxConfig {
        tray: TrayOptions {
            rate_limit,
            ..TrayOptions::default()
        },
        ..SandboxConfig::default()
    };
    common::start(config).await
}

fn master() -> String {
    format!("Bearer {DEFAULT_MASTER_TOKEN}")
}

/// What one answer was: let through, or refused by the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Served,
    Limited,
}

/// Fires `count` REST requests at once; checks each 429 against Tray's documented shape
/// (`LimitExceeded`: an object with a string `message`, optional string `code`; no
/// Retry-After) and returns `(served, limited)`.
async fn rest_burst(sandbox: &RunningSandbox, count: usize) -> (usize, usize) {
    let http = reqwest::Client::new();
    let url = format!("{}/core/v1/connectors", sandbox.base_url());
    let requests = (0..count).map(|_| {
        let request = http.get(&url).header("authorization", master());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let rate_headers = response
                .headers()
                .keys()
                .any(|k| k.as_str().starts_with("x-ratelimit"));
            let body: Value = response.json().await.unwrap();
            match status {
                200 => {
                    assert!(body["elements"].is_array(), "{body}");
                    Answer::Served
                }
                429 => {
                    assert!(!retry_after, "tray documents no Retry-After header");
                    assert!(!rate_headers, "tray documents no X-RateLimit-* headers");
                    let object = body.as_object().expect("a json object");
                    assert!(object["message"].is_string(), "{body}");
                    assert!(object.get("code").is_none_or(Value::is_string), "{body}");
                    Answer::Limited
                }
                other => panic!("unexpected status {other}: {body}"),
            }
        }
    });
    count_answers(join_all(requests).await)
}

/// Fires `count` GraphQL `users` queries at once; every answer must be HTTP 200, either with
/// `data` or with Tray's rate-limit `errors` entry, returns `(served, limited)`.
async fn graphql_burst(sandbox: &RunningSandbox, count: usize) -> (usize, usize) {
    let http = reqwest::Client::new();
    let url = format!("{}/graphql", sandbox.base_url());
    let body = json!({"query": USERS_QUERY, "variables": {"externalUserId": "nobody", "first": 5}});
    let requests = (0..count).map(|_| {
        let request = http
            .post(&url)
            .header("authorization", master())
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                200,
                "graphql signals the limit in `errors`"
            );
            assert!(!response.headers().contains_key("retry-after"));
            let body: Value = response.json().await.unwrap();
            match body.get("errors") {
                None => {
                    assert!(body["data"]["users"]["edges"].is_array(), "{body}");
                    Answer::Served
                }
                Some(errors) => {
                    assert_eq!(body["data"], Value::Null, "{body}");
                    let errors = errors.as_array().expect("errors is an array");
                    assert_eq!(errors.len(), 1, "{body}");
                    let error = &errors[0];
                    assert_eq!(error["message"], "Rate limit exceeded", "{body}");
                    assert_eq!(error["extensions"]["code"], "access_not_allowed", "{body}");
                    assert_eq!(error["extensions"]["name"], "PreconditionError", "{body}");
                    // `path` names the throttled query.
                    assert_eq!(error["path"], json!(["users"]), "{body}");
                    Answer::Limited
                }
            }
        }
    });
    count_answers(join_all(requests).await)
}

fn count_answers(answers: Vec<Answer>) -> (usize, usize) {
    let served = answers.iter().filter(|a| **a == Answer::Served).count();
    (served, answers.len() - served)
}

#[test]
fn the_documented_limit_is_30_per_second_with_bursts_of_50() {
    assert_eq!(
        RateLimit::DOCUMENTED,
        RateLimit {
            per_second: 30.0,
            burst: 50
        }
    );
    assert_eq!(TrayOptions::default().rate_limit, None, "off by default");
}

/// A bucket that never refills makes the burst exact: 50 served, every other one refused.
const BURST_ONLY: RateLimit = RateLimit {
    per_second: 0.0,
    burst: 50,
};

#[tokio::test]
async fn rest_answers_429_without_retry_after_once_the_burst_is_spent() {
    let sandbox = start(Some(BURST_ONLY)).await;
    assert_eq!(rest_burst(&sandbox, 80).await, (50, 30));
    assert_eq!(sandbox.tray.rate_limited_count(), 30);
    assert_eq!(sandbox.tray.call_count("GET /core/v1/connectors"), 80);
}

#[tokio::test]
async fn graphql_answers_200_with_the_documented_error_once_the_burst_is_spent() {
    let sandbox = start(Some(BURST_ONLY)).await;
    assert_eq!(graphql_burst(&sandbox, 80).await, (50, 30));
    assert_eq!(sandbox.tray.rate_limited_count(), 30);
}

/// Whether REST and GraphQL share a server-side budget is not documented; the sandbox assumes
/// they do (the conservative choice, matching authport's one client-side bucket).
#[tokio::test]
async fn rest_and_graphql_share_one_budget() {
    let sandbox = start(Some(BURST_ONLY)).await;
    assert_eq!(rest_burst(&sandbox, 30).await, (30, 0));
    assert_eq!(graphql_burst(&sandbox, 30).await, (20, 10));
    assert_eq!(rest_burst(&sandbox, 5).await, (0, 5));
}

#[tokio::test]
async fn the_documented_limit_refuses_a_large_burst() {
    let sandbox = start(Some(RateLimit::DOCUMENTED)).await;
    // 300 requests fired at once: the first 50 always pass (the bucket starts full); refills
    // at 30/s could only serve the rest if sending them took longer than 8 seconds.
    let (served, limited) = rest_burst(&sandbox, 300).await;
    assert!(served >= 50, "served {served}");
    assert!(limited >= 1, "served {served}, limited {limited}");
    assert_eq!(sandbox.tray.rate_limited_count(), limited as u64);
}

#[tokio::test]
async fn the_limit_is_switchable_while_running() {
    let sandbox = start(None).await;
    // Off: a burst far beyond 50 is served in full.
    assert_eq!(rest_burst(&sandbox, 120).await, (120, 0));
    assert_eq!(graphql_burst(&sandbox, 60).await, (60, 0));
    // On: a full bucket of the given size.
    sandbox.tray.set_rate_limit(Some(BURST_ONLY));
    assert_eq!(rest_burst(&sandbox, 60).await, (50, 10));
    assert_eq!(graphql_burst(&sandbox, 3).await, (0, 3));
    // Off again.
    sandbox.tray.set_rate_limit(None);
    assert_eq!(rest_burst(&sandbox, 60).await, (60, 0));
    assert_eq!(sandbox.tray.rate_limited_count(), 13);
}

#[tokio::test]
async fn a_refused_request_changes_nothing() {
    let sandbox = start(Some(RateLimit {
        per_second: 0.0,
        burst: 0,
    }))
    .await;
    let http = reqwest::Client::new();
    let create = json!({"query": "mutation ($name: String!, $externalUserId: String!) { createExternalUser(input: {name: $name, externalUserId: $externalUserId}) { userId } }",
        "variables": {"name": "Globex", "externalUserId": "globex-7"}});
    let response: Value = http
        .post(format!("{}/graphql", sandbox.base_url()))
        .header("authorization", master())
        .json(&create)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        response["errors"][0]["path"],
        json!(["createExternalUser"]),
        "{response}"
    );
    assert!(sandbox.tray.users().is_empty());
    let response = http
        .post(format!("{}/core/v1/authentications", sandbox.base_url()))
        .header("authorization", master())
        .json(&json!({"name": "x", "serviceEnvironmentId": "y", "credentials": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(sandbox.tray.auth_count(), 0);
}
