//! OAuth 2.0 in the console: the authorization endpoint's pages (`/oauth/authorize`: sign in
//! first, then the consent page, then back to the application), a person's authorized
//! applications, and the organization's OAuth applications (admins).
//!
//! The service judges every authorization request (CheckOauthAuthorization) and records the
//! decision (DecideOauthAuthorization); these pages show its answer and carry the person's
//! choice. The authorization code exists only in the `Location` of the answer to the decision,
//! as the protocol has it; nothing here logs it.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
};
use key_proto::v1;
use serde::Deserialize;
use tonic_types::StatusExt;

use super::{Frame, SCOPE_DESCRIPTIONS, day, form::Fields, frame, render, when};
use crate::{Console, error::PageError, next, once::Nonces, session::SignedIn, upstream};

/// An authorization request's parameters (RFC 6749 4.1.1, with RFC 7636's PKCE), in the order
/// they are carried.
const PARAMETERS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// An authorization request's parameters as the client sent them; an absent one is empty.
#[derive(Debug, Default, Clone)]
struct Parameters([String; 7]);

impl Parameters {
    /// The parameters among `pairs` (other names are ignored, as RFC 6749 3.1 says). A
    /// parameter sent twice makes the request invalid: its name is the error.
    fn parse<'a>(
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Parameters, &'static str> {
        let mut parameters = Parameters::default();
        let mut seen = [false; 7];
        for (name, value) in pairs {
            if let Some(at) = PARAMETERS.iter().position(|known| *known == name) {
                if seen[at] {
                    return Err(PARAMETERS[at]);
                }
                seen[at] = true;
                parameters.0[at] = value.to_owned();
            }
        }
        Ok(parameters)
    }

    fn get(&self, name: &str) -> String {
        PARAMETERS
            .iter()
            .position(|known| *known == name)
            .map(|at| self.0[at].clone())
            .unwrap_or_default()
    }

    fn request(&self) -> v1::OauthAuthorizationRequest {
        v1::OauthAuthorizationRequest {
            response_type: self.get("response_type"),
            client_id: self.get("client_id"),
            redirect_uri: self.get("redirect_uri"),
            scope: self.get("scope"),
            state: self.get("state"),
            code_challenge: self.get("code_challenge"),
            code_challenge_method: self.get("code_challenge_method"),
        }
    }

    /// The parameters that were sent, as the consent form's hidden fields.
    fn sent(&self) -> Vec<(&'static str, String)> {
        PARAMETERS
            .iter()
            .zip(&self.0)
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (*name, value.clone()))
            .collect()
    }

    /// The authorization endpoint's address for this request, every value percent-encoded (so
    /// it holds no `//` and passes `next::safe`): where a sign-in comes back to.
    fn path(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.sent() {
            query.append_pair(name, &value);
        }
        format!("/oauth/authorize?{}", query.finish())
    }
}

/// One scope as the consent page shows it.
#[derive(Debug)]
struct ScopeRow {
    name: String,
    /// The product documentation's description (empty for a name it does not list).
    description: &'static str,
}

fn scope_row(name: &str) -> ScopeRow {
    ScopeRow {
        name: name.to_owned(),
        description: SCOPE_DESCRIPTIONS
            .iter()
            .find(|(known, _)| *known == name)
            .map_or("", |(_, description)| description),
    }
}

#[derive(Template)]
#[template(path = "oauth_consent.html")]
struct ConsentPage {
    client: String,
    organization: String,
    redirect_uri: String,
    scopes: Vec<ScopeRow>,
    withheld: Vec<ScopeRow>,
    who: String,
    csrf: String,
    parameters: Vec<(&'static str, String)>,
    /// The sign-in page that comes back here, to use another account.
    other_account: String,
}

#[derive(Template)]
#[template(path = "oauth_refused.html")]
struct RefusedPage<'a> {
    heading: &'a str,
    message: &'a str,
}

