//! Handlers of the console's sign-in RPCs: GetCaller, CreateSession, EndSession,
//! CreateSignInLink, RedeemSignInLink.

use key_core::Error;
use key_proto::v1;
use key_service::{Application, CallerInfo, NewSession, StoredSession, parse_uuid};
use tonic::Request;

use crate::{
    auth::{context_of, requester},
    convert::timestamp,
    organizations::role_to_proto,
};

pub(crate) async fn get_caller(
    app: &Application,
    request: Request<v1::GetCallerRequest>,
) -> Result<v1::GetCallerResponse, Error> {
    let by = requester(&request)?;
    let info = app.sessions.describe(&by).await?;
    Ok(caller_to_proto(info))
}

pub(crate) async fn create_session(
    app: &Application,
    request: Request<v1::CreateSessionRequest>,
) -> Result<v1::CreateSessionResponse, Error> {
    let by = requester(&request)?;
    let NewSession { token, session } = app.sessions.create(&by).await?;
    Ok(v1::CreateSessionResponse {
        session_token: token.expose().to_owned(),
        session: Some(session_to_proto(&session)),
    })
}

pub(crate) async fn end_session(
    app: &Application,
    request: Request<v1::EndSessionRequest>,
) -> Result<v1::EndSessionResponse, Error> {
    let by = requester(&request)?;
    app.sessions.end(&by).await?;
    Ok(v1::EndSessionResponse {})
}

pub(crate) async fn create_sign_in_link(
    app: &Application,
    request: Request<v1::CreateSignInLinkRequest>,
) -> Result<v1::CreateSignInLinkResponse, Error> {
    let by = requester(&request)?;
    let member_id = parse_uuid("member_id", &request.get_ref().member_id, "a member id")?;
    let (token, expires_at) = app.sessions.create_sign_in_link(&by, member_id).await?;
    Ok(v1::CreateSignInLinkResponse {
        sign_in_token: token.expose().to_owned(),
        expire_time: Some(timestamp(expires_at)),
    })
}

/// Public: the token is the credential. The authentication layer put the request's context in
/// its extensions, for the audit event of the session it begins.
pub(crate) async fn redeem_sign_in_link(
    app: &Application,
    request: Request<v1::RedeemSignInLinkRequest>,
) -> Result<v1::RedeemSignInLinkResponse, Error> {
    let context = context_of(&request);
    let NewSession { token, session } = app
        .sessions
        .redeem_sign_in_link(&request.get_ref().sign_in_token, context)
        .await?;
    Ok(v1::RedeemSignInLinkResponse {
        session_token: token.expose().to_owned(),
        session: Some(session_to_proto(&session)),
    })
}

pub(crate) fn session_to_proto(session: &StoredSession) -> v1::Session {
    let id = |value: Option<uuid::Uuid>| value.map(|id| id.to_string()).unwrap_or_default();
    v1::Session {
        id: session.id.to_string(),
        organization_id: session.organization_id.to_string(),
        key_id: id(session.key_id),
        member_id: id(session.member_id),
        create_time: Some(timestamp(session.created_at)),
        expire_time: Some(timestamp(session.expires_at)),
    }
}

fn caller_to_proto(info: CallerInfo) -> v1::GetCallerResponse {
    let caller = &info.caller;
    v1::GetCallerResponse {
        organization_id: caller.organization_id.to_string(),
        organization_name: info.organization_name,
        key_id: if caller.keyless {
            String::new()
        } else {
            caller.key_id.to_string()
        },
        member_id: caller
            .member_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        user_id: info.user_id.unwrap_or_default(),
        role: caller
            .role
            .map_or(v1::Role::Unspecified, role_to_proto)
            .into(),
        scopes: caller.scopes.names(),
        owner: caller.is_owner(),
        operator: caller.operator,
        session_id: caller
            .session_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        session_expire_time: info.session_ends_at.map(timestamp),
    }
}
