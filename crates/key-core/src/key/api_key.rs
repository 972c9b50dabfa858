//! The key format: `sk_<environment>_<secret><checksum>`, and OAuth's tokens in the same
//! family: `oat_<environment>_…` (access tokens) and `ort_<environment>_…` (refresh tokens).
//!
//! The secret is 43 base62 characters drawn from a cryptographic RNG (256 bits). The checksum
//! is CRC32 over everything before it, base62-encoded in 6 characters, as in GitHub's token
//! scheme: a mistyped or truncated key is rejected here, before any lookup.

use std::fmt;

use crate::{Error, RandomSource};

/// Input longer than this is rejected before anything else is looked at.
pub const KEY_MAX_INPUT_BYTES: usize = 512;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// Bytes below this map evenly onto base62 (248 = 4 × 62); larger ones are drawn again.
const UNBIASED_BYTE_LIMIT: u8 = 248;

/// Whether a key is for production or for development.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// `sk_live_…`
    Live,
    /// `sk_test_…`
    Test,
}

impl Environment {
    /// The environment's name inside a key and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    /// The key prefix, e.g. `sk_live_`.
    pub const fn key_prefix(self) -> &'static str {
        match self {
            Environment::Live => "sk_live_",
            Environment::Test => "sk_test_",
        }
    }

    /// Parses `live` or `test`.
    pub fn parse(name: &str) -> Result<Environment, Error> {
        match name {
            "live" => Ok(Environment::Live),
            "test" => Ok(Environment::Test),
            other => Err(Error::InvalidArgument {
                field: "environment",
                message: format!("unknown environment {other:?}, expected \"live\" or \"test\""),
            }),
        }
    }
}

/// What a credential of the key format is: an API key, or one of OAuth's tokens. The three share
/// the secret and the checksum, so a scanner matches them alike and a malformed one is refused
/// without a lookup; only the prefix tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// An API key, `sk_…`.
    ApiKey,
    /// An OAuth access token, `oat_…`: verified like a key, on behalf of its grant.
    AccessToken,
    /// An OAuth refresh token, `ort_…`: only the token endpoint takes it; verification refuses
    /// it without a lookup.
    RefreshToken,
}

impl CredentialKind {
    /// The prefix of this kind of credential in `environment`, e.g. `oat_live_`.
    pub const fn prefix(self, environment: Environment) -> &'static str {
        match (self, environment) {
            (CredentialKind::ApiKey, environment) => environment.key_prefix(),
            (CredentialKind::AccessToken, Environment::Live) => "oat_live_",
            (CredentialKind::AccessToken, Environment::Test) => "oat_test_",
            (CredentialKind::RefreshToken, Environment::Live) => "ort_live_",
            (CredentialKind::RefreshToken, Environment::Test) => "ort_test_",
        }
    }

    const ALL: [CredentialKind; 3] = [
        CredentialKind::ApiKey,
        CredentialKind::AccessToken,
        CredentialKind::RefreshToken,
    ];
}

/// A well-formed API key (or OAuth token, see [`CredentialKind`]) in plaintext.
///
/// It exists in two places only: in the create response, and in memory while a presented key is
/// verified. `Debug` and `Display` show the redacted form, so it cannot leak into a log by
/// accident; [`ApiKey::expose`] is the one way to the plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    text: String,
    environment: Environment,
    kind: CredentialKind,
}

impl ApiKey {
    /// Draws a new key from `rng`.
    pub fn generate(environment: Environment, rng: &dyn RandomSource) -> Result<ApiKey, Error> {
        ApiKey::generate_kind(CredentialKind::ApiKey, environment, rng)
    }

    /// Draws a new credential of `kind` from `rng`.
    pub fn generate_kind(
        kind: CredentialKind,
        environment: Environment,
        rng: &dyn RandomSource,
    ) -> Result<ApiKey, Error> {
        let prefix = kind.prefix(environment);
        let mut text = String::with_capacity(encoded_len(prefix));
        text.push_str(prefix);
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
        let checksum = checksum(&text);
        // The digits are ASCII from BASE62, so every byte is a char of its own.
        text.extend(checksum_text(checksum).map(char::from));
        Ok(ApiKey {
            text,
            environment,
            kind,
        })
    }

    /// Parses a presented key. Surrounding whitespace (as copied from a header or a file) is not
    /// part of the key. Anything else that is not exactly a key of this format is
    /// [`Error::InvalidApiKey`].
    pub fn parse(input: &str) -> Result<ApiKey, Error> {
        if input.len() > KEY_MAX_INPUT_BYTES {
            return Err(Error::InvalidApiKey);
        }
        let text = input.trim_matches(|c: char| c.is_ascii_whitespace());
        let Some((kind, environment)) = CredentialKind::ALL
            .into_iter()
            .flat_map(|kind| [(kind, Environment::Live), (kind, Environment::Test)])
            .find(|(kind, environment)| text.starts_with(kind.prefix(*environment)))
        else {
            return Err(Error::InvalidApiKey);
        };
        let prefix = kind.prefix(environment);
        if text.len() != encoded_len(prefix) {
            return Err(Error::InvalidApiKey);
        }
        let body = &text.as_bytes()[prefix.len()..];
        if !body.iter().all(u8::is_ascii_alphanumeric) {
            return Err(Error::InvalidApiKey);
        }
        let (covered, given) = text.split_at(text.len() - CHECKSUM_LEN);
        if checksum_text(checksum(covered)) != given.as_bytes() {
            return Err(Error::InvalidApiKey);
        }
        Ok(ApiKey {
            text: text.to_owned(),
            environment,
            kind,
        })
    }

