//! A posted HTML form as name–value pairs, repeated names kept (the scope checkboxes), read
//! from an `application/x-www-form-urlencoded` body.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
};

use crate::error::PageError;

/// The fields of a posted form, in order.
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; empty when absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map_or("", |(_, value)| value.trim())
    }

    /// Every field as sent, untrimmed, in order (the OAuth parameters: a client's `state` is
    /// returned to it exactly).
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.trim().to_owned())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, PageError> {
        let body = Bytes::from_request(request, state).await.map_err(|_| {
            PageError::Refused(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large".to_owned(),
            )
        })?;
        Ok(Fields(
            form_urlencoded::parse(&body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        ))
    }
}
