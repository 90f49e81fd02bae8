//! A minimal Chrome DevTools Protocol client for tests: it starts Debian's headless Chromium,
//! opens one page and drives it (navigate, evaluate, click, screenshot, print).
//!
//! Dev-only (`publish = false`). Small on purpose: chromiumoxide and headless_chrome take too
//! long to build on CI's two cores, and tests need a handful of commands. One websocket in
//! flattened mode carries everything; calls take `&mut self`, so no background task routes
//! answers. Every wait has a timeout that fails with a message; nothing sleeps.
//!
//! A navigation is done when its page's `Page.loadEventFired` arrives: kept load events are
//! forgotten before each navigation starts, and every navigation the driver starts is waited
//! for, so the next load event is the new page's. (A page that navigates itself, by script or
//! meta refresh, is outside that rule; the broker's and the status page's pages do neither.)
//!
//! ```no_run
//! # async fn example() -> authport_browser::Result<()> {
//! let mut browser = authport_browser::Browser::launch().await?;
//! browser.goto("http://127.0.0.1:8080/r/TOKEN").await?; // GET: shows the page, mints nothing
//! assert_eq!(browser.response_status().await?, 200);
//! let owner = browser.eval("document.querySelector('h1').textContent").await?;
//! browser.click("form button").await?; // POST, then the 303 to the vendor's page
//! let landed = browser.current_url().await?;
//! # let _ = (owner, landed);
//! # Ok(())
//! # }
//! ```

mod connection;
mod error;
mod launch;
mod protocol;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

pub use error::{BrowserError, Result};

use connection::Connection;

/// Where Debian's `chromium` package puts its launcher (`.ci/run` installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one command, navigation or launch may take before the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const LOAD_EVENT: &str = "Page.loadEventFired";

/// A headless Chromium with one open page. Dropping it kills Chromium and removes its profile.
#[derive(Debug)]
pub struct Browser {
    connection: Connection,
    /// The page's session in flattened mode.
    session: String,
    // Dropped after the socket: kills Chromium, waits for it, removes its profile.
    _chromium: launch::Launched,
}

impl Browser {
    /// Starts [`CHROMIUM`] and opens a blank page.
    pub async fn launch() -> Result<Self> {
        Self::launch_at(Path::new(CHROMIUM)).await
    }

    /// Starts the Chromium at `chromium` (a test names a missing one to see the error).
    pub async fn launch_at(chromium: &Path) -> Result<Self> {
        let launched = launch::launch(chromium, DEFAULT_TIMEOUT).await?;
        let mut connection = Connection::open(&launched.devtools_address, DEFAULT_TIMEOUT).await?;
        let target = connection
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = string_field(&target, "Target.createTarget", "targetId")?;
        let attached = connection
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        let session = string_field(&attached, "Target.attachToTarget", "sessionId")?;
        connection
            .call(Some(&session), "Page.enable", json!({}))
            .await?;
        Ok(Self {
            connection,
            session,
            _chromium: launched,
        })
    }

