//! Who the caller is. The client's address is the TCP peer, unless the peer is a proxy the
//! operator trusts: then it is what that proxy appended to `X-Forwarded-For`, and so on from
//! the right, up to the first address no trusted proxy vouches for. Whatever a client writes
//! into the header itself is never believed, so it cannot escape the brute-force guard by
//! claiming a new address on every request.

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;

use crate::Error;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The reverse proxies (addresses or networks) whose `X-Forwarded-For` entries are believed.
/// None by default: the client is the TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Whether `address` is one of the trusted proxies.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address, seen from `peer` with the `X-Forwarded-For` entries `forwarded`
    /// (leftmost first, as received): the rightmost address not vouched for by a trusted proxy,
    /// or the leftmost entry if every hop is trusted. An entry that is not an address ends the
    /// walk at the proxy that wrote it.
    pub fn client_address(&self, peer: IpAddr, forwarded: &[&str]) -> IpAddr {
        let mut client = peer.to_canonical();
        for entry in forwarded.iter().rev() {
            if !self.contains(client) {
                break;
            }
            match parse_entry(entry) {
                Some(address) => client = address,
                None => break,
            }
        }
        client
    }
}

/// Comma-separated addresses or CIDR networks, e.g. `10.0.0.0/8, 192.0.2.7, ::1`; an empty
/// list trusts no proxy.
impl FromStr for TrustedProxies {
    type Err = Error;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let networks = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| Error::TrustedProxy(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies(networks.into()))
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`), as some proxies write it.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|address| address.ip()))
        .ok()
        .map(|address| address.to_canonical())
}

/// The client's address as the gateway determined it, in the request's extensions, for the
/// handlers that pass it on (forward-auth's `client_ip`), and whether the request came through
/// a trusted proxy: only then are the headers a proxy or an edge sets about the client (its
/// country) believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddress {
    /// The client's address.
    pub(crate) address: IpAddr,
    /// Whether the TCP peer is a trusted proxy.
    pub(crate) via_trusted_proxy: bool,
}

/// What [`identify_client`] needs: the trusted proxies, and whether it has warned that a
/// proxy seems to be in front while none is trusted.
#[derive(Debug, Clone)]
pub(crate) struct Identification {
    trusted: TrustedProxies,
    warned: Arc<AtomicBool>,
}

impl Identification {
    pub(crate) fn new(trusted: TrustedProxies) -> Identification {
        Identification {
            trusted,
            warned: Arc::default(),
        }
    }

    /// Warns, once, when `peer` is an internal address and no proxy is trusted: then the peer
    /// is most likely a reverse proxy or a load balancer, and every client behind it shares
    /// its address, for the brute-force guard too. (Only a request tells the peer, so this
    /// comes with the first one rather than at start.)
    fn check_peer(&self, peer: IpAddr) {
        if self.trusted.0.is_empty()
            && is_internal(peer)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                peer = %peer,
                "the gateway's client is an internal address and --trusted-proxies is empty: if \
                 it is a proxy, every client behind it shares its address (for the brute-force \
                 guard too); list the proxy in --trusted-proxies"
            );
        }
    }
}

/// Loopback, private (RFC 1918, IPv6 unique local), shared (RFC 6598) or link-local: where a
/// proxy in the same deployment usually connects from.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Determines the client's address ([`ClientAddress`], with [`identify`]) of a request and puts
/// it into the request's extensions. Without `ConnectInfo` (a router served without it) the
/// request is left as it is.
pub(crate) async fn identify_client(
    State(identification): State<Identification>,
    mut request: Request,
    next: Next,
) -> Response {
    let trusted = &identification.trusted;
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        identification.check_peer(peer.ip().to_canonical());
        let client = identify(trusted, peer.ip(), request.headers_mut());
        request.extensions_mut().insert(client);
    }
    next.run(request).await
}

/// The client of a request from the TCP peer `peer` with `headers`; appends the peer's address
/// to `X-Forwarded-For` (creating it), as a proxy does: what came before stays in front, for
/// the audit log, and the address the gateway saw ends the list.
pub(crate) fn identify(
    trusted: &TrustedProxies,
    peer: IpAddr,
    headers: &mut HeaderMap,
) -> ClientAddress {
    let peer = peer.to_canonical();
    let mut entries: Vec<String> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect();
    let client = {
        let forwarded: Vec<&str> = entries.iter().map(String::as_str).collect();
        trusted.client_address(peer, &forwarded)
    };
    entries.push(peer.to_string());
    if let Ok(value) = HeaderValue::from_str(&entries.join(", ")) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    ClientAddress {
        address: client,
        via_trusted_proxy: trusted.contains(peer),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_those_a_proxy_of_the_deployment_connects_from() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for public in ["192.0.2.1", "100.128.0.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_internal(ip(public)), "{public}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("192.0.2.1"), &["203.0.113.9"]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn the_walk_goes_right_to_left_through_trusted_proxies_only() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.0.2.7".parse().unwrap();
        // The client claims 1.1.1.1; the edge proxy (10.1.1.1) saw 203.0.113.9; the gateway's
        // peer is the inner proxy 192.0.2.7.
        let forwarded = ["1.1.1.1", "203.0.113.9", "10.1.1.1"];
        assert_eq!(
            trusted.client_address(ip("192.0.2.7"), &forwarded),
            ip("203.0.113.9")
        );
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            trusted.client_address(ip("198.51.100.4"), &forwarded),
            ip("198.51.100.4")
        );
        // Every hop trusted: the leftmost entry.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &["10.2.2.2", "10.3.3.3"]),
            ip("10.2.2.2")
        );
        // A trusted peer with no header is the client itself.
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &[]), ip("10.0.0.1"));
        // Garbage from a proxy stops the walk at that proxy.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &["unknown"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn entries_may_carry_ports_and_mapped_addresses() {
        let trusted: TrustedProxies = "127.0.0.1, ::1".parse().unwrap();
        assert_eq!(
            trusted.client_address(ip("::ffff:127.0.0.1"), &["192.0.2.1:4711"]),
            ip("192.0.2.1")
        );
        assert_eq!(
            trusted.client_address(ip("::1"), &["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn the_list_is_addresses_or_networks() {
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::default()
        );
        let trusted: TrustedProxies = " 10.0.0.0/8 ,, fd00::/8 ".parse().unwrap();
        assert!(trusted.contains(ip("10.200.0.1")));
        assert!(trusted.contains(ip("fd12::1")));
        assert!(!trusted.contains(ip("11.0.0.1")));
        for invalid in ["10.0.0.0/33", "proxy.internal", "10.0.0.0/8;"] {
            assert!(invalid.parse::<TrustedProxies>().is_err(), "{invalid}");
        }
    }
}
