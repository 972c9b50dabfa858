//! Webhooks: the signature scheme, the signing secret and its encryption at rest, endpoint URL
//! and description rules, and the retry schedule of deliveries.
//!
//! The signature follows Stripe's scheme. Every POST carries
//! `Keyrack-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256(secret, "<t>.<body>")>`, where the
//! HMAC key is the whole secret text (`whsec_…`). A receiver recomputes the HMAC over the
//! timestamp and the raw body, compares it in constant time, and refuses timestamps outside a
//! tolerance, so a captured request cannot be replayed later.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use ring::{aead, hmac};

use crate::{Error, Pepper, RandomSource};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Keyrack-Signature";
/// The header carrying the event id: the idempotency id, the same on every retry.
pub const EVENT_ID_HEADER: &str = "Keyrack-Event-Id";
/// The header carrying the delivery id (one per event and endpoint).
pub const DELIVERY_ID_HEADER: &str = "Keyrack-Delivery-Id";
/// The header carrying the attempt number, from 1.
pub const ATTEMPT_HEADER: &str = "Keyrack-Attempt";
/// The User-Agent of every delivery.
pub const USER_AGENT: &str = "Keyrack-Webhooks/1";
/// How far a signature's timestamp may be from the receiver's clock, by default.
pub const DEFAULT_SIGNATURE_TOLERANCE: TimeDelta = TimeDelta::minutes(5);
/// The longest endpoint URL accepted, in characters.
pub const MAX_WEBHOOK_URL_CHARS: usize = 2048;
/// The longest endpoint description accepted, in characters.
pub const MAX_WEBHOOK_DESCRIPTION_CHARS: usize = 200;

const SECRET_PREFIX: &str = "whsec_";
const SECRET_LEN: usize = 43;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Bytes below this map evenly onto base62 (248 = 4 × 62); larger ones are drawn again.
const UNBIASED_BYTE_LIMIT: u8 = 248;
/// The HKDF info label of the key that seals signing secrets; no other key uses it.
const SEAL_KEY_LABEL: &[u8] = b"keyrack webhook signing secrets v1";

/// An endpoint's signing secret: `whsec_` and 43 base62 characters (256 bits). `Debug` and
/// `Display` never print it; [`SigningSecret::expose`] is the only way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    /// Draws a new secret from `rng`.
    pub fn generate(rng: &dyn RandomSource) -> Result<SigningSecret, Error> {
        let mut text = String::with_capacity(SECRET_PREFIX.len() + SECRET_LEN);
        text.push_str(SECRET_PREFIX);
        let mut pool = [0_u8; 64];
        let mut drawn = 0;
        while drawn < SECRET_LEN {
            rng.fill(&mut pool)?;
            for &byte in pool.iter().filter(|byte| **byte < UNBIASED_BYTE_LIMIT) {
                if drawn == SECRET_LEN {
                    break;
                }
                text.push(char::from(BASE62[usize::from(byte % 62)]));
                drawn += 1;
            }
        }
        Ok(SigningSecret(text))
    }

    /// Accepts a secret as shown to the user (e.g. by a receiver that stored it).
    pub fn parse(text: &str) -> Result<SigningSecret, Error> {
        let well_formed = text.strip_prefix(SECRET_PREFIX).is_some_and(|rest| {
            rest.len() == SECRET_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if !well_formed {
            return Err(Error::InvalidArgument {
                field: "signing_secret",
                message: "not a webhook signing secret".to_owned(),
            });
        }
        Ok(SigningSecret(text.to_owned()))
    }

    /// The secret's text, to show once or to sign with.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex HMAC-SHA-256 of `"<timestamp>.<body>"` under this secret.
    pub fn signature(&self, timestamp: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.as_bytes());
        let mut context = hmac::Context::with_key(&key);
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        hex(context.sign().as_ref())
    }

    /// The `Keyrack-Signature` header value for `body` sent at `timestamp` (unix seconds).
    pub fn signature_header(&self, timestamp: i64, body: &[u8]) -> String {
        format!("t={timestamp},v1={}", self.signature(timestamp, body))
    }

    /// Whether `header` is a valid signature of `body` under this secret, made within
    /// `tolerance` of `now`. Any of several `v1=` values may match (a sender may sign with two
    /// secrets during a rotation). The comparison is in constant time.
    pub fn verify(
        &self,
        header: &str,
        body: &[u8],
        now: DateTime<Utc>,
        tolerance: TimeDelta,
    ) -> SignatureCheck {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
                Some(("v1", value)) => signatures.push(value),
                _ => {}
            }
        }
        let Some(timestamp) = timestamp else {
            return SignatureCheck::Malformed;
        };
        if signatures.is_empty() {
            return SignatureCheck::Malformed;
        }
        if (now.timestamp() - timestamp).abs() > tolerance.num_seconds() {
            return SignatureCheck::OutsideTolerance;
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.as_bytes());
        let mut message = timestamp.to_string().into_bytes();
        message.push(b'.');
        message.extend_from_slice(body);
        let matched = signatures.iter().any(|signature| {
            unhex(signature).is_some_and(|tag| hmac::verify(&key, &message, &tag).is_ok())
        });
        if matched {
            SignatureCheck::Valid
        } else {
            SignatureCheck::Mismatch
        }
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(whsec_…)")
    }
}

