//! Signing people in to the console with the platform's identity provider: Keyrack is an
//! OpenID Connect relying party (authorization code flow with PKCE S256, the client secret sent
//! as HTTP Basic). `Sso::begin` draws the state, nonce and code verifier and builds the
//! provider's authorization URL, keeping nothing: the caller (the console) keeps them until the
//! person comes back. `Sso::complete` exchanges the code, has the `openidconnect` crate verify
//! the ID token (signature against the provider's JWKS, issuer, audience, expiry, nonce), and
//! matches the configured claim to members' user ids.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{Clock, Error, RandomSource, Role, SessionToken};
use key_store::{Member, Store};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{NewSession, RequestContext, Sessions};

/// How long a choice of organization (a person who is a member of several) can be made: the
/// provider's code is spent, so each choice is a one-time sign-in token, short-lived.
pub const SSO_CHOICE_LIFETIME: TimeDelta = TimeDelta::minutes(5);

/// How long the provider's discovery document and keys are trusted before they are fetched
/// again; an ID token whose signature fails under older ones is checked once more under fresh
/// ones (the provider may have rotated its keys).
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// How long one request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The identity provider Keyrack trusts, as `keyrack serve --oidc-*` configures it.
#[derive(Clone)]
pub struct SsoConfig {
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// Keyrack's client id at the provider.
    pub client_id: String,
    /// Keyrack's client secret.
    pub client_secret: String,
    /// The ID token claim matched to members' user ids (`email` by default).
    pub user_claim: String,
}

impl std::fmt::Debug for SsoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("user_claim", &self.user_claim)
            .finish()
    }
}

/// What BeginSsoSignIn answers: where to send the person, and what to keep until they return.
#[derive(Debug)]
pub struct SsoStart {
    /// The provider's authorization URL.
    pub authorization_url: String,
    /// The `state` the callback must bring back.
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub code_verifier: String,
}

/// What CompleteSsoSignIn was given.
#[derive(Debug)]
pub struct SsoCallback {
    /// The provider's authorization code.
    pub code: String,
    /// BeginSsoSignIn's code verifier.
    pub code_verifier: String,
    /// BeginSsoSignIn's nonce.
    pub nonce: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
}

/// One organization a person signing in may choose.
#[derive(Debug)]
pub struct SsoChoice {
    /// The organization.
    pub organization_id: Uuid,
    /// Its name.
    pub organization_name: String,
    /// The person's role there.
    pub role: Role,
    /// A one-time sign-in token for this membership.
    pub token: SessionToken,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// How a sign-in through the provider ended.
#[derive(Debug)]
pub enum SsoOutcome {
    /// A member of one organization: signed in.
    SignedIn(NewSession),
    /// A member of several: they choose.
    Choose(Vec<SsoChoice>),
}

/// The relying party. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sso {
    inner: Option<Arc<Provider>>,
    store: Store,
    sessions: Sessions,
}

#[derive(Debug)]
struct Provider {
    config: SsoConfig,
    http: openidconnect::reqwest::Client,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    /// The discovery document (with the provider's keys) and when it was fetched; discovered at
    /// first use, and again after a failure or `DISCOVERY_TTL`.
    metadata: Mutex<Option<(Arc<CoreProviderMetadata>, Instant)>>,
}

impl Sso {
    pub(crate) fn new(
        config: Option<SsoConfig>,
        store: Store,
        sessions: Sessions,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
    ) -> Sso {
        let inner = config.map(|config| {
            // The provider's answers are never followed elsewhere: a redirect from its token
            // or keys endpoint is an error, not a request to another host.
            let http = openidconnect::reqwest::Client::builder()
                .redirect(openidconnect::reqwest::redirect::Policy::none())
                .timeout(PROVIDER_TIMEOUT)
                .build()
                .unwrap_or_default();
            Arc::new(Provider {
                config,
                http,
                clock,
                random,
                metadata: Mutex::new(None),
            })
        });
        Sso {
            inner,
            store,
            sessions,
        }
    }

    /// Whether an identity provider is configured.
    pub fn configured(&self) -> bool {
        self.inner.is_some()
    }

    fn provider(&self) -> Result<&Provider, Error> {
        self.inner.as_deref().ok_or_else(|| {
            Error::Conflict(
                "sign-in with an identity provider is not configured (keyrack serve --oidc-issuer)"
                    .to_owned(),
            )
        })
    }