/// `GET /oauth/authorize`: a person sent by an application. Without a session, to the sign-in
/// page and back; with one, the service judges the request and the consent page shows what
/// approving grants (or the person goes straight back to the application with its error).
pub(crate) async fn authorize(
    State(console): State<Console>,
    signed: Result<SignedIn, PageError>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let parameters = match Parameters::parse(
        pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    ) {
        Ok(parameters) => parameters,
        Err(name) => return invalid(&format!("the parameter {name} is sent more than once")),
    };
    let Ok(signed) = signed else {
        return sign_in_first(&parameters, false);
    };
    let checked = console
        .client()
        .check_oauth_authorization(upstream::call(
            &headers,
            Some(signed.token()),
            v1::CheckOauthAuthorizationRequest {
                request: Some(parameters.request()),
            },
        ))
        .await;
    let checked = match checked {
        Ok(response) => response.into_inner(),
        Err(status) => return refused(&status, &parameters),
    };
    if !checked.redirect_uri.is_empty() {
        return back_to_client(&checked.redirect_uri);
    }
    let Some(client) = checked.client else {
        return failed(internal(), &parameters);
    };
    let (frame, _) = match frame(&console, &signed, &headers, "Authorize", "").await {
        Ok(frame) => frame,
        Err(error) => return failed(error, &parameters),
    };
    let page = render(&ConsentPage {
        client: client.name,
        organization: checked.organization_name,
        redirect_uri: parameters.get("redirect_uri"),
        scopes: checked.scopes.iter().map(|name| scope_row(name)).collect(),
        withheld: checked
            .withheld_scopes
            .iter()
            .map(|name| scope_row(name))
            .collect(),
        who: frame.who,
        csrf: frame.csrf,
        parameters: parameters.sent(),
        other_account: next::sign_in_path(&parameters.path(), false),
    });
    // The decision is answered with a redirect to the application, which the browser checks
    // against the page's `form-action`: the page allows the redirect URI's origin, which the
    // service has just matched to the client's registration.
    match consent_policy(&parameters.get("redirect_uri")) {
        Some(policy) => ([(header::CONTENT_SECURITY_POLICY, policy)], page).into_response(),
        None => page,
    }
}

/// The content security policy of a consent page whose form is redirected to `redirect_uri`:
/// the console's, with the URI's origin added to `form-action`. None (the console's own policy,
/// which blocks the redirect) unless the URI is `http` or `https` with a plain host and port.
fn consent_policy(redirect_uri: &str) -> Option<HeaderValue> {
    let (scheme, rest) = redirect_uri.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let plain = |byte: u8| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte);
    if authority.is_empty() || !authority.bytes().all(plain) {
        return None;
    }
    let policy = crate::CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {scheme}://{authority}"),
    );
    HeaderValue::try_from(policy).ok()
}

/// `POST /oauth/authorize`: the person's decision (the button named `decision`: `allow`, or
/// anything else for deny), then back to the application with the code or the denial.
pub(crate) async fn decide(
    State(console): State<Console>,
    signed: Result<SignedIn, PageError>,
    headers: HeaderMap,
    fields: Fields,
) -> Response {
    let parameters = match Parameters::parse(fields.pairs()) {
        Ok(parameters) => parameters,
        Err(name) => return invalid(&format!("the parameter {name} is sent more than once")),
    };
    let Ok(signed) = signed else {
        return sign_in_first(&parameters, false);
    };
    if let Err(error) = signed.check_csrf(fields.get("csrf")) {
        return failed(error, &parameters);
    }
    let decided = console
        .client()
        .decide_oauth_authorization(upstream::call(
            &headers,
            Some(signed.token()),
            v1::DecideOauthAuthorizationRequest {
                request: Some(parameters.request()),
                approve: fields.get("decision") == "allow",
            },
        ))
        .await;
    match decided {
        Ok(response) => back_to_client(&response.into_inner().redirect_uri),
        Err(status) => refused(&status, &parameters),
    }
}

