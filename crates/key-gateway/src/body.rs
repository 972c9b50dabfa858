//! Request extractors that answer malformed input in the platform's error shape, naming the
//! offending field, instead of axum's plain-text rejections.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::request::Parts,
};
use key_proto::ErrorCode;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body. The content type is not checked: the product docs' own `curl -d` example sends
/// none (curl then says `application/x-www-form-urlencoded`), and it must work as written.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be left out entirely; an empty body, or `null`, means `T::default()`.
#[derive(Debug)]
pub(crate) struct OptionalJsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_optional_json(&bytes).map(OptionalJsonBody)
    }
}

/// An optional body: empty, or `null`, is `T::default()`; anything else must be the object.
pub(crate) fn parse_optional_json<T: DeserializeOwned + Default>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    let trimmed = trim_json_whitespace(bytes);
    if trimmed.is_empty() || trimmed == b"null" {
        return Ok(T::default());
    }
    parse_json(bytes)
}

/// JSON's whitespace (RFC 8259): space, tab, line feed, carriage return. Not Rust's ASCII
/// whitespace, which also has form feed: a body of form feeds is not JSON.
fn is_json_whitespace(byte: &u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn trim_json_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|byte| !is_json_whitespace(byte));
    let end = bytes.iter().rposition(|byte| !is_json_whitespace(byte));
    match (start, end) {
        (Some(start), Some(end)) => &bytes[start..=end],
        _ => &[],
    }
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than 64 KiB",
                )
            } else {
                ApiError::invalid_request(format!("cannot read the request body: {rejection}"))
            }
        })
}

/// Parses a body that must be exactly one JSON object, naming the field at fault
/// (`invalid field scopes[1]: …`). Serde would also take the fields as an array in declaration
/// order, and would ignore anything after the object; neither is the documented API.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid_body = |detail: &dyn std::fmt::Display| {
        ApiError::invalid_request(format!("invalid JSON body: {detail}"))
    };
    if bytes.iter().find(|byte| !is_json_whitespace(byte)) != Some(&b'{') {
        return Err(invalid_body(&"expected a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // Syntax errors have no meaningful path (serde_path_to_error shows `?` or `.`).
        if inner.is_syntax() || inner.is_eof() || matches!(path.as_str(), "" | "." | "?") {
            invalid_body(&inner)
        } else {
            ApiError::invalid_request(format!("invalid field {path}: {inner}"))
        }
    })?;
    deserializer.end().map_err(|error| invalid_body(&error))?;
    Ok(value)
}

/// Query parameters, strictly typed.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection| {
                ApiError::invalid_request(format!("invalid query: {}", rejection.body_text()))
            })
    }
}

/// The `{id}` segment of a route. A segment that is not valid UTF-8 after percent-decoding
/// (`%FF`) is answered in the platform's error shape, like every other malformed input.
#[derive(Debug)]
pub(crate) struct IdPath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IdPath(id))
            .map_err(|rejection| {
                ApiError::invalid_request(format!("invalid id: {}", rejection.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Optional {
        reason: Option<String>,
    }

    #[test]
    fn an_optional_body_may_be_empty_or_null_around_json_whitespace_only() {
        for nothing in [&b""[..], b" \t\r\n", b"null", b"\n null \r\n"] {
            assert_eq!(
                parse_optional_json::<Optional>(nothing).unwrap(),
                Optional::default()
            );
        }
        // Form feed is ASCII whitespace to Rust, but not JSON's (RFC 8259: space, tab, LF,
        // CR): a body of it is not JSON, so it is not "no body" either (found by fuzzing).
        for not_json in [&b"\x0c"[..], b"\x0cnull", b"null\x0c", b"\x0b"] {
            let error = parse_optional_json::<Optional>(not_json).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidRequest, "{not_json:?}");
        }
        assert_eq!(
            parse_optional_json::<Optional>(b" {\"reason\": \"r\"}\n").unwrap(),
            Optional {
                reason: Some("r".to_owned())
            }
        );
    }
}
