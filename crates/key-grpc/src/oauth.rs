//! Handlers of OAuth 2.0: clients (admins), the authorization endpoint's two legs (a signed-in
//! person, through the console), the token, revocation and introspection endpoints (public: the
//! client authenticates in the message), and authorized applications. The rules are
//! key-service's `OAuth`.

use key_core::Error;
use key_proto::v1;
use key_service::Application;
use tonic::Request;

pub(crate) async fn create_oauth_client(
    _app: &Application,
    _request: Request<v1::CreateOauthClientRequest>,
) -> Result<v1::CreateOauthClientResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn list_oauth_clients(
    _app: &Application,
    _request: Request<v1::ListOauthClientsRequest>,
) -> Result<v1::ListOauthClientsResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn delete_oauth_client(
    _app: &Application,
    _request: Request<v1::DeleteOauthClientRequest>,
) -> Result<v1::DeleteOauthClientResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn check_oauth_authorization(
    _app: &Application,
    _request: Request<v1::CheckOauthAuthorizationRequest>,
) -> Result<v1::CheckOauthAuthorizationResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn decide_oauth_authorization(
    _app: &Application,
    _request: Request<v1::DecideOauthAuthorizationRequest>,
) -> Result<v1::DecideOauthAuthorizationResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn exchange_oauth_token(
    _app: &Application,
    _request: Request<v1::ExchangeOauthTokenRequest>,
) -> Result<v1::ExchangeOauthTokenResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn revoke_oauth_token(
    _app: &Application,
    _request: Request<v1::RevokeOauthTokenRequest>,
) -> Result<v1::RevokeOauthTokenResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn introspect_oauth_token(
    _app: &Application,
    _request: Request<v1::IntrospectOauthTokenRequest>,
) -> Result<v1::IntrospectOauthTokenResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn list_oauth_grants(
    _app: &Application,
    _request: Request<v1::ListOauthGrantsRequest>,
) -> Result<v1::ListOauthGrantsResponse, Error> {
    Err(Error::Unavailable)
}

pub(crate) async fn revoke_oauth_grant(
    _app: &Application,
    _request: Request<v1::RevokeOauthGrantRequest>,
) -> Result<v1::RevokeOauthGrantResponse, Error> {
    Err(Error::Unavailable)
}
