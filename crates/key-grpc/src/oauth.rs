//! Handlers of OAuth 2.0: clients (admins), the authorization endpoint's two legs (a signed-in
//! person, through the console), the token, revocation and introspection endpoints (public: the
//! client authenticates in the message), and authorized applications. The rules are
//! key-service's `Oauth`.

use key_core::{Error, OauthClientType, scope_parameter};
use key_proto::v1;
use key_service::{
    Application, Authorization, AuthorizationRequest, CreateClient, OauthClient, OauthGrant,
    PageRequest, TokenRequest,
};
use tonic::Request;

use crate::{
    auth::{context_of, requester},
    convert::{environment_from_proto, environment_to_proto, timestamp},
};

pub(crate) async fn create_oauth_client(
    app: &Application,
    request: Request<v1::CreateOauthClientRequest>,
) -> Result<v1::CreateOauthClientResponse, Error> {
    let by = requester(&request)?;
    let message = request.into_inner();
    let client_type = match v1::OauthClientType::try_from(message.r#type) {
        Ok(v1::OauthClientType::Unspecified | v1::OauthClientType::Confidential) => {
            OauthClientType::Confidential
        }
        Ok(v1::OauthClientType::Public) => OauthClientType::Public,
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "type",
                message: format!("unknown client type {}", message.r#type),
            });
        }
    };
    let input = CreateClient {
        name: message.name,
        client_type,
        redirect_uris: message.redirect_uris,
        scopes: message.scopes,
        environment: environment_from_proto(message.environment)?,
    };
    let (client, secret) = app.oauth.create_client(&by, input).await?;
    Ok(v1::CreateOauthClientResponse {
        client: Some(client_to_proto(&client)),
        client_secret: secret
            .map(|secret| secret.expose().to_owned())
            .unwrap_or_default(),
    })
}

pub(crate) async fn list_oauth_clients(
    app: &Application,
    request: Request<v1::ListOauthClientsRequest>,
) -> Result<v1::ListOauthClientsResponse, Error> {
    let by = requester(&request)?;
    let message = request.into_inner();
    let page = PageRequest {
        page_size: message.page_size,
        page_token: message.page_token,
    };
    let listed = app.oauth.list_clients(&by, &page).await?;
    Ok(v1::ListOauthClientsResponse {
        clients: listed.items.iter().map(client_to_proto).collect(),
        next_page_token: listed.next_page_token,
    })
}

pub(crate) async fn delete_oauth_client(
    app: &Application,
    request: Request<v1::DeleteOauthClientRequest>,
) -> Result<v1::DeleteOauthClientResponse, Error> {
    let by = requester(&request)?;
    app.oauth.delete_client(&by, &request.get_ref().id).await?;
    Ok(v1::DeleteOauthClientResponse {})
}

pub(crate) async fn check_oauth_authorization(
    app: &Application,
    request: Request<v1::CheckOauthAuthorizationRequest>,
) -> Result<v1::CheckOauthAuthorizationResponse, Error> {
    let by = requester(&request)?;
    let authorization = authorization_request(request.into_inner().request);
    Ok(match app.oauth.check(&by, &authorization).await? {
        Authorization::Redirect(redirect_uri) => v1::CheckOauthAuthorizationResponse {
            redirect_uri,
            ..Default::default()
        },
        Authorization::Consent(consent) => v1::CheckOauthAuthorizationResponse {
            redirect_uri: String::new(),
            client: Some(client_to_proto(&consent.client)),
            organization_name: consent.organization_name,
            scopes: consent.scopes.names(),
            withheld_scopes: consent.withheld.names(),
        },
    })
}

pub(crate) async fn decide_oauth_authorization(
    app: &Application,
    request: Request<v1::DecideOauthAuthorizationRequest>,
) -> Result<v1::DecideOauthAuthorizationResponse, Error> {
    let by = requester(&request)?;
    let message = request.into_inner();
    let authorization = authorization_request(message.request);
    let redirect_uri = app
        .oauth
        .decide(&by, &authorization, message.approve)
        .await?;
    Ok(v1::DecideOauthAuthorizationResponse { redirect_uri })
}

pub(crate) async fn exchange_oauth_token(
    app: &Application,
    request: Request<v1::ExchangeOauthTokenRequest>,
) -> Result<v1::ExchangeOauthTokenResponse, Error> {
    let context = context_of(&request);
    let message = request.into_inner();
    let token_request = TokenRequest {
        grant_type: message.grant_type,
        code: message.code,
        redirect_uri: message.redirect_uri,
        code_verifier: message.code_verifier,
        refresh_token: message.refresh_token,
        scope: message.scope,
        client_id: message.client_id,
        client_secret: message.client_secret,
    };
    let issued = app.oauth.exchange(&token_request, &context).await?;
    Ok(v1::ExchangeOauthTokenResponse {
        access_token: issued.access_token.expose().to_owned(),
        token_type: "Bearer".to_owned(),
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token.expose().to_owned(),
        scope: scope_parameter(issued.scopes),
    })
}