    /// How long each later command or wait may take (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.connection.timeout = timeout;
    }

    /// Opens `url` and returns once the page's load event fired.
    pub async fn goto(&mut self, url: &str) -> Result<()> {
        self.connection.forget_events(&self.session, LOAD_EVENT);
        let navigated = self
            .page_call("Page.navigate", json!({ "url": url }))
            .await?;
        if let Some(error_text) = navigated.get("errorText").and_then(Value::as_str) {
            return Err(BrowserError::Navigation {
                error_text: error_text.to_owned(),
            });
        }
        // A move within the same document (`#anchor`) has no loader and fires no load event.
        if navigated.get("loaderId").is_none() {
            return Ok(());
        }
        self.wait_for_load().await
    }

    /// Evaluates `script` in the page (promises awaited) and returns its value as JSON
    /// (`null` for `undefined`).
    pub async fn eval(&mut self, script: &str) -> Result<Value> {
        let evaluated = self
            .page_call(
                "Runtime.evaluate",
                json!({ "expression": script, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(details) = evaluated.get("exceptionDetails") {
            let description = details
                .pointer("/exception/description")
                .or_else(|| details.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("unknown exception");
            return Err(BrowserError::Script {
                description: description.to_owned(),
            });
        }
        Ok(evaluated
            .pointer("/result/value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Clicks the first element `selector` matches and returns once the navigation it starts
    /// (a link, a form's submit button) loaded.
    pub async fn click(&mut self, selector: &str) -> Result<()> {
        self.connection.forget_events(&self.session, LOAD_EVENT);
        let clicked = self.eval(&protocol::click_script(selector)).await?;
        if clicked != Value::Bool(true) {
            return Err(BrowserError::NoSuchElement {
                selector: selector.to_owned(),
            });
        }
        self.wait_for_load().await
    }

    /// The text of the first element `selector` matches (what a person reads there).
    pub async fn text(&mut self, selector: &str) -> Result<String> {
        match self.eval(&protocol::text_script(selector)).await? {
            Value::String(text) => Ok(text),
            _ => Err(BrowserError::NoSuchElement {
                selector: selector.to_owned(),
            }),
        }
    }

    /// The page's address now (after redirects).
    pub async fn current_url(&mut self) -> Result<String> {
        match self.eval("location.href").await? {
            Value::String(url) => Ok(url),
            _ => Err(BrowserError::Malformed {
                method: "Runtime.evaluate".to_owned(),
                field: "location.href",
            }),
        }
    }

    /// The HTTP status of the page's document (`0` for a `file://` page): a test tells a 410
    /// page from a 404 page by it, as a person cannot.
    pub async fn response_status(&mut self) -> Result<u16> {
        let status = self
            .eval("performance.getEntriesByType('navigation')[0]?.responseStatus ?? null")
            .await?;
        status
            .as_u64()
            .and_then(|status| u16::try_from(status).ok())
            .ok_or(BrowserError::Malformed {
                method: "Runtime.evaluate".to_owned(),
                field: "responseStatus",
            })
    }

    /// Sets the window's size in CSS pixels (screenshots of the whole page stay full height).
    pub async fn set_viewport(&mut self, width: u32, height: u32) -> Result<()> {
        self.page_call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await
        .map(drop)
    }

    /// Lays the page out as for printing (`true`: CSS `@media print` applies) or for a screen.
    pub async fn emulate_print(&mut self, print: bool) -> Result<()> {
        let media = if print { "print" } else { "" };
        self.page_call("Emulation.setEmulatedMedia", json!({ "media": media }))
            .await
            .map(drop)
    }

    /// Writes a PNG of the whole page (not only the window) to `path`.
    pub async fn screenshot_png(&mut self, path: &Path) -> Result<()> {
        let metrics = self.page_call("Page.getLayoutMetrics", json!({})).await?;
        let size = |field: &'static str| {
            metrics
                .pointer(&format!("/cssContentSize/{field}"))
                .and_then(Value::as_f64)
                .ok_or(BrowserError::Malformed {
                    method: "Page.getLayoutMetrics".to_owned(),
                    field,
                })
        };
        let clip = json!({ "x": 0, "y": 0, "width": size("width")?, "height": size("height")?, "scale": 1 });
        let shot = self
            .page_call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true, "clip": clip }),
            )
            .await?;
        write_base64(&shot, "Page.captureScreenshot", "screenshot", path)
    }

    /// Prints the page as the browser would (the page's `@page` size, backgrounds on) to a PDF
    /// at `path`.
    pub async fn print_to_pdf(&mut self, path: &Path) -> Result<()> {
        let printed = self
            .page_call(
                "Page.printToPDF",
                json!({ "printBackground": true, "preferCSSPageSize": true }),
            )
            .await?;
        write_base64(&printed, "Page.printToPDF", "PDF", path)
    }

    async fn page_call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.connection
            .call(Some(&self.session), method, params)
            .await
    }

    async fn wait_for_load(&mut self) -> Result<()> {
        self.connection
            .wait_for_event(&self.session, LOAD_EVENT)
            .await
            .map(drop)
    }
}

fn string_field(answer: &Value, method: &str, field: &'static str) -> Result<String> {
    answer
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(BrowserError::Malformed {
            method: method.to_owned(),
            field,
        })
}

fn write_base64(answer: &Value, method: &str, what: &'static str, path: &Path) -> Result<()> {
    let data = string_field(answer, method, "data")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|source| BrowserError::Decode { what, source })?;
    std::fs::write(path, bytes).map_err(|source| BrowserError::Write {
        path: path.to_owned(),
        source,
    })
}
