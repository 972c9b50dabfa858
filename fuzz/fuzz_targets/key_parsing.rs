//! A presented API key (`ApiKey::parse`, `Environment::parse`) and the `Authorization: Bearer`
//! header it arrives in (`key_proto::bearer_token`), from arbitrary bytes.
//!
//! The first byte picks the input's shape: odd, the rest is a key drawn from those bytes as the
//! random source, then perhaps one character replaced (a valid key, or a near miss, which
//! random bytes would almost never be: the checksum); even, the rest as it comes.

#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use key_core::{ApiKey, Environment, Error, KEY_MAX_INPUT_BYTES, RandomSource};
use key_proto::{BearerError, bearer_token};
use libfuzzer_sys::fuzz_target;

/// Replays the fuzzer's bytes as randomness, each once, then zeros: every draw ends, also when
/// the bytes are all 248 or more (which the key format draws again).
#[derive(Debug)]
struct Replay {
    bytes: Vec<u8>,
    next: AtomicUsize,
}

impl RandomSource for Replay {
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
        let start = self.next.fetch_add(dest.len(), Ordering::Relaxed);
        for (i, byte) in dest.iter_mut().enumerate() {
            *byte = self.bytes.get(start + i).copied().unwrap_or(0);
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    if shape % 2 == 1 {
        near_miss(shape, rest);
    } else {
        as_given(rest);
    }
});

/// A generated key, with one character replaced when the bytes say so: accepted exactly when
/// nothing changed.
fn near_miss(shape: u8, rest: &[u8]) {
    let (edit, seed) = rest.split_at(rest.len().min(2));
    let seed = Replay {
        bytes: seed.to_vec(),
        next: AtomicUsize::new(0),
    };
    let environment = if shape & 2 == 0 {
        Environment::Live
    } else {
        Environment::Test
    };
    let key = ApiKey::generate(environment, &seed).unwrap();
    let mut text = key.expose().to_owned();
    let mut changed = false;
    if let [position, replacement] = *edit {
        let position = usize::from(position) % text.len();
        let replacement = char::from(replacement);
        if !text[position..].starts_with(replacement) {
            text.replace_range(position..=position, &replacement.to_string());
            changed = true;
        }
    }
    let parsed = check_key(&text);
    assert_eq!(parsed.is_some(), !changed, "{text:?}");
    if let Some(parsed) = parsed {
        assert_eq!(parsed, key);
    }
    check_bearer(format!("Bearer {text}").as_bytes());
}

fn as_given(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        check_key(text);
        if let Ok(environment) = Environment::parse(text) {
            assert_eq!(environment.as_str(), text);
        }
    }
    check_bearer(bytes);
}

/// Whatever `ApiKey::parse` accepts is a key: the input less surrounding ASCII whitespace, of
/// the documented shape, parsing again to itself, shown only as prefix and last 4.
fn check_key(text: &str) -> Option<ApiKey> {
    let key = ApiKey::parse(text).ok()?;
    let shown = key.expose();
    assert!(text.len() <= KEY_MAX_INPUT_BYTES);
    assert_eq!(shown, text.trim_matches(|c: char| c.is_ascii_whitespace()));
    let prefix = key.environment().key_prefix();
    assert!(shown.starts_with(prefix));
    assert_eq!(shown.len(), prefix.len() + 43 + 6);
    assert!(
        shown[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
    );
    assert_eq!(ApiKey::parse(shown).ok().as_ref(), Some(&key));
    let last4 = &shown[shown.len() - 4..];
    assert_eq!(key.to_string(), format!("{prefix}…{last4}"));
    assert_eq!(format!("{key:?}"), format!("ApiKey({prefix}…{last4})"));
    Some(key)
}

/// The bytes as an `Authorization` header value: a token only after `bearer` (any case) and
/// one space, the rest untouched; a key read from it holds no whitespace.
fn check_bearer(bytes: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value.clone());
    let readable = value.to_str().ok();
    match bearer_token(&headers) {
        Ok(token) => {
            let text = readable.unwrap();
            assert!(text.len() >= 7 && text[..6].eq_ignore_ascii_case("bearer"));
            assert_eq!(&text[6..7], " ");
            assert_eq!(token, &text[7..]);
            if let Some(key) = check_key(token) {
                assert!(!key.expose().contains(|c: char| c.is_whitespace()));
                assert!(text.contains(key.expose()));
            }
        }
        Err(BearerError::Unreadable) => assert!(readable.is_none()),
        Err(BearerError::Missing) => {
            let text = readable.unwrap();
            assert!(
                !(text.len() >= 7
                    && text[..6].eq_ignore_ascii_case("bearer")
                    && &text[6..7] == " ")
            );
        }
    }
}