impl fmt::Display for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_…")
    }
}

/// What a receiver learns from checking a `Keyrack-Signature` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Signed with the secret, recently enough.
    Valid,
    /// Not of the form `t=…,v1=…`.
    Malformed,
    /// The timestamp is too far from now: possibly a replay.
    OutsideTolerance,
    /// No `v1=` value matches: another secret, or a changed body.
    Mismatch,
}

/// Encrypts signing secrets for storage (AES-256-GCM), under a key derived from the pepper with
/// its own HKDF label. A secret must be recoverable to sign deliveries, so it cannot be hashed;
/// sealed, a stolen database alone does not reveal it. Each sealed secret is bound to its
/// endpoint's id (the associated data), so it cannot be copied onto another endpoint's row.
pub struct WebhookSecretCipher(aead::LessSafeKey);

impl WebhookSecretCipher {
    /// The cipher of the server holding `pepper`.
    pub fn new(pepper: &Pepper) -> Result<WebhookSecretCipher, Error> {
        let key_bytes = pepper.derive_subkey(SEAL_KEY_LABEL)?;
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, &key_bytes)
            .map_err(|_| Error::Internal("cannot build the webhook secret key".to_owned()))?;
        Ok(WebhookSecretCipher(aead::LessSafeKey::new(key)))
    }

    /// `secret` sealed for the endpoint `endpoint_id`: a random 96-bit nonce, then the
    /// ciphertext and its tag.
    pub fn seal(
        &self,
        secret: &SigningSecret,
        endpoint_id: uuid::Uuid,
        rng: &dyn RandomSource,
    ) -> Result<Vec<u8>, Error> {
        let mut nonce = [0_u8; aead::NONCE_LEN];
        rng.fill(&mut nonce)?;
        let mut sealed = secret.expose().as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(endpoint_id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| Error::Internal("cannot seal a webhook secret".to_owned()))?;
        let mut out = nonce.to_vec();
        out.append(&mut sealed);
        Ok(out)
    }

    /// The secret sealed by [`WebhookSecretCipher::seal`] for `endpoint_id`.
    pub fn open(&self, sealed: &[u8], endpoint_id: uuid::Uuid) -> Result<SigningSecret, Error> {
        let corrupt = || {
            Error::Internal(format!(
                "the signing secret of webhook endpoint {endpoint_id} cannot be opened"
            ))
        };
        if sealed.len() < aead::NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = sealed.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, aead::Aad::from(endpoint_id.as_bytes()), &mut buffer)
            .map_err(|_| corrupt())?;
        let text = std::str::from_utf8(plain).map_err(|_| corrupt())?;
        SigningSecret::parse(text).map_err(|_| corrupt())
    }
}

impl fmt::Debug for WebhookSecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecretCipher(..)")
    }
}

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
    Ok(text.to_owned())
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not yet answered with 2xx; another attempt is scheduled.
    Pending,
    /// An attempt was answered with 2xx.
    Succeeded,
    /// Retries ran out, or the endpoint was deleted.
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
        }
    }

    /// The state stored as `name`.
    pub fn parse(name: &str) -> Option<DeliveryState> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// When a failed delivery is tried again.
///
/// The first attempt is made as soon as the delivery exists. After the n-th failed attempt
/// (n ≥ 1) the next one waits `min(base × 2^(n−1), cap)`, shortened by a jitter of up to 10 %
/// (so replicas and endpoints do not retry in lockstep). With the defaults (30 s base, 1 h cap):
/// 30 s, 1 min, 2 min, 4 min, 8 min, 16 min, 32 min, then every hour. A delivery gives up when
/// its next attempt would fall more than `horizon` (25 h) after its creation. As no wait
/// exceeds the cap, the last attempt is made more than `horizon − cap` (24 h) after creation:
/// retries span at least 24 hours (about 31 attempts with the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The wait after the first failed attempt.
    pub base: TimeDelta,
    /// The longest wait between two attempts.
    pub cap: TimeDelta,
    /// No attempt is scheduled later than this after the delivery's creation.
    pub horizon: TimeDelta,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            base: TimeDelta::seconds(30),
            cap: TimeDelta::hours(1),
            horizon: TimeDelta::hours(25),
        }
    }
}

impl RetrySchedule {
    /// The default schedule with another `base` wait (tests use a short one).
    pub fn with_base(base: TimeDelta) -> RetrySchedule {
        RetrySchedule {
            base,
            ..RetrySchedule::default()
        }
    }

