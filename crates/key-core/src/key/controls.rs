//! A key's own controls besides its scopes and limits: the metadata services learn when it is
//! verified, and the addresses it may be used from.

use std::{fmt, net::IpAddr, sync::Arc};

use ipnet::IpNet;

use crate::Error;

/// The largest metadata, in bytes of its compact JSON serialization.
pub const MAX_METADATA_BYTES: usize = 1024;

/// The most entries (addresses and networks) an IP allowlist may hold.
pub const MAX_IP_ALLOWLIST_ENTRIES: usize = 100;

/// A key's metadata: a JSON object of at most [`MAX_METADATA_BYTES`] bytes, kept in its compact
/// serialization. It is returned to every service that verifies the key, so it is never a
/// secret. Shared, so copying it out of the key cache allocates nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMetadata(Arc<str>);

impl KeyMetadata {
    /// Parses `text` as a JSON object and keeps it compact; `Ok(None)` for the empty string or
    /// an empty object (no metadata). `field` names the request field in the error.
    pub fn parse(field: &'static str, text: &str) -> Result<Option<KeyMetadata>, Error> {
        let invalid = |message: String| Error::InvalidArgument { field, message };
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|err| invalid(format!("not valid JSON: {err}")))?;
        let serde_json::Value::Object(object) = &value else {
            return Err(invalid("must be a JSON object".to_owned()));
        };
        if object.is_empty() {
            return Ok(None);
        }
        let compact = value.to_string();
        if compact.len() > MAX_METADATA_BYTES {
            return Err(invalid(format!(
                "at most {MAX_METADATA_BYTES} bytes of JSON are allowed, this is {}",
                compact.len()
            )));
        }
        Ok(Some(KeyMetadata(Arc::from(compact))))
    }

    /// The compact JSON text, e.g. `{"plan":"pro"}`.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMetadata({} bytes)", self.0.len())
    }
}

/// The addresses a key may be used from: single addresses and CIDR networks, IPv4 and IPv6, at
/// most [`MAX_IP_ALLOWLIST_ENTRIES`]. Empty means from anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowlist(Vec<IpNet>);

impl IpAllowlist {
    /// No restriction.
    pub const EMPTY: IpAllowlist = IpAllowlist(Vec::new());

    /// Parses entries such as `203.0.113.7`, `10.0.0.0/8` or `2001:db8::/32`. A network's host
    /// bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`); duplicates are kept once, in the
    /// order given. `field` names the request field in the error.
    pub fn parse_list<S: AsRef<str>>(
        field: &'static str,
        entries: &[S],
    ) -> Result<IpAllowlist, Error> {
        let invalid = |message: String| Error::InvalidArgument { field, message };
        if entries.len() > MAX_IP_ALLOWLIST_ENTRIES {
            return Err(invalid(format!(
                "at most {MAX_IP_ALLOWLIST_ENTRIES} entries are allowed, got {}",
                entries.len()
            )));
        }
        let mut networks: Vec<IpNet> = Vec::with_capacity(entries.len());
        for entry in entries {
            let text = entry.as_ref().trim();
            let network = match text.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    invalid(format!(
                        "{text:?} is neither an IP address nor a CIDR network"
                    ))
                })?,
            };
            if !networks.contains(&network) {
                networks.push(network);
            }
        }
        Ok(IpAllowlist(networks))
    }

    /// Whether there is no restriction.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` is allowed. An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`) is
    /// judged as the IPv4 address it carries, so a dual-stack listener does not matter.
    pub fn allows(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The entries in their canonical text, e.g. `10.0.0.0/8`, `203.0.113.7/32`.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// The entries separated by spaces, as stored; `None` when empty.
    pub fn format(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.entries().join(" "))
    }
}

/// What verification needs of a key's metadata and allowlist, kept apart from the rest of the
/// key's view (behind one pointer, absent for most keys) so the key cache stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyControls {
    /// Returned with a valid verdict.
    pub metadata: Option<KeyMetadata>,
    /// Where the key may be used from; empty means anywhere.
    pub ip_allowlist: IpAllowlist,
    /// For an OAuth grant: its client and person, which a verification reports.
    pub oauth: Option<crate::OauthContext>,
}

impl KeyControls {
    /// The controls of a key with this metadata, allowlist and OAuth context; `None` when it has
    /// none of them (most keys: no allocation).
    pub fn of(
        metadata: &Option<KeyMetadata>,
        ip_allowlist: &IpAllowlist,
        oauth: &Option<crate::OauthContext>,
    ) -> Option<Arc<Self>> {
        (metadata.is_some() || !ip_allowlist.is_empty() || oauth.is_some()).then(|| {
            Arc::new(KeyControls {
                metadata: metadata.clone(),
                ip_allowlist: ip_allowlist.clone(),
                oauth: oauth.clone(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_a_small_json_object_kept_compact() {
        let metadata = KeyMetadata::parse("metadata", r#"{ "plan": "pro", "seats": 5 }"#)
            .unwrap()
            .unwrap();
        assert_eq!(metadata.as_json(), r#"{"plan":"pro","seats":5}"#);
        assert!(KeyMetadata::parse("metadata", "").unwrap().is_none());
        assert!(KeyMetadata::parse("metadata", "{}").unwrap().is_none());
        for bad in ["[1]", "\"text\"", "3", "null", "{", "{\"a\":}"] {
            assert!(KeyMetadata::parse("metadata", bad).is_err(), "{bad}");
        }
        let fits = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_METADATA_BYTES - 8));
        assert_eq!(fits.len(), MAX_METADATA_BYTES);
        assert!(KeyMetadata::parse("metadata", &fits).is_ok());
        let over = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_METADATA_BYTES - 7));
        let error = KeyMetadata::parse("metadata", &over)
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most 1024 bytes"), "{error}");
    }

    #[test]
    fn an_allowlist_holds_addresses_and_networks_of_both_families() {
        let list = IpAllowlist::parse_list(
            "ip_allowlist",
            &["10.1.2.3/8", "203.0.113.7", "2001:db8::/32", "10.0.0.0/8"],
        )
        .unwrap();
        assert_eq!(
            list.entries(),
            ["10.0.0.0/8", "203.0.113.7/32", "2001:db8::/32"]
        );
        for allowed in [
            "10.200.0.1",
            "203.0.113.7",
            "2001:db8:1::5",
            "::ffff:10.0.0.1",
        ] {
            assert!(list.allows(allowed.parse().unwrap()), "{allowed}");
        }
        for refused in ["11.0.0.1", "203.0.113.8", "2001:db9::1", "::1"] {
            assert!(!list.allows(refused.parse().unwrap()), "{refused}");
        }
        assert!(IpAllowlist::parse_list("ip_allowlist", &["10.0.0.0/33"]).is_err());
        assert!(IpAllowlist::parse_list("ip_allowlist", &["example.com"]).is_err());
        let many: Vec<String> = (0..=MAX_IP_ALLOWLIST_ENTRIES)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect();
        assert!(IpAllowlist::parse_list("ip_allowlist", &many).is_err());
        assert!(IpAllowlist::parse_list("ip_allowlist", &many[1..]).is_ok());
        assert_eq!(IpAllowlist::EMPTY.format(), None);
    }
}
