//! The gateway's client address: the TCP peer, unless the peer is a trusted proxy
//! (`--trusted-proxies`). It feeds the brute-force guard, so a client talking to the gateway
//! directly must not pick its own address with `X-Forwarded-For`.

use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with_trusted_proxies};

/// Well-formed in shape, wrong in checksum: invalid, and counted by the guard.
const WRONG_KEY: &str = "sk_live_0000000000000000000000000000000000000000000000000000";
/// Consecutive failures from one address before the guard refuses it (the default).
const GUARD_THRESHOLD: usize = 100;

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

/// Forward-auth with `key`, claiming `forwarded_for` in `X-Forwarded-For`.
async fn verify_claiming(app: &TestApp, key: &str, forwarded_for: &str) -> StatusCode {
    client()
        .get(format!("{}/api/auth/verify", app.http))
        .bearer_auth(key)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_direct_client_cannot_escape_the_guard_by_rotating_x_forwarded_for() {
    let app = spawn_app(&Backend::Sqlite).await;
    // Created first: the test's admin calls come from the same loopback address it blocks.
    let good = app.create_key("good", &["chat"], "").await.key;
    for n in 0..GUARD_THRESHOLD {
        let claimed = format!("198.18.{}.{}", n / 256, n % 256);
        assert_eq!(
            verify_claiming(&app, WRONG_KEY, &claimed).await,
            StatusCode::UNAUTHORIZED
        );
    }
    // Every failure was counted against the TCP peer, whatever the header said.
    let response = client()
        .get(format!("{}/api/auth/verify", app.http))
        .bearer_auth(WRONG_KEY)
        .header("x-forwarded-for", "198.19.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "60");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // The peer is refused a key it has not used before (no lookup while blocked), from any
    // claimed address.
    assert_eq!(
        verify_claiming(&app, &good, "203.0.113.50").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_streak() {
    // The test talks to the gateway from loopback: that is the proxy here.
    let app = spawn_app_with_trusted_proxies(&Backend::Sqlite, "127.0.0.1".parse().unwrap()).await;
    let blocked = "203.0.113.7";
    let other = "198.51.100.23";
    for _ in 0..GUARD_THRESHOLD {
        assert_eq!(
            verify_claiming(&app, WRONG_KEY, blocked).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        verify_claiming(&app, WRONG_KEY, blocked).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not affected: a wrong key is just wrong, and a
    // good one passes.
    assert_eq!(
        verify_claiming(&app, WRONG_KEY, other).await,
        StatusCode::UNAUTHORIZED
    );
    let good = app.create_key("good", &["chat"], "").await.key;
    let unused = app.create_key("unused", &["chat"], "").await.key;
    assert_eq!(verify_claiming(&app, &good, other).await, StatusCode::OK);
    // The address is read from the right: what the client put in front of the proxy's entry
    // (here 192.0.2.1, claimed by the blocked client) is not believed. (A key the blocked
    // address has not used is refused without a lookup.)
    assert_eq!(
        verify_claiming(&app, &unused, &format!("192.0.2.1, {blocked}")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Without the header, the proxy itself is the client, with a clean record.
    let direct = client()
        .get(format!("{}/api/auth/verify", app.http))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), StatusCode::OK);
}
