//! Webhook signatures: the signing secret, its encryption at rest, and the signature every
//! delivery carries.
//!
//! An endpoint signs in one of two modes ([`WebhookSigning`]), chosen when it is created and
//! kept by rotations:
//! - `keyrack` (the default) follows Stripe's scheme. Every POST carries
//!   `Keyrack-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256(secret, "<t>.<body>")>`, where
//!   the HMAC key is the whole secret text (`whsec_` and 43 base62 characters).
//! - `standard` follows the Standard Webhooks specification (standardwebhooks.com), so
//!   receivers can use its off-the-shelf verifiers: `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature: v1,<base64 HMAC-SHA-256(key, "<id>.<timestamp>.<body>")>`, where the
//!   secret is `whsec_<base64 of 32 random bytes>` and the key is those bytes.
//!
//! Either way a receiver recomputes the HMAC over the timestamp and the raw body, compares it in
//! constant time, and refuses timestamps outside a tolerance, so a captured request cannot be
//! replayed later.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use chrono::{DateTime, TimeDelta, Utc};
use ring::{aead, hmac};

use crate::{Error, Pepper, RandomSource};

/// How far a signature's timestamp may be from the receiver's clock, by default.
pub const DEFAULT_SIGNATURE_TOLERANCE: TimeDelta = TimeDelta::minutes(5);

const SECRET_PREFIX: &str = "whsec_";
const SECRET_LEN: usize = 43;
/// The random bytes of a Standard Webhooks secret (256 bits, as the `keyrack` secrets).
const STANDARD_SECRET_BYTES: usize = 32;
/// The key lengths the Standard Webhooks specification allows, in bytes.
const STANDARD_KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Bytes below this map evenly onto base62 (248 = 4 × 62); larger ones are drawn again.
const UNBIASED_BYTE_LIMIT: u8 = 248;
/// The HKDF info label of the key that seals signing secrets; no other key uses it.
const SEAL_KEY_LABEL: &[u8] = b"keyrack webhook signing secrets v1";

/// How an endpoint's deliveries are signed. Stored by name; chosen when the endpoint is created
/// and kept by every rotation of its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WebhookSigning {
    /// `keyrack`: `Keyrack-Signature: t=…,v1=<hex>`, the secret text as the HMAC key.
    #[default]
    Keyrack,
    /// `standard`: the Standard Webhooks headers, the secret's base64 part decoded as the key.
    Standard,
}

impl WebhookSigning {
    /// Every mode.
    pub const ALL: [WebhookSigning; 2] = [WebhookSigning::Keyrack, WebhookSigning::Standard];

    /// The stored (and REST) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            WebhookSigning::Keyrack => "keyrack",
            WebhookSigning::Standard => "standard",
        }
    }

    /// The mode named `name`, if any.
    pub fn parse(name: &str) -> Option<WebhookSigning> {
        WebhookSigning::ALL
            .into_iter()
            .find(|mode| mode.as_str() == name)
    }
}

/// An endpoint's signing secret: `whsec_` and 43 base62 characters (256 bits) in the `keyrack`
/// mode, `whsec_` and the base64 of 32 random bytes in the `standard` mode. `Debug` and
/// `Display` never print it; [`SigningSecret::expose`] is the only way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    /// Draws a new secret for an endpoint signing in `mode` from `rng`.
    pub fn generate_for(
        mode: WebhookSigning,
        rng: &dyn RandomSource,
    ) -> Result<SigningSecret, Error> {
        match mode {
            WebhookSigning::Keyrack => SigningSecret::generate(rng),
            WebhookSigning::Standard => {
                let mut key = [0_u8; STANDARD_SECRET_BYTES];
                rng.fill(&mut key)?;
                Ok(SigningSecret(format!(
                    "{SECRET_PREFIX}{}",
                    BASE64.encode(key)
                )))
            }
        }
    }

    /// Draws a new `keyrack` secret from `rng`.
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

    /// Accepts a secret as shown to the user (e.g. by a receiver that stored it), of either
    /// mode.
    pub fn parse(text: &str) -> Result<SigningSecret, Error> {
        let well_formed = text.strip_prefix(SECRET_PREFIX).is_some_and(|rest| {
            (rest.len() == SECRET_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
                || standard_key(rest).is_some()
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

    /// The Standard Webhooks `webhook-signature` value for the message `id` with `body` sent
    /// at `timestamp` (unix seconds): `v1,<base64 HMAC-SHA-256 of "<id>.<timestamp>.<body>">`,
    /// keyed by the base64-decoded part of the secret. `None` for a `keyrack` secret, whose
    /// text is no base64 key.
    pub fn standard_signature(&self, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
        let key = standard_key(self.0.strip_prefix(SECRET_PREFIX)?)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
        let mut context = hmac::Context::with_key(&key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        Some(format!("v1,{}", BASE64.encode(context.sign().as_ref())))
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

/// The HMAC key of a Standard Webhooks secret's base64 part: padded base64 of 24 to 64 bytes.
/// A `keyrack` secret (43 characters, not a multiple of 4) is never one.
fn standard_key(text: &str) -> Option<Vec<u8>> {
    BASE64
        .decode(text)
        .ok()
        .filter(|key| STANDARD_KEY_BYTES.contains(&key.len()))
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
    fn standard_signatures_match_the_specification() {
        // The Standard Webhooks specification's test vector (its reference libraries' tests).
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret
                .standard_signature(
                    "msg_p5jXN8AQM9LWM0D4loKWxJek",
                    1_614_265_330,
                    br#"{"test": 2432232314}"#
                )
                .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let generated =
            SigningSecret::generate_for(WebhookSigning::Standard, &SystemRandom::new()).unwrap();
        assert!(generated.expose().starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(generated.expose()).unwrap(), generated);
        assert_eq!(standard_key(&generated.expose()[6..]).unwrap().len(), 32);
        // A keyrack secret signs no standard signature.
        assert!(secret_keyrack().standard_signature("id", 1, b"").is_none());
        for mode in WebhookSigning::ALL {
            assert_eq!(WebhookSigning::parse(mode.as_str()), Some(mode));
        }
    }

    fn secret_keyrack() -> SigningSecret {
        secret()
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
}
