//! OAuth 2.0's conformance cases against a running server: consent through the gRPC API (as
//! the console makes it, with a person's session), then the token, revocation and
//! introspection endpoints over HTTP as a client library calls them, and the access token at
//! forward-auth and VerifyKey; and a token found in public by secret scanning. The browser and a real client library run the same flow in
//! `console_browser.rs` (tests/browser/oauth.py).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use key_core::Role;
use key_proto::v1;
use reqwest::{StatusCode, Url};
use ring::digest::{SHA256, digest};
use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    helpers::{TestApp, authed, backends, spawn_app, spawn_app_configured},
    leaked_keys::{Signer, report, signed},
};

const REDIRECT: &str = "https://app.example.com/callback";
const NATIVE_REDIRECT: &str = "http://127.0.0.1/callback";

struct World {
    app: TestApp,
    http: reqwest::Client,
    /// Alice, a `member`, signed in to the console (her session token).
    alice: String,
    alice_member: String,
    /// A confidential client: its id and secret.
    client_id: String,
    secret: String,
    /// A public (native) client.
    public_id: String,
}

async fn world(app: TestApp) -> World {
    let mut grpc = app.client.clone();
    let alice_member = grpc
        .add_member(authed(
            &app.admin_key,
            v1::AddMemberRequest {
                user_id: "alice@example.com".into(),
                role: v1::Role::Member.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .id;
    let link = grpc
        .create_sign_in_link(authed(
            &app.admin_key,
            v1::CreateSignInLinkRequest {
                member_id: alice_member.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .sign_in_token;
    let alice = grpc
        .redeem_sign_in_link(v1::RedeemSignInLinkRequest {
            sign_in_token: link,
        })
        .await
        .unwrap()
        .into_inner()
        .session_token;
    let http = reqwest::Client::new();
    // Registered over REST, as an admin's script would.
    let created: Value = http
        .post(format!("{}/api/oauth/clients", app.http))
        .bearer_auth(&app.admin_key)
        .json(&serde_json::json!({
            "name": "Slack",
            "type": "confidential",
            "redirectUris": [REDIRECT],
            "scopes": ["chat", "agents:read", "agents:write", "admin"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = created["client"]["id"].as_str().unwrap().to_owned();
    let secret = created["clientSecret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("krc_"), "{created}");
    let public_id = grpc
        .create_oauth_client(authed(
            &app.admin_key,
            v1::CreateOauthClientRequest {
                name: "IDE plugin".into(),
                r#type: v1::OauthClientType::Public.into(),
                redirect_uris: vec![NATIVE_REDIRECT.into()],
                scopes: vec!["chat".into(), "agents:read".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap()
        .id;
    World {
        app,
        http,
        alice,
        alice_member,
        client_id,
        secret,
        public_id,
    }
}

/// A PKCE verifier and its S256 challenge.
fn pkce(seed: &str) -> (String, String) {
    let verifier = format!("{seed}-verifier-0123456789-abcdefghijklmnopqrstuvwxyz");
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

fn request(
    client_id: &str,
    redirect: &str,
    scope: &str,
    challenge: &str,
) -> v1::OauthAuthorizationRequest {
    v1::OauthAuthorizationRequest {
        response_type: "code".into(),
        client_id: client_id.into(),
        redirect_uri: redirect.into(),
        scope: scope.into(),
        state: "xyz 1&2".into(),
        code_challenge: challenge.into(),
        code_challenge_method: "S256".into(),
    }
}

impl World {
    /// Steps 1 to 3: the person approves (or denies) `request`; where they are sent.
    async fn decide(&self, request: v1::OauthAuthorizationRequest, approve: bool) -> Url {
        let url = self
            .app
            .client
            .clone()
            .decide_oauth_authorization(authed(
                &self.alice,
                v1::DecideOauthAuthorizationRequest {
                    request: Some(request),
                    approve,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .redirect_uri;
        Url::parse(&url).unwrap()
    }

    /// A code for the confidential client, for `scope`, and its PKCE verifier.
    async fn code(&self, scope: &str) -> (String, String) {
        let (verifier, challenge) = pkce("confidential");
        let url = self
            .decide(request(&self.client_id, REDIRECT, scope, &challenge), true)
            .await;
        (param(&url, "code").unwrap(), verifier)
    }

    /// POSTs `form` to `path` with the confidential client's credentials as HTTP Basic.
    async fn post(&self, path: &str, form: &[(&str, &str)], basic: bool) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.app.http))
            .form(form);
        if basic {
            request = request.basic_auth(&self.client_id, Some(&self.secret));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if path == "/oauth/token" {
            assert_eq!(response.headers()["cache-control"], "no-store");
        }
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Step 4: the code for tokens, as the confidential client.
    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
            true,
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            true,
        )
        .await
    }

    /// Step 5: the access token at forward-auth for `scope`.
    /// The organization's audit events of `action`, newest first.
    async fn audit_events(&self, action: &str) -> Vec<v1::AuditEvent> {
        self.app
            .client
            .clone()
            .list_audit_events(authed(
                &self.app.admin_key,
                v1::ListAuditEventsRequest {
                    action: action.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events
    }

    async fn use_token(&self, token: &str, scope: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}/api/auth/verify", self.app.http))
            .bearer_auth(token)
            .header("X-Keyrack-Required-Scopes", scope)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_five_steps_give_a_token_verified_like_a_key_with_the_user_context() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let (code, verifier) = w.code("chat agents:read").await;
        assert!(code.starts_with("kac_"));
        let (status, tokens) = w.exchange(&code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 3600);
        assert_eq!(tokens["scope"], "chat agents:read");
        let access = text(&tokens, "access_token");
        assert!(access.starts_with("oat_live_"), "{access}");
        assert!(text(&tokens, "refresh_token").starts_with("ort_live_"));

        let (status, principal) = w.use_token(access, "chat").await;
        assert_eq!(status, StatusCode::OK, "{principal}");
        assert_eq!(principal["userId"], "alice@example.com");
        assert_eq!(principal["oauthClientId"], w.client_id.as_str());
        assert_eq!(principal["memberId"], w.alice_member.as_str());
        assert_eq!(principal["keyType"], "personal");
        let (status, refusal) = w.use_token(access, "agents:write").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(refusal["error"]["code"], "insufficient_scope");
        assert_eq!(
            refusal["error"]["message"],
            "API key lacks required scope: agents:write"
        );

        // VerifyKey: the same verdict, the grant as the key.
        let verdict = w.app.verify(access, &["agents:read"]).await;
        assert!(verdict.valid, "{verdict:?}");
        assert_eq!(verdict.oauth_client_id, w.client_id);
        assert_eq!(verdict.user_id, "alice@example.com");
        // A refresh token is no credential there.
        let refused = w.app.verify(text(&tokens, "refresh_token"), &[]).await;
        assert_eq!(refused.reason, "invalid_api_key");
        // Nor is an access token one for Keyrack's own admin API.
        let status = w
            .app
            .client
            .clone()
            .list_keys(authed(access, v1::ListKeysRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

        // The grant is an authorized application of Alice's, not a key in key listings.
        let grants = w
            .app
            .client
            .clone()
            .list_oauth_grants(authed(&w.alice, v1::ListOauthGrantsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .grants;
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].id, verdict.key_id);
        assert_eq!(grants[0].client_name, "Slack");
        let keys = w
            .app
            .client
            .clone()
            .list_keys(authed(&w.app.admin_key, v1::ListKeysRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(keys.api_keys.iter().all(|key| key.id != verdict.key_id));
        // Its usage (its tokens') is read as a personal key's: by its person, or an admin.
        w.app.caught_up().await;
        let usage = w
            .app
            .client
            .clone()
            .list_usage(authed(
                &w.alice,
                v1::ListUsageRequest {
                    key_id: verdict.key_id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(usage.total_succeeded >= 1, "{usage:?}");
    }
}

#[tokio::test]
async fn bad_requests_are_shown_or_sent_back_but_never_to_an_unregistered_uri() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut grpc = w.app.client.clone();
        let (_, challenge) = pkce("x");
        let check = |request: v1::OauthAuthorizationRequest| {
            let mut grpc = grpc.clone();
            let alice = w.alice.clone();
            async move {
                grpc.check_oauth_authorization(authed(
                    &alice,
                    v1::CheckOauthAuthorizationRequest {
                        request: Some(request),
                    },
                ))
                .await
            }
        };
        // An unregistered redirect URI or an unknown client: shown, never redirected to.
        for (request, field) in [
            (
                request(
                    &w.client_id,
                    "https://evil.example.com/cb",
                    "chat",
                    &challenge,
                ),
                "redirect_uri",
            ),
            (
                request(
                    &w.client_id,
                    "https://app.example.com/callback/",
                    "chat",
                    &challenge,
                ),
                "redirect_uri",
            ),
            (
                request(
                    &uuid::Uuid::now_v7().to_string(),
                    REDIRECT,
                    "chat",
                    &challenge,
                ),
                "client_id",
            ),
        ] {
            let status = check(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            let info = status.get_details_error_info().unwrap();
            assert_eq!(info.metadata["field"], field);
        }
        // Faults of a valid client go back to it, with the state.
        let mut plain = request(&w.client_id, REDIRECT, "chat", &challenge);
        plain.code_challenge_method = "plain".into();
        let mut no_pkce = request(&w.client_id, REDIRECT, "chat", "");
        no_pkce.code_challenge_method = String::new();
        let mut token = request(&w.client_id, REDIRECT, "chat", &challenge);
        token.response_type = "token".into();
        for (request, error) in [
            (plain, "invalid_request"),
            (no_pkce, "invalid_request"),
            (token, "unsupported_response_type"),
            (
                request(&w.client_id, REDIRECT, "chat bogus", &challenge),
                "invalid_scope",
            ),
        ] {
            let answer = check(request).await.unwrap().into_inner();
            let url = Url::parse(&answer.redirect_uri).unwrap();
            assert!(answer.redirect_uri.starts_with(REDIRECT), "{url}");
            assert_eq!(param(&url, "error").as_deref(), Some(error), "{url}");
            assert_eq!(param(&url, "state").as_deref(), Some("xyz 1&2"));
            assert!(param(&url, "code").is_none());
        }
        // Consent shows what a member's role withholds.
        let consent = check(request(&w.client_id, REDIRECT, "chat admin", &challenge))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(consent.client.unwrap().name, "Slack");
        assert_eq!(consent.organization_name, "default");
        assert_eq!(consent.scopes, ["chat"]);
        assert_eq!(consent.withheld_scopes, ["admin"]);
        // A denial goes back as access_denied.
        let denied = w
            .decide(request(&w.client_id, REDIRECT, "chat", &challenge), false)
            .await;
        assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
        // An organization key is no person.
        let status = grpc
            .check_oauth_authorization(authed(
                &w.app.admin_key,
                v1::CheckOauthAuthorizationRequest {
                    request: Some(request(&w.client_id, REDIRECT, "chat", &challenge)),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        // A native app's loopback redirect matches on any port (RFC 8252).
        let (verifier, challenge) = pkce("native");
        let url = w
            .decide(
                request(
                    &w.public_id,
                    "http://127.0.0.1:53211/callback",
                    "chat",
                    &challenge,
                ),
                true,
            )
            .await;
        assert_eq!(url.port(), Some(53211));
        let code = param(&url, "code").unwrap();
        // A public client: no secret, PKCE required.
        let form = |verifier: &str| {
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code.clone()),
                ("redirect_uri", "http://127.0.0.1:53211/callback".to_owned()),
                ("client_id", w.public_id.clone()),
                ("code_verifier", verifier.to_owned()),
            ]
        };
        let post = |form: Vec<(&'static str, String)>| {
            let http = w.http.clone();
            let url = format!("{}/oauth/token", w.app.http);
            async move {
                let response = http.post(url).form(&form).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }
        };
        let (status, body) = post(form("")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_request");
        // The failed attempt spent the code (one attempt per code).
        let (status, body) = post(form(&verifier)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant", "{body}");
        let _ = &mut grpc;
    }
}

#[tokio::test]
async fn codes_work_once_within_a_minute_for_their_client_verifier_and_redirect() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        // Wrong verifier.
        let (code, _) = w.code("chat").await;
        let (status, body) = w.exchange(&code, &pkce("other").0).await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        // Expired.
        let (code, verifier) = w.code("chat").await;
        w.app.clock.advance(chrono::TimeDelta::seconds(61));
        let (status, body) = w.exchange(&code, &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error_description"], "authorization code expired");
        // Another redirect URI than the request's.
        let (code, verifier) = w.code("chat").await;
        let (status, body) = w
            .post(
                "/oauth/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "https://app.example.com/other"),
                    ("code_verifier", &verifier),
                ],
                true,
            )
            .await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        // Used twice: the tokens of the first exchange are revoked.
        let (code, verifier) = w.code("chat").await;
        let (status, first) = w.exchange(&code, &verifier).await;
        assert_eq!(status, StatusCode::OK);
        let access = text(&first, "access_token");
        assert!(w.app.verify(access, &["chat"]).await.valid);
        let (status, again) = w.exchange(&code, &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(again["error"], "invalid_grant");
        assert_eq!(
            w.app.verify(access, &["chat"]).await.reason,
            "invalid_api_key"
        );
        let (status, body) = w.refresh(text(&first, "refresh_token")).await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        let events = w.audit_events("oauth.reuse_detected").await;
        assert_eq!(events.len(), 1);
    }
}

#[tokio::test]
async fn clients_authenticate_and_unknown_grant_types_are_refused() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let (code, verifier) = w.code("chat").await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ];
        let response = w
            .http
            .post(format!("{}/oauth/token", w.app.http))
            .basic_auth(
                &w.client_id,
                Some("krc_0000000000000000000000000000000000000000000000000000000000000000"),
            )
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key("www-authenticate"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        // Without the secret (client_secret_post omitted).
        let mut without = form.to_vec();
        let client_id = w.client_id.clone();
        without.push(("client_id", &client_id));
        let (status, body) = w.post("/oauth/token", &without, false).await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        // client_secret_post works, and the code was not spent by failed authentications.
        let mut post = without.clone();
        let secret = w.secret.clone();
        post.push(("client_secret", &secret));
        let (status, body) = w.post("/oauth/token", &post, false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = w
            .post("/oauth/token", &[("grant_type", "password")], true)
            .await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::BAD_REQUEST, "unsupported_grant_type")
        );
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_grant() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let (code, verifier) = w.code("chat agents:read").await;
        let (_, first) = w.exchange(&code, &verifier).await;
        let (status, second) = w.refresh(text(&first, "refresh_token")).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_ne!(second["refresh_token"], first["refresh_token"]);
        assert_eq!(second["scope"], "chat agents:read");
        let (status, body) = w
            .post(
                "/oauth/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", text(&second, "refresh_token")),
                    ("scope", "admin"),
                ],
                true,
            )
            .await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::BAD_REQUEST, "invalid_scope")
        );
        let newest = text(&second, "access_token");
        assert!(w.app.verify(newest, &["chat"]).await.valid);
        // The first refresh token again: stolen or replayed; the whole grant goes.
        let (status, body) = w.refresh(text(&first, "refresh_token")).await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        assert_eq!(
            w.app.verify(newest, &["chat"]).await.reason,
            "invalid_api_key"
        );
        let (status, _) = w.refresh(text(&second, "refresh_token")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn revocation_and_introspection_follow_the_rfcs() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let introspect = |token: String| {
            let w = &w;
            async move {
                w.post("/oauth/introspect", &[("token", &token)], true)
                    .await
            }
        };
        let (code, verifier) = w.code("chat agents:read").await;
        let (_, tokens) = w.exchange(&code, &verifier).await;
        let access = text(&tokens, "access_token").to_owned();
        let refresh = text(&tokens, "refresh_token").to_owned();

        let (status, live) = introspect(access.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(live["active"], true, "{live}");
        assert_eq!(live["scope"], "chat agents:read");
        assert_eq!(live["client_id"], w.client_id.as_str());
        assert_eq!(live["username"], "alice@example.com");
        assert_eq!(live["token_type"], "access_token");
        assert_eq!(live["sub"], w.alice_member.as_str());
        assert!(live["exp"].as_i64().unwrap() > live["iat"].as_i64().unwrap());
        // An API key of the organization, too.
        let (_, key) = introspect(w.app.admin_key.clone()).await;
        assert_eq!(key["active"], true, "{key}");
        assert_eq!(key["token_type"], "api_key");
        let (_, junk) = introspect("sk_live_nonsense".into()).await;
        assert_eq!(junk, serde_json::json!({"active": false}));
        // A public client may not introspect.
        let response = w
            .http
            .post(format!("{}/oauth/introspect", w.app.http))
            .form(&[("token", access.as_str()), ("client_id", &w.public_id)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        // Revoking the access token ends it alone.
        let (status, _) = w.post("/oauth/revoke", &[("token", &access)], true).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            w.app.verify(&access, &["chat"]).await.reason,
            "invalid_api_key"
        );
        let (_, revoked) = introspect(access.clone()).await;
        assert_eq!(revoked, serde_json::json!({"active": false}));
        let (status, renewed) = w.refresh(&refresh).await;
        assert_eq!(status, StatusCode::OK, "{renewed}");
        // Revoking the refresh token ends the grant and every token under it.
        let newest = text(&renewed, "access_token").to_owned();
        let (status, _) = w
            .post(
                "/oauth/revoke",
                &[
                    ("token", text(&renewed, "refresh_token")),
                    ("token_type_hint", "refresh_token"),
                ],
                true,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            w.app.verify(&newest, &["chat"]).await.reason,
            "invalid_api_key"
        );
        // An unknown token is no error (RFC 7009 2.2).
        let (status, _) = w
            .post("/oauth/revoke", &[("token", "whatever")], true)
            .await;
        assert_eq!(status, StatusCode::OK);

        // An expired access token is inactive and refused as expired.
        let (code, verifier) = w.code("chat").await;
        let (_, tokens) = w.exchange(&code, &verifier).await;
        let access = text(&tokens, "access_token").to_owned();
        w.app.clock.advance(chrono::TimeDelta::seconds(3601));
        let (_, expired) = introspect(access.clone()).await;
        assert_eq!(expired, serde_json::json!({"active": false}));
        assert_eq!(
            w.app.verify(&access, &["chat"]).await.reason,
            "expired_api_key"
        );
    }
}

#[tokio::test]
async fn a_token_follows_its_persons_role_and_membership() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let (code, verifier) = w.code("chat agents:read").await;
        let (_, tokens) = w.exchange(&code, &verifier).await;
        let access = text(&tokens, "access_token");
        assert!(w.app.verify(access, &["chat"]).await.valid);
        let mut grpc = w.app.client.clone();
        // Demoted to viewer (agents:read, data:read, analytics:read): chat is gone at once.
        grpc.update_member(authed(
            &w.app.admin_key,
            v1::UpdateMemberRequest {
                id: w.alice_member.clone(),
                role: crate::permissions::role_to_proto(Role::Viewer).into(),
            },
        ))
        .await
        .unwrap();
        let narrowed = w.app.verify(access, &["chat"]).await;
        assert_eq!(narrowed.reason, "insufficient_scope");
        assert_eq!(narrowed.scopes, ["agents:read"]);
        // Removed: refused.
        grpc.remove_member(authed(
            &w.app.admin_key,
            v1::RemoveMemberRequest {
                id: w.alice_member.clone(),
            },
        ))
        .await
        .unwrap();
        assert_eq!(
            w.app.verify(access, &["agents:read"]).await.reason,
            "invalid_api_key"
        );
    }
}

/// On PostgreSQL, replicas hear of a token's revocation as of a key's: through the store's
/// notices, not the cache's minute. Revoked through one server, an access token cached by
/// another is refused there within a second; so are a revoked grant's tokens.
#[tokio::test]
async fn a_token_revoked_through_one_replica_is_refused_by_another_within_a_second() {
    let Some(backend @ crate::helpers::Backend::Postgres(_)) = backends().into_iter().nth(1) else {
        eprintln!("skipped: KEYRACK_TEST_DATABASE_URL is not set");
        return;
    };
    let w = world(spawn_app(&backend).await).await;
    let other = crate::helpers::spawn_second_server(&w.app).await;
    let verify_on_other = |token: String| {
        let mut client = other.client.clone();
        async move {
            client
                .verify_key(v1::VerifyKeyRequest {
                    key: token,
                    required_scopes: vec!["chat".into()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let refused_within_a_second = |token: String| {
        let verify_on_other = &verify_on_other;
        async move {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_secs(1) {
                if !verify_on_other(token.clone()).await.valid {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            false
        }
    };
    // An access token revoked by its client (RFC 7009).
    let (code, verifier) = w.code("chat").await;
    let (_, tokens) = w.exchange(&code, &verifier).await;
    let access = text(&tokens, "access_token").to_owned();
    assert!(verify_on_other(access.clone()).await.valid);
    assert!(verify_on_other(access.clone()).await.valid, "cached now");
    let (status, _) = w.post("/oauth/revoke", &[("token", &access)], true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(refused_within_a_second(access).await);
    // A grant revoked by its person: every token under it.
    let (code, verifier) = w.code("chat").await;
    let (_, tokens) = w.exchange(&code, &verifier).await;
    let access = text(&tokens, "access_token").to_owned();
    let grant = verify_on_other(access.clone()).await.key_id;
    w.app
        .client
        .clone()
        .revoke_oauth_grant(authed(&w.alice, v1::RevokeOauthGrantRequest { id: grant }))
        .await
        .unwrap();
    assert!(refused_within_a_second(access).await);
    other.stop().await;
}

/// A client refreshing in a loop cannot grow the store: a grant refreshes at most 60 times an
/// hour (then `temporarily_unavailable`, 503), and keeps only its newest rotated refresh
/// tokens, so an old one is merely unknown while a recent one's reuse still revokes the grant.
#[tokio::test]
async fn refreshing_in_a_loop_is_bounded() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let (code, verifier) = w.code("chat").await;
        let (_, tokens) = w.exchange(&code, &verifier).await;
        let mut refresh_tokens = vec![text(&tokens, "refresh_token").to_owned()];
        for _ in 0..60 {
            let (status, body) = w.refresh(refresh_tokens.last().unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            refresh_tokens.push(text(&body, "refresh_token").to_owned());
        }
        let (status, body) = w.refresh(refresh_tokens.last().unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        // The first was pruned: unknown, and the grant stands.
        let (status, body) = w.refresh(&refresh_tokens[0]).await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        assert_eq!(body["error_description"], "unknown refresh token");
        // A recent one is still recognised: its reuse revokes the grant.
        let (_, body) = w.refresh(&refresh_tokens[55]).await;
        assert_eq!(
            body["error_description"],
            "refresh token already used; the application's access is revoked"
        );
        w.app.clock.advance(chrono::TimeDelta::hours(1));
        let (status, _) = w.refresh(refresh_tokens.last().unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

/// OAuth's secrets are stored as keyed digests only: after a whole flow (a client secret, a
/// code, two access and two refresh tokens), none of them, nor a token's secret part alone, is
/// in the SQLite file or its write-ahead log.
#[tokio::test]
async fn no_oauth_secret_reaches_the_sqlite_file() {
    let w = world(spawn_app(&crate::helpers::Backend::Sqlite).await).await;
    let (code, verifier) = w.code("chat").await;
    let (_, first) = w.exchange(&code, &verifier).await;
    assert!(
        w.app
            .verify(text(&first, "access_token"), &["chat"])
            .await
            .valid
    );
    let (_, second) = w.refresh(text(&first, "refresh_token")).await;
    let mut secrets = vec![w.secret.clone(), code];
    for tokens in [&first, &second] {
        secrets.push(text(tokens, "access_token").to_owned());
        secrets.push(text(tokens, "refresh_token").to_owned());
    }
    let World { mut app, .. } = w;
    app.stop().await;
    let path = app.sqlite_path.clone().unwrap();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(content) = std::fs::read(format!("{}{suffix}", path.display())) {
            bytes.extend(content);
        }
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
    // What is stored in the clear is found: the check can find strings.
    assert!(contains(b"IDE plugin") && contains(b"alice@example.com"));
    for secret in &secrets {
        assert!(secret.len() > 40, "{secret}");
        assert!(
            !contains(secret.as_bytes()),
            "a secret found in the database"
        );
        // Not even its random part alone (after `oat_live_`, `ort_live_`, `krc_`, `kac_`).
        let random = &secret[secret.find('_').unwrap() + 1..];
        let random = random.strip_prefix("live_").unwrap_or(random);
        assert!(
            !contains(&random.as_bytes()[..40]),
            "a secret's random part found"
        );
    }
}

#[tokio::test]
async fn a_leaked_token_reported_by_secret_scanning_revokes_its_grant() {
    let signer = Signer::new("3f1c0a6b9e2d4c8a7b5e6f0d1c2b3a4958677685a4b3c2d1e0f9a8b7c6d5e4f3");
    let url = "https://github.com/octocat/hello/blob/abc123/.env";
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.parts.secret_scanning_keys = Some(signer.keys());
        })
        .await;
        let w = world(app).await;

        // An access token leaks: its grant goes, the refresh token with it.
        let (code, verifier) = w.code("chat").await;
        let (_, first) = w.exchange(&code, &verifier).await;
        let access = text(&first, "access_token");
        // Verified once, so this process caches it: the revocation must reach the cache.
        assert!(w.app.verify(access, &["chat"]).await.valid);
        let (status, answer) = signed(&w.app, &signer, &report(&[access], url)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer[0]["label"], "true_positive", "{answer}");
        assert_eq!(
            w.app.verify(access, &["chat"]).await.reason,
            "invalid_api_key"
        );
        let (status, body) = w.refresh(text(&first, "refresh_token")).await;
        assert_eq!(
            (status, text(&body, "error")),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );

        // A refresh token leaks: the access tokens of its grant go too.
        let (code, verifier) = w.code("chat").await;
        let (_, second) = w.exchange(&code, &verifier).await;
        let access = text(&second, "access_token");
        assert!(w.app.verify(access, &["chat"]).await.valid);
        let refresh = text(&second, "refresh_token");
        let (status, answer) = signed(&w.app, &signer, &report(&[refresh], url)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer[0]["label"], "true_positive", "{answer}");
        assert_eq!(
            w.app.verify(access, &["chat"]).await.reason,
            "invalid_api_key"
        );

        // Both audited as leaks of the grant, by the secret-scanning service.
        let events = w.audit_events("key.leaked").await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            events
                .iter()
                .all(|event| event.reason.starts_with("revoked: found in content at ")),
            "{events:?}"
        );
    }
}
