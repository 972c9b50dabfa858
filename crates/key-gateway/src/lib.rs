//! Keyrack's REST gateway: the product's HTTP/JSON API and a forward-auth endpoint for reverse
//! proxies, as a thin client of the gRPC `KeyService`.
//!
//! The gateway decides nothing. It parses no keys, reads no database and holds no rules: every
//! request becomes one gRPC call, and the answer is translated back, errors through key-core's
//! `ErrorCode` table.

mod alerts;
mod audit;
mod body;
mod error;
mod forwarded;
mod health;
mod keys;
mod model;
mod openapi;
mod organizations;
mod server;
mod upstream;
mod usage;
mod verify;
mod webhooks;

pub use error::{ApiError, Error};
pub use forwarded::TrustedProxies;
pub use openapi::ApiDoc;
pub use server::{Gateway, router};
pub use upstream::Upstream;
