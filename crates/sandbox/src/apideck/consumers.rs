//! `GET /vault/consumers` (`consumersAll`): the application's consumers, sorted by id, in cursor
//! pages (`limit` 1–200, default 20), each with the `services` it holds a connection to.
//!
//! The cursor is opaque to clients: here, `after:` and the hex of the last id of the page before.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApideckState;
use super::handlers::{Answer, ApiError, check_headers, error, header};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 200;

pub(super) async fn list_consumers(
    State(state): State<Arc<ApideckState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    check_headers(&state, &headers, false)?;
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => return Err(invalid_param("limit must be an integer from 1 to 200")),
        },
    };
    let after = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| invalid_param("invalid cursor"))?),
    };
    let prefix = query
        .get("filter[consumer_id]")
        .cloned()
        .unwrap_or_default();
    let search = query.get("filter[search]").cloned().unwrap_or_default();

    let inner = state.lock();
    if inner.consumers_listing_broken {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UnexpectedError",
            "Unexpected Error",
            json!("the consumer listing is unavailable"),
        ));
    }
    // Each consumer's services: the connectors it holds a connection to, in any state.
    let mut services: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (consumer, _unified_api, service_id) in inner.connections.keys() {
        let list = services.entry(consumer.as_str()).or_default();
        if !list.contains(&service_id.as_str()) {
            list.push(service_id);
        }
    }
    let matching = inner
        .consumers
        .iter()
        .filter(|id| id.starts_with(&prefix) && id.contains(&search))
        .filter(|id| after.as_deref().is_none_or(|after| id.as_str() > after));
    let mut page: Vec<&String> = matching.take(limit + 1).collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let data: Vec<Value> = page
        .iter()
        .map(|id| {
            json!({
                "consumer_id": id,
                "application_id": state.app_id,
                "services": services.get(id.as_str()).cloned().unwrap_or_default(),
                "aggregated_request_count": 0,
            })
        })
        .collect();
    let current = query.get("cursor").cloned();
    let next = page.last().filter(|_| more).map(|last| encode_cursor(last));
    let base = format!(
        "http://{}/vault/consumers",
        header(&headers, "host").unwrap_or("localhost")
    );
    let link = |cursor: Option<&String>| match cursor {
        None => format!("{base}?limit={limit}"),
        Some(cursor) => format!("{base}?limit={limit}&cursor={cursor}"),
    };
    let body = json!({
        "status_code": 200,
        "status": "OK",
        "data": data,
        "meta": {
            "items_on_page": data.len(),
            "cursors": {"previous": null, "current": current, "next": next},
        },
        "links": {
            "previous": null,
            "current": link(current.as_ref()),
            "next": next.as_ref().map(|n| link(Some(n))),
        },
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn invalid_param(detail: &'static str) -> ApiError {
    error(
        StatusCode::BAD_REQUEST,
        "RequestValidationError",
        "Invalid Params",
        json!(detail),
    )
}

fn encode_cursor(last_id: &str) -> String {
    let mut cursor = String::from("after:");
    for byte in last_id.bytes() {
        let _ = write!(cursor, "{byte:02x}");
    }
    cursor
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let hex = cursor.strip_prefix("after:")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for id in ["acme-42", "", "account:12345", "é"] {
            assert_eq!(decode_cursor(&encode_cursor(id)).as_deref(), Some(id));
        }
        for garbage in ["acme", "after:zz", "after:abc", "after:ff"] {
            assert_eq!(decode_cursor(garbage), None, "{garbage}");
        }
    }
}