/// The sign-in page, coming back to this request afterwards.
fn sign_in_first(parameters: &Parameters, ended: bool) -> Response {
    let location = next::sign_in_path(&parameters.path(), ended);
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Back to the application, at the URL the service answered (its registered redirect URI with
/// the code or the error).
fn back_to_client(redirect_uri: &str) -> Response {
    match HeaderValue::try_from(redirect_uri) {
        Ok(location) if !redirect_uri.is_empty() => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        _ => refused_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "This request cannot go on",
            "something went wrong on our side",
        ),
    }
}

/// The service's refusal of a request: an unknown client or redirect URI is a page that sends
/// the person nowhere; an ended session is a sign-in that comes back; anything else a page with
/// the service's message.
fn refused(status: &tonic::Status, parameters: &Parameters) -> Response {
    let details = status.get_error_details();
    let field = details
        .error_info()
        .and_then(|info| info.metadata.get("field"))
        .map(String::as_str);
    if status.code() == tonic::Code::InvalidArgument
        && matches!(field, Some("client_id" | "redirect_uri"))
    {
        return invalid(status.message());
    }
    failed(PageError::from_status(status), parameters)
}

fn failed(error: PageError, parameters: &Parameters) -> Response {
    match error {
        PageError::SignIn { ended } => sign_in_first(parameters, ended),
        PageError::CrossSite => refused_page(
            StatusCode::FORBIDDEN,
            "This request cannot go on",
            &error.message(),
        ),
        PageError::Refused(status, message) => {
            refused_page(status, "This request cannot go on", &message)
        }
    }
}

/// The page for a request the application got wrong: the person is told, and not sent back to
/// an address Keyrack cannot vouch for.
fn invalid(reason: &str) -> Response {
    refused_page(
        StatusCode::BAD_REQUEST,
        "The application's request is invalid",
        &format!(
            "The application that sent you here made an authorization request Keyrack cannot \
             accept ({reason}), so you were not sent back to it. Nothing was granted; tell the \
             application's makers."
        ),
    )
}

fn refused_page(status: StatusCode, heading: &str, message: &str) -> Response {
    (status, render(&RefusedPage { heading, message })).into_response()
}

fn internal() -> PageError {
    PageError::Refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "something went wrong on our side".to_owned(),
    )
}

