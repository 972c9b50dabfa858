//! The context a VerifyKey request may carry (the end client's address, its country, a tag
//! for the route), validated once at the edge of the handler. Invalid values are ignored and
//! counted in a metric: the verdict never depends on them, so they are never an error.

use std::{fmt, net::IpAddr, sync::Arc};

use crate::metrics::{ContextField, Metrics};

/// The longest tag kept, in characters (= bytes: tags are ASCII).
pub const MAX_TAG_LEN: usize = 64;

/// An ISO 3166-1 alpha-2 country code, upper case. Two bytes, so it is copied around the
/// verification path without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Two ASCII letters, in either case; anything else is not a country code.
    pub fn parse(value: &str) -> Option<Country> {
        match value.as_bytes() {
            &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The code, e.g. `DE`.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters (checked by `parse`), so this is always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verification's validated context. Every field is optional; an absent or invalid value is
/// `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyContext {
    /// The end client's address: for the brute-force guard, and for the country when none was
    /// given and a country database is configured.
    pub client_ip: Option<IpAddr>,
    /// The address of whoever asked, when it named no `client_ip` (a service calling VerifyKey
    /// directly, the caller of an admin RPC): the brute-force guard counts by it instead.
    pub peer: Option<IpAddr>,
    /// The end client's country, as given by the caller (e.g. from an edge's geo header).
    pub country: Option<Country>,
    /// The route or operation. Shared, so counting it clones a pointer, not the text.
    pub tag: Option<Arc<str>>,
    /// What a valid verification spends of a key with credits (checked by
    /// `key_core::verify_cost`); 0, the default, means 1.
    pub cost: u32,
}

impl VerifyContext {
    /// Validates the raw fields of a request. Empty fields mean "not given"; an invalid one is
    /// dropped and counted in `metrics` (`invalid_context`).
    pub fn parse(client_ip: &str, country: &str, tag: &str, metrics: &Metrics) -> VerifyContext {
        let client_ip = match client_ip.trim() {
            "" => None,
            text => {
                let parsed = text.parse::<IpAddr>().ok();
                if parsed.is_none() {
                    metrics.invalid_context(ContextField::ClientIp);
                }
                parsed
            }
        };
        let country = match country {
            "" => None,
            text => {
                let parsed = Country::parse(text);
                if parsed.is_none() {
                    metrics.invalid_context(ContextField::Country);
                }
                parsed
            }
        };
        let tag = match tag {
            "" => None,
            text if is_valid_tag(text) => Some(Arc::from(text)),
            _ => {
                metrics.invalid_context(ContextField::Tag);
                None
            }
        };
        VerifyContext {
            client_ip,
            peer: None,
            country,
            tag,
            cost: 0,
        }
    }
}

/// 1 to 64 printable ASCII characters (space included: `POST /v1/agents` is a fine tag).
fn is_valid_tag(tag: &str) -> bool {
    (1..=MAX_TAG_LEN).contains(&tag.len()) && tag.bytes().all(|b| (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_two_letters_in_upper_case() {
        assert_eq!(
            Country::parse("de").map(|c| c.to_string()),
            Some("DE".into())
        );
        assert_eq!(
            Country::parse("US").map(|c| c.to_string()),
            Some("US".into())
        );
        for invalid in ["D", "DEU", "D1", "ü", "  ", "T1"] {
            assert_eq!(Country::parse(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn invalid_values_are_dropped_and_counted() {
        let metrics = Metrics::new();
        let context = VerifyContext::parse("not-an-ip", "Germany", "tab\there", &metrics);
        assert_eq!(context, VerifyContext::default());
        let text = metrics.render();
        for field in ["client_ip", "country", "tag"] {
            assert!(
                text.contains(&format!(
                    "keyrack_verify_context_invalid_total{{field=\"{field}\"}} 1"
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn valid_and_empty_values_are_not_counted() {
        let metrics = Metrics::new();
        let context = VerifyContext::parse(" 2001:db8::1 ", "fr", "POST /v1/agents", &metrics);
        assert_eq!(context.client_ip, "2001:db8::1".parse().ok());
        assert_eq!(context.country, Country::parse("FR"));
        assert_eq!(context.tag.as_deref(), Some("POST /v1/agents"));
        assert_eq!(
            VerifyContext::parse("", "", "", &metrics),
            VerifyContext::default()
        );
        let text = metrics.render();
        for field in ["client_ip", "country", "tag"] {
            assert!(
                text.contains(&format!(
                    "keyrack_verify_context_invalid_total{{field=\"{field}\"}} 0"
                )),
                "{text}"
            );
        }
        let longest = "x".repeat(MAX_TAG_LEN);
        assert!(is_valid_tag(&longest));
        assert!(!is_valid_tag(&format!("{longest}x")));
    }
}
