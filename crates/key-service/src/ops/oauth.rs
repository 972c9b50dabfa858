//! OAuth 2.0 for user context: clients (admins), the authorization endpoint's two legs (a
//! signed-in person, through the console), the token endpoint with its `authorization_code`
//! and `refresh_token` grants, revocation (RFC 7009), introspection (RFC 7662) and authorized
//! applications.
//!
//! What a person approves becomes a grant: a personal key of theirs that no one holds, marked
//! with the client (`KeyRecord::oauth`). Its access tokens are verified by `Verifier::verify`
//! as that key, so they are limited by the person's current role, rate limited, metered and
//! alerted on like any personal key, and revoking the grant ends them all at once. Codes,
//! client secrets and tokens are stored as keyed digests; their plaintext exists only in the
//! answer that makes them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use key_core::{
    AUTHORIZATION_CODE_LIFETIME, Action, ApiKey, AuditAction, AuditEvent, AuditOutcome, Clock,
    CodeChallenge, CredentialKind, Environment, Error, IpAllowlist, KeyDigest, KeyRecord, KeyType,
    MAX_CLIENT_NAME_LEN, MAX_REDIRECT_URIS, MAX_REFRESHES_PER_HOUR, MAX_STATE_LEN, OauthClientType,
    OauthContext, OauthError, Pepper, Period, REFRESH_TOKEN_IDLE_TIMEOUT, RandomSource, RateLimit,
    RateLimits, RedactedKey, RedirectUri, ScopeSet, SessionToken, TokenKind, grant_scopes,
    parse_scope_parameter,
};
use key_store::{
    AuthorizationCode, CodeRedemption, NewKey, NewToken, OauthClient, OauthGrant, Store,
    StoredToken, TokenUse,
};
use url::Url;
use uuid::Uuid;

use crate::{
    Actor, RequestContext, Requester,
    access::Access,
    ops::{
        paging::{Listed, Page, PageRequest},
        parse_uuid,
    },
    requester::audit_event,
    verify::{KeyCache, Mode, Verifier, VerifyContext, member_scopes, scopes_of_role},
};

/// CreateOauthClient's input.
#[derive(Debug, Clone)]
pub struct CreateClient {
    /// Shown on the consent page.
    pub name: String,
    /// Confidential or public.
    pub client_type: OauthClientType,
    /// The exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The scopes it may ask for, by name.
    pub scopes: Vec<String>,
    /// The environment of its tokens.
    pub environment: Environment,
}

/// An authorization request's parameters, as the client sent them (RFC 6749 §4.1.1).
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest {
    /// Must be `code`.
    pub response_type: String,
    /// The client's id.
    pub client_id: String,
    /// One of the client's redirect URIs.
    pub redirect_uri: String,
    /// Space-separated scopes; empty means all the client may ask for.
    pub scope: String,
    /// Returned to the client as sent.
    pub state: String,
    /// PKCE's challenge.
    pub code_challenge: String,
    /// Must be `S256`.
    pub code_challenge_method: String,
}

/// What the consent page shows, or where the person goes instead.
#[derive(Debug, Clone)]
pub enum Authorization {
    /// The request is sound: ask the person.
    Consent(Consent),
    /// Back to the client with an error (the client and its redirect URI are valid).
    Redirect(String),
}

/// What the person is asked to approve.
#[derive(Debug, Clone)]
pub struct Consent {
    /// The client.
    pub client: OauthClient,
    /// Its organization's name.
    pub organization_name: String,
    /// What approving grants.
    pub scopes: ScopeSet,
    /// Requested, but not held by the person's role.
    pub withheld: ScopeSet,
}

/// A token request (RFC 6749 §4.1.3 and §6).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: String,
    /// The code.
    pub code: String,
    /// The authorization request's redirect URI.
    pub redirect_uri: String,
    /// The PKCE verifier.
    pub code_verifier: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Optionally fewer scopes, at a refresh.
    pub scope: String,
    /// The client's id.
    pub client_id: String,
    /// A confidential client's secret.
    pub client_secret: String,
}

/// The token endpoint's answer (RFC 6749 §5.1). The tokens are shown here only.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: ApiKey,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The refresh token.
    pub refresh_token: ApiKey,
    /// The granted scopes.
    pub scopes: ScopeSet,
}

