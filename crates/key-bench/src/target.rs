//! What is measured: one RPC of each kind, sent over one of the client's connections.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::atomic::{AtomicU64, Ordering},
};

use key_core::{ApiKey, Environment};
use key_proto::{
    envoy::{AuthorizationClient, CheckRequest, HttpResponse},
    v1::{VerifyKeyRequest, VerifyKeyResponse, key_service_client::KeyServiceClient},
};
use ring::rand::SystemRandom;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A phase of a round: which RPCs are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `grpc.health.v1.Health/Check`, the baseline: the same server, the same stack, no work.
    Health,
    /// `keyrack.v1.KeyService/VerifyKey` with the valid key.
    Verify,
    /// VerifyKey, a fraction of the requests with random well-formed keys.
    Flood,
    /// `envoy.service.auth.v3.Authorization/Check` with the valid key.
    ExtAuthz,
    /// VerifyKey with an OAuth access token instead of the key: the same RPC, verifier and
    /// cache, the token's grant in place of the key's row.
    Token,
    /// VerifyKey with a malformed key (the valid key with its checksum broken, as a typo makes
    /// it), from a distinct client address each time: refused before any lookup, so it measures
    /// the RPC and the parse alone.
    Malformed,
    /// VerifyKey with a second valid key that carries a rate limit it never reaches: the limit
    /// is checked and counted on every call, so the difference from `Verify` is its price.
    Limited,
}

impl Target {
    /// How many targets there are: the size of the per-target tallies.
    pub(crate) const COUNT: usize = 7;

    /// This target's place in the per-target tallies.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The row this target's requests are counted in: its only one, or for the flood the valid
    /// key's (where a timed-out request, whose kind is not known then, counts: its errors are
    /// the ones that matter).
    pub(crate) fn row(self) -> Row {
        match self {
            Target::Health => Row::Health,
            Target::Verify => Row::Verify,
            Target::Flood => Row::FloodValid,
            Target::ExtAuthz => Row::ExtAuthz,
            Target::Token => Row::Token,
            Target::Malformed => Row::Malformed,
            Target::Limited => Row::Limited,
        }
    }
}

/// A row of the report. The flood target fills two rows: its valid-key and its random-key
/// requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Row {
    Health,
    Verify,
    FloodValid,
    FloodRandom,
    ExtAuthz,
    Token,
    Malformed,
    Limited,
}

impl Row {
    pub(crate) const ALL: [Row; 8] = [
        Row::Health,
        Row::Verify,
        Row::FloodValid,
        Row::FloodRandom,
        Row::ExtAuthz,
        Row::Token,
        Row::Malformed,
        Row::Limited,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The row's name in the table and the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Row::Health => "grpc.health.v1.Health/Check",
            Row::Verify => "keyrack.v1.KeyService/VerifyKey",
            Row::FloodValid => "VerifyKey valid key, under flood",
            Row::FloodRandom => "VerifyKey random keys (flood)",
            Row::ExtAuthz => "ext_authz Authorization/Check",
            Row::Token => "VerifyKey with an OAuth access token",
            Row::Malformed => "VerifyKey malformed key",
            Row::Limited => "VerifyKey key with a rate limit",
        }
    }

    /// The target whose phase produces this row (its run time is the row's time).
    pub(crate) fn target(self) -> Target {
        match self {
            Row::Health => Target::Health,
            Row::Verify => Target::Verify,
            Row::FloodValid | Row::FloodRandom => Target::Flood,
            Row::ExtAuthz => Target::ExtAuthz,
            Row::Token => Target::Token,
            Row::Malformed => Target::Malformed,
            Row::Limited => Target::Limited,
        }
    }
}

/// The first address of 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks.
const FLOOD_ADDRESS_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// How many addresses of that range flood requests cycle through.
const FLOOD_ADDRESSES: u64 = 1 << 17;

