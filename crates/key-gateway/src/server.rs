//! The router and the HTTP server.

use std::{future::Future, net::SocketAddr};

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    routing::{any, get},
    serve::ListenerExt,
};
use key_proto::ErrorCode;
use key_telemetry::RequestMetrics;
use key_tls::ServerTls;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;

use crate::{
    ApiDoc, ApiError, Error, alerts, forwarded::TrustedProxies, health, keys, oauth, oauth_clients,
    organizations, secret_scanning, tls::TlsListener, upstream::Upstream, usage, verify, webhooks,
};

/// Request bodies larger than this are refused with 413.
const BODY_LIMIT: usize = 64 * 1024;

/// What the gateway serves beside its own API: the web console's routers, and the OAuth 2.0
/// issuer that the authorization server's metadata names.
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    /// Served under `/console`.
    pub console: Option<Router>,
    /// The OAuth authorization endpoint's router (its routes at `/oauth/authorize`), merged
    /// at the root.
    pub authorize: Option<Router>,
    /// The OAuth issuer URL; without one, `/.well-known/oauth-authorization-server` is 404.
    pub oauth_issuer: Option<String>,
}

/// The gateway's routes in front of `upstream`, believing `X-Forwarded-For` from
/// `trusted_proxies` only, recording each request's latency into `requests` (if given). Each
/// later endpoint is one `.route` line and one handler.
pub fn router(
    upstream: Upstream,
    trusted_proxies: TrustedProxies,
    requests: Option<RequestMetrics>,
    max_in_flight: usize,
    neighbours: Neighbours,
) -> Router {
    let in_flight = crate::shed::InFlight::new(max_in_flight, requests.clone());
    // Built once: the issuer is configuration, never the request's `Host`.
    let oauth_metadata = neighbours
        .oauth_issuer
        .as_deref()
        .map(oauth::AuthorizationServerMetadata::new);
    let form_limit = || DefaultBodyLimit::max(oauth::FORM_BODY_LIMIT);
    let api = Router::new()
        .route("/api/api-keys", get(keys::list_keys).post(keys::create_key))
        .route(
            "/api/api-keys/{id}",
            get(keys::get_key).delete(keys::revoke_key),
        )
        .route("/api/api-keys/{id}", axum::routing::patch(keys::update_key))
        .route(
            "/api/api-keys/{id}/rotate",
            axum::routing::post(keys::rotate_key),
        )
        .route(
            "/api/api-keys/{id}/disable",
            axum::routing::post(keys::disable_key),
        )
        .route(
            "/api/api-keys/{id}/enable",
            axum::routing::post(keys::enable_key),
        )
        .route("/api/api-keys/{id}/usage", get(usage::key_usage))
        .route("/api/usage", get(usage::organization_usage))
        .route("/api/audit-events", get(crate::audit::list_audit_events))
        .route(
            "/api/organizations",
            axum::routing::post(organizations::create_organization),
        )
        .route("/api/organization", get(organizations::get_organization))
        .route(
            "/api/organization/policy",
            axum::routing::put(organizations::update_policy),
        )
        .route(
            "/api/members",
            get(organizations::list_members).post(organizations::add_member),
        )
        .route(
            "/api/members/{id}",
            axum::routing::patch(organizations::update_member).delete(organizations::remove_member),
        )
        .route(
            "/api/webhook-endpoints",
            get(webhooks::list_webhook_endpoints).post(webhooks::create_webhook_endpoint),
        )
        .route(
            "/api/webhook-endpoints/{id}",
            axum::routing::delete(webhooks::delete_webhook_endpoint),
        )
        .route(
            "/api/webhook-endpoints/{id}/rotate-secret",
            axum::routing::post(webhooks::rotate_webhook_secret),
        )
        .route(
            "/api/webhook-deliveries",
            get(webhooks::list_webhook_deliveries),
        )
        .route(
            "/api/alerts",
            get(alerts::get_organization_alerts)
                .put(alerts::put_organization_alerts)
                .delete(alerts::reset_organization_alerts),
        )
        .route(
            "/api/api-keys/{id}/alerts",
            get(alerts::get_key_alerts)
                .put(alerts::put_key_alerts)
                .delete(alerts::reset_key_alerts),
        )
        .route("/api/alerts/test", axum::routing::post(alerts::test_alerts))
        .route("/api/alert-events", get(alerts::list_alert_events))
        .route("/api/auth/verify", any(verify::verify))
        .route(
            "/api/auth/verify/{*original_path}",
            any(verify::verify_original_path),
        )
        .route(
            "/api/secret-scanning/reports",
            axum::routing::post(secret_scanning::report)
                .layer(DefaultBodyLimit::max(secret_scanning::REPORT_BODY_LIMIT)),
        )
        .route(
            "/api/oauth/clients",
            get(oauth_clients::list_oauth_clients).post(oauth_clients::create_oauth_client),
        )
        .route(
            "/api/oauth/clients/{id}",
            axum::routing::delete(oauth_clients::delete_oauth_client),
        )
        .route("/api/oauth/grants", get(oauth_clients::list_oauth_grants))
        .route(
            "/api/oauth/grants/{id}",
            axum::routing::delete(oauth_clients::revoke_oauth_grant),
        )
        .route(
            "/oauth/token",
            axum::routing::post(oauth::token).layer(form_limit()),
        )
        .route(
            "/oauth/revoke",
            axum::routing::post(oauth::revoke).layer(form_limit()),
        )
        .route(
            "/oauth/introspect",
            axum::routing::post(oauth::introspect).layer(form_limit()),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || oauth::metadata(oauth_metadata.clone())),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }));
    let mut api: Router = api.with_state(upstream);
    if let Some(console) = neighbours.console {
        // Another client of the same upstream, behind the same limits, access log and
        // client identification; the gateway knows nothing of what it serves.
        api = api.nest_service("/console", console);
    }
    if let Some(authorize) = neighbours.authorize {
        // The console's too, at the root where OAuth clients send people (RFC 8414's
        // `authorization_endpoint`), behind the same layers, its routes named in the access
        // log like the gateway's own.
        api = api.merge(authorize);
    }
    let api = api
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this method is not allowed on this route",
            )
        })
        .route_layer(axum::middleware::from_fn(crate::telemetry::name_route))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            crate::forwarded::Identification::new(trusted_proxies),
            crate::forwarded::identify_client,
        ));

    let request_id = http::HeaderName::from_static("x-request-id");
    api.layer(
        tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(axum::middleware::from_fn_with_state(
                requests,
                crate::telemetry::observe,
            ))
            // Inside the telemetry: shed requests are logged and counted as 503s.
            .layer(axum::middleware::from_fn_with_state(
                in_flight,
                crate::shed::shed,
            ))
            .layer(PropagateRequestIdLayer::new(request_id)),
    )
}

