use std::path::PathBuf;

/// Why the browser could not do what a test asked. Messages name no URL (a broker link is a
/// bearer capability) and no page content.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error(
        "{} not found: install Debian's `chromium` package (apt-get install -y --no-install-recommends chromium)",
        path.display()
    )]
    ChromiumMissing { path: PathBuf },
    #[error("could not start chromium")]
    Launch(#[source] std::io::Error),
    #[error("chromium printed no DevTools address (last stderr lines: {last_lines:?})")]
    NoDevToolsAddress { last_lines: Vec<String> },
    #[error("devtools websocket")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("devtools websocket closed by chromium")]
    Closed,
    #[error("devtools answered {method} with an error: {message}")]
    Protocol { method: String, message: String },
    #[error("devtools answer to {method} has no {field}")]
    Malformed { method: String, field: &'static str },
    #[error("timed out after {seconds} s waiting for {waiting_for}")]
    Timeout { waiting_for: String, seconds: u64 },
    #[error("navigation failed: {error_text}")]
    Navigation { error_text: String },
    #[error("the page's script threw: {description}")]
    Script { description: String },
    #[error("no element matches the selector {selector}")]
    NoSuchElement { selector: String },
    #[error("could not decode the {what} chromium sent")]
    Decode {
        what: &'static str,
        #[source]
        source: base64::DecodeError,
    },
    #[error("could not write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = BrowserError> = std::result::Result<T, E>;