/// The RPC clients, one per HTTP/2 connection, and the requests they send.
#[derive(Debug)]
pub(crate) struct Client {
    health: Vec<HealthClient<Channel>>,
    keys: Vec<KeyServiceClient<Channel>>,
    authz: Vec<AuthorizationClient<Channel>>,
    valid: VerifyKeyRequest,
    /// The ext_authz Check request of the valid key, if that target runs.
    check: Option<CheckRequest>,
    /// The VerifyKey request of the access token, if that target runs: `valid` with the token
    /// in place of the key, so the two differ in nothing else.
    token: Option<VerifyKeyRequest>,
    /// The VerifyKey request of the rate-limited key, if that target runs: `valid` with that
    /// key in place of the first.
    limited: Option<VerifyKeyRequest>,
    /// The valid key with its last character changed: well shaped, but its checksum fails.
    malformed: String,
    /// The fraction of the flood target's requests that carry a random key.
    flood: f64,
    /// How many flood-target requests have been sent, valid or random.
    flood_decisions: AtomicU64,
    /// How many random or malformed keys have been sent, which picks each one's client address.
    flood_sent: AtomicU64,
    rng: SystemRandom,
}

impl Client {
    /// `channels` must not be empty; `valid` is the VerifyKey request of the valid key, `check`
    /// its ext_authz Check request, `token` and `limited` the VerifyKey requests of the access
    /// token and of the rate-limited key.
    pub(crate) fn new(
        channels: &[Channel],
        valid: VerifyKeyRequest,
        check: Option<CheckRequest>,
        token: Option<VerifyKeyRequest>,
        limited: Option<VerifyKeyRequest>,
        flood: f64,
    ) -> Client {
        let malformed = broken_checksum(&valid.key);
        Client {
            health: channels.iter().cloned().map(HealthClient::new).collect(),
            keys: channels
                .iter()
                .cloned()
                .map(KeyServiceClient::new)
                .collect(),
            authz: channels
                .iter()
                .cloned()
                .map(AuthorizationClient::new)
                .collect(),
            valid,
            check,
            token,
            limited,
            malformed,
            flood,
            flood_decisions: AtomicU64::new(0),
            flood_sent: AtomicU64::new(0),
            rng: SystemRandom::new(),
        }
    }

    /// Sends one request of `target` on connection `connection` (modulo their number). The
    /// result names the row it belongs to; its error says what went wrong.
    pub(crate) async fn call(
        &self,
        target: Target,
        connection: usize,
    ) -> (Row, Result<(), String>) {
        let slot = connection % self.keys.len();
        let result = match target {
            Target::Health => self.check_health(slot).await,
            Target::Verify => self.verify_valid(slot).await,
            Target::ExtAuthz => self.check_valid(slot).await,
            Target::Token => self.verify_given(slot, self.token.as_ref(), "token").await,
            Target::Limited => {
                self.verify_given(slot, self.limited.as_ref(), "rate-limited key")
                    .await
            }
            Target::Malformed => self.verify_malformed(slot).await,
            Target::Flood if self.next_is_random() => {
                return (Row::FloodRandom, self.verify_random(slot).await);
            }
            Target::Flood => self.verify_valid(slot).await,
        };
        (target.row(), result)
    }

