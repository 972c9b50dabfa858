//! Handlers of the console's sign-in with the identity provider: BeginSsoSignIn and
//! CompleteSsoSignIn. Both are public; the rules (and the provider) are key-service's `Sso`.

use key_core::Error;
use key_proto::v1;
use key_service::{Application, NewSession, SsoCallback, SsoOutcome};
use tonic::Request;

use crate::{
    auth::context_of, convert::timestamp, organizations::role_to_proto, sessions::session_to_proto,
};

pub(crate) async fn begin_sso_sign_in(
    app: &Application,
    request: Request<v1::BeginSsoSignInRequest>,
) -> Result<v1::BeginSsoSignInResponse, Error> {
    let start = app.sso.begin(&request.get_ref().redirect_uri).await?;
    Ok(v1::BeginSsoSignInResponse {
        authorization_url: start.authorization_url,
        state: start.state,
        nonce: start.nonce,
        code_verifier: start.code_verifier,
    })
}

/// The authentication layer put the request's context in its extensions, for the audit event
/// of the session (or the choices) it begins.
pub(crate) async fn complete_sso_sign_in(
    app: &Application,
    request: Request<v1::CompleteSsoSignInRequest>,
) -> Result<v1::CompleteSsoSignInResponse, Error> {
    let context = context_of(&request);
    let message = request.into_inner();
    let callback = SsoCallback {
        code: message.code,
        code_verifier: message.code_verifier,
        nonce: message.nonce,
        redirect_uri: message.redirect_uri,
    };
    let (user_id, outcome) = app.sso.complete(callback, context).await?;
    let mut response = v1::CompleteSsoSignInResponse {
        user_id,
        ..Default::default()
    };
    match outcome {
        SsoOutcome::SignedIn(NewSession { token, session }) => {
            response.session_token = token.expose().to_owned();
            response.session = Some(session_to_proto(&session));
        }
        SsoOutcome::Choose(choices) => {
            response.memberships = choices
                .into_iter()
                .map(|choice| v1::SsoMembership {
                    organization_id: choice.organization_id.to_string(),
                    organization_name: choice.organization_name,
                    role: role_to_proto(choice.role).into(),
                    sign_in_token: choice.token.expose().to_owned(),
                    expire_time: Some(timestamp(choice.expires_at)),
                })
                .collect();
        }
    }
    Ok(response)
}
