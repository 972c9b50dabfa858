//! Keyrack's REST gateway: the product's HTTP/JSON API and a forward-auth endpoint for reverse
//! proxies, as a thin client of the gRPC `KeyService`.
//!
//! The gateway decides nothing. It parses no keys, reads no database and holds no rules: every
//! request becomes one gRPC call, and the answer is translated back, errors through key-proto's
//! `ErrorCode` table. Its only dependency on the rest of Keyrack is key-proto: the wire's types
//! and the wire's vocabulary (error codes, scope and audit action names, the bearer credential).
//!
//! One module per resource (`keys`, `organizations` with members, `alerts`, `audit`, `usage`,
//! `webhooks`, `oauth_clients` with grants, `verify`, `health`) holds its handlers and, below them, its JSON types with their
//! translation to and from protobuf. A reader, or a change, of one endpoint stays in one file:
//! the request body, the handler, its OpenAPI annotation and the response shape are read
//! together, and change together. A resource that embeds another's shape imports it
//! (`organizations` uses `keys::ApiKeyJson`). What belongs to no one resource is in `json`
//! (timestamps, empty strings, rate limits, scope names), `body` (the request extractors),
//! `error` (the error response) and `upstream` (the clients, the forwarded headers, and the
//! answer to an upstream response that lacks a required message). `oauth` holds OAuth 2.0's
//! protocol endpoints (token, revocation, introspection, metadata), which speak the RFCs'
//! form bodies and error JSON instead of the platform's.

mod alerts;
mod audit;
mod body;
mod error;
mod forwarded;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod json;
mod keys;
mod oauth;
mod oauth_clients;
mod openapi;
mod organizations;
mod secret_scanning;
mod server;
mod shed;
mod telemetry;
mod tls;
mod upstream;
mod usage;
mod verify;
mod webhooks;

pub use error::{ApiError, Error};
pub use forwarded::TrustedProxies;
pub use openapi::ApiDoc;
pub use server::{Gateway, Neighbours, router};
pub use shed::DEFAULT_MAX_IN_FLIGHT;
pub use upstream::{Upstream, UpstreamTls};