    async fn check_health(&self, slot: usize) -> Result<(), String> {
        let mut client = self.health[slot].clone();
        let response = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|status| format!("Health/Check failed: {status}"))?;
        let status = response.into_inner().status;
        if status == ServingStatus::Serving as i32 {
            Ok(())
        } else {
            Err(format!(
                "Health/Check answered status {status}, not SERVING"
            ))
        }
    }

    async fn verify_valid(&self, slot: usize) -> Result<(), String> {
        self.verify(slot, &self.valid, "key").await
    }

    /// Sends `request` (the token's or the rate-limited key's, if it was given), which must be
    /// accepted; `what` names its credential in the error.
    async fn verify_given(
        &self,
        slot: usize,
        request: Option<&VerifyKeyRequest>,
        what: &str,
    ) -> Result<(), String> {
        match request {
            Some(request) => self.verify(slot, request, what).await,
            None => Err(format!("no {what} was given")),
        }
    }

    /// Sends `request`, which must be accepted; `what` names its credential in the error.
    async fn verify(
        &self,
        slot: usize,
        request: &VerifyKeyRequest,
        what: &str,
    ) -> Result<(), String> {
        let response = self.send(slot, request.clone()).await?;
        if response.valid {
            Ok(())
        } else {
            Err(format!(
                "VerifyKey refused the benchmark {what}: {} ({})",
                response.reason, response.message
            ))
        }
    }

    /// Sends one VerifyKey request on connection `slot`; an RPC error is the call's error.
    async fn send(
        &self,
        slot: usize,
        request: VerifyKeyRequest,
    ) -> Result<VerifyKeyResponse, String> {
        let mut client = self.keys[slot].clone();
        Ok(client
            .verify_key(request)
            .await
            .map_err(|status| format!("VerifyKey failed: {status}"))?
            .into_inner())
    }

    async fn check_valid(&self, slot: usize) -> Result<(), String> {
        let Some(check) = &self.check else {
            return Err("no ext_authz path was given".to_owned());
        };
        let mut client = self.authz[slot].clone();
        let response = client
            .check(check.clone())
            .await
            .map_err(|status| format!("Authorization/Check failed: {status}"))?
            .into_inner();
        match response.http_response {
            Some(HttpResponse::OkResponse(_)) => Ok(()),
            Some(HttpResponse::DeniedResponse(denied)) => Err(format!(
                "Authorization/Check denied the benchmark key: {}",
                denied.body
            )),
            _ => Err("Authorization/Check answered neither OK nor Denied".to_owned()),
        }
    }

    /// The malformed key, which must be refused as `invalid_api_key` (not by the brute-force
    /// guard, which distinct client addresses keep out of the way).
    async fn verify_malformed(&self, slot: usize) -> Result<(), String> {
        let request = VerifyKeyRequest {
            key: self.malformed.clone(),
            client_ip: self.next_flood_address(),
            ..self.valid.clone()
        };
        let response = self.send(slot, request).await?;
        match (response.valid, response.reason.as_str()) {
            (false, "invalid_api_key") => Ok(()),
            (true, _) => Err("VerifyKey accepted a malformed key".to_owned()),
            (false, reason) => Err(format!(
                "VerifyKey refused the malformed key as {reason}, not invalid_api_key"
            )),
        }
    }

    /// A fresh random key, from a distinct client address so that the brute-force guard (100
    /// failures in 15 minutes from one address) does not cut the flood short before any lookup.
    async fn verify_random(&self, slot: usize) -> Result<(), String> {
        let key = ApiKey::generate(Environment::Live, &self.rng)
            .map_err(|error| format!("cannot generate a random key: {error}"))?;
        let request = VerifyKeyRequest {
            key: key.expose().to_owned(),
            client_ip: self.next_flood_address(),
            ..self.valid.clone()
        };
        let response = self.send(slot, request).await?;
        if response.valid {
            Err("VerifyKey accepted a random key".to_owned())
        } else {
            Ok(())
        }
    }

    /// The next of the benchmark range's addresses that random and malformed keys come from.
    fn next_flood_address(&self) -> String {
        let sent = self.flood_sent.fetch_add(1, Ordering::Relaxed);
        let offset = u32::try_from(sent % FLOOD_ADDRESSES).unwrap_or(0);
        IpAddr::V4(Ipv4Addr::from(FLOOD_ADDRESS_BASE + offset)).to_string()
    }

    /// Whether the flood target's next request carries a random key: exactly the `flood`
    /// fraction of them, evenly spread (request n is random when floor((n+1)·f) > floor(n·f)).
    fn next_is_random(&self) -> bool {
        let n = self.flood_decisions.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.flood).floor() > (n * self.flood).floor()
    }
}

/// `key` with its last character replaced by another of the key alphabet: the same length and
/// prefix, a checksum that no longer matches.
fn broken_checksum(key: &str) -> String {
    let mut broken = key.to_owned();
    let last = broken.pop().unwrap_or('A');
    broken.push(if last == 'A' { 'B' } else { 'A' });
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_malformed_key_is_the_valid_one_with_a_checksum_that_fails() {
        let rng = SystemRandom::new();
        for _ in 0..50 {
            let key = ApiKey::generate(Environment::Live, &rng).unwrap();
            let broken = broken_checksum(key.expose());
            assert_eq!(broken.len(), key.expose().len());
            assert_ne!(broken, key.expose());
            assert!(ApiKey::parse(&broken).is_err(), "{broken}");
        }
    }
}
