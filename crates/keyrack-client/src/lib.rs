//! # keyrack-client
//!
//! A [tower] [`Layer`](tower::Layer) that lets only requests with a valid Keyrack API key
//! through, for [axum] routers and [tonic] services alike.
//!
//! For every request, [`KeyrackLayer`]'s service reads the bearer credential
//! (`Authorization: Bearer sk_live_…`), asks Keyrack's `keyrack.v1.KeyService/VerifyKey`
//! whether the key holds the scopes the route requires, and then either calls the inner
//! service with the key's [`Principal`] in the request's extensions, or answers the refusal
//! itself:
//!
//! - over HTTP, with the product's JSON and status, as Keyrack's REST gateway answers:
//!   `{"error": {"code": "invalid_api_key", "message": "The API key provided is invalid"}, "status": 401}`;
//!   `expired_api_key` (401), `insufficient_scope` (403), `rate_limited` (429, with
//!   `Retry-After` and `X-RateLimit-*`);
//! - to a gRPC request (`content-type: application/grpc…`), with the canonical status
//!   (`UNAUTHENTICATED`, `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`) and a
//!   `google.rpc.ErrorInfo` whose domain is `keyrack` and whose reason is the same code.
//!
//! ```no_run
//! use axum::{Extension, Router, routing::post};
//! use keyrack_client::{KeyrackClient, Principal};
//!
//! async fn chat(Extension(principal): Extension<Principal>) -> String {
//!     format!("hello, key {} of organization {}", principal.key_id, principal.organization_id)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // One client per process: one HTTP/2 channel to Keyrack and one cache, shared by every layer.
//! let keyrack = KeyrackClient::connect_lazy("http://keyrack:50051")?;
//! let app: Router = Router::new()
//!     .route("/api/chat", post(chat))
//!     .route_layer(keyrack.require(["chat"]));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8000").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! A tonic service is wrapped the same way, and keeps its name for `add_service`:
//! `Server::builder().add_service(keyrack.require(["agents:read"]).layer(AgentsServer::new(agents)))`;
//! its methods find the principal with `request.extensions().get::<Principal>()`.
//!
//! ## Scopes
//!
//! Each layer carries the scopes its routes require ([`KeyrackClient::require`]), and Keyrack
//! checks them (VerifyKey's `required_scopes`): a key must hold all of them. No scopes means
//! any valid key. Give each route or router the layer with its own scopes
//! (axum's `route_layer`); all layers made from one client share its channel and cache.
//!
//! ## Cache
//!
//! A VALID verdict is kept at most [`MAX_CACHE_TTL`] (one second; [`DEFAULT_CACHE_TTL`] by
//! default, less with [`KeyrackClient::with_cache`], never past the key's expiry), for the same
//! key, the same required scopes and the same client address, in a cache of at most
//! [`DEFAULT_CACHE_CAPACITY`] entries. Refusals are never cached: a revoked, expired or rate
//! limited key is refused by Keyrack itself at its next uncached request, so a revocation takes
//! effect here within the TTL. Requests answered from the cache do not reach Keyrack, so its
//! rate limits and usage counts see at most one request per key, scopes and address per TTL
//! from each process: when those must count every request, turn the cache off
//! (`with_cache(Duration::ZERO, 0)`). The cache holds SHA-256 digests of keys, never keys.
//!
//! ## When Keyrack cannot answer
//!
//! The layer fails closed. If Keyrack cannot be reached, does not answer within the deadline
//! ([`DEFAULT_DEADLINE`], [`KeyrackClient::with_deadline`]) or answers with an error, the
//! request is refused with `503` and `{"error": {"code": "unavailable", …}, "status": 503}` (gRPC:
//! `UNAVAILABLE`, reason `unavailable`); a Keyrack shedding load gives `503 overloaded` with
//! `Retry-After: 1`. Only verdicts already in the cache (at most a second old) are still served.
//! A required scope that Keyrack does not know is the service's configuration error: `500
//! internal`, logged.
//!
//! ## The client's address
//!
//! Keyrack's brute-force guard counts failed verifications by the end client's address. The
//! layer sends the address from a [`ClientIp`] extension if an outer layer put one (e.g. after
//! walking `X-Forwarded-For` from your trusted proxies), else the TCP peer that axum
//! (`into_make_service_with_connect_info::<SocketAddr>`) or tonic records. Without one,
//! Keyrack counts by this service's own address, and many bad keys from clients could then
//! block verification for everyone behind it.

mod cache;
mod client;
mod layer;
mod principal;
mod refusal;

pub use client::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_DEADLINE, Error, KeyrackClient,
    MAX_CACHE_TTL,
};
pub use layer::{ClientIp, KeyrackLayer, RequireKey, ResponseBody};
pub use principal::{Environment, KeyType, Principal};
pub use refusal::{ERROR_CODES, ERROR_DOMAIN, MISSING_API_KEY_MESSAGE, Refusal};

/// The generated `keyrack.v1` messages and client, from the crate's copy of the proto.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
mod v1 {
    tonic::include_proto!("keyrack.v1");
}