/// A gateway bound to a listener, ready to run.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    upstream: Upstream,
    trusted_proxies: TrustedProxies,
    requests: Option<RequestMetrics>,
    local_addr: SocketAddr,
    /// The listener's TLS configuration, if it speaks HTTPS.
    tls: Option<ServerTls>,
    /// Requests above this many in flight are answered 503 at once.
    max_in_flight: usize,
    neighbours: Neighbours,
}

impl Gateway {
    /// A gateway on `listener` in front of `upstream`: a service elsewhere
    /// ([`Upstream::connect_lazy`]) or the gRPC server of this process
    /// ([`Upstream::from_service`]). It trusts no proxy until told otherwise.
    pub fn new(listener: TcpListener, upstream: Upstream) -> Result<Gateway, Error> {
        let local_addr = listener.local_addr()?;
        Ok(Gateway {
            listener,
            upstream,
            trusted_proxies: TrustedProxies::default(),
            requests: None,
            local_addr,
            tls: None,
            max_in_flight: crate::shed::DEFAULT_MAX_IN_FLIGHT,
            neighbours: Neighbours::default(),
        })
    }

    /// Believes the `X-Forwarded-For` entries that these proxies append: the client's address
    /// (for the brute-force guard) is the first one, from the right, that they do not cover.
    pub fn with_trusted_proxies(mut self, trusted_proxies: TrustedProxies) -> Gateway {
        self.trusted_proxies = trusted_proxies;
        self
    }

    /// Records each request's latency, by route and status, into `requests`.
    pub fn with_request_metrics(mut self, requests: RequestMetrics) -> Gateway {
        self.requests = Some(requests);
        self
    }

    /// Serves HTTPS (HTTP/2 or HTTP/1.1 by ALPN) instead of plain HTTP: a connection whose
    /// handshake fails never reaches a route, and the certificate files are re-read when they
    /// change.
    pub fn with_tls(mut self, tls: ServerTls) -> Gateway {
        self.tls = Some(tls);
        self
    }

    /// Answers 503 `overloaded` (with `Retry-After: 1`) to requests above `max_in_flight` in
    /// flight instead of queueing them; `/healthz` and `/readyz` are never refused.
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Gateway {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Serves `console` (the web console's router) under `/console`, beside the API.
    pub fn with_console(mut self, console: Router) -> Gateway {
        self.neighbours.console = Some(console);
        self
    }

    /// Serves `authorize`, the OAuth 2.0 authorization endpoint's router (the web console's,
    /// with its routes at the absolute path `/oauth/authorize`), merged at the root, behind
    /// the same in-flight limit, access log and client identification as the console.
    pub fn with_authorize(mut self, authorize: Router) -> Gateway {
        self.neighbours.authorize = Some(authorize);
        self
    }

    /// Serves the OAuth authorization server's metadata (RFC 8414) for `issuer`, e.g.
    /// `https://keys.example.com`: every endpoint it names is `<issuer>/oauth/…`. The issuer is
    /// configuration, never derived from a request's `Host`, which the client chooses.
    pub fn with_oauth_issuer(mut self, issuer: impl Into<String>) -> Gateway {
        self.neighbours.oauth_issuer = Some(issuer.into());
        self
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let tls_mode = self.tls.as_ref().map_or("off", ServerTls::mode);
        tracing::info!(address = %self.local_addr, tls = %tls_mode, "HTTP gateway listening");
        // The caller's address reaches the handlers, for X-Forwarded-For.
        let service = router(
            self.upstream,
            self.trusted_proxies,
            self.requests,
            self.max_in_flight,
            self.neighbours,
        )
        .into_make_service_with_connect_info::<SocketAddr>();
        match self.tls {
            None => {
                axum::serve(self.listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await?;
            }
            Some(tls) => {
                // `tap_io` with nothing to do: axum provides `ConnectInfo<SocketAddr>` for a
                // tapped listener of any kind, and for no other listener than its own TCP one.
                let listener = TlsListener(tls.incoming(self.listener)?).tap_io(|_| {});
                axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await?;
            }
        }
        tracing::info!("HTTP gateway stopped");
        Ok(())
    }
}
