//! A small axum service whose routes are protected by Keyrack, each with its own scopes.
//!
//! ```sh
//! keyrack serve &                                   # gRPC on 127.0.0.1:50051
//! cargo run -p keyrack-client --example axum_service
//! curl -H "Authorization: Bearer $KEY" localhost:8000/api/agents     # needs agents:read
//! curl -XPOST -H "Authorization: Bearer $KEY" localhost:8000/api/chat # needs chat
//! ```
//!
//! `KEYRACK_ADDR` (default `http://127.0.0.1:50051`) names Keyrack, `LISTEN` (default
//! `127.0.0.1:8000`) this service.

use std::{error::Error, net::SocketAddr};

use axum::{
    Extension, Json, Router,
    routing::{get, post},
};
use keyrack_client::{KeyrackClient, Principal};
use serde_json::{Value, json};

async fn agents(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "organization": principal.organization_id,
        "agents": [],
    }))
}

async fn chat(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "reply": format!("hello, {}", principal.name),
        "keyId": principal.key_id,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let keyrack_addr =
        std::env::var("KEYRACK_ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8000".into());

    // One client for the process: one channel to Keyrack and one cache behind every layer.
    let keyrack = KeyrackClient::connect_lazy(keyrack_addr)?;
    let app = Router::new()
        .route(
            "/api/agents",
            get(agents).route_layer(keyrack.require(["agents:read"])),
        )
        .route(
            "/api/chat",
            post(chat).route_layer(keyrack.require(["chat"])),
        )
        // Not behind the layer: a load balancer's probe needs no key.
        .route("/healthz", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // The peer's address reaches Keyrack's brute-force guard through ConnectInfo.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
