//! A body the provider serialized itself (`Call::json_bytes`) goes out exactly as the same
//! tree would (`Call::json`): the same bytes and the same content-type rule.

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::routing::any;

use super::{CountingGate, RECORD_SECRET, client, serve, url};
use authport_core::transport::Effect;
use authport_kit::{Call, HttpClient, Method};

#[tokio::test]
async fn a_serialized_body_goes_out_as_the_same_tree_would() {
    // The server answers with what it received: the content type(s) and the body.
    let app = Router::new().route(
        "/echo",
        any(|headers: HeaderMap, body: axum::body::Bytes| async move {
            let types: Vec<&str> = headers
                .get_all(header::CONTENT_TYPE)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            format!("{types:?} {}", String::from_utf8_lossy(&body))
        }),
    );
    let base = serve(app).await;
    let http = client(CountingGate::new(), &[]);
    let body = serde_json::json!({"b": [1, {"z": null, "a": "x\"y"}], "a": RECORD_SECRET});
    let post = || Call::new(Method::POST, url(&base, "/echo"), Effect::Create, "echo");
    let as_tree = echo(&http, post().json(&body)).await;
    let as_bytes = echo(&http, post().json_bytes(serde_json::to_vec(&body).unwrap())).await;
    assert_eq!(as_bytes, as_tree);
    assert!(
        as_tree.starts_with(r#"["application/json"] {"a":"#),
        "{as_tree}"
    );
    // A content type the call set is kept, as `json` keeps it.
    let custom = || {
        post().header(
            header::CONTENT_TYPE,
            "application/vnd.x+json".parse().unwrap(),
        )
    };
    let as_tree = echo(&http, custom().json(&body)).await;
    let as_bytes = echo(
        &http,
        custom().json_bytes(serde_json::to_vec(&body).unwrap()),
    )
    .await;
    assert_eq!(as_bytes, as_tree);
    assert!(
        as_tree.starts_with(r#"["application/vnd.x+json"]"#),
        "{as_tree}"
    );
}

async fn echo(http: &HttpClient, call: Call<'_>) -> String {
    let answer = http.send(call).await.unwrap();
    String::from_utf8(answer.body.bytes().to_vec()).unwrap()
}
