//! The one reading of `Authorization: Bearer <key>`, for both transports: the gRPC service reads
//! it from the request's metadata (as HTTP headers), the REST gateway from its request.

use std::{error::Error, fmt};

use http::{HeaderMap, header::AUTHORIZATION};

/// Why a request carries no usable bearer credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BearerError {
    /// No `Authorization` header, or not the `Bearer` scheme: nothing was presented as a key.
    Missing,
    /// An `Authorization` header that is not visible ASCII, so no key can be read from it.
    Unreadable,
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BearerError::Missing => "no bearer credential",
            BearerError::Unreadable => "the authorization header is not visible ASCII",
        })
    }
}

impl Error for BearerError {}

/// The token after `Bearer ` in the `Authorization` header (the first one, if repeated). The
/// scheme is case-insensitive; the token is everything after the first space, untrimmed and
/// possibly empty: judging it is the key service's job.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(BearerError::Missing)?
        .to_str()
        .map_err(|_| BearerError::Unreadable)?;
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn token(value: &[u8]) -> Result<String, BearerError> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn the_token_follows_the_scheme_untouched() {
        assert_eq!(token(b"Bearer sk_live_abc").unwrap(), "sk_live_abc");
        assert_eq!(token(b"bearer sk_live_abc").unwrap(), "sk_live_abc");
        assert_eq!(token(b"BEARER sk_live_abc").unwrap(), "sk_live_abc");
        // Everything after the first space, spaces and tabs included.
        assert_eq!(token(b"Bearer  sk_live_abc ").unwrap(), " sk_live_abc ");
        assert_eq!(token(b"Bearer a b").unwrap(), "a b");
        assert_eq!(token(b"Bearer \tabc").unwrap(), "\tabc");
        assert_eq!(token(b"Bearer ").unwrap(), "");
    }

    #[test]
    fn no_bearer_credential_is_missing() {
        assert_eq!(bearer_token(&HeaderMap::new()), Err(BearerError::Missing));
        assert_eq!(token(b""), Err(BearerError::Missing));
        assert_eq!(token(b"Bearer"), Err(BearerError::Missing));
        assert_eq!(token(b"Bearersk_live_abc"), Err(BearerError::Missing));
        assert_eq!(token(b"Basic dXNlcjpwYXNz"), Err(BearerError::Missing));
        assert_eq!(token(b" Bearer sk_live_abc"), Err(BearerError::Missing));
    }

    #[test]
    fn a_header_that_is_not_visible_ascii_is_unreadable() {
        assert_eq!(token("Bearer clé".as_bytes()), Err(BearerError::Unreadable));
        assert_eq!(token(b"\xff"), Err(BearerError::Unreadable));
    }

    #[test]
    fn the_first_header_counts() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer first"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer second"));
        assert_eq!(bearer_token(&headers), Ok("first"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the header holds: a token is returned only for a visible-ASCII value that
        /// starts with the scheme `bearer` (any case) and one space, and it is the rest of the
        /// value, untouched; a value that is not visible ASCII is unreadable; all else missing.
        #[test]
        fn the_token_is_exactly_the_rest_after_the_scheme(
            scheme in prop_oneof![
                Just(b"Bearer ".to_vec()),
                "[bB][eE][aA][rR][eE][rR][ \t]?".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..10),
            ],
            rest in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let value = [scheme, rest].concat();
            let Ok(header) = HeaderValue::from_bytes(&value) else {
                return Ok(());
            };
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, header);
            let readable = std::str::from_utf8(&value)
                .ok()
                .filter(|text| text.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)));
            match (bearer_token(&headers), readable) {
                (Ok(token), Some(text)) => {
                    prop_assert!(text.len() >= 7 && text[..6].eq_ignore_ascii_case("bearer"));
                    prop_assert_eq!(&text[6..7], " ");
                    prop_assert_eq!(token, &text[7..]);
                }
                (Err(BearerError::Missing), Some(text)) => {
                    prop_assert!(!(text.len() >= 7
                        && text[..6].eq_ignore_ascii_case("bearer")
                        && &text[6..7] == " "));
                }
                (Err(BearerError::Unreadable), None) => {}
                (result, _) => prop_assert!(false, "{:?} for {:?}", result, value),
            }
        }
    }
}