    /// BeginSsoSignIn.
    pub async fn begin(&self, redirect_uri: &str) -> Result<SsoStart, Error> {
        let provider = self.provider()?;
        let redirect = redirect_url(redirect_uri)?;
        let metadata = provider.metadata(false).await?;
        let client = provider.client(&metadata).set_redirect_uri(redirect);
        let state = provider.random_text()?;
        let nonce = provider.random_text()?;
        let verifier = PkceCodeVerifier::new(provider.random_text()?);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(SsoStart {
            authorization_url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            code_verifier: verifier.secret().clone(),
        })
    }

    /// CompleteSsoSignIn: the person's user id and how their sign-in ended. A person who is a
    /// member of no organization is refused (`Forbidden`, naming them).
    pub async fn complete(
        &self,
        callback: SsoCallback,
        context: RequestContext,
    ) -> Result<(String, SsoOutcome), Error> {
        let provider = self.provider()?;
        let user_id = provider.user_id(callback).await?;
        let members = self.store.memberships_of_user(&user_id).await?;
        let outcome = match members.as_slice() {
            [] => {
                tracing::info!("SSO sign-in refused: not a member of any organization");
                return Err(Error::Forbidden(format!(
                    "{user_id} is not a member of any organization in Keyrack; ask an admin to \
                     add you"
                )));
            }
            [member] => {
                SsoOutcome::SignedIn(self.sessions.begin_member_session(member, context).await?)
            }
            several => {
                let mut choices = Vec::with_capacity(several.len());
                for member in several {
                    choices.push(self.choice(member, &context).await?);
                }
                SsoOutcome::Choose(choices)
            }
        };
        Ok((user_id, outcome))
    }

    async fn choice(&self, member: &Member, context: &RequestContext) -> Result<SsoChoice, Error> {
        let organization_name = self
            .store
            .get_organization(member.organization_id)
            .await?
            .map(|organization| organization.name)
            .unwrap_or_default();
        let (token, expires_at) = self
            .sessions
            .member_choice(member, SSO_CHOICE_LIFETIME, context)
            .await?;
        Ok(SsoChoice {
            organization_id: member.organization_id,
            organization_name,
            role: member.role,
            token,
            expires_at,
        })
    }
}

impl Provider {
    /// The provider's discovery document and keys: cached, unless `fresh` is asked for.
    async fn metadata(&self, fresh: bool) -> Result<Arc<CoreProviderMetadata>, Error> {
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, at)) = cached.as_ref()
            && !fresh
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(Arc::clone(metadata));
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|error| {
            Error::Internal(format!("the OIDC issuer URL is not a URL: {error}"))
        })?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|error| {
                tracing::warn!(error = %error_chain(&error), "OIDC discovery failed");
                Error::Unavailable
            })?;
        let metadata = Arc::new(metadata);
        *cached = Some((Arc::clone(&metadata), Instant::now()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: &CoreProviderMetadata,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
    }

    /// 32 random bytes in hex (64 characters, within PKCE's alphabet and length): a state, a
    /// nonce or a code verifier.
    fn random_text(&self) -> Result<String, Error> {
        let mut bytes = [0_u8; 32];
        self.random.fill(&mut bytes)?;
        Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// Exchanges the code and verifies the ID token; the configured claim's value.
    async fn user_id(&self, callback: SsoCallback) -> Result<String, Error> {
        let refused = |what: &str| {
            Error::Forbidden(format!(
                "the identity provider's answer was refused ({what}); sign in again"
            ))
        };
        let redirect = redirect_url(&callback.redirect_uri)?;
        let metadata = self.metadata(false).await?;
        let client = self.client(&metadata).set_redirect_uri(redirect);
        let exchange = client
            .exchange_code(AuthorizationCode::new(callback.code))
            .map_err(|_| {
                Error::Internal("the identity provider names no token endpoint".to_owned())
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(callback.code_verifier));
        let tokens = exchange.request_async(&self.http).await.map_err(|error| {
            tracing::info!(error = %error_chain(&error), "OIDC code exchange failed");
            refused("the code was not accepted")
        })?;
        let id_token = tokens.id_token().ok_or_else(|| refused("no ID token"))?;
        let nonce = Nonce::new(callback.nonce);
        let verified = {
            let clock = Arc::clone(&self.clock);
            let verifier = client.id_token_verifier().set_time_fn(move || clock.now());
            id_token.claims(&verifier, &nonce).map(|_| ())
        };
        if let Err(error) = verified {
            // The provider may have rotated its keys since discovery: check once more under
            // fresh ones before refusing.
            let fresh = self.metadata(true).await?;
            let client = self.client(&fresh);
            let clock = Arc::clone(&self.clock);
            let verifier = client.id_token_verifier().set_time_fn(move || clock.now());
            if id_token.claims(&verifier, &nonce).is_err() {
                tracing::info!(error = %error_chain(&error), "OIDC ID token refused");
                return Err(refused("the ID token did not verify"));
            }
        }
        // The token verified: its payload is the provider's word. The claim is read from it
        // as JSON so that any claim (`email`, `sub`, `preferred_username`, a custom one) works.
        let claims = payload(&id_token.to_string()).ok_or_else(|| refused("unreadable claims"))?;
        user_claim(&claims, &self.config.user_claim)
            .ok_or_else(|| refused(&format!("no {} claim", self.config.user_claim)))
    }
}

fn redirect_url(text: &str) -> Result<RedirectUrl, Error> {
    RedirectUrl::new(text.to_owned()).map_err(|_| Error::InvalidArgument {
        field: "redirect_uri",
        message: format!("{text:?} is not a URL"),
    })
}

/// The JSON payload of a (verified) compact JWS.
fn payload(jwt: &str) -> Option<serde_json::Value> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&base64url_decode(part)?).ok()
}

