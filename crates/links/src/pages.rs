//! The broker's HTML pages, as strings. Every dynamic text goes through [`escape`]; no page
//! holds a script, a remote asset, the vendor's URL or anything of the key. Accessible: a
//! language, a title, one `h1`, a real button, contrast above 4.5:1, a viewport for phones.

use authport_core::Health;

/// The one stylesheet, inline (the CSP allows inline styles and nothing remote). Colours:
/// text #1a1a1a and notes #4a4f57 on white, white on the button's #0a58ca: all above 4.5:1.
const CSS: &str = "\
body{margin:0;background:#f4f5f7;color:#1a1a1a;\
font:1.0625rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
main{max-width:34rem;margin:2rem auto;padding:1.5rem;background:#fff;\
border:1px solid #d0d4da;border-radius:8px}\
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}\
form{margin:1.5rem 0}\
button{font:inherit;font-weight:600;color:#fff;background:#0a58ca;border:0;border-radius:6px;\
padding:.75rem 1.5rem;min-height:44px;width:100%;cursor:pointer}\
button:hover{background:#084298}\
button:focus-visible{outline:3px solid #1a1a1a;outline-offset:2px}\
.note{color:#4a4f57;font-size:.9375rem}\
@media (min-width:30rem){button{width:auto}}";

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Why the end user must reconnect, in words for them (not the operator's worklist words).
pub fn reason_in_plain_words(reason: Health, service: &str) -> String {
    match reason {
        Health::RefreshFailed => format!(
            "Your connection to {service} stopped working: {service} no longer accepts \
             the saved sign-in."
        ),
        Health::Revoked => {
            format!("Your connection to {service} was revoked or is no longer accepted.")
        }
        Health::Deleted | Health::Missing => {
            format!("Your connection to {service} was removed.")
        }
        Health::NotImported => format!(
            "Your connection to {service} could not be moved over automatically, \
             so it needs you once."
        ),
        Health::Healthy | Health::PendingRefresh | Health::RolledBack => {
            format!("Your connection to {service} needs you to sign in again.")
        }
    }
}

/// What the link page shows. Texts are raw here; [`link_page`] escapes them.
#[derive(Debug, Clone, Copy)]
pub struct LinkPage<'a> {
    pub owner_name: Option<&'a str>,
    pub service: &'a str,
    pub reason: Health,
    /// Unix seconds.
    pub expires_at: i64,
    pub csrf: &'a str,
}

/// The page a link's GET answers: who, which service, why, and one button that POSTs the
/// CSRF token back to the same URL (no `action`: the form posts to the page's own address,
/// whatever prefix a reverse proxy adds).
pub fn link_page(page: &LinkPage<'_>) -> String {
    let service = escape(page.service);
    let greeting = match page.owner_name.filter(|name| !name.trim().is_empty()) {
        Some(name) => format!("<p>Hello {},</p>\n", escape(name)),
        None => "<p>Hello,</p>\n".to_owned(),
    };
    let reason = escape(&reason_in_plain_words(page.reason, page.service));
    let body = format!(
        "{greeting}<p>{reason}</p>\n\
         <p>Press the button to sign in to {service} again. It opens a secure page where you \
         choose the account to connect.</p>\n\
         <form method=\"post\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <button type=\"submit\">Reconnect</button>\n\
         </form>\n\
         <p class=\"note\">This link works until {until}. Keep it to yourself: anyone who has \
         it can reconnect this account.</p>",
        csrf = escape(page.csrf),
        until = escape(&utc_date(page.expires_at)),
    );
    layout(
        &format!("Reconnect {service}"),
        &format!("Reconnect {service}"),
        &body,
    )
}

/// 410: the link's expiry has passed.
pub fn expired_page() -> String {
    layout(
        "Link expired",
        "This link has expired",
        "<p>Reconnection links only work for a limited time. Please ask the person who sent \
         it to you for a new one.</p>",
    )
}

/// 410: the operator revoked the link.
pub fn revoked_page() -> String {
    layout(
        "Link no longer active",
        "This link is no longer active",
        "<p>There is nothing to do with this link. If you were still asked to reconnect, \
         please contact the person who sent it to you.</p>",
    )
}

/// 404: the same body for every bad token and every unknown address, so it tells nothing.
pub fn not_found_page() -> String {
    layout(
        "Link not found",
        "Link not found",
        "<p>This link is not valid. Check that you opened the whole link from your message, \
         or ask the person who sent it to you for a new one.</p>",
    )
}

/// 429: more than the link's POSTs a minute.
pub fn too_many_page() -> String {
    layout(
        "Too many attempts",
        "Too many attempts",
        "<p>Please wait a minute, then open the link from your message again.</p>",
    )
}

/// 502: the vendor refused to start a session. Names no secret and no vendor address.
pub fn vendor_refused_page() -> String {
    layout(
        "Reconnection not available",
        "The reconnection could not start",
        "<p>The sign-in service did not accept the request just now. Please try again in a \
         few minutes. If it keeps failing, contact the person who sent you this link.</p>",
    )
}

/// 400: the form's CSRF token is missing or is not this link's.
pub fn bad_csrf_page() -> String {
    layout(
        "Please try again",
        "Please try again",
        "<p>The form could not be checked. Open the link from your message again and press \
         Reconnect.</p>",
    )
}

/// An expiry as people read it, e.g. `19 December 2026, 10:00 UTC`.
fn utc_date(unix_seconds: i64) -> String {
    match chrono::DateTime::from_timestamp(unix_seconds, 0) {
        Some(at) => at.format("%-d %B %Y, %H:%M UTC").to_string(),
        None => "its expiry date".to_owned(),
    }
}

/// The frame of every page. `title` and `heading` are already escaped; `body` is HTML.
fn layout(title: &str, heading: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title}</title>\n\
         <style>{CSS}</style>\n\
         </head>\n\
         <body>\n\
         <main>\n\
         <h1>{heading}</h1>\n\
         {body}\n\
         </main>\n\
         </body>\n\
         </html>\n"
    )
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
