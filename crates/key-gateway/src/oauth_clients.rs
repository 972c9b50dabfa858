//! `/api/oauth/clients` and `/api/oauth/grants`: OAuth 2.0 clients (register, list, delete) and
//! authorized applications (list a member's, revoke one), for admins, with their JSON shapes.
//! The protocol endpoints themselves are in `oauth.rs`.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use key_proto::v1;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    ApiError,
    body::{IdPath, JsonBody, QueryParams},
    error::ErrorBody,
    json::{ScopeName, non_empty, time},
    keys::{EnvironmentParam, environment_name},
    upstream::{Upstream, forward, required},
};

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// Registers an OAuth client of the caller's organization. A confidential client's secret is
/// in this response only.
#[utoipa::path(
    post, path = "/api/oauth/clients", tag = "oauth-clients",
    request_body = CreateOauthClientBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedOauthClientJson),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn create_oauth_client(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateOauthClientBody>,
) -> Result<(StatusCode, Json<CreatedOauthClientJson>), ApiError> {
    let response = upstream
        .keys
        .clone()
        .create_oauth_client(forward(&headers, body.into_proto()))
        .await?
        .into_inner();
    Ok((
        StatusCode::CREATED,
        Json(CreatedOauthClientJson {
            client: OauthClientJson::from(required(response.client)?),
            client_secret: non_empty(response.client_secret),
        }),
    ))
}

