//! What a page answers when the service refuses: a person whose session ended goes back to the
//! sign-in page; any other refusal is a page with the service's message and the HTTP status
//! its code maps to (key-proto's one table).

use askama::Template;
use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use key_proto::ErrorCode;
use tonic_types::StatusExt;

/// A page's failure.
#[derive(Debug)]
pub(crate) enum PageError {
    /// No session, or one the service no longer accepts: sign in (again).
    SignIn {
        /// Whether a session was presented and refused (the page says it ended).
        ended: bool,
    },
    /// A form post without this session's CSRF token, or from another site.
    CrossSite,
    /// The service refused, with this status and message.
    Refused(StatusCode, String),
}

impl PageError {
    /// The service's refusal `status` as a page error.
    pub(crate) fn from_status(status: &tonic::Status) -> PageError {
        let reason = status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone());
        let code = reason.as_deref().and_then(ErrorCode::from_reason);
        match code {
            Some(ErrorCode::InvalidApiKey | ErrorCode::ExpiredApiKey) => {
                PageError::SignIn { ended: true }
            }
            Some(code) => PageError::Refused(
                StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                status.message().to_owned(),
            ),
            None if status.code() == tonic::Code::Unavailable => PageError::Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Keyrack cannot reach its database right now; try again in a moment".to_owned(),
            ),
            None => {
                tracing::error!(code = ?status.code(), message = status.message(), "console call failed");
                PageError::Refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "something went wrong on our side".to_owned(),
                )
            }
        }
    }

    /// The message a form shows beside its fields, for a refusal the person can fix.
    pub(crate) fn message(&self) -> String {
        match self {
            PageError::SignIn { .. } => "Your session has ended. Sign in again.".to_owned(),
            PageError::CrossSite => CROSS_SITE.to_owned(),
            PageError::Refused(_, message) => message.clone(),
        }
    }
}

impl From<tonic::Status> for PageError {
    fn from(status: tonic::Status) -> Self {
        PageError::from_status(&status)
    }
}

const CROSS_SITE: &str = "This form was not sent from Keyrack's own page (or the page is too old). Reload it and try again.";

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { ended } => {
                let location = if ended {
                    "/console/sign-in?ended=1"
                } else {
                    "/console/sign-in"
                };
                (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
            }
            PageError::CrossSite => page(StatusCode::FORBIDDEN, CROSS_SITE),
            PageError::Refused(status, message) => page(status, &message),
        }
    }
}

fn page(status: StatusCode, message: &str) -> Response {
    let body = ErrorPage {
        status: status.as_u16(),
        message,
    }
    .render()
    .unwrap_or_else(|_| message.to_owned());
    (status, Html(body)).into_response()
}
