//! The DevTools wire format, as pure functions: what a command looks like, and what an
//! incoming message is (the answer to a command, or an event).

use serde_json::{Value, json};

/// Chromium's stderr line that names the browser's websocket.
const LISTENING_PREFIX: &str = "DevTools listening on ";

/// The websocket address in Chromium's `DevTools listening on ws://...` line, if it is that line.
pub(crate) fn devtools_address(stderr_line: &str) -> Option<&str> {
    let address = stderr_line.trim().strip_prefix(LISTENING_PREFIX)?;
    address.starts_with("ws://").then_some(address)
}

/// One command; `session` routes it to a page in flattened mode (one websocket for all targets).
pub(crate) fn command(id: u64, session: Option<&str>, method: &str, params: Value) -> Value {
    let mut message = json!({ "id": id, "method": method, "params": params });
    if let Some(session) = session {
        message["sessionId"] = Value::String(session.to_owned());
    }
    message
}

/// What one incoming message is.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// The answer to command `id`: its `result`, or the protocol's error message.
    Answer {
        id: u64,
        outcome: Result<Value, String>,
    },
    /// An event (no `id`), kept whole for [`is_event`].
    Event(Value),
    /// Neither (Chromium never sends one; ignored rather than trusted).
    Other,
}

pub(crate) fn classify(message: Value) -> Incoming {
    if let Some(id) = message.get("id").and_then(Value::as_u64) {
        let outcome = match message.get("error") {
            Some(error) => Err(error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_owned()),
            None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
        };
        return Incoming::Answer { id, outcome };
    }
    if message.get("method").is_some() {
        return Incoming::Event(message);
    }
    Incoming::Other
}

/// The event is `method`, sent by the page of `session`.
pub(crate) fn is_event(event: &Value, session: &str, method: &str) -> bool {
    event.get("method").and_then(Value::as_str) == Some(method)
        && event.get("sessionId").and_then(Value::as_str) == Some(session)
}

/// The script that clicks the first element `selector` matches; it answers whether one did.
pub(crate) fn click_script(selector: &str) -> String {
    let selector = Value::String(selector.to_owned());
    format!(
        "(() => {{ const element = document.querySelector({selector}); \
         if (!element) return false; element.click(); return true; }})()"
    )
}

/// The script that answers the text of the first element `selector` matches, or `null`.
pub(crate) fn text_script(selector: &str) -> String {
    let selector = Value::String(selector.to_owned());
    format!("document.querySelector({selector})?.innerText ?? null")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devtools_address_is_read_from_its_line_only() {
        let check = |line: &str, expect: Option<&str>| assert_eq!(devtools_address(line), expect);
        check(
            "DevTools listening on ws://127.0.0.1:45537/devtools/browser/c461",
            Some("ws://127.0.0.1:45537/devtools/browser/c461"),
        );
        check(
            "DevTools listening on ws://127.0.0.1:1/devtools/browser/x\n",
            Some("ws://127.0.0.1:1/devtools/browser/x"),
        );
        check(
            "[1:2:ERROR:dbus/bus.cc:405] Failed to connect to the bus",
            None,
        );
        check("DevTools listening on http://127.0.0.1:1/", None);
        check("", None);
    }

    #[test]
    fn a_command_carries_its_session_only_when_it_has_one() {
        assert_eq!(
            command(
                7,
                None,
                "Target.createTarget",
                json!({"url": "about:blank"})
            ),
            json!({"id": 7, "method": "Target.createTarget", "params": {"url": "about:blank"}})
        );
        assert_eq!(
            command(8, Some("S1"), "Page.enable", json!({})),
            json!({"id": 8, "method": "Page.enable", "params": {}, "sessionId": "S1"})
        );
    }

    #[test]
    fn incoming_messages_are_answers_errors_or_events() {
        assert_eq!(
            classify(json!({"id": 3, "result": {"frameId": "F"}})),
            Incoming::Answer {
                id: 3,
                outcome: Ok(json!({"frameId": "F"}))
            }
        );
        assert_eq!(
            classify(json!({"id": 4, "error": {"code": -32000, "message": "No target"}})),
            Incoming::Answer {
                id: 4,
                outcome: Err("No target".to_owned())
            }
        );
        let event = json!({"method": "Page.loadEventFired", "sessionId": "S1", "params": {}});
        assert_eq!(classify(event.clone()), Incoming::Event(event.clone()));
        assert!(is_event(&event, "S1", "Page.loadEventFired"));
        assert!(!is_event(&event, "S2", "Page.loadEventFired"));
        assert!(!is_event(&event, "S1", "Page.frameNavigated"));
        assert_eq!(classify(json!({"params": {}})), Incoming::Other);
    }

    #[test]
    fn the_click_script_quotes_the_selector() {
        let script = click_script(r#"form[action="/r/x"] button"#);
        assert!(script.contains(r#"document.querySelector("form[action=\"/r/x\"] button")"#));
    }
}