pub(crate) async fn revoke_oauth_token(
    app: &Application,
    request: Request<v1::RevokeOauthTokenRequest>,
) -> Result<v1::RevokeOauthTokenResponse, Error> {
    let context = context_of(&request);
    let message = request.get_ref();
    app.oauth
        .revoke_token(
            &message.token,
            &message.client_id,
            &message.client_secret,
            &context,
        )
        .await?;
    Ok(v1::RevokeOauthTokenResponse {})
}

pub(crate) async fn introspect_oauth_token(
    app: &Application,
    request: Request<v1::IntrospectOauthTokenRequest>,
) -> Result<v1::IntrospectOauthTokenResponse, Error> {
    let message = request.get_ref();
    let answer = app
        .oauth
        .introspect(&message.token, &message.client_id, &message.client_secret)
        .await?;
    if !answer.active {
        return Ok(v1::IntrospectOauthTokenResponse::default());
    }
    let text = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    Ok(v1::IntrospectOauthTokenResponse {
        active: true,
        scope: scope_parameter(answer.scopes),
        client_id: text(answer.client_id),
        username: answer.username.unwrap_or_default(),
        token_type: answer.token_type.to_owned(),
        exp: answer.expires_at.map_or(0, |at| at.timestamp()),
        iat: answer.issued_at.map_or(0, |at| at.timestamp()),
        sub: text(answer.subject),
        organization_id: text(answer.organization_id),
        key_id: text(answer.key_id),
    })
}

pub(crate) async fn list_oauth_grants(
    app: &Application,
    request: Request<v1::ListOauthGrantsRequest>,
) -> Result<v1::ListOauthGrantsResponse, Error> {
    let by = requester(&request)?;
    let message = request.into_inner();
    let page = PageRequest {
        page_size: message.page_size,
        page_token: message.page_token,
    };
    let listed = app
        .oauth
        .list_grants(&by, &message.member_id, &page)
        .await?;
    Ok(v1::ListOauthGrantsResponse {
        grants: listed.items.iter().map(grant_to_proto).collect(),
        next_page_token: listed.next_page_token,
    })
}

pub(crate) async fn revoke_oauth_grant(
    app: &Application,
    request: Request<v1::RevokeOauthGrantRequest>,
) -> Result<v1::RevokeOauthGrantResponse, Error> {
    let by = requester(&request)?;
    app.oauth.revoke_grant(&by, &request.get_ref().id).await?;
    Ok(v1::RevokeOauthGrantResponse {})
}

fn authorization_request(request: Option<v1::OauthAuthorizationRequest>) -> AuthorizationRequest {
    let request = request.unwrap_or_default();
    AuthorizationRequest {
        response_type: request.response_type,
        client_id: request.client_id,
        redirect_uri: request.redirect_uri,
        scope: request.scope,
        state: request.state,
        code_challenge: request.code_challenge,
        code_challenge_method: request.code_challenge_method,
    }
}

fn client_to_proto(client: &OauthClient) -> v1::OauthClient {
    v1::OauthClient {
        id: client.id.to_string(),
        organization_id: client.organization_id.to_string(),
        name: client.name.clone(),
        r#type: match client.client_type {
            OauthClientType::Confidential => v1::OauthClientType::Confidential,
            OauthClientType::Public => v1::OauthClientType::Public,
        }
        .into(),
        redirect_uris: client
            .redirect_uris
            .iter()
            .map(|uri| uri.as_str().to_owned())
            .collect(),
        scopes: client.scopes.names(),
        environment: environment_to_proto(client.environment).into(),
        create_time: Some(timestamp(client.created_at)),
    }
}

fn grant_to_proto(grant: &OauthGrant) -> v1::OauthGrant {
    let record = &grant.record;
    v1::OauthGrant {
        id: record.id.to_string(),
        client_id: record
            .oauth
            .as_ref()
            .map(|oauth| oauth.client_id.to_string())
            .unwrap_or_default(),
        client_name: grant.client_name.clone(),
        member_id: record
            .member_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        scopes: record.scopes.names(),
        create_time: Some(timestamp(record.created_at)),
        last_use_time: record.last_used_at.map(timestamp),
    }
}
