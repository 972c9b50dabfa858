//! Webhook endpoints: the rules an endpoint's URL and description must meet, and which
//! addresses deliveries may reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::Error;

/// The longest endpoint URL accepted, in characters.
pub const MAX_WEBHOOK_URL_CHARS: usize = 2048;
/// The longest endpoint description accepted, in characters.
pub const MAX_WEBHOOK_DESCRIPTION_CHARS: usize = 200;

/// A validated endpoint URL: `https` (or `http` where the server allows it, for local
/// development and tests), with a host, without credentials, at most
/// [`MAX_WEBHOOK_URL_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Checks `text`; `allow_http` admits plain `http` URLs.
    pub fn parse(text: &str, allow_http: bool) -> Result<WebhookUrl, Error> {
        let invalid = |message: &str| Error::InvalidArgument {
            field: "url",
            message: message.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid("required"));
        }
        if text.chars().count() > MAX_WEBHOOK_URL_CHARS {
            return Err(invalid(&format!(
                "at most {MAX_WEBHOOK_URL_CHARS} characters"
            )));
        }
        let url = url::Url::parse(text).map_err(|_| invalid("not an absolute URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err(invalid("must use https")),
            _ => return Err(invalid("must be an https URL")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not contain credentials"));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not contain a fragment"));
        }
        Ok(WebhookUrl(url.into()))
    }

    /// The URL, normalized.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether deliveries may go to `ip`: a public address, not the deployment's own network.
/// Loopback, private (RFC 1918, unique local), link-local (where cloud metadata services
/// answer), shared (CGNAT), documentation, benchmarking, multicast, unspecified and broadcast
/// addresses are not public; an IPv4-mapped IPv6 address is judged as its IPv4 address. A
/// tenant's endpoint must not turn Keyrack into a way into the internal network.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        // 0.0.0.0/8 ("this network"), 100.64.0.0/10 (shared, CGNAT), 192.0.0.0/24 (protocol
        // assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4 (reserved).
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Checks an endpoint description: at most [`MAX_WEBHOOK_DESCRIPTION_CHARS`] characters,
/// without control characters.
pub fn parse_webhook_description(text: &str) -> Result<String, Error> {
    if text.chars().count() > MAX_WEBHOOK_DESCRIPTION_CHARS {
        return Err(Error::InvalidArgument {
            field: "description",
            message: format!("at most {MAX_WEBHOOK_DESCRIPTION_CHARS} characters"),
        });
    }
    if text.chars().any(char::is_control) {
        return Err(Error::InvalidArgument {
            field: "description",
            message: "must not contain control characters".to_owned(),
        });
    }
    if let Some(reason) = crate::text::unsafe_text(text, false) {
        return Err(Error::InvalidArgument {
            field: "description",
            message: reason.to_owned(),
        });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_reachable() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public_address(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public_address(public.parse().unwrap()), "{public}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_without_credentials() {
        assert!(WebhookUrl::parse("https://example.com/hooks", false).is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hooks", false).is_err());
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hooks", true).is_ok());
        assert!(WebhookUrl::parse("ftp://example.com/", true).is_err());
        assert!(WebhookUrl::parse("https://user:pass@example.com/", false).is_err());
        assert!(WebhookUrl::parse("example.com/hooks", false).is_err());
        assert!(WebhookUrl::parse("", false).is_err());
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert!(WebhookUrl::parse(&long, false).is_err());
    }

    #[test]
    fn descriptions_are_short_and_printable() {
        assert!(parse_webhook_description(&"a".repeat(200)).is_ok());
        assert!(parse_webhook_description(&"a".repeat(201)).is_err());
        assert!(parse_webhook_description("line\nbreak").is_err());
    }
}
