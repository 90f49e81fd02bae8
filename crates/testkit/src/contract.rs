//! Contract tables: an emulator's answers checked against its vendor's published spec, one
//! `(method, path template, status, body)` row per request, driven by one loop ([`run`]).
//!
//! A row names the spec operation (`method` + `template`), the concrete request (`path`,
//! headers, JSON body), the status the emulator must answer, and what the body must be:
//! whatever the spec declares for that status (the default), a named component, empty, and
//! optionally fields it must carry. The vendor's [`Spec`] does the schema work, so this module
//! knows no vendor. Rows run in order against one server: a later row may rely on the state an
//! earlier one left (create, then read, then delete).

use serde_json::Value;

/// One answer: status, headers, JSON body (`Null` when empty) and raw text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

/// What an answer's body must be, beside [`Case::fields`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// What the spec declares for the operation and status.
    Declared,
    /// This component of the spec (for specs whose operations name none usable).
    Schema(&'static str),
    /// Nothing at all (a 204, or a status the spec declares without content).
    Empty,
    /// Not checked against the spec (the row checks only status and fields).
    Unchecked,
}

/// One row of a contract table. Build it with [`Case::new`] and the setters.
#[derive(Debug, Clone)]
pub struct Case {
    pub method: String,
    /// The spec's path template (`/vault/connections/{unified_api}/{service_id}`).
    pub template: &'static str,
    /// The path sent, with its query (`/vault/connections/crm/hubspot?x=1`).
    pub path: String,
    pub status: u16,
    pub body: Body,
    /// A JSON value the answer's body must contain (objects: these keys, recursively).
    pub fields: Option<Value>,
    /// The JSON body sent, if any.
    pub request: Option<Value>,
    /// Whether the vendor's spec accepts the request body (`None`: not checked).
    pub request_valid: Option<bool>,
    /// Headers set on this row, over the table's defaults; `None` leaves one out.
    pub headers: Vec<(String, Option<String>)>,
}

impl Case {
    /// `method template` sent as `path`, answering `status` with the body the spec declares.
    pub fn new(
        method: impl Into<String>,
        template: &'static str,
        path: impl Into<String>,
        status: u16,
    ) -> Self {
        Self {
            method: method.into(),
            template,
            path: path.into(),
            status,
            body: Body::Declared,
            fields: None,
            request: None,
            request_valid: None,
            headers: Vec::new(),
        }
    }

    /// Sends `body` as JSON.
    pub fn send(mut self, body: Value) -> Self {
        self.request = Some(body);
        self
    }

    /// The answer's body must be `body` (see [`Body`]).
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// The answer's body must contain `fields`.
    pub fn fields(mut self, fields: Value) -> Self {
        self.fields = Some(fields);
        self
    }

    /// The spec must accept (`true`) or refuse (`false`) the request body.
    pub fn request_valid(mut self, valid: bool) -> Self {
        self.request_valid = Some(valid);
        self
    }

    /// Sets a header on this row (over the table's default).
    pub fn header(self, name: &str, value: impl Into<String>) -> Self {
        self.set_header(name, Some(value.into()))
    }

    /// Leaves a header out of this row (a default, or one the row set before).
    pub fn without(self, name: &str) -> Self {
        self.set_header(name, None)
    }

    fn set_header(mut self, name: &str, value: Option<String>) -> Self {
        self.headers
            .retain(|(own, _)| !own.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value));
        self
    }

    /// `METHOD path -> status`, for failures.
    pub fn name(&self) -> String {
        format!("{} {} -> {}", self.method, self.path, self.status)
    }
}

/// A vendor's published spec, as the table needs it. Each method returns the problems found
/// (empty: the spec agrees).
pub trait Spec: Sync {
    /// Problems of `answer` against what `case.body` asks of the spec.
    fn answer_problems(&self, case: &Case, answer: &Answer) -> Vec<String>;

    /// Problems of the request body `case.request` against the operation's request schema.
    fn request_problems(&self, case: &Case, body: &Value) -> Vec<String> {
        let _ = (case, body);
        Vec::new()
    }
}

/// The server a table runs against: its base URL and the headers every row sends unless the
/// row changes them.
#[derive(Debug, Clone)]
pub struct Server {
    pub base_url: String,
    pub headers: Vec<(&'static str, String)>,
    http: reqwest::Client,
}

impl Server {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            headers: Vec::new(),
            http: reqwest::Client::new(),
        }
    }

    /// A header every row sends (unless the row sets or removes it).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sends one row's request and reads the answer (a body that is not JSON fails the test).
    pub async fn send(&self, case: &Case) -> Answer {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("an HTTP method");
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base_url, case.path));
        for (name, value) in effective_headers(&self.headers, &case.headers) {
            request = request.header(name, value);
        }
        if let Some(body) = &case.request {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: no answer ({e})", case.name()));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: the body is not JSON ({e}): {text}", case.name()))
        };
        Answer {
            status,
            headers,
            body,
            text,
        }
    }
}