/// An authorized application as its page shows it.
#[derive(Debug)]
struct GrantRow {
    id: String,
    client_name: String,
    scopes: String,
    approved: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ApplicationsPage {
    frame: Frame,
    /// Whose applications, for an admin looking at another member's: their user id; empty for
    /// the person's own.
    whose: String,
    /// The member asked for (empty: the caller's own), carried by the revoke forms.
    member: String,
    /// Whether the caller is no member (signed in with an organization key) and asked for no one.
    no_member: bool,
    grants: Vec<GrantRow>,
    done: &'static str,
    next_page: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ApplicationsQuery {
    #[serde(default)]
    member: String,
    #[serde(default)]
    done: String,
    #[serde(default)]
    page_token: String,
}

/// `GET /console/settings/applications[?member=<id>]`: the applications a person authorized,
/// their own or (admins) a member's.
pub(crate) async fn applications(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Query(query): Query<ApplicationsQuery>,
) -> Result<Response, PageError> {
    let (frame, caller) = frame(
        &console,
        &signed,
        &headers,
        "Authorized applications",
        "applications",
    )
    .await?;
    let member = query.member.trim().to_owned();
    let own = member.is_empty() || member == caller.member_id;
    let done = match query.done.as_str() {
        "revoked" => "The application's access is revoked: its tokens are refused from now on.",
        _ => "",
    };
    if own && caller.member_id.is_empty() {
        return Ok(render(&ApplicationsPage {
            frame,
            whose: String::new(),
            member,
            no_member: true,
            grants: Vec::new(),
            done,
            next_page: String::new(),
        }));
    }
    let client = console.client();
    let listed = client
        .clone()
        .list_oauth_grants(upstream::call(
            &headers,
            Some(signed.token()),
            v1::ListOauthGrantsRequest {
                member_id: member.clone(),
                page_size: 100,
                page_token: query.page_token,
            },
        ))
        .await?
        .into_inner();
    let whose = if own {
        String::new()
    } else {
        user_of(&console, &signed, &headers, &member).await
    };
    Ok(render(&ApplicationsPage {
        frame,
        whose,
        member,
        no_member: false,
        grants: listed
            .grants
            .iter()
            .map(|grant| GrantRow {
                id: grant.id.clone(),
                client_name: grant.client_name.clone(),
                scopes: grant.scopes.join(" "),
                approved: day(grant.create_time.as_ref()),
                last_used: when(grant.last_use_time.as_ref()),
            })
            .collect(),
        done,
        next_page: encode(&listed.next_page_token),
    }))
}

/// The user id of the member `id`, for a heading; the id itself when it cannot be found.
async fn user_of(console: &Console, signed: &SignedIn, headers: &HeaderMap, id: &str) -> String {
    let listed = console
        .client()
        .list_members(upstream::call(
            headers,
            Some(signed.token()),
            v1::ListMembersRequest {
                page_size: 1000,
                page_token: String::new(),
            },
        ))
        .await;
    listed
        .ok()
        .and_then(|listed| {
            listed
                .into_inner()
                .members
                .into_iter()
                .find(|member| member.id == id)
                .map(|member| member.user_id)
        })
        .unwrap_or_else(|| id.to_owned())
}

/// `POST /console/settings/applications/{id}/revoke`: revokes an authorized application and
/// every token issued under it.
pub(crate) async fn revoke_grant(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console
        .client()
        .revoke_oauth_grant(upstream::call(
            &headers,
            Some(signed.token()),
            v1::RevokeOauthGrantRequest { id },
        ))
        .await?;
    let member = fields.get("member");
    let back = if member.is_empty() {
        "/console/settings/applications?done=revoked".to_owned()
    } else {
        format!(
            "/console/settings/applications?done=revoked&member={}",
            encode(member)
        )
    };
    Ok(Redirect::to(&back).into_response())
}

/// An OAuth client as the list shows it.
#[derive(Debug)]
struct ClientRow {
    id: String,
    name: String,
    kind: &'static str,
    redirect_uris: Vec<String>,
    scopes: String,
    environment: &'static str,
    created: String,
}

fn client_row(client: &v1::OauthClient) -> ClientRow {
    ClientRow {
        id: client.id.clone(),
        name: client.name.clone(),
        kind: match v1::OauthClientType::try_from(client.r#type) {
            Ok(v1::OauthClientType::Public) => "public",
            _ => "confidential",
        },
        redirect_uris: client.redirect_uris.clone(),
        scopes: client.scopes.join(" "),
        environment: match v1::Environment::try_from(client.environment) {
            Ok(v1::Environment::Test) => "test",
            _ => "live",
        },
        created: day(client.create_time.as_ref()),
    }
}

/// One scope's checkbox in the new client form.
#[derive(Debug)]
struct ScopeChoice {
    name: &'static str,
    description: &'static str,
    checked: bool,
}

/// What the new client form shows (empty, or as sent when the service refused it).
#[derive(Debug)]
struct ClientForm {
    name: String,
    public: bool,
    redirect_uris: String,
    scopes: Vec<ScopeChoice>,
    test: bool,
}

impl ClientForm {
    fn empty() -> ClientForm {
        ClientForm::with(String::new(), false, String::new(), &[], false)
    }

    fn with(
        name: String,
        public: bool,
        redirect_uris: String,
        ticked: &[String],
        test: bool,
    ) -> ClientForm {
        ClientForm {
            name,
            public,
            redirect_uris,
            scopes: SCOPE_DESCRIPTIONS
                .into_iter()
                .map(|(name, description)| ScopeChoice {
                    name,
                    description,
                    checked: ticked.iter().any(|scope| scope == name),
                })
                .collect(),
            test,
        }
    }
}

#[derive(Template)]
#[template(path = "oauth_clients.html")]
struct ClientsPage {
    frame: Frame,
    clients: Vec<ClientRow>,
    form: ClientForm,
    error: Option<String>,
    done: &'static str,
    next_page: String,
    first_page: bool,
    /// The create form's one-time nonce (a reload of the answer must not make a second client).
    nonce: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ClientsQuery {
    #[serde(default)]
    done: String,
    #[serde(default)]
    page_token: String,
}

/// `GET /console/settings/oauth-clients` (admins): the organization's OAuth applications and
/// the form that registers one.
pub(crate) async fn clients(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Query(query): Query<ClientsQuery>,
) -> Result<Response, PageError> {
    let done = match query.done.as_str() {
        "deleted" => {
            "The application is deleted; every access people gave it is revoked, and its tokens \
             are refused."
        }
        _ => "",
    };
    let page = clients_page(
        &console,
        &signed,
        &headers,
        &query.page_token,
        ClientForm::empty(),
        None,
        done,
    )
    .await?;
    Ok(render(&page))
}

async fn clients_page(
    console: &Console,
    signed: &SignedIn,
    headers: &HeaderMap,
    page_token: &str,
    form: ClientForm,
    error: Option<String>,
    done: &'static str,
) -> Result<ClientsPage, PageError> {
    let (frame, _) = frame(
        console,
        signed,
        headers,
        "OAuth applications",
        "oauth-clients",
    )
    .await?;
    let listed = console
        .client()
        .list_oauth_clients(upstream::call(
            headers,
            Some(signed.token()),
            v1::ListOauthClientsRequest {
                page_size: 100,
                page_token: page_token.to_owned(),
            },
        ))
        .await?
        .into_inner();
    Ok(ClientsPage {
        frame,
        clients: listed.clients.iter().map(client_row).collect(),
        form,
        error,
        done,
        next_page: encode(&listed.next_page_token),
        first_page: page_token.is_empty(),
        nonce: Nonces::issue(),
    })
}

#[derive(Template)]
#[template(path = "oauth_client_created.html")]
struct ClientCreatedPage {
    frame: Frame,
    client: ClientRow,
    secret: String,
}

/// `POST /console/settings/oauth-clients`: registers a client; a confidential client's secret
/// is shown once, on this answer only.
pub(crate) async fn create_client(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console.spend_nonce(fields.get("nonce"))?;
    let public = fields.get("client_type") == "public";
    let test = fields.get("environment") == "test";
    let redirect_uris: Vec<String> = fields
        .get("redirect_uris")
        .lines()
        .map(str::trim)
        .filter(|uri| !uri.is_empty())
        .map(str::to_owned)
        .collect();
    let scopes = fields.all("scope");
    let created = console
        .client()
        .create_oauth_client(upstream::call(
            &headers,
            Some(signed.token()),
            v1::CreateOauthClientRequest {
                name: fields.get("name").to_owned(),
                r#type: if public {
                    v1::OauthClientType::Public
                } else {
                    v1::OauthClientType::Confidential
                }
                .into(),
                redirect_uris,
                scopes: scopes.clone(),
                environment: if test {
                    v1::Environment::Test
                } else {
                    v1::Environment::Live
                }
                .into(),
            },
        ))
        .await;
    match created {
        Ok(response) => {
            let response = response.into_inner();
            let client = response.client.ok_or_else(internal)?;
            let (frame, _) = frame(
                &console,
                &signed,
                &headers,
                "OAuth application registered",
                "oauth-clients",
            )
            .await?;
            Ok(render(&ClientCreatedPage {
                frame,
                client: client_row(&client),
                secret: response.client_secret,
            }))
        }
        Err(status) => {
            let error = PageError::from_status(&status);
            let code = match &error {
                PageError::Refused(code, _) => *code,
                PageError::SignIn { .. } => return Err(error),
                PageError::CrossSite => StatusCode::FORBIDDEN,
            };
            let form = ClientForm::with(
                fields.get("name").to_owned(),
                public,
                fields.get("redirect_uris").to_owned(),
                &scopes,
                test,
            );
            let page = clients_page(
                &console,
                &signed,
                &headers,
                "",
                form,
                Some(error.message()),
                "",
            )
            .await?;
            Ok((code, render(&page)).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "oauth_client_delete.html")]
struct DeletePage {
    frame: Frame,
    client: ClientRow,
}

/// `GET /console/settings/oauth-clients/{id}/delete`: the confirmation, naming the client.
pub(crate) async fn delete_form(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (frame, _) = frame(
        &console,
        &signed,
        &headers,
        "Delete OAuth application",
        "oauth-clients",
    )
    .await?;
    let client = find_client(&console, &signed, &headers, &id)
        .await?
        .ok_or_else(|| {
            PageError::Refused(
                StatusCode::NOT_FOUND,
                "This OAuth application does not exist (any more).".to_owned(),
            )
        })?;
    Ok(render(&DeletePage {
        frame,
        client: client_row(&client),
    }))
}

/// The organization's client `id`, looked for through the list (there is no call for one).
async fn find_client(
    console: &Console,
    signed: &SignedIn,
    headers: &HeaderMap,
    id: &str,
) -> Result<Option<v1::OauthClient>, PageError> {
    let mut page_token = String::new();
    // A bound on the pages read, far above any organization's number of applications.
    for _ in 0..20 {
        let listed = console
            .client()
            .list_oauth_clients(upstream::call(
                headers,
                Some(signed.token()),
                v1::ListOauthClientsRequest {
                    page_size: 1000,
                    page_token,
                },
            ))
            .await?
            .into_inner();
        if let Some(client) = listed.clients.into_iter().find(|client| client.id == id) {
            return Ok(Some(client));
        }
        if listed.next_page_token.is_empty() {
            break;
        }
        page_token = listed.next_page_token;
    }
    Ok(None)
}

/// `POST /console/settings/oauth-clients/{id}/delete`: deletes the client, which revokes every
/// grant and token issued to it.
pub(crate) async fn delete_client(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console
        .client()
        .delete_oauth_client(upstream::call(
            &headers,
            Some(signed.token()),
            v1::DeleteOauthClientRequest { id },
        ))
        .await?;
    Ok(Redirect::to("/console/settings/oauth-clients?done=deleted").into_response())
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_page_may_be_redirected_to_the_applications_origin_only() {
        let policy = consent_policy("https://app.example:8443/cb?x=1").unwrap();
        let policy = policy.to_str().unwrap();
        assert!(policy.contains("form-action 'self' https://app.example:8443;"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(
            consent_policy("http://127.0.0.1:5000/callback")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("form-action 'self' http://127.0.0.1:5000;")
        );
        for uri in [
            "com.example.app:/callback",
            "javascript://x",
            "https://",
            "https://a.example;script-src *",
            "https://user@a.example/",
            "https://a.example 'unsafe-inline'/",
        ] {
            assert!(consent_policy(uri).is_none(), "{uri}");
        }
    }

    #[test]
    fn a_parameter_sent_twice_is_refused_and_others_are_ignored() {
        let parameters = Parameters::parse(
            [
                ("client_id", "oac_1"),
                ("unknown", "x"),
                ("state", " s "),
                ("redirect_uri", "https://app.example/cb"),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(parameters.get("client_id"), "oac_1");
        // A client's state comes back to it exactly.
        assert_eq!(parameters.request().state, " s ");
        assert_eq!(
            parameters.path(),
            "/oauth/authorize?client_id=oac_1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
             &state=+s+"
        );
        assert!(next::safe(&parameters.path()).is_some());
        assert_eq!(
            Parameters::parse([("scope", "chat"), ("scope", "admin")].into_iter()).unwrap_err(),
            "scope"
        );
    }
}
