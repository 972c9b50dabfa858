//! The web console over HTTP, as a browser drives it: signing in with a key or a sign-in link,
//! the session cookie, CSRF and cross-site refusals, and sessions that end when what they act
//! as changes. The same flows in a real Chromium are in `console_browser.rs`.

use chrono::TimeDelta;
use key_proto::v1;
use reqwest::{Client, Response, StatusCode, header, redirect::Policy};

use crate::helpers::{TestApp, authed, backends, spawn_app};

/// A browser-like client that does not follow redirects (so the tests see them).
fn browser() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `key`; the `name=value` of the session cookie.
async fn sign_in(app: &TestApp, key: &str) -> String {
    let response = browser()
        .post(format!("{}/console/sign-in", app.http))
        .form(&[("api_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    cookie_of(&response)
}

fn cookie_of(response: &Response) -> String {
    let set = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The session token inside a cookie `name=value`.
fn token_of(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> Response {
    browser()
        .get(format!("{}{path}", app.http))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// The CSRF token of the page at `path`, read from its forms.
async fn csrf(app: &TestApp, cookie: &str, path: &str) -> String {
    let page = get(app, cookie, path).await.text().await.unwrap();
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 64].to_owned()
}

/// The one-time nonce of the (first) form on the page at `path` that has one.
async fn nonce(app: &TestApp, cookie: &str, path: &str) -> String {
    let page = get(app, cookie, path).await.text().await.unwrap();
    let at = page
        .find("name=\"nonce\" value=\"")
        .expect("a form with a nonce")
        + 20;
    page[at..at + 32].to_owned()
}

/// The plaintext key a "shown once" page displays.
fn shown_key(page: &str) -> String {
    let at = page
        .find("id=\"new-key\" readonly value=\"")
        .expect("the new key")
        + 29;
    page[at..].split('"').next().unwrap().to_owned()
}

async fn caller(app: &TestApp, credential: &str) -> Result<v1::GetCallerResponse, tonic::Status> {
    app.client
        .clone()
        .get_caller(authed(credential, v1::GetCallerRequest {}))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_key_signs_in_with_an_http_only_cookie_and_the_session_acts_as_that_key() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let response = browser()
            .post(format!("{}/console/sign-in", app.http))
            .form(&[("api_key", app.admin_key.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            "/console/settings/api-keys"
        );
        let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
        // Plain HTTP here: no `Secure`, so no `__Host-` prefix either.
        assert!(set.starts_with("keyrack_session=krs_"), "{set}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(attribute), "{set} lacks {attribute}");
        }
        let cookie = cookie_of(&response);
        let page = get(&app, &cookie, "/console/settings/api-keys").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(page.headers()[header::REFERRER_POLICY], "no-referrer");
        let page = page.text().await.unwrap();
        assert!(page.contains("Settings → API Keys") && page.contains("Generate New API Key"));
        assert!(page.contains("Bootstrap admin key"), "{page}");
        // The session is the key's: GetCaller through it names the key.
        let me = caller(&app, token_of(&cookie)).await.unwrap();
        let admin = caller(&app, &app.admin_key).await.unwrap();
        assert_eq!(me.key_id, admin.key_id);
        assert!(!me.session_id.is_empty());
        // The sign-in is audited, naming the session, never its token.
        let events = app
            .client
            .clone()
            .list_audit_events(authed(
                &app.admin_key,
                v1::ListAuditEventsRequest {
                    action: "session.create".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].target, me.session_id);
        assert_eq!(events[0].actor_key_id, admin.key_id);
        assert!(!format!("{events:?}").contains("krs_"));
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_in_the_products_words_and_never_echoed() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        // Another last character: the checksum no longer matches (never the same character).
        let last = if app.admin_key.ends_with('x') {
            "y"
        } else {
            "x"
        };
        let wrong = format!("{}{last}", &app.admin_key[..app.admin_key.len() - 1]);
        let response = browser()
            .post(format!("{}/console/sign-in", app.http))
            .form(&[("api_key", wrong.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let page = response.text().await.unwrap();
        assert!(page.contains("The API key provided is invalid"), "{page}");
        assert!(!page.contains(&wrong));
        // No cookie at all: every page sends the person to sign in.
        let response = browser()
            .get(format!("{}/console/settings/api-keys", app.http))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/console/sign-in");
    }
}

#[tokio::test]
async fn cross_site_posts_and_posts_without_the_csrf_token_are_refused() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let cookie = sign_in(&app, &app.admin_key).await;
        let token = csrf(&app, &cookie, "/console/settings/api-keys/new").await;
        let once = nonce(&app, &cookie, "/console/settings/api-keys/new").await;
        let create = |extra: &'static [(&'static str, &'static str)], csrf: String| {
            let mut form = vec![
                ("name".to_owned(), "Forged".to_owned()),
                ("scope".to_owned(), "chat".to_owned()),
                ("csrf".to_owned(), csrf),
                ("nonce".to_owned(), once.clone()),
            ];
            form.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            form
        };
        let post = |form: Vec<(String, String)>, headers: &[(&'static str, &'static str)]| {
            let mut request = browser()
                .post(format!("{}/console/settings/api-keys", app.http))
                .header(header::COOKIE, &cookie)
                .form(&form);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send()
        };
        // Another site's page posting the form: refused by the browser's own headers...
        let refused = post(
            create(&[], token.clone()),
            &[("sec-fetch-site", "cross-site")],
        )
        .await
        .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let refused = post(
            create(&[], token.clone()),
            &[("origin", "https://attacker.example")],
        )
        .await
        .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        // ... and, without them, by the missing or foreign CSRF token.
        let refused = post(create(&[], String::new()), &[]).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let refused = post(create(&[], "ab".repeat(32)), &[]).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let keys = app
            .client
            .clone()
            .list_keys(authed(&app.admin_key, v1::ListKeysRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .api_keys;
        assert!(
            keys.iter().all(|key| key.name != "Forged"),
            "a forged post made a key"
        );
        // The same form from the console's own page works, and shows the key once.
        let created = post(
            create(&[], token.clone()),
            &[("sec-fetch-site", "same-origin")],
        )
        .await
        .unwrap();
        assert_eq!(created.status(), StatusCode::OK);
        assert_eq!(created.headers()[header::CACHE_CONTROL], "no-store");
        let key = shown_key(&created.text().await.unwrap());
        assert!(app.verify(&key, &["chat"]).await.valid);
        // Reloading the answer re-posts the form: refused, and no second key is made.
        let reloaded = post(create(&[], token), &[("sec-fetch-site", "same-origin")])
            .await
            .unwrap();
        assert_eq!(reloaded.status(), StatusCode::CONFLICT);
        let page = reloaded.text().await.unwrap();
        assert!(
            page.contains("already sent") && !page.contains("sk_live_"),
            "{page}"
        );
        let keys = app
            .client
            .clone()
            .list_keys(authed(&app.admin_key, v1::ListKeysRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .api_keys;
        assert_eq!(keys.iter().filter(|key| key.name == "Forged").count(), 1);
    }
}

#[tokio::test]
async fn revoking_the_key_that_signed_in_ends_its_sessions_at_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app.create_key("Console admin", &["admin"], "").await;
        let cookie = sign_in(&app, &key.key).await;
        assert_eq!(
            get(&app, &cookie, "/console/settings/api-keys")
                .await
                .status(),
            StatusCode::OK
        );
        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: key.api_key.unwrap().id,
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
        let response = get(&app, &cookie, "/console/settings/api-keys").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            "/console/sign-in?ended=1"
        );
        let status = caller(&app, token_of(&cookie)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}

#[tokio::test]
async fn a_session_ends_after_two_idle_hours_or_twelve_in_all_and_at_sign_out() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        // Busy for eleven hours: each request within the idle timeout keeps it.
        let busy = sign_in(&app, &app.admin_key).await;
        for _ in 0..11 {
            app.clock.advance(TimeDelta::minutes(59));
            assert!(caller(&app, token_of(&busy)).await.is_ok());
        }
        // Past twelve hours, however busy.
        app.clock
            .advance(TimeDelta::hours(1) + TimeDelta::minutes(12));
        assert!(caller(&app, token_of(&busy)).await.is_err());
        // Idle for over two hours.
        let idle = sign_in(&app, &app.admin_key).await;
        app.clock
            .advance(TimeDelta::hours(2) + TimeDelta::minutes(1));
        assert!(caller(&app, token_of(&idle)).await.is_err());
        // Signed out.
        let session = sign_in(&app, &app.admin_key).await;
        let token = csrf(&app, &session, "/console/settings/api-keys").await;
        let response = browser()
            .post(format!("{}/console/sign-out", app.http))
            .header(header::COOKIE, &session)
            .form(&[("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cleared = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert!(caller(&app, token_of(&session)).await.is_err());
        // A session cannot mint another, which would outlive its own end.
        let fresh = sign_in(&app, &app.admin_key).await;
        let status = app
            .client
            .clone()
            .create_session(authed(token_of(&fresh), v1::CreateSessionRequest {}))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }
}

/// Adds member `user` with `role`; their id.
pub(crate) async fn add_member(app: &TestApp, user: &str, role: v1::Role) -> String {
    app.client
        .clone()
        .add_member(authed(
            &app.admin_key,
            v1::AddMemberRequest {
                user_id: user.into(),
                role: role.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .id
}

async fn sign_in_link(app: &TestApp, by: &str, member: &str) -> Result<String, tonic::Status> {
    app.client
        .clone()
        .create_sign_in_link(authed(
            by,
            v1::CreateSignInLinkRequest {
                member_id: member.into(),
            },
        ))
        .await
        .map(|response| response.into_inner().sign_in_token)
}

async fn redeem(app: &TestApp, token: &str) -> Response {
    browser()
        .post(format!("{}/console/invite", app.http))
        .form(&[("sign_in_token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sign_in_link_works_once_within_a_day_and_acts_as_its_member_by_role() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let member = add_member(&app, "dana@example.com", v1::Role::Member).await;
        let link = sign_in_link(&app, &app.admin_key, &member).await.unwrap();
        assert!(link.starts_with("krl_") && link.len() == 68, "{link}");
        let response = redeem(&app, &link).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = cookie_of(&response);
        // Once only.
        let again = redeem(&app, &link).await;
        assert_eq!(again.status(), StatusCode::FORBIDDEN);
        assert!(
            again
                .text()
                .await
                .unwrap()
                .contains("invalid, used or expired")
        );

        // The person acts as their member, with their role's scopes and no key.
        let me = caller(&app, token_of(&cookie)).await.unwrap();
        assert_eq!(me.user_id, "dana@example.com");
        assert_eq!(me.role(), v1::Role::Member);
        assert!(me.key_id.is_empty());
        assert!(!me.scopes.contains(&"admin".to_owned()));

        // They generate their own personal key in the console: within the role only.
        let token = csrf(&app, &cookie, "/console/settings/api-keys/new").await;
        let first = nonce(&app, &cookie, "/console/settings/api-keys/new").await;
        let second = nonce(&app, &cookie, "/console/settings/api-keys/new").await;
        let form = |scope: &str, once: &str| {
            vec![
                ("csrf", token.clone()),
                ("nonce", once.to_owned()),
                ("name", "Dana's laptop".to_owned()),
                ("scope", scope.to_owned()),
                ("key_type", "personal".to_owned()),
            ]
        };
        let post = |form: Vec<(&'static str, String)>| {
            browser()
                .post(format!("{}/console/settings/api-keys", app.http))
                .header(header::COOKIE, &cookie)
                .form(&form)
                .send()
        };
        let refused = post(form("admin", &first)).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let created = post(form("chat", &second)).await.unwrap();
        assert_eq!(created.status(), StatusCode::OK);
        let key = shown_key(&created.text().await.unwrap());
        let verdict = app.verify(&key, &["chat"]).await;
        assert!(verdict.valid);
        assert_eq!(verdict.member_id, member);

        // The audit log names the member as the actor.
        let events = app
            .client
            .clone()
            .list_audit_events(authed(
                &app.admin_key,
                v1::ListAuditEventsRequest {
                    action: "key.create".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert!(events.iter().any(|event| event.actor_type == "member"
            && event.actor_member_id == member
            && event.actor_key_id.is_empty()));

        // Demoted: the session narrows at once; removed: it ends.
        app.client
            .clone()
            .update_member(authed(
                &app.admin_key,
                v1::UpdateMemberRequest {
                    id: member.clone(),
                    role: v1::Role::Viewer.into(),
                },
            ))
            .await
            .unwrap();
        let me = caller(&app, token_of(&cookie)).await.unwrap();
        assert_eq!(me.role(), v1::Role::Viewer);
        assert!(!me.scopes.contains(&"chat".to_owned()), "{:?}", me.scopes);
        app.client
            .clone()
            .remove_member(authed(
                &app.admin_key,
                v1::RemoveMemberRequest { id: member.clone() },
            ))
            .await
            .unwrap();
        assert!(caller(&app, token_of(&cookie)).await.is_err());

        // A link unused for a day no longer works.
        let other = add_member(&app, "eve@example.com", v1::Role::Viewer).await;
        let link = sign_in_link(&app, &app.admin_key, &other).await.unwrap();
        app.clock
            .advance(TimeDelta::hours(24) + TimeDelta::seconds(1));
        assert_eq!(redeem(&app, &link).await.status(), StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn an_admin_cannot_make_an_owners_sign_in_link() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let owner = add_member(&app, "olga@example.com", v1::Role::Owner).await;
        let admin = add_member(&app, "adam@example.com", v1::Role::Admin).await;
        let admin_link = sign_in_link(&app, &app.admin_key, &admin).await.unwrap();
        let cookie = cookie_of(&redeem(&app, &admin_link).await);
        let status = sign_in_link(&app, token_of(&cookie), &owner)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        // An owner's own (the bootstrap key is the organization's) may.
        assert!(sign_in_link(&app, &app.admin_key, &owner).await.is_ok());
    }
}

#[tokio::test]
async fn an_operator_prints_a_members_sign_in_link_from_the_command_line() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let member = add_member(&app, "first.admin@example.com", v1::Role::Admin).await;
        let output = crate::process::keyrack()
            .args([
                "sign-in-link",
                "--user",
                "first.admin@example.com",
                "--console-url",
                &format!("{}/console", app.http),
                "--database-url",
                &app.database_url,
            ])
            .env(
                "KEYRACK_PEPPER",
                std::str::from_utf8(crate::helpers::TEST_PEPPER).unwrap(),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let link = String::from_utf8(output.stdout).unwrap();
        let (base, code) = link.trim().split_once("/invite#").unwrap();
        assert_eq!(base, format!("{}/console", app.http));
        assert!(!stderr.contains(code), "the code reached stderr");
        let response = redeem(&app, code).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{stderr}");
        let me = caller(&app, token_of(&cookie_of(&response))).await.unwrap();
        assert_eq!(me.member_id, member);
        assert_eq!(me.role(), v1::Role::Admin);
        // Made by an operator, and audited so.
        let events = app
            .client
            .clone()
            .list_audit_events(authed(
                &app.admin_key,
                v1::ListAuditEventsRequest {
                    action: "sign_in_link.create".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].actor_type, "operator");
        assert_eq!(events[0].target, member);
        // A user who is no member gets a clear error, and no link.
        let output = crate::process::keyrack()
            .args([
                "sign-in-link",
                "--user",
                "nobody@example.com",
                "--database-url",
            ])
            .arg(&app.database_url)
            .env(
                "KEYRACK_PEPPER",
                std::str::from_utf8(crate::helpers::TEST_PEPPER).unwrap(),
            )
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(output.stdout.is_empty());
        assert!(String::from_utf8_lossy(&output.stderr).contains("is not a member"));
    }
}

#[tokio::test]
async fn a_keys_page_edits_its_name_scopes_expiry_and_rate_limits() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("Edit me", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        let cookie = sign_in(&app, &app.admin_key).await;
        let path = format!("/console/settings/api-keys/{id}");
        let token = csrf(&app, &cookie, &path).await;
        let edit = |form: Vec<(&'static str, &'static str)>| {
            let mut form: Vec<(String, String)> = form
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            form.push(("csrf".to_owned(), token.clone()));
            browser()
                .post(format!("{}{path}", app.http))
                .header(header::COOKIE, &cookie)
                .form(&form)
                .send()
        };
        let saved = edit(vec![
            ("name", "Edited"),
            ("scope", "chat"),
            ("scope", "agents:read"),
            ("expires_at", "2099-12-31"),
            ("limit_minute", "100"),
        ])
        .await
        .unwrap();
        assert_eq!(saved.status(), StatusCode::SEE_OTHER);
        let key = app
            .client
            .clone()
            .get_key(authed(&app.admin_key, v1::GetKeyRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        assert_eq!(key.name, "Edited");
        assert_eq!(key.scopes, ["chat", "agents:read"]);
        assert_eq!(key.rate_limits.len(), 1);
        assert_eq!(key.rate_limits[0].requests, 100);
        assert_eq!(key.rate_limits[0].per(), v1::RatePeriod::Minute);
        // The page shows the last day the key works, and the limit, as they were set.
        let page = get(&app, &cookie, &path).await.text().await.unwrap();
        assert!(page.contains("value=\"2099-12-31\""), "{page}");
        assert!(page.contains("name=\"limit_minute\" inputmode=\"numeric\" value=\"100\""));
        // Emptied, the key has no limits of its own again.
        let cleared = edit(vec![
            ("name", "Edited"),
            ("scope", "chat"),
            ("expires_at", ""),
        ])
        .await
        .unwrap();
        assert_eq!(cleared.status(), StatusCode::SEE_OTHER);
        let key = app
            .client
            .clone()
            .get_key(authed(&app.admin_key, v1::GetKeyRequest { id }))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        assert!(key.rate_limits.is_empty());
        assert_eq!(key.expire_time, None);
        // A limit that is no number is refused with a clear message.
        let refused = edit(vec![
            ("name", "Edited"),
            ("scope", "chat"),
            ("limit_hour", "lots"),
        ])
        .await
        .unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("whole number of requests")
        );
    }
}

#[tokio::test]
async fn a_personal_key_signs_in_as_its_member_and_follows_the_members_role() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let member = add_member(&app, "pat@example.com", v1::Role::Member).await;
        let mut request = v1::CreateKeyRequest {
            name: "Pat's key".into(),
            scopes: vec!["chat".into(), "agents:read".into()],
            member_id: member.clone(),
            ..Default::default()
        };
        request.set_key_type(v1::KeyType::Personal);
        let key = app
            .client
            .clone()
            .create_key(authed(&app.admin_key, request))
            .await
            .unwrap()
            .into_inner()
            .key;
        let cookie = sign_in(&app, &key).await;
        let me = caller(&app, token_of(&cookie)).await.unwrap();
        assert_eq!(me.member_id, member);
        assert_eq!(me.role(), v1::Role::Member);
        assert!(!me.key_id.is_empty());
        assert!(me.scopes.contains(&"chat".to_owned()), "{:?}", me.scopes);
        // Demoted to viewer: the session's role and scopes follow at the next call.
        app.client
            .clone()
            .update_member(authed(
                &app.admin_key,
                v1::UpdateMemberRequest {
                    id: member,
                    role: v1::Role::Viewer.into(),
                },
            ))
            .await
            .unwrap();
        let me = caller(&app, token_of(&cookie)).await.unwrap();
        assert_eq!(me.role(), v1::Role::Viewer);
        assert!(!me.scopes.contains(&"chat".to_owned()), "{:?}", me.scopes);
    }
}