/// What introspection says of a token or key (RFC 7662 §2.2); `active` false says nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    /// Whether it works now.
    pub active: bool,
    /// What it may do now.
    pub scopes: ScopeSet,
    /// The client it was issued to (none for an API key).
    pub client_id: Option<Uuid>,
    /// The person's user id.
    pub username: Option<String>,
    /// `access_token`, `refresh_token` or `api_key`.
    pub token_type: &'static str,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was issued.
    pub issued_at: Option<DateTime<Utc>>,
    /// The member (or, for an organization key, the key).
    pub subject: Option<Uuid>,
    /// The organization.
    pub organization_id: Option<Uuid>,
    /// The grant or key.
    pub key_id: Option<Uuid>,
}

/// The OAuth operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Oauth {
    store: Store,
    clock: Arc<dyn Clock>,
    access: Access,
    pepper: Arc<Pepper>,
    random: Arc<dyn RandomSource>,
    key_cache: Arc<KeyCache>,
    verifier: Verifier,
    /// How long an access token works.
    access_token_lifetime: chrono::TimeDelta,
}

/// Why a grant is revoked, in its `revoke_reason`.
const REUSED_CODE: &str = "authorization code used twice";
const REUSED_REFRESH_TOKEN: &str = "refresh token used twice";

impl Oauth {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        access: Access,
        pepper: Arc<Pepper>,
        random: Arc<dyn RandomSource>,
        key_cache: Arc<KeyCache>,
        verifier: Verifier,
    ) -> Oauth {
        Oauth {
            store,
            clock,
            access,
            pepper,
            random,
            key_cache,
            verifier,
            access_token_lifetime: key_core::ACCESS_TOKEN_LIFETIME,
        }
    }

    /// These operations, issuing access tokens that work for `lifetime`.
    pub(crate) fn with_access_token_lifetime(self, lifetime: chrono::TimeDelta) -> Oauth {
        Oauth {
            access_token_lifetime: lifetime,
            ..self
        }
    }

    /// CreateOauthClient: a confidential client's secret is in the answer only.
    pub async fn create_client(
        &self,
        by: &Requester,
        input: CreateClient,
    ) -> Result<(OauthClient, Option<SessionToken>), Error> {
        self.access
            .authorize(by, Action::ManageOauthClients, None)
            .await?;
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > MAX_CLIENT_NAME_LEN {
            return Err(Error::InvalidArgument {
                field: "name",
                message: format!("must be 1 to {MAX_CLIENT_NAME_LEN} characters"),
            });
        }
        if input.redirect_uris.is_empty() || input.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(Error::InvalidArgument {
                field: "redirect_uris",
                message: format!("give 1 to {MAX_REDIRECT_URIS} redirect URIs"),
            });
        }
        let redirect_uris = input
            .redirect_uris
            .iter()
            .map(|uri| RedirectUri::parse("redirect_uris", uri))
            .collect::<Result<Vec<_>, _>>()?;
        let scopes = ScopeSet::parse_list("scopes", &input.scopes)?;
        if scopes.is_empty() {
            return Err(Error::InvalidArgument {
                field: "scopes",
                message: "give at least one scope the client may ask for".to_owned(),
            });
        }
        // Never escalate: a client may ask for no more than its registrar holds.
        let decision = match by.caller.scopes.first_uncovered(scopes) {
            Some(scope) => Err(Error::InsufficientScope(scope)),
            None => Ok(()),
        };
        self.access.check(by, decision).await?;
        let secret = match input.client_type {
            OauthClientType::Confidential => Some(SessionToken::generate(
                TokenKind::ClientSecret,
                self.random.as_ref(),
            )?),
            OauthClientType::Public => None,
        };
        let now = self.clock.now();
        let client = OauthClient {
            id: Uuid::now_v7(),
            organization_id: by.caller.organization_id,
            name: name.to_owned(),
            client_type: input.client_type,
            secret_digest: secret
                .as_ref()
                .map(|secret| self.pepper.token_digest(secret)),
            redirect_uris,
            scopes,
            environment: input.environment,
            created_at: now,
        };
        let audit = by.event(AuditAction::OauthClientCreate, client.id, now);
        self.store.insert_oauth_client(&client, &audit).await?;
        Ok((client, secret))
    }

    /// ListOauthClients.
    pub async fn list_clients(
        &self,
        by: &Requester,
        page: &PageRequest,
    ) -> Result<Listed<OauthClient>, Error> {
        self.access
            .authorize(by, Action::ManageOauthClients, None)
            .await?;
        let page = Page::parse(page)?;
        let clients = self
            .store
            .list_oauth_clients(by.caller.organization_id, page.after, page.fetch_limit())
            .await?;
        Ok(page.finish(clients, |client| client.id))
    }

    /// DeleteOauthClient: its grants and tokens are revoked with it.
    pub async fn delete_client(&self, by: &Requester, id: &str) -> Result<(), Error> {
        self.access
            .authorize(by, Action::ManageOauthClients, None)
            .await?;
        let id = parse_uuid("id", id, "a client id")?;
        let now = self.clock.now();
        let audit = by.event(AuditAction::OauthClientDelete, id, now);
        let revoked = self
            .store
            .delete_oauth_client(by.caller.organization_id, id, now, &audit)
            .await?
            .ok_or(Error::NotFound("client"))?;
        self.forget(&revoked);
        Ok(())
    }

    /// CheckOauthAuthorization: judges the request for the signed-in person `by`. An unknown
    /// client or redirect URI is `InvalidArgument` (shown, never redirected to); a person who
    /// cannot consent here is refused (`Forbidden`); any other fault goes back to the client.
    pub async fn check(
        &self,
        by: &Requester,
        request: &AuthorizationRequest,
    ) -> Result<Authorization, Error> {
        let (client, redirect) = self.client_and_redirect(request).await?;
        self.consenting_member(by, &client)?;
        let error_back = |error: &str, description: &str| {
            Authorization::Redirect(redirect_with(
                &redirect,
                &[
                    ("error", error),
                    ("error_description", description),
                    ("state", &request.state),
                ],
            ))
        };
        if request.response_type != "code" {
            return Ok(error_back(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        if request.state.len() > MAX_STATE_LEN {
            return Ok(error_back(
                "invalid_request",
                "state is longer than 1024 characters",
            ));
        }
        if let Err(message) =
            CodeChallenge::parse(&request.code_challenge, &request.code_challenge_method)
        {
            return Ok(error_back("invalid_request", message));
        }
        let requested = match parse_scope_parameter(&request.scope) {
            Ok(requested) => requested,
            Err(error) => return Ok(error_back("invalid_scope", &error.to_string())),
        };
        let role = by.caller.role.ok_or_else(not_a_person)?;
        // One read of the organization: its policy's scopes for the role, and its name.
        let organization = self.store.get_organization(client.organization_id).await?;
        let role_scopes = scopes_of_role(organization.as_ref(), role);
        let granted = match grant_scopes(requested, client.scopes, role_scopes) {
            Ok(granted) => granted,
            Err(error) => return Ok(error_back("invalid_scope", &error.to_string())),
        };
        if granted.granted.is_empty() {
            return Ok(error_back(
                "invalid_scope",
                "the person's role holds none of the requested scopes",
            ));
        }
        let organization_name = organization
            .map(|organization| organization.name)
            .unwrap_or_default();
        Ok(Authorization::Consent(Consent {
            client,
            organization_name,
            scopes: granted.granted,
            withheld: granted.withheld,
        }))
    }

    /// DecideOauthAuthorization: the person's answer to a request that `check` passed. An
    /// approval stores a one-time code for a minute, bound to the client, the redirect URI and
    /// the PKCE challenge; both answers are audited. The URL to send the person to.
    pub async fn decide(
        &self,
        by: &Requester,
        request: &AuthorizationRequest,
        approve: bool,
    ) -> Result<String, Error> {
        let consent = match self.check(by, request).await? {
            Authorization::Redirect(url) => return Ok(url),
            Authorization::Consent(consent) => consent,
        };
        let now = self.clock.now();
        let client = &consent.client;
        if !approve {
            let audit = by.event(AuditAction::OauthConsentDeny, client.id, now);
            self.store.append_audit_event(&audit).await?;
            return Ok(redirect_with(
                &request.redirect_uri,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the person denied the request"),
                    ("state", &request.state),
                ],
            ));
        }
        let member_id = self.consenting_member(by, client)?;
        let member = self
            .store
            .get_member(client.organization_id, member_id)
            .await?
            .ok_or_else(not_a_person)?;
        let code = SessionToken::generate(TokenKind::AuthorizationCode, self.random.as_ref())?;
        let stored = AuthorizationCode {
            id: Uuid::now_v7(),
            digest: self.pepper.token_digest(&code),
            client_id: client.id,
            organization_id: client.organization_id,
            member_id,
            user_id: member.user_id,
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            scopes: consent.scopes,
            created_at: now,
            expires_at: now + AUTHORIZATION_CODE_LIFETIME,
            used_at: None,
            grant_id: None,
        };
        let audit = by.event(AuditAction::OauthConsentGrant, client.id, now);
        self.store
            .insert_authorization_code(&stored, &audit)
            .await?;
        Ok(redirect_with(
            &request.redirect_uri,
            &[("code", code.expose()), ("state", &request.state)],
        ))
    }

    /// ExchangeOauthToken: the `authorization_code` and `refresh_token` grants.
    pub async fn exchange(
        &self,
        request: &TokenRequest,
        context: &RequestContext,
    ) -> Result<IssuedTokens, Error> {
        let grant_type = request.grant_type.as_str();
        if !matches!(grant_type, "authorization_code" | "refresh_token") {
            if grant_type.is_empty() {
                return Err(invalid_request("grant_type", "grant_type is required"));
            }
            return Err(OauthError::UnsupportedGrantType
                .with("grant_type must be authorization_code or refresh_token"));
        }
        let client = self
            .authenticate_client(&request.client_id, &request.client_secret)
            .await?;
        if grant_type == "authorization_code" {
            self.redeem_code(&client, request, context).await
        } else {
            self.refresh(&client, request, context).await
        }
    }

    /// RevokeOauthToken (RFC 7009): a refresh token revokes its whole grant (the access
    /// tokens issued under it too); an access token itself. A token that is unknown, not the
    /// client's or already revoked is no error.
    pub async fn revoke_token(
        &self,
        token: &str,
        client_id: &str,
        client_secret: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let client = self.authenticate_client(client_id, client_secret).await?;
        let Some((stored, grant)) = self.find_token(token).await? else {
            return Ok(());
        };
        if grant.oauth.as_ref().map(|oauth| oauth.client_id) != Some(client.id) {
            return Ok(());
        }
        let now = self.clock.now();
        let audit = self.client_event(&client, AuditAction::OauthTokenRevoke, grant.id, context);
        match stored.kind {
            TokenUse::Refresh => {
                if let Some((_, revoked)) = self
                    .store
                    .revoke_oauth_grant(
                        client.organization_id,
                        grant.id,
                        "refresh token revoked by its client",
                        now,
                        &audit,
                    )
                    .await?
                {
                    self.forget(&revoked);
                }
            }
            TokenUse::Access => {
                if let Some(digest) = self
                    .store
                    .revoke_oauth_token(stored.id, now, &audit)
                    .await?
                {
                    self.forget(&[digest]);
                }
            }
        }
        Ok(())
    }

    /// IntrospectOauthToken (RFC 7662): whether `token` (an access or refresh token, or an API
    /// key) of the calling resource server's organization works now. The caller authenticates
    /// as a confidential client; anything of another organization is inactive.
    pub async fn introspect(
        &self,
        token: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Introspection, Error> {
        let client = self.authenticate_client(client_id, client_secret).await?;
        if client.client_type != OauthClientType::Confidential {
            return Err(OauthError::InvalidClient
                .with("introspection needs a confidential client's credentials"));
        }
        let now = self.clock.now();
        let Ok(parsed) = ApiKey::parse(token) else {
            return Ok(Introspection::default());
        };
        let answer = match parsed.kind() {
            CredentialKind::ApiKey => self.introspect_key(token, now).await?,
            CredentialKind::AccessToken | CredentialKind::RefreshToken => {
                self.introspect_token(&parsed, now).await?
            }
        };
        Ok(answer
            .filter(|answer| answer.organization_id == Some(client.organization_id))
            .unwrap_or_default())
    }

    /// ListOauthGrants: a member's authorized applications, the caller's own by default.
    pub async fn list_grants(
        &self,
        by: &Requester,
        member_id: &str,
        page: &PageRequest,
    ) -> Result<Listed<OauthGrant>, Error> {
        let member_id = match member_id {
            "" => by.caller.member_id.ok_or(Error::InvalidArgument {
                field: "member_id",
                message: "name the member: the caller has none of its own".to_owned(),
            })?,
            id => parse_uuid("member_id", id, "a member id")?,
        };
        self.access
            .authorize(by, Action::ManageOauthGrants, Some(member_id))
            .await?;
        let page = Page::parse(page)?;
        let grants = self
            .store
            .list_oauth_grants(
                by.caller.organization_id,
                member_id,
                page.after,
                page.fetch_limit(),
            )
            .await?;
        Ok(page.finish(grants, |grant| grant.record.id))
    }

    /// RevokeOauthGrant: an authorized application and every token under it, at once.
    pub async fn revoke_grant(&self, by: &Requester, id: &str) -> Result<(), Error> {
        let id = parse_uuid("id", id, "a grant id")?;
        let organization_id = by.caller.organization_id;
        let grant = self
            .store
            .get_oauth_grant(organization_id, id)
            .await?
            .ok_or(Error::NotFound("authorized application"))?;
        self.access
            .authorize(by, Action::ManageOauthGrants, grant.member_id)
            .await?;
        let now = self.clock.now();
        let audit = by.event(AuditAction::OauthGrantRevoke, id, now);
        let (_, revoked) = self
            .store
            .revoke_oauth_grant(organization_id, id, "revoked by a person", now, &audit)
            .await?
            .ok_or(Error::NotFound("authorized application"))?;
        self.forget(&revoked);
        Ok(())
    }

    /// The client of an authorization request and the redirect URI it named, both valid, or
    /// `InvalidArgument` naming which is not (the person is told, never redirected).
    async fn client_and_redirect(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<(OauthClient, String), Error> {
        let unknown_client = || Error::InvalidArgument {
            field: "client_id",
            message: "no such client".to_owned(),
        };
        let client_id = Uuid::parse_str(&request.client_id).map_err(|_| unknown_client())?;
        let client = self
            .store
            .get_oauth_client(client_id)
            .await?
            .ok_or_else(unknown_client)?;
        if !client
            .redirect_uris
            .iter()
            .any(|uri| uri.matches(&request.redirect_uri))
        {
            return Err(Error::InvalidArgument {
                field: "redirect_uri",
                message: "not a redirect URI registered for this client".to_owned(),
            });
        }
        Ok((client, request.redirect_uri.clone()))
    }

    /// The member who consents: a person of the client's organization, signed in as
    /// themselves (without a key, or with a personal key of theirs).
    fn consenting_member(&self, by: &Requester, client: &OauthClient) -> Result<Uuid, Error> {
        let member_id = match (by.caller.key_type, by.caller.member_id) {
            (KeyType::Personal, Some(member_id)) => member_id,
            _ => return Err(not_a_person()),
        };
        if by.caller.organization_id != client.organization_id {
            return Err(Error::Forbidden(format!(
                "{} belongs to another organization: sign in to it to approve this request",
                client.name
            )));
        }
        Ok(member_id)
    }

    /// The client `client_id`, authenticated by `secret`: a confidential client must send
    /// its secret, a public one none. Any failure is `invalid_client`, without saying which.
    async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<OauthClient, Error> {
        let refused = || OauthError::InvalidClient.with("client authentication failed");
        let id = Uuid::parse_str(client_id).map_err(|_| refused())?;
        let client = self.store.get_oauth_client(id).await?.ok_or_else(refused)?;
        let authentic = match (&client.secret_digest, secret) {
            (None, "") => true,
            (Some(digest), secret) => SessionToken::parse(TokenKind::ClientSecret, secret)
                .is_some_and(|secret| self.pepper.token_matches(&secret, digest)),
            (None, _) => false,
        };
        if !authentic {
            return Err(refused());
        }
        Ok(client)
    }

    async fn redeem_code(
        &self,
        client: &OauthClient,
        request: &TokenRequest,
        context: &RequestContext,
    ) -> Result<IssuedTokens, Error> {
        if request.code.is_empty() {
            return Err(invalid_request("code", "code is required"));
        }
        let invalid = |message: &str| OauthError::InvalidGrant.with(message);
        let code = SessionToken::parse(TokenKind::AuthorizationCode, &request.code)
            .ok_or_else(|| invalid("unknown authorization code"))?;
        let now = self.clock.now();
        let stored = match self
            .store
            .redeem_authorization_code(&self.pepper.token_digest(&code), now)
            .await?
        {
            CodeRedemption::Unknown => return Err(invalid("unknown authorization code")),
            CodeRedemption::Again(stored) => {
                // The Security BCP: a code used twice was stolen or replayed; what its first
                // use issued is revoked.
                if let (true, Some(grant_id)) = (stored.client_id == client.id, stored.grant_id) {
                    self.revoke_for_reuse(client, grant_id, REUSED_CODE, context)
                        .await?;
                }
                return Err(invalid(
                    "authorization code already used; the tokens issued for it are revoked",
                ));
            }
            CodeRedemption::First(stored) => stored,
        };
        if stored.client_id != client.id || !self.pepper.token_matches(&code, &stored.digest) {
            return Err(invalid("unknown authorization code"));
        }
        if now >= stored.expires_at {
            return Err(invalid("authorization code expired"));
        }
        if request.redirect_uri != stored.redirect_uri {
            return Err(invalid("redirect_uri is not the authorization request's"));
        }
        if request.code_verifier.is_empty() {
            return Err(invalid_request(
                "code_verifier",
                "code_verifier is required",
            ));
        }
        if !CodeChallenge::stored(stored.code_challenge.clone()).is_met_by(&request.code_verifier) {
            return Err(invalid("code_verifier does not match the code_challenge"));
        }
        if member_scopes(&self.store, stored.organization_id, stored.member_id)
            .await?
            .is_none()
        {
            return Err(invalid("the person is no longer a member"));
        }
        let (access, refresh, tokens) = self.draw_tokens(client.environment, now)?;
        let grant = NewKey {
            id: Uuid::now_v7(),
            organization_id: stored.organization_id,
            name: client.name.clone(),
            scopes: stored.scopes,
            redacted: RedactedKey {
                environment: client.environment,
                last4: access.expose()[access.expose().len() - 4..].to_owned(),
            },
            // A digest no credential has: the grant is only ever presented through its tokens.
            digest: self.pepper.digest(&ApiKey::generate_kind(
                CredentialKind::AccessToken,
                client.environment,
                self.random.as_ref(),
            )?),
            created_at: now,
            expires_at: None,
            created_by: None,
            key_type: KeyType::Personal,
            member_id: Some(stored.member_id),
            operator: false,
            rate_limits: RateLimits::NONE,
            metadata: None,
            ip_allowlist: IpAllowlist::default(),
            credits: None,
            oauth: Some(OauthContext {
                client_id: client.id,
                user_id: stored.user_id.clone(),
            }),
        };
        let audit = self.client_event(client, AuditAction::OauthTokenIssue, grant.id, context);
        self.store
            .issue_oauth_grant(stored.id, grant, &tokens, &audit)
            .await?;
        self.key_cache.key_created(&tokens[0].digest);
        Ok(IssuedTokens {
            access_token: access,
            expires_in: self.access_token_lifetime.num_seconds(),
            refresh_token: refresh,
            scopes: stored.scopes,
        })
    }

    async fn refresh(
        &self,
        client: &OauthClient,
        request: &TokenRequest,
        context: &RequestContext,
    ) -> Result<IssuedTokens, Error> {
        if request.refresh_token.is_empty() {
            return Err(invalid_request(
                "refresh_token",
                "refresh_token is required",
            ));
        }
        let invalid = |message: &str| OauthError::InvalidGrant.with(message);
        let Some((stored, grant)) = self
            .find_token(&request.refresh_token)
            .await?
            .filter(|(stored, _)| stored.kind == TokenUse::Refresh)
        else {
            return Err(invalid("unknown refresh token"));
        };
        if grant.oauth.as_ref().map(|oauth| oauth.client_id) != Some(client.id) {
            return Err(invalid("unknown refresh token"));
        }
        let now = self.clock.now();
        if stored.replaced_by.is_some() {
            // The Security BCP's reuse detection: the old token of a rotation came back, so
            // one of its two holders is not the client. The whole grant goes.
            self.revoke_for_reuse(client, grant.id, REUSED_REFRESH_TOKEN, context)
                .await?;
            return Err(invalid(
                "refresh token already used; the application's access is revoked",
            ));
        }
        if stored.revoked_at.is_some() || grant.revoked_at.is_some() {
            return Err(invalid("refresh token revoked"));
        }
        if now >= stored.expires_at {
            return Err(invalid("refresh token expired"));
        }
        if !request.scope.is_empty() {
            // RFC 6749 §6: no scope beyond the grant. A narrower request is answered with the
            // grant's scopes, which the answer's `scope` states.
            let requested = parse_scope_parameter(&request.scope)?;
            if let Some(scope) = grant.scopes.first_uncovered(requested) {
                return Err(
                    OauthError::InvalidScope.with(format!("{} was not granted", scope.as_str()))
                );
            }
        }
        let recent = self
            .store
            .count_access_tokens_since(grant.id, now - chrono::Duration::hours(1))
            .await?;
        if recent > u64::from(MAX_REFRESHES_PER_HOUR) {
            return Err(Error::RateLimited(RateLimit {
                requests: MAX_REFRESHES_PER_HOUR,
                per: Period::Hour,
            }));
        }
        let member_id = grant
            .member_id
            .ok_or_else(|| invalid("unknown refresh token"))?;
        if member_scopes(&self.store, grant.organization_id, member_id)
            .await?
            .is_none()
        {
            return Err(invalid("the person is no longer a member"));
        }
        let (access, refresh, tokens) = self.draw_tokens(client.environment, now)?;
        let audit = self.client_event(client, AuditAction::OauthTokenRefresh, grant.id, context);
        let rotated = self
            .store
            .rotate_refresh_token(stored.id, grant.id, &tokens, now, &audit)
            .await?;
        if !rotated {
            // Another request spent it a moment ago: a reuse as well.
            self.revoke_for_reuse(client, grant.id, REUSED_REFRESH_TOKEN, context)
                .await?;
            return Err(invalid(
                "refresh token already used; the application's access is revoked",
            ));
        }
        self.key_cache.key_created(&tokens[0].digest);
        Ok(IssuedTokens {
            access_token: access,
            expires_in: self.access_token_lifetime.num_seconds(),
            refresh_token: refresh,
            scopes: grant.scopes,
        })
    }

    /// Revokes grant `grant_id` of `client` because a code or refresh token came back
    /// (`oauth.reuse_detected`).
    async fn revoke_for_reuse(
        &self,
        client: &OauthClient,
        grant_id: Uuid,
        reason: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let audit = self.client_event(client, AuditAction::OauthReuseDetected, grant_id, context);
        if let Some((_, revoked)) = self
            .store
            .revoke_oauth_grant(client.organization_id, grant_id, reason, now, &audit)
            .await?
        {
            tracing::warn!(%grant_id, client_id = %client.id, reason, "OAuth grant revoked");
            self.forget(&revoked);
        }
        Ok(())
    }

    /// A new access token and refresh token, and their rows (the access token's first).
    fn draw_tokens(
        &self,
        environment: Environment,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, ApiKey, [NewToken; 2]), Error> {
        let access = ApiKey::generate_kind(
            CredentialKind::AccessToken,
            environment,
            self.random.as_ref(),
        )?;
        let refresh = ApiKey::generate_kind(
            CredentialKind::RefreshToken,
            environment,
            self.random.as_ref(),
        )?;
        let row = |token: &ApiKey, kind: TokenUse, expires_at: DateTime<Utc>| NewToken {
            id: Uuid::now_v7(),
            digest: self.pepper.digest(token),
            kind,
            created_at: now,
            expires_at,
        };
        let rows = [
            row(&access, TokenUse::Access, now + self.access_token_lifetime),
            row(
                &refresh,
                TokenUse::Refresh,
                now + REFRESH_TOKEN_IDLE_TIMEOUT,
            ),
        ];
        Ok((access, refresh, rows))
    }

    /// The stored token `text` (access or refresh) with its grant, checked in constant time.
    async fn find_token(&self, text: &str) -> Result<Option<(StoredToken, KeyRecord)>, Error> {
        let Some(token) = ApiKey::parse(text)
            .ok()
            .filter(|token| token.kind() != CredentialKind::ApiKey)
        else {
            return Ok(None);
        };
        stored_token(&self.store, &self.pepper, &token).await
    }

    async fn introspect_key(
        &self,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Introspection>, Error> {
        let verification = self
            .verifier
            .verify(text, &[], &VerifyContext::default(), Mode::Authenticate)
            .await?;
        let (None, Some(view)) = (verification.error(), verification.record) else {
            return Ok(None);
        };
        let username = match view.member_id {
            Some(member_id) => self
                .store
                .get_member(view.organization_id, member_id)
                .await?
                .map(|member| member.user_id),
            None => None,
        };
        let issued_at = self
            .store
            .get_key(view.organization_id, view.id)
            .await?
            .map(|record| record.created_at);
        Ok(Some(Introspection {
            active: view.expires_at.is_none_or(|at| now < at),
            scopes: verification.scopes,
            client_id: None,
            username,
            token_type: "api_key",
            expires_at: view.expires_at,
            issued_at,
            subject: Some(view.member_id.unwrap_or(view.id)),
            organization_id: Some(view.organization_id),
            key_id: Some(view.id),
        }))
    }

    async fn introspect_token(
        &self,
        token: &ApiKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Introspection>, Error> {
        let Some((stored, grant)) = self.find_token(token.expose()).await? else {
            return Ok(None);
        };
        let live = stored.revoked_at.is_none() && grant.revoked_at.is_none();
        let (Some(oauth), Some(member_id), true, true) = (
            grant.oauth.clone(),
            grant.member_id,
            live,
            now < stored.expires_at,
        ) else {
            return Ok(None);
        };
        // As at verification: the grant's scopes within the person's current role.
        let Some((_, role)) = member_scopes(&self.store, grant.organization_id, member_id).await?
        else {
            return Ok(None);
        };
        let scopes = grant.scopes.limited_to(role);
        Ok(Some(Introspection {
            active: !scopes.is_empty(),
            scopes,
            client_id: Some(oauth.client_id),
            username: Some(oauth.user_id),
            token_type: match stored.kind {
                TokenUse::Access => "access_token",
                TokenUse::Refresh => "refresh_token",
            },
            expires_at: Some(stored.expires_at),
            issued_at: Some(stored.created_at),
            subject: Some(member_id),
            organization_id: Some(grant.organization_id),
            key_id: Some(grant.id),
        }))
    }

    /// An event done by `client` at the token or revocation endpoint, to `target`.
    fn client_event(
        &self,
        client: &OauthClient,
        action: AuditAction,
        target: Uuid,
        context: &RequestContext,
    ) -> AuditEvent {
        audit_event(
            &Actor::OauthClient(client.id),
            Some(client.organization_id),
            action,
            target.to_string(),
            AuditOutcome::Success,
            None,
            context,
            self.clock.now(),
        )
    }

    /// Drops revoked access tokens from this process's key cache (other replicas hear of it
    /// from the store's notices).
    fn forget(&self, digests: &[KeyDigest]) {
        for digest in digests {
            self.key_cache.forget(digest);
        }
    }
}

/// The stored token `token` (an access or refresh token) with its grant, live or not: looked up
/// by its digest under the pepper, then checked in constant time. The token endpoints and
/// leaked-key reports find tokens through it.
pub(crate) async fn stored_token(
    store: &Store,
    pepper: &Pepper,
    token: &ApiKey,
) -> Result<Option<(StoredToken, KeyRecord)>, Error> {
    Ok(store
        .find_oauth_token(&pepper.digest(token))
        .await?
        .filter(|(stored, _)| pepper.matches(token, &stored.digest)))
}

/// `base` with `pairs` added to its query (empty values left out), or `base` as it is if it
/// is somehow not a URL (it was validated as a registered redirect URI before).
fn redirect_with(base: &str, pairs: &[(&str, &str)]) -> String {
    let Ok(mut url) = Url::parse(base) else {
        return base.to_owned();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
            query.append_pair(name, value);
        }
    }
    url.to_string()
}

fn not_a_person() -> Error {
    Error::Forbidden(
        "only a person can approve access: sign in to the console as yourself (with single \
         sign-on, a sign-in link or a personal key), not with an organization key"
            .to_owned(),
    )
}

fn invalid_request(field: &'static str, message: &str) -> Error {
    Error::InvalidArgument {
        field,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_registered_query_and_escape_values() {
        assert_eq!(
            redirect_with(
                "https://app.example.com/cb?x=1",
                &[("code", "kac_1"), ("state", "a b&c"), ("error", "")]
            ),
            "https://app.example.com/cb?x=1&code=kac_1&state=a+b%26c"
        );
    }
}
