//! Keyrack's web console: Settings → API Keys for people. Server-rendered HTML (askama
//! templates, escaped by default), one small script and one style sheet embedded in the binary,
//! no CDN. It is a client of the gRPC API like the gateway: every page calls KeyService with the
//! signed-in person's session token as the bearer credential, so it can do nothing the person
//! could not do through the API, and the permission table decides.
//!
//! - `session`: the cookie, the CSRF token, the refusal of cross-site posts.
//! - `pages`: one module per page family (sign-in, keys, members, audit log, OAuth).
//! - `next`: where a sign-in may lead afterwards.
//! - `chart`: usage drawn as SVG on the server.
//! - `error`: refusals as pages; an ended session back to sign-in.
//! - `once`: the one-time nonces of forms that show a secret once.
//! - `upstream`: the KeyService client and the headers that travel on.

mod chart;
mod error;
mod next;
mod once;
mod pages;
mod session;
mod upstream;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderValue, header},
    middleware,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use tonic::body::Body;
use tower::{BoxError, Service};

pub use session::CookiePolicy;

/// Where the console lives on the HTTP listener.
pub const CONSOLE_PATH: &str = "/console";

/// The console. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    client: upstream::Client,
    cookies: CookiePolicy,
    nonces: Arc<once::Nonces>,
    /// With sign-in through the identity provider: the callback URL registered there.
    sso_redirect: Option<String>,
}

impl Console {
    /// The console of the KeyService `service` (in `keyrack serve`, the gRPC server's own stack
    /// in memory).
    pub fn new<S>(service: S) -> Console
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Console {
            inner: Arc::new(Inner {
                client: upstream::client(service),
                cookies: CookiePolicy::default(),
                nonces: Arc::default(),
                sso_redirect: None,
            }),
        }
    }

    /// Sets how the session cookie is set (`Secure` over HTTPS).
    pub fn with_cookies(self, cookies: CookiePolicy) -> Console {
        self.with(|inner| inner.cookies = cookies)
    }

    /// Offers sign-in with the identity provider (the service must be configured with one),
    /// the person coming back to `<console_url>/sign-in/sso/callback`: `console_url` is the
    /// console's public URL (`--console-url`), never taken from a request's `Host`.
    pub fn with_sso(self, console_url: &str) -> Console {
        let redirect = format!("{}/sign-in/sso/callback", console_url.trim_end_matches('/'));
        self.with(|inner| inner.sso_redirect = Some(redirect))
    }

    /// This console with one setting changed (before it serves: a clone still serving keeps
    /// its own).
    fn with(self, change: impl FnOnce(&mut Inner)) -> Console {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        change(&mut inner);
        Console {
            inner: Arc::new(inner),
        }
    }

    /// The callback URL of sign-in with the identity provider, if it is offered.
    pub(crate) fn sso_redirect(&self) -> Option<&str> {
        self.inner.sso_redirect.as_deref()
    }

    pub(crate) fn client(&self) -> upstream::Client {
        self.inner.client.clone()
    }

    pub(crate) fn cookies(&self) -> CookiePolicy {
        self.inner.cookies
    }

    /// Spends a form's one-time nonce: refused when the form was sent before (a reload of the
    /// page that showed a secret once).
    pub(crate) fn spend_nonce(&self, nonce: &str) -> Result<(), error::PageError> {
        if self.inner.nonces.spend(nonce) {
            Ok(())
        } else {
            Err(error::PageError::Refused(
                http::StatusCode::CONFLICT,
                "This form was already sent. What it made was shown once and cannot be shown \
                 again; find it in Settings → API Keys."
                    .to_owned(),
            ))
        }
    }

    /// The console's routes, relative to [`CONSOLE_PATH`] (mount them there with
    /// `Router::nest_service`).
    pub fn router(self) -> Router {
        let routes = Router::new()
            .route(
                "/",
                get(|| async { Redirect::to("/console/settings/api-keys") }),
            )
            .merge(pages::routes())
            .route("/assets/console.css", get(stylesheet))
            .route("/assets/console.js", get(script));
        self.guarded(routes)
    }

    /// The OAuth 2.0 authorization endpoint's pages, at the absolute path `/oauth/authorize`
    /// (GET: sign-in, then the consent page; POST: the person's decision): merge this router at
    /// the root of the HTTP listener, beside the console. The session cookie's `Path=/` reaches
    /// it; the same cross-site refusal and security headers guard it (a consent page is never
    /// framed, cached or named in a `Referer`).
    pub fn authorize_router(self) -> Router {
        self.guarded(pages::authorize_routes())
    }

    /// `routes` behind the refusal of cross-site posts and with the security headers.
    fn guarded(self, routes: Router<Console>) -> Router {
        routes
            .layer(middleware::from_fn_with_state(
                self.clone(),
                session::refuse_cross_site,
            ))
            .layer(middleware::map_response(security_headers))
            .with_state(self)
    }
}

/// The content security policy of every console page: the console's own script and style
/// sheet and nothing inline (askama escapes what people typed; this keeps a slip from running),
/// forms that post only to the console, and no framing.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The headers of every console response: [`CONTENT_SECURITY_POLICY`] (unless the page set a
/// stricter-scoped variant of its own: the consent page's form may be redirected to the
/// application), no referrer, no sniffing, no framing. Pages are never cached: some show a key
/// once.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/console.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/console.js"),
    )
}