/// Lists the organization's OAuth clients, newest first. Secrets are never listed.
#[utoipa::path(
    get, path = "/api/oauth/clients", tag = "oauth-clients",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of clients", body = OauthClientPageJson),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_oauth_clients(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<OauthClientPageJson>, ApiError> {
    let request = v1::ListOauthClientsRequest {
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
    };
    let page = upstream
        .keys
        .clone()
        .list_oauth_clients(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(OauthClientPageJson {
        data: page
            .clients
            .into_iter()
            .map(OauthClientJson::from)
            .collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

/// Deletes a client; every grant and token issued to it is revoked.
#[utoipa::path(
    delete, path = "/api/oauth/clients/{id}", tag = "oauth-clients",
    params(("id" = String, Path, description = "The client's id (its `client_id`)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 404, description = "No such client in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn delete_oauth_client(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    upstream
        .keys
        .clone()
        .delete_oauth_client(forward(&headers, v1::DeleteOauthClientRequest { id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists live authorized applications, newest first: the caller's own member's, or with
/// `admin` any member's of the organization (`memberId`).
#[utoipa::path(
    get, path = "/api/oauth/grants", tag = "oauth-clients",
    params(ListOauthGrantsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of grants", body = OauthGrantPageJson),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "Another member's grants, and the caller lacks `admin`", body = ErrorBody),
        (status = 404, description = "No such member in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_oauth_grants(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListOauthGrantsQuery>,
) -> Result<Json<OauthGrantPageJson>, ApiError> {
    let request = v1::ListOauthGrantsRequest {
        member_id: query.member_id.unwrap_or_default(),
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
    };
    let page = upstream
        .keys
        .clone()
        .list_oauth_grants(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(OauthGrantPageJson {
        data: page.grants.into_iter().map(OauthGrantJson::from).collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

/// Revokes an authorized application and every token issued under it.
#[utoipa::path(
    delete, path = "/api/oauth/grants/{id}", tag = "oauth-clients",
    params(("id" = String, Path, description = "The grant's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "Another member's grant, and the caller lacks `admin`", body = ErrorBody),
        (status = 404, description = "No such grant in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_oauth_grant(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    upstream
        .keys
        .clone()
        .revoke_oauth_grant(forward(&headers, v1::RevokeOauthGrantRequest { id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// JSON shapes
// ---------------------------------------------------------------------------------------------

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OauthClientTypeName {
    /// A server that keeps a secret (`client_secret_basic` or `client_secret_post`).
    Confidential,
    /// A native or browser app: its id alone, PKCE binding its codes.
    Public,
}

/// The body of `POST /api/oauth/clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateOauthClientBody {
    /// Shown on the consent page; 1 to 100 characters.
    #[schema(example = "Slack integration")]
    name: String,
    /// Default `confidential`.
    #[serde(rename = "type")]
    client_type: Option<OauthClientTypeName>,
    /// One to ten exact redirect URIs: https, or http on a loopback address (RFC 8252).
    #[schema(example = json!(["https://app.example.com/oauth/callback"]))]
    redirect_uris: Vec<String>,
    /// The scopes the client may ask for; at least one.
    #[schema(value_type = Vec<ScopeName>, example = json!(["chat", "agents:read"]))]
    scopes: Vec<String>,
    /// The environment of the tokens issued to it; default `live`.
    environment: Option<EnvironmentParam>,
}

impl CreateOauthClientBody {
    fn into_proto(self) -> v1::CreateOauthClientRequest {
        v1::CreateOauthClientRequest {
            name: self.name,
            r#type: match self.client_type {
                None => v1::OauthClientType::Unspecified,
                Some(OauthClientTypeName::Confidential) => v1::OauthClientType::Confidential,
                Some(OauthClientTypeName::Public) => v1::OauthClientType::Public,
            }
            .into(),
            redirect_uris: self.redirect_uris,
            scopes: self.scopes,
            environment: match self.environment {
                None | Some(EnvironmentParam::Live) => v1::Environment::Live,
                Some(EnvironmentParam::Test) => v1::Environment::Test,
            }
            .into(),
        }
    }
}

/// An OAuth client. Its secret is never listed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OauthClientJson {
    /// Its `client_id`.
    id: String,
    organization_id: String,
    #[schema(example = "Slack integration")]
    name: String,
    #[serde(rename = "type")]
    client_type: OauthClientTypeName,
    #[schema(example = json!(["https://app.example.com/oauth/callback"]))]
    redirect_uris: Vec<String>,
    #[schema(value_type = Vec<ScopeName>, example = json!(["chat", "agents:read"]))]
    scopes: Vec<String>,
    /// `live` or `test`.
    #[schema(example = "live")]
    environment: String,
    /// RFC 3339.
    created_at: String,
}

impl From<v1::OauthClient> for OauthClientJson {
    fn from(client: v1::OauthClient) -> Self {
        OauthClientJson {
            client_type: match v1::OauthClientType::try_from(client.r#type) {
                Ok(v1::OauthClientType::Public) => OauthClientTypeName::Public,
                _ => OauthClientTypeName::Confidential,
            },
            environment: environment_name(client.environment).to_owned(),
            created_at: time(client.create_time.as_ref()).unwrap_or_default(),
            id: client.id,
            organization_id: client.organization_id,
            name: client.name,
            redirect_uris: client.redirect_uris,
            scopes: client.scopes,
        }
    }
}

/// A new client and, for a confidential one, its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedOauthClientJson {
    client: OauthClientJson,
    /// The client secret, shown only here: store it now. Null for a public client.
    #[schema(example = "krc_…")]
    client_secret: Option<String>,
}

/// One page of clients, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OauthClientPageJson {
    data: Vec<OauthClientJson>,
    /// Pass as `pageToken` for the next page; null on the last page.
    next_page_token: Option<String>,
}

/// An authorized application: what one person granted one client.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OauthGrantJson {
    /// Its id (also the `keyId` of verifications and usage of its access tokens).
    id: String,
    client_id: String,
    #[schema(example = "Slack integration")]
    client_name: String,
    member_id: String,
    /// Granted; still limited by the person's role at every verification.
    #[schema(value_type = Vec<ScopeName>, example = json!(["chat"]))]
    scopes: Vec<String>,
    /// When the person approved (RFC 3339).
    created_at: String,
    /// When one of its access tokens was last verified; null: never.
    last_used_at: Option<String>,
}

impl From<v1::OauthGrant> for OauthGrantJson {
    fn from(grant: v1::OauthGrant) -> Self {
        OauthGrantJson {
            created_at: time(grant.create_time.as_ref()).unwrap_or_default(),
            last_used_at: time(grant.last_use_time.as_ref()),
            id: grant.id,
            client_id: grant.client_id,
            client_name: grant.client_name,
            member_id: grant.member_id,
            scopes: grant.scopes,
        }
    }
}

/// One page of grants, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OauthGrantPageJson {
    data: Vec<OauthGrantJson>,
    /// Pass as `pageToken` for the next page; null on the last page.
    next_page_token: Option<String>,
}

/// Paging of `GET /api/oauth/clients`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Default 50; more than 1000 means 1000.
    #[param(minimum = 0)]
    page_size: Option<i32>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
}

/// Query of `GET /api/oauth/grants`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListOauthGrantsQuery {
    /// The member whose grants; default the caller's own member (an organization key has
    /// none: it must name one).
    member_id: Option<String>,
    /// Default 50; more than 1000 means 1000.
    #[param(minimum = 0)]
    page_size: Option<i32>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
}