    /// The plaintext. Call it only to hand the key to its owner once, or to hash it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// live or test.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// A key, or one of OAuth's tokens.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The key's environment and the first [`KEY_LEAD_CHARS`] characters of its secret: what
    /// the brute-force guard counts failures by when many addresses guess at the rest of one
    /// key. Never shown: it is part of a secret.
    pub fn lead(&self) -> KeyLead {
        let start = self.kind.prefix(self.environment).len();
        let mut chars = [0_u8; KEY_LEAD_CHARS];
        chars.copy_from_slice(&self.text.as_bytes()[start..start + KEY_LEAD_CHARS]);
        KeyLead {
            environment: self.environment,
            chars,
        }
    }

    /// The display form, e.g. `sk_live_…abcd`.
    pub fn redacted(&self) -> RedactedKey {
        let last4 = &self.text[self.text.len() - 4..];
        RedactedKey {
            environment: self.environment,
            last4: last4.to_owned(),
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({self})")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last4 = &self.text[self.text.len() - 4..];
        write!(f, "{}…{last4}", self.kind.prefix(self.environment))
    }
}

/// How many characters of a key's secret its [`KeyLead`] keeps: 8 base62 characters (47 bits)
/// tell random guesses apart, while someone who knows that much of one key and guesses the
/// rest presents the same lead every time.
pub const KEY_LEAD_CHARS: usize = 8;

/// The beginning of a presented key (see [`ApiKey::lead`]). `Debug` hides the characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyLead {
    environment: Environment,
    chars: [u8; KEY_LEAD_CHARS],
}

impl fmt::Debug for KeyLead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyLead({}…)", self.environment.key_prefix())
    }
}

/// What may be shown of a key after its creation: its environment and its last 4 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactedKey {
    /// The key's environment.
    pub environment: Environment,
    /// The last 4 characters of the key (part of its checksum).
    pub last4: String,
}

impl fmt::Display for RedactedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…{}", self.environment.key_prefix(), self.last4)
    }
}

const fn encoded_len(prefix: &str) -> usize {
    prefix.len() + SECRET_LEN + CHECKSUM_LEN
}

fn checksum(covered: &str) -> u32 {
    crc32fast::hash(covered.as_bytes())
}

