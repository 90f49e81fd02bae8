//! `--broker URL`: the public address of the broker, and the link of a token under it.

/// Why a `--broker` address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerUrlError {
    #[error("broker url is not an absolute url (e.g. https://links.example.com)")]
    NotAbsolute,
    #[error(
        "broker url must use https (links are bearer capabilities); plain http is accepted for \
         loopback only"
    )]
    NotHttps,
    #[error("broker url must not carry a query, a fragment or credentials")]
    Extra,
}

/// The link of `token` under the broker's public address: `{broker}/r/{token}`, the broker's
/// path prefix kept (a reverse proxy may serve it under one). The address must be `https`, or
/// `http` to a loopback host (a local test); no query, fragment or user info.
pub fn link_url(broker: &str, token: &str) -> Result<String, BrokerUrlError> {
    let url = url::Url::parse(broker).map_err(|_| BrokerUrlError::NotAbsolute)?;
    let Some(host) = url.host() else {
        return Err(BrokerUrlError::NotAbsolute);
    };
    let loopback = match host {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(BrokerUrlError::NotHttps),
        _ => return Err(BrokerUrlError::NotAbsolute),
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(BrokerUrlError::Extra);
    }
    let base = url.as_str().trim_end_matches('/');
    Ok(format!("{base}/r/{token}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(broker: &str, expect: Result<&str, BrokerUrlError>) {
        assert_eq!(
            link_url(broker, "PAYLOAD.TAG"),
            expect.map(str::to_owned),
            "{broker}"
        );
    }

    #[test]
    fn links_go_under_the_broker_address_and_its_prefix() {
        check(
            "https://links.example.com",
            Ok("https://links.example.com/r/PAYLOAD.TAG"),
        );
        check(
            "https://links.example.com/",
            Ok("https://links.example.com/r/PAYLOAD.TAG"),
        );
        check(
            "https://example.com/reconnect/",
            Ok("https://example.com/reconnect/r/PAYLOAD.TAG"),
        );
        check(
            "HTTPS://Links.Example.COM:8443/x",
            Ok("https://links.example.com:8443/x/r/PAYLOAD.TAG"),
        );
        check(
            "http://127.0.0.1:8080",
            Ok("http://127.0.0.1:8080/r/PAYLOAD.TAG"),
        );
        check(
            "http://localhost:8080",
            Ok("http://localhost:8080/r/PAYLOAD.TAG"),
        );
        check("http://[::1]:8080", Ok("http://[::1]:8080/r/PAYLOAD.TAG"));
    }

    #[test]
    fn refused_addresses() {
        check("links.example.com", Err(BrokerUrlError::NotAbsolute));
        check("/r", Err(BrokerUrlError::NotAbsolute));
        check("", Err(BrokerUrlError::NotAbsolute));
        check("ftp://links.example.com", Err(BrokerUrlError::NotAbsolute));
        check("mailto:ops@example.com", Err(BrokerUrlError::NotAbsolute));
        check("http://links.example.com", Err(BrokerUrlError::NotHttps));
        check("http://10.0.0.1", Err(BrokerUrlError::NotHttps));
        check("https://links.example.com/?a=1", Err(BrokerUrlError::Extra));
        check("https://links.example.com/#x", Err(BrokerUrlError::Extra));
        check(
            "https://user:pw@links.example.com",
            Err(BrokerUrlError::Extra),
        );
    }
}