    /// When to try again after `attempts_made` failed attempts, the last one at `now`, of a
    /// delivery created at `created_at`; `None` to give up. `jitter` is a random value: the
    /// wait is shortened by `jitter / u32::MAX × 10 %`.
    pub fn next_attempt(
        &self,
        created_at: DateTime<Utc>,
        attempts_made: u32,
        now: DateTime<Utc>,
        jitter: u32,
    ) -> Option<DateTime<Utc>> {
        let doublings = attempts_made.saturating_sub(1).min(30);
        let wait = self
            .base
            .checked_mul(1_i32 << doublings)
            .map_or(self.cap, |wait| wait.min(self.cap));
        let wait_ms = wait.num_milliseconds();
        let shortening =
            i64::try_from(i128::from(wait_ms) * i128::from(jitter) / (10 * i128::from(u32::MAX)))
                .unwrap_or(0);
        let next = now + TimeDelta::milliseconds(wait_ms - shortening);
        (next <= created_at + self.horizon).then_some(next)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;

    const SECRET: &str = "whsec_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

    fn secret() -> SigningSecret {
        SigningSecret::parse(SECRET).unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn signature_matches_a_known_answer() {
        // Computed independently: python3 -c 'import hmac,hashlib;
        // print(hmac.new(SECRET.encode(), b"1700000000.{\"id\":\"e1\"}", hashlib.sha256).hexdigest())'
        let body = br#"{"id":"e1"}"#;
        assert_eq!(
            secret().signature_header(1_700_000_000, body),
            format!("t=1700000000,v1={KNOWN_ANSWER}")
        );
    }

    const KNOWN_ANSWER: &str = "df975ab8b70cfa3dcbfe343d1e882c40e5c469078c353ca7f4c331d5af19e103";

    #[test]
    fn verification_accepts_only_the_right_secret_body_and_time() {
        let body = br#"{"id":"e1"}"#;
        let header = secret().signature_header(1_700_000_000, body);
        let tolerance = DEFAULT_SIGNATURE_TOLERANCE;
        let now = at(1_700_000_100);
        assert_eq!(
            secret().verify(&header, body, now, tolerance),
            SignatureCheck::Valid
        );
        assert_eq!(
            secret().verify(&header, b"{}", now, tolerance),
            SignatureCheck::Mismatch
        );
        let other = SigningSecret::generate(&SystemRandom::new()).unwrap();
        assert_eq!(
            other.verify(&header, body, now, tolerance),
            SignatureCheck::Mismatch
        );
        assert_eq!(
            secret().verify(&header, body, at(1_700_000_301), tolerance),
            SignatureCheck::OutsideTolerance
        );
        assert_eq!(
            secret().verify("v1=abcd", body, now, tolerance),
            SignatureCheck::Malformed
        );
        // A second signature (from a rotation) may be the one that matches.
        let both = format!(
            "t=1700000000,v1={},v1={}",
            other.signature(1_700_000_000, body),
            secret().signature(1_700_000_000, body)
        );
        assert_eq!(
            secret().verify(&both, body, now, tolerance),
            SignatureCheck::Valid
        );
    }

    #[test]
    fn generated_secrets_have_the_documented_shape_and_hide_in_logs() {
        let secret = SigningSecret::generate(&SystemRandom::new()).unwrap();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.expose().len(), 6 + 43);
        assert_eq!(SigningSecret::parse(secret.expose()).unwrap(), secret);
        assert!(!format!("{secret:?} {secret}").contains(&secret.expose()[6..]));
        assert!(SigningSecret::parse("whsec_short").is_err());
    }

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint() {
        let rng = SystemRandom::new();
        let cipher = WebhookSecretCipher::new(&Pepper::new(&[7; 32]).unwrap()).unwrap();
        let endpoint = uuid::Uuid::now_v7();
        let sealed = cipher.seal(&secret(), endpoint, &rng).unwrap();
        assert!(
            !sealed
                .windows(SECRET.len())
                .any(|window| window == SECRET.as_bytes())
        );
        assert_eq!(cipher.open(&sealed, endpoint).unwrap(), secret());
        assert!(cipher.open(&sealed, uuid::Uuid::now_v7()).is_err());
        let other = WebhookSecretCipher::new(&Pepper::new(&[8; 32]).unwrap()).unwrap();
        assert!(other.open(&sealed, endpoint).is_err());
    }

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

    #[test]
    fn retries_back_off_to_the_cap_and_span_at_least_a_day() {
        let schedule = RetrySchedule::default();
        let created = at(1_700_000_000);
        assert_eq!(
            schedule.next_attempt(created, 1, created, 0),
            Some(created + TimeDelta::seconds(30))
        );
        assert_eq!(
            schedule.next_attempt(created, 3, created, 0),
            Some(created + TimeDelta::minutes(2))
        );
        assert_eq!(
            schedule.next_attempt(created, 20, created, 0),
            Some(created + TimeDelta::hours(1))
        );
        // The largest jitter shortens a wait by 10 %.
        assert_eq!(
            schedule.next_attempt(created, 1, created, u32::MAX),
            Some(created + TimeDelta::seconds(27))
        );
        for jitter in [0, u32::MAX / 2, u32::MAX] {
            let mut now = created;
            let mut attempts = 1;
            while let Some(next) = schedule.next_attempt(created, attempts, now, jitter) {
                assert!(next > now);
                now = next;
                attempts += 1;
            }
            assert!(now - created >= TimeDelta::hours(24), "{jitter}: {now}");
            assert!(now - created <= TimeDelta::hours(25));
            assert!((25..=40).contains(&attempts), "{attempts}");
        }
    }
}