/// Unpadded base64url (RFC 4648 section 5), as JWS segments are written; `None` for anything
/// else. (The crate that verified the token decodes it too, but does not hand its claims out as
/// JSON.)
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0_u32, 0_u32);
    for symbol in text.bytes() {
        let value = match symbol {
            b'A'..=b'Z' => symbol - b'A',
            b'a'..=b'z' => symbol - b'a' + 26,
            b'0'..=b'9' => symbol - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    // A lone symbol (6 bits) cannot end a valid encoding.
    (bits < 6).then_some(bytes)
}

/// The value of `claim` in `claims`, as a user id. An `email` the provider says is not
/// verified is no one's.
fn user_claim(claims: &serde_json::Value, claim: &str) -> Option<String> {
    if claim == "email" && claims.get("email_verified") == Some(&serde_json::Value::Bool(false)) {
        return None;
    }
    let value = match claims.get(claim)? {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        _ => return None,
    };
    Some(value).filter(|value| !value.is_empty())
}

/// An error with its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_is_read_as_text_and_an_unverified_email_is_no_ones() {
        let claims = serde_json::json!({
            "sub": "248289761001", "email": "dana@example.com", "employee": 42, "groups": ["a"]
        });
        assert_eq!(
            user_claim(&claims, "email").as_deref(),
            Some("dana@example.com")
        );
        assert_eq!(user_claim(&claims, "employee").as_deref(), Some("42"));
        assert_eq!(user_claim(&claims, "groups"), None);
        assert_eq!(user_claim(&claims, "missing"), None);
        let unverified = serde_json::json!({"email": "dana@example.com", "email_verified": false});
        assert_eq!(user_claim(&unverified, "email"), None);
        assert_eq!(
            user_claim(&unverified, "email_verified"),
            None,
            "a boolean is no user id"
        );
    }

    #[test]
    fn jws_segments_decode_as_unpadded_base64url() {
        assert_eq!(base64url_decode("").unwrap(), b"");
        assert_eq!(base64url_decode("Zg").unwrap(), b"f");
        assert_eq!(base64url_decode("Zm8").unwrap(), b"fo");
        assert_eq!(base64url_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64url_decode("Zm9v="), None, "no padding");
        assert_eq!(base64url_decode("Z"), None);
        assert_eq!(
            payload("eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImRhbmFAZXhhbXBsZS5jb20ifQ.").unwrap()["email"],
            "dana@example.com"
        );
    }

    #[test]
    fn the_client_secret_is_not_printed() {
        let config = SsoConfig {
            issuer: "https://id.example.com".to_owned(),
            client_id: "keyrack".to_owned(),
            client_secret: "s3cret".to_owned(),
            user_claim: "email".to_owned(),
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
