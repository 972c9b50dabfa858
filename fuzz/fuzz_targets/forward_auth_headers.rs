//! Forward-auth's reading of a request (`/api/auth/verify`): the trusted-proxy list
//! (`TrustedProxies::from_str`), the client's address from the TCP peer and `X-Forwarded-For`
//! (`forwarded.rs`), and the VerifyKey request built from the `Authorization`, country, tag and
//! required-scopes headers and the `scope` query parameters (`verify.rs`), through
//! `key_gateway::fuzzing::forward_auth`.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};
use key_gateway::{TrustedProxies, fuzzing::forward_auth};
use key_proto::{ErrorCode, MISSING_API_KEY_MESSAGE, bearer_token};
use libfuzzer_sys::{
    arbitrary::{self, Arbitrary},
    fuzz_target,
};

/// The headers forward-auth and its middleware read.
const HEADERS: [&str; 7] = [
    "authorization",
    "x-forwarded-for",
    "x-keyrack-country",
    "cf-ipcountry",
    "x-keyrack-tag",
    "x-keyrack-required-scopes",
    "x-request-id",
];

#[derive(Debug, Arbitrary)]
enum Address {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl From<&Address> for IpAddr {
    fn from(address: &Address) -> IpAddr {
        match *address {
            Address::V4(octets) => IpAddr::from(octets),
            Address::V6(octets) => IpAddr::from(octets),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// `--trusted-proxies` as the operator writes it, parsed for its own sake.
    trusted_text: &'a str,
    /// The trusted proxies used: networks, as address and prefix length.
    trusted: Vec<(Address, u8)>,
    peer: Address,
    /// (index into `HEADERS`, value)
    headers: Vec<(u8, &'a [u8])>,
    query: Option<&'a str>,
}

fuzz_target!(|input: Input<'_>| {
    let _ = input.trusted_text.parse::<TrustedProxies>();
    let list: Vec<String> = input
        .trusted
        .iter()
        .map(|(address, prefix)| format!("{}/{}", IpAddr::from(address), prefix % 129))
        .collect();
    // A prefix too long for its family is refused, naming the entry; then trust no one.
    let trusted: TrustedProxies = list.join(", ").parse().unwrap_or_default();

    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(HEADERS[usize::from(*name) % HEADERS.len()], value);
        }
    }
    let peer = IpAddr::from(&input.peer);
    let result = forward_auth(&trusted, peer, headers.clone(), input.query);

    // The client is the peer unless the peer is a trusted proxy; otherwise it is one of the
    // forwarded addresses.
    let peer = peer.to_canonical();
    assert_eq!(result.via_trusted_proxy, trusted.contains(peer));
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    if result.client != peer {
        assert!(result.via_trusted_proxy);
        assert!(entries.iter().any(|entry| {
            entry.parse::<IpAddr>().ok().map(|a| a.to_canonical()) == Some(result.client)
                || entry
                    .parse::<SocketAddr>()
                    .ok()
                    .map(|a| a.ip().to_canonical())
                    == Some(result.client)
        }));
    }
    // X-Forwarded-For keeps every readable entry, in order, and ends with the peer.
    let peer_text = peer.to_string();
    let expected: Vec<&str> = entries
        .iter()
        .copied()
        .chain([peer_text.as_str()])
        .collect();
    let forwarded = result.x_forwarded_for.expect("x-forwarded-for");
    assert_eq!(forwarded.to_str().unwrap(), expected.join(", "));

    match (result.request, bearer_token(&headers)) {
        (Ok(request), Ok(key)) => {
            // The key goes on untouched, with the address the gateway determined.
            assert_eq!(request.key, key);
            assert_eq!(request.client_ip, result.client.to_string());
            // Only a trusted proxy's word on the country counts.
            if !result.via_trusted_proxy {
                assert_eq!(request.country, "");
            }
            assert_eq!(request.country.trim(), request.country);
            assert_eq!(request.tag.trim(), request.tag);
            for scope in &request.required_scopes {
                assert!(
                    !scope.is_empty() && !scope.contains([',', ' ']),
                    "{scope:?}"
                );
            }
        }
        (Err(error), Err(_)) => {
            assert_eq!(error.code(), ErrorCode::InvalidApiKey);
            assert_eq!(error.message(), MISSING_API_KEY_MESSAGE);
        }
        (request, key) => panic!("{request:?} with key {key:?}"),
    }
});