/// The headers a row sends: the defaults, each replaced or removed by the row's own.
fn effective_headers(
    defaults: &[(&'static str, String)],
    row: &[(String, Option<String>)],
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = defaults
        .iter()
        .filter(|(name, _)| !row.iter().any(|(own, _)| own.eq_ignore_ascii_case(name)))
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    headers.extend(
        row.iter()
            .filter_map(|(name, value)| value.clone().map(|value| (name.clone(), value))),
    );
    headers
}

/// Runs the rows in order against `server`; fails on the first row the emulator or the spec
/// disagrees with, naming it. Returns the answers, in row order, for checks a row cannot state.
pub async fn run(server: &Server, spec: &dyn Spec, cases: &[Case]) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(cases.len());
    for (index, case) in cases.iter().enumerate() {
        let row = format!("row {index} ({})", case.name());
        if let (Some(valid), Some(body)) = (case.request_valid, &case.request) {
            let problems = spec.request_problems(case, body);
            assert_eq!(
                problems.is_empty(),
                valid,
                "{row}: the spec {} the request body: {problems:?}",
                if valid { "refuses" } else { "accepts" }
            );
        }
        let answer = server.send(case).await;
        assert_eq!(answer.status, case.status, "{row}: {}", answer.text);
        let mut problems = match case.body {
            Body::Empty if !answer.text.is_empty() => {
                vec![format!("a body where none belongs: {}", answer.text)]
            }
            Body::Empty | Body::Unchecked => Vec::new(),
            Body::Declared | Body::Schema(_) => spec.answer_problems(case, &answer),
        };
        if let Some(fields) = &case.fields {
            problems.extend(missing(fields, &answer.body, ""));
        }
        assert!(problems.is_empty(), "{row}: {problems:?}\n{}", answer.text);
        answers.push(answer);
    }
    answers
}

/// Where `actual` lacks what `expected` holds: objects by key, arrays of the same length item
/// by item (both recursively), anything else by equality.
pub fn missing(expected: &Value, actual: &Value, at: &str) -> Vec<String> {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => expected
            .iter()
            .flat_map(|(key, value)| {
                let at = format!("{at}/{key}");
                match actual.get(key) {
                    Some(found) => missing(value, found, &at),
                    None => vec![format!("{at} is missing")],
                }
            })
            .collect(),
        (Value::Array(expected), Value::Array(actual)) if expected.len() == actual.len() => {
            expected
                .iter()
                .zip(actual)
                .enumerate()
                .flat_map(|(index, (expected, actual))| {
                    missing(expected, actual, &format!("{at}/{index}"))
                })
                .collect()
        }
        _ if expected == actual => Vec::new(),
        _ => vec![format!("{at} is {actual}, not {expected}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_matched_by_key_and_value() {
        let actual = json!({"data": {"state": "callable", "id": 1}, "status": "OK"});
        assert!(missing(&json!({"data": {"state": "callable"}}), &actual, "").is_empty());
        assert_eq!(
            missing(&json!({"data": {"state": "added"}, "x": 1}), &actual, ""),
            [
                "/data/state is \"callable\", not \"added\"",
                "/x is missing"
            ]
        );
        let list = json!({"items": [{"a": 1, "b": 2}]});
        assert!(missing(&json!({"items": [{"a": 1}]}), &list, "").is_empty());
        assert_eq!(missing(&json!({"items": []}), &list, "").len(), 1);
    }

    #[test]
    fn a_later_setter_wins_over_an_earlier_one() {
        let case = Case::new("GET", "/", "/", 200)
            .header("x-consumer", "c")
            .without("X-Consumer");
        assert_eq!(case.headers, [("X-Consumer".to_owned(), None)]);
    }

    #[test]
    fn a_row_replaces_or_removes_default_headers() {
        let defaults = [("authorization", "a".to_owned()), ("x-app", "b".to_owned())];
        let row = [
            ("Authorization".to_owned(), Some("c".to_owned())),
            ("x-app".to_owned(), None),
        ];
        assert_eq!(
            effective_headers(&defaults, &row),
            [("Authorization".to_owned(), "c".to_owned())]
        );
    }

    struct NoSpec;
    impl Spec for NoSpec {
        fn answer_problems(&self, _: &Case, answer: &Answer) -> Vec<String> {
            if answer.body["ok"] == true {
                Vec::new()
            } else {
                vec!["not ok".to_owned()]
            }
        }
    }

    #[tokio::test]
    async fn rows_run_in_order_and_a_disagreement_fails() {
        use axum::routing::get;
        let router = axum::Router::new()
            .route("/ok", get(|| async { axum::Json(json!({"ok": true})) }))
            .route("/bad", get(|| async { axum::Json(json!({"ok": false})) }));
        let served = crate::serve(router, |_| Vec::new()).await;
        let server = Server::new(&served.url);
        let answers = run(
            &server,
            &NoSpec,
            &[Case::new("GET", "/ok", "/ok", 200).fields(json!({"ok": true}))],
        )
        .await;
        assert_eq!(answers.len(), 1);
        let bad = tokio::spawn(async move {
            run(&server, &NoSpec, &[Case::new("GET", "/bad", "/bad", 200)]).await;
        })
        .await;
        assert!(bad.is_err(), "a body the spec refuses fails the row");
    }
}
