//! `KeyrackClient`: one channel to Keyrack, the deadline, the cache of valid verdicts.

use std::{fmt, net::IpAddr, sync::Arc, time::Duration};

use tonic::transport::{Channel, Endpoint};

use crate::{
    cache::{CacheKey, VerdictCache},
    principal::Principal,
    refusal::Refusal,
    v1::{self, key_service_client::KeyServiceClient},
};

/// How long a verification may take, connecting included, before the request is refused with
/// `503 unavailable`. Keyrack answers VerifyKey in a millisecond or two from its cache and a few
/// more from its database; a second covers a cold connection and a loaded server without
/// holding requests long when Keyrack is gone.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);

/// The longest a valid verdict may be reused: a key revoked in Keyrack is refused here at most
/// this long after.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(1);

/// How long a valid verdict is reused by default: the bound itself.
pub const DEFAULT_CACHE_TTL: Duration = MAX_CACHE_TTL;

/// How many valid verdicts are kept by default (a few hundred bytes each): the keys of a busy
/// service's callers in one second, and a bound on memory whatever they send.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// What creating a client can fail with.
#[derive(Debug)]
pub enum Error {
    /// The address is not a valid URI.
    InvalidUri(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUri(uri) => write!(f, "invalid Keyrack address {uri:?}"),
        }
    }
}

impl std::error::Error for Error {}

/// A client of Keyrack's VerifyKey: one HTTP/2 channel (connected at first use, reconnected
/// as needed), a deadline per call, and a cache of valid verdicts. Cheap to clone; every clone,
/// and every layer made from it ([`KeyrackClient::require`]), shares the channel and the cache.
#[derive(Clone)]
pub struct KeyrackClient {
    keys: KeyServiceClient<Channel>,
    deadline: Duration,
    cache: Arc<VerdictCache>,
}

impl fmt::Debug for KeyrackClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyrackClient")
            .field("deadline", &self.deadline)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl KeyrackClient {
    /// A client of the Keyrack at `uri` (e.g. `http://keyrack:50051`), connecting at its first
    /// verification, so a service starts while Keyrack is down (and refuses requests with 503
    /// until it is up). Default deadline and cache.
    pub fn connect_lazy(uri: impl Into<String>) -> Result<KeyrackClient, Error> {
        let uri = uri.into();
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|_| Error::InvalidUri(uri))?
            .connect_timeout(DEFAULT_DEADLINE);
        Ok(KeyrackClient::from_endpoint(endpoint))
    }

    /// A client over `endpoint` as you configured it (TLS, timeouts, keep-alive...),
    /// connecting at first use. Each verification, connecting included, is still bounded by
    /// the deadline.
    pub fn from_endpoint(endpoint: Endpoint) -> KeyrackClient {
        KeyrackClient::from_channel(endpoint.connect_lazy())
    }

    /// A client over a channel of yours.
    pub fn from_channel(channel: Channel) -> KeyrackClient {
        KeyrackClient {
            keys: KeyServiceClient::new(channel),
            deadline: DEFAULT_DEADLINE,
            cache: Arc::new(VerdictCache::new(DEFAULT_CACHE_TTL, DEFAULT_CACHE_CAPACITY)),
        }
    }

    /// The client with another deadline for each verification (sent to Keyrack as the call's
    /// `grpc-timeout` and enforced here too).
    pub fn with_deadline(mut self, deadline: Duration) -> KeyrackClient {
        self.deadline = deadline;
        self
    }

    /// The client with a new cache: valid verdicts reused for `ttl` (at most
    /// [`MAX_CACHE_TTL`]), at most `capacity` of them. `Duration::ZERO` or a capacity of 0
    /// turns caching off: every request is verified by Keyrack.
    pub fn with_cache(mut self, ttl: Duration, capacity: usize) -> KeyrackClient {
        self.cache = Arc::new(VerdictCache::new(ttl.min(MAX_CACHE_TTL), capacity));
        self
    }

    /// Verifies `key` for `required_scopes`: the key's principal, or why it is refused (which
    /// includes Keyrack being unreachable: this fails closed).
    pub async fn verify(
        &self,
        key: &str,
        required_scopes: &[String],
    ) -> Result<Principal, Refusal> {
        self.verify_for(key, required_scopes, None, None).await
    }

    /// [`verify`](Self::verify) for an end client at `client_ip` (Keyrack's brute-force guard
    /// counts failures by it), with `tag` naming the route in Keyrack's usage statistics.
    pub(crate) async fn verify_for(
        &self,
        key: &str,
        required_scopes: &[String],
        client_ip: Option<IpAddr>,
        tag: Option<String>,
    ) -> Result<Principal, Refusal> {
        let cache_key = CacheKey::new(key, required_scopes, client_ip);
        if let Some(principal) = self.cache.get(&cache_key) {
            return Ok(principal);
        }
        let mut request = tonic::Request::new(v1::VerifyKeyRequest {
            key: key.to_owned(),
            required_scopes: required_scopes.to_vec(),
            client_ip: client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            tag: tag.unwrap_or_default(),
            ..Default::default()
        });
        request.set_timeout(self.deadline);
        let mut keys = self.keys.clone();
        let verdict = match tokio::time::timeout(self.deadline, keys.verify_key(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return Err(Refusal::from_status(&status)),
            Err(_) => {
                tracing::warn!(deadline = ?self.deadline, "Keyrack did not answer in time, refusing the request");
                return Err(Refusal::unavailable());
            }
        };
        if !verdict.valid {
            return Err(Refusal::from_verdict(&verdict, required_scopes));
        }
        let principal = Principal::from_verdict(&verdict);
        // A key with credits spends them at every verification: a reused verdict would let a
        // request through unpaid, so its verdicts are never cached.
        if verdict.credits_remaining.is_none() {
            self.cache.insert(cache_key, &principal);
        }
        Ok(principal)
    }
}