/// CRC32 in base62, most significant digit first, left-padded with `0` to 6 characters
/// (62^6 > 2^32, so every value fits). Bytes, not a `String`: `ApiKey::parse` compares them on
/// every verification, and an allocation there would cost as much as the rest of the parse.
fn checksum_text(mut value: u32) -> [u8; CHECKSUM_LEN] {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use ring::rand::SystemRandom;

    use super::*;

    /// A "random" source that replays fixed bytes, so generated keys are reproducible.
    #[derive(Debug)]
    struct Replay(Vec<u8>);

    impl RandomSource for Replay {
        fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
            for (i, byte) in dest.iter_mut().enumerate() {
                *byte = self.0[i % self.0.len()];
            }
            Ok(())
        }
    }

    fn fresh(environment: Environment) -> ApiKey {
        ApiKey::generate(environment, &SystemRandom::new()).unwrap()
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = fresh(Environment::Live);
        let text = key.expose();
        assert!(text.starts_with("sk_live_"), "{text}");
        assert_eq!(text.len(), 8 + 43 + 6);
        assert!(text[8..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(fresh(Environment::Test).expose().starts_with("sk_test_"));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(fresh(Environment::Live), fresh(Environment::Live));
    }

    #[test]
    fn biased_bytes_are_drawn_again() {
        // 255 is rejected, 1 maps to '1': the secret is all '1', never the byte 255 folded in.
        let key = ApiKey::generate(Environment::Live, &Replay(vec![255, 1])).unwrap();
        assert!(key.expose()[8..8 + 43].bytes().all(|b| b == b'1'));
    }

    #[test]
    fn surrounding_whitespace_is_not_part_of_the_key() {
        let key = fresh(Environment::Live);
        let parsed = ApiKey::parse(&format!("  {}\r\n", key.expose())).unwrap();
        assert_eq!(parsed, key);
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let key = fresh(Environment::Live);
        let text = key.expose();
        let cases = [
            String::new(),
            "sk_live_".to_owned(),
            text.replacen("sk_", "pk_", 1),
            text.replacen("live", "prod", 1),
            text.replacen("live", "LIVE", 1),
            text[..text.len() - 1].to_owned(),
            format!("{text}a"),
            format!("{}-{}", &text[..20], &text[21..]),
            format!("{}é{}", &text[..20], &text[22..]),
            format!("{} {}", &text[..20], &text[21..]),
            "x".repeat(KEY_MAX_INPUT_BYTES + 1),
            format!("{text}{}", " ".repeat(KEY_MAX_INPUT_BYTES)),
        ];
        for case in cases {
            assert!(
                matches!(ApiKey::parse(&case), Err(Error::InvalidApiKey)),
                "{case:?}"
            );
        }
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let key = fresh(Environment::Live);
        let secret = &key.expose()[8..40];
        assert!(!format!("{key:?}").contains(secret));
        assert!(!format!("{key}").contains(secret));
        assert_eq!(
            key.redacted().to_string(),
            format!("sk_live_…{}", &key.expose()[53..])
        );
    }

    #[test]
    fn oauth_tokens_are_of_the_family_and_told_apart() {
        let rng = SystemRandom::new();
        for (kind, prefix) in [
            (CredentialKind::AccessToken, "oat_live_"),
            (CredentialKind::RefreshToken, "ort_live_"),
        ] {
            let token = ApiKey::generate_kind(kind, Environment::Live, &rng).unwrap();
            let text = token.expose();
            assert!(text.starts_with(prefix), "{text}");
            assert_eq!(text.len(), prefix.len() + 43 + 6);
            let parsed = ApiKey::parse(text).unwrap();
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed, token);
            assert!(!format!("{token:?}").contains(&text[9..40]));
            assert!(format!("{token}").starts_with(prefix));
            // The checksum covers the prefix: a token is not a key by a prefix swap.
            assert!(ApiKey::parse(&text.replacen(&prefix[..4], "sk_", 1)).is_err());
        }
        assert_eq!(fresh(Environment::Test).kind(), CredentialKind::ApiKey);
    }

    #[test]
    fn checksum_is_zero_padded_base62() {
        assert_eq!(checksum_text(0), *b"000000");
        assert_eq!(checksum_text(61), *b"00000z");
        assert_eq!(checksum_text(62), *b"000010");
        assert_eq!(checksum_text(u32::MAX), *b"4gfFC3");
    }

    proptest! {
        #[test]
        fn generated_keys_parse_back(seed in proptest::collection::vec(0_u8..248, 1..64), test_env: bool) {
            let environment = if test_env { Environment::Test } else { Environment::Live };
            let key = ApiKey::generate(environment, &Replay(seed)).unwrap();
            prop_assert_eq!(ApiKey::parse(key.expose()).unwrap(), key);
        }

        #[test]
        fn any_single_character_change_is_rejected(position in 8_usize..57, replacement in 0_usize..62) {
            let key = fresh(Environment::Live);
            let mut bytes = key.expose().as_bytes().to_vec();
            let new = BASE62[replacement];
            prop_assume!(bytes[position] != new);
            bytes[position] = new;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(ApiKey::parse(&changed).is_err());
        }

        #[test]
        fn arbitrary_input_never_panics(input in ".{0,600}") {
            let _ = ApiKey::parse(&input);
        }
    }

    /// A generated key, with ASCII whitespace around it, and perhaps one character replaced.
    fn presented_key() -> impl Strategy<Value = (String, Option<(usize, char)>)> {
        let whitespace =
            || proptest::collection::vec(proptest::sample::select(&b" \t\r\n\x0c"[..]), 0..3);
        (
            proptest::collection::vec(0_u8..248, 1..64),
            any::<bool>(),
            whitespace(),
            whitespace(),
            proptest::option::of((0_usize..57, any::<char>())),
        )
            .prop_map(|(seed, test_env, before, after, change)| {
                let environment = if test_env {
                    Environment::Test
                } else {
                    Environment::Live
                };
                let mut key: Vec<char> = ApiKey::generate(environment, &Replay(seed))
                    .unwrap()
                    .expose()
                    .chars()
                    .collect();
                let change = change.filter(|(position, new)| key[*position] != *new);
                if let Some((position, new)) = change {
                    key[position] = new;
                }
                let text = before
                    .into_iter()
                    .map(char::from)
                    .chain(key)
                    .chain(after.into_iter().map(char::from))
                    .collect();
                (text, change)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// What is accepted is a key and nothing else: the text as given less the surrounding
        /// whitespace, which parses again to itself and shows only its prefix and last 4.
        /// Any one character changed, anywhere, is refused.
        #[test]
        fn a_key_is_accepted_exactly_as_generated((input, change) in presented_key()) {
            let parsed = ApiKey::parse(&input);
            prop_assert_eq!(parsed.is_ok(), change.is_none(), "{:?}", input);
            if let Ok(key) = parsed {
                let text = key.expose();
                prop_assert_eq!(text, input.trim_matches(|c: char| c.is_ascii_whitespace()));
                prop_assert_eq!(ApiKey::parse(text).unwrap(), key.clone());
                prop_assert!(text.starts_with(key.environment().key_prefix()));
                prop_assert_eq!(text.len(), encoded_len(key.environment().key_prefix()));
                prop_assert_eq!(
                    key.to_string(),
                    format!("{}…{}", key.environment().key_prefix(), &text[text.len() - 4..])
                );
            }
        }
    }
}
