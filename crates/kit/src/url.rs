//! Base URL rules every provider applies to its configured endpoints (invariant 5): HTTPS, or
//! plain HTTP to a loopback host only; no user name, password, query or fragment. Messages name
//! the setting, never the URL (it may carry a password).

use std::net::IpAddr;

use authport_core::{ConfigError, ProviderError};
use reqwest::Url;

/// Parses the base URL given for `setting` (e.g. `TRAY_API_URL`). The path is kept (Tray's
/// GraphQL URL is a full endpoint); a trailing slash is not significant.
pub fn parse_base_url(setting: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|_| {
        ConfigError::new(format!(
            "{setting} is not a valid URL (expected scheme://host[:port])"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(format!(
            "{setting} must not contain a user name or password: give credentials in their own settings"
        )));
    }
    if url.query().is_some() {
        return Err(ConfigError::new(format!(
            "{setting} must not contain a query string"
        )));
    }
    if url.fragment().is_some() {
        return Err(ConfigError::new(format!(
            "{setting} must not contain a fragment"
        )));
    }
    if url.host_str().is_none() {
        return Err(ConfigError::new(format!("{setting} has no host")));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ConfigError::new(format!(
            "{setting} must use https (plain http is allowed only to a loopback host)"
        ))),
        _ => Err(ConfigError::new(format!("{setting} must be an https URL"))),
    }
}

/// `base` with `segments` appended to its path, each percent-encoded as one segment (an id
/// holding `/`, `?` or `#` never changes the path's shape). The base's own path is kept, a
/// trailing slash of it is not significant: `https://h/api/` + `["v1", "x"]` is
/// `https://h/api/v1/x`. An empty, `.` or `..` segment would still change it (a list instead
/// of one object, or another resource), so it is refused (the record's, never quoted).
pub fn url_at(base: &Url, segments: &[&str]) -> Result<Url, ProviderError> {
    if segments.iter().any(|s| matches!(*s, "" | "." | "..")) {
        return Err(ProviderError::rejected(format!(
            "a path to {} would hold an empty, `.` or `..` id",
            host_for_message(base)
        )));
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| {
            ProviderError::fatal(format!(
                "the base URL of {} cannot take a path",
                host_for_message(base)
            ))
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Whether `url` points at this machine: `localhost` (any case, with or without a trailing
/// dot), 127.0.0.0/8 or `::1`. Traffic there never goes through a proxy and may be plain HTTP.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            // Only the name itself: `*.localhost` may resolve anywhere on a given resolver.
            name.trim_end_matches('.').eq_ignore_ascii_case("localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The host of `url` for messages (never its user info, path or query).
pub fn host_for_message(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => "(no host)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<(), &str>) {
        let got = parse_base_url("X_URL", text)
            .map(|_| ())
            .map_err(|e| e.message);
        match (got, expect) {
            (Ok(()), Ok(())) => {}
            (Err(message), Err(part)) => {
                assert!(message.contains(part), "{text}: {message}");
                assert!(!message.contains("hunter2"), "{text}: {message}");
            }
            (got, expect) => panic!("{text}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn base_urls_are_checked() {
        check("https://api.tray.io", Ok(()));
        check("https://tray.io/graphql", Ok(()));
        check("http://127.0.0.1:8787", Ok(()));
        check("http://127.5.6.7:1", Ok(()));
        check("http://LOCALHOST:3003", Ok(()));
        check("http://localhost.:3003", Ok(()));
        check("http://[::1]:9", Ok(()));
        check("http://api.tray.io", Err("must use https"));
        check("http://10.0.0.1", Err("must use https"));
        check("http://localhost.evil.example", Err("must use https"));
        check("ftp://api.tray.io", Err("must be an https URL"));
        check(
            "https://user:hunter2@api.tray.io",
            Err("user name or password"),
        );
        check("https://hunter2@api.tray.io", Err("user name or password"));
        check("https://api.tray.io/?key=hunter2", Err("query string"));
        check("https://api.tray.io/#hunter2", Err("fragment"));
        check("not a url hunter2", Err("not a valid URL"));
    }

    #[test]
    fn segments_are_appended_percent_encoded() {
        let at = |base: &str, segments: &[&str]| {
            url_at(&Url::parse(base).unwrap(), segments)
                .unwrap()
                .to_string()
        };
        assert_eq!(at("https://h", &["v1", "x"]), "https://h/v1/x");
        assert_eq!(at("https://h/", &["v1"]), "https://h/v1");
        assert_eq!(at("https://h/api/", &["v1", "x"]), "https://h/api/v1/x");
        assert_eq!(at("https://h/api", &["v1"]), "https://h/api/v1");
        assert_eq!(
            at("http://127.0.0.1:9", &["c", "a/b?c#d", "..a"]),
            "http://127.0.0.1:9/c/a%2Fb%3Fc%23d/..a"
        );
        let base = Url::parse("https://h/api").unwrap();
        for id in ["", ".", ".."] {
            let error = url_at(&base, &["v1", id]).unwrap_err();
            assert!(matches!(error, ProviderError::Rejected { .. }), "{id:?}");
        }
    }

    #[test]
    fn messages_show_the_host_only() {
        let url = Url::parse("https://api.tray.io:8443/core/v1?x=1").unwrap();
        assert_eq!(host_for_message(&url), "api.tray.io:8443");
    }
}
