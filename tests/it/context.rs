//! VerifyKey's context (client address, country, tag): what it adds to a key's usage, through
//! gRPC and through the gateway's forward-auth; invalid values, which are counted and never an
//! error; the country looked up in a real MaxMind DB file; and the unknown-key metric.

use std::{collections::HashMap, path::Path, process::Command, time::Duration};

use chrono::TimeDelta;
use key_core::{ApiKey, Environment};
use key_proto::v1;
use key_service::{BruteForceSettings, UnknownKeyReason, verify::CountryDb};
use ring::rand::SystemRandom;
use serde_json::{Value, json};

use crate::{
    helpers::{
        TestApp, authed, backends, spawn_app, spawn_app_configured, spawn_app_with_trusted_proxies,
    },
    process::{LoggedChild, keyrack, repo_root, run_bounded, venv_tool},
};

async fn verify_with(
    app: &TestApp,
    key: &str,
    client_ip: &str,
    country: &str,
    tag: &str,
) -> v1::VerifyKeyResponse {
    app.client
        .clone()
        .verify_key(v1::VerifyKeyRequest {
            key: key.to_owned(),
            required_scopes: vec!["chat".to_owned()],
            client_ip: client_ip.to_owned(),
            country: country.to_owned(),
            tag: tag.to_owned(),
            cost: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn summary_of(app: &TestApp, key_id: &str) -> v1::UsageSummary {
    app.client
        .clone()
        .list_usage(authed(
            &app.admin_key,
            v1::ListUsageRequest {
                key_id: key_id.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .summary
        .unwrap()
}

fn counts(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
}

#[tokio::test]
async fn country_and_tag_are_counted_with_the_verdict() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("context", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        let key = created.key;
        // CreateKey's own check is not this key's usage; start counting from here.
        let base = summary_of(&app, &id).await.request_count;

        assert!(
            verify_with(&app, &key, "", "de", "POST /api/chat")
                .await
                .valid
        );
        assert!(
            verify_with(&app, &key, "", "DE", "POST /api/chat")
                .await
                .valid
        );
        assert!(
            verify_with(&app, &key, "", "us", "GET /api/agents")
                .await
                .valid
        );
        // A failure counts under its code and by country, but not by tag: a caller holding a
        // dead or under-scoped key must not grow the owner's usage with tags of its choosing.
        let refused = app
            .client
            .clone()
            .verify_key(v1::VerifyKeyRequest {
                key: key.clone(),
                required_scopes: vec!["agents:write".to_owned()],
                country: "us".to_owned(),
                tag: "POST /api/agents".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(refused.reason, "insufficient_scope");
        // Neither country nor tag: counted in the totals only.
        assert!(verify_with(&app, &key, "", "", "").await.valid);

        let summary = summary_of(&app, &id).await;
        assert_eq!(summary.request_count - base, 5);
        assert_eq!(summary.failure_count, 1);
        assert_eq!(summary.failed_by_code, counts(&[("insufficient_scope", 1)]));
        assert_eq!(summary.by_country, counts(&[("DE", 2), ("US", 2)]));
        assert_eq!(
            summary.by_tag,
            counts(&[("POST /api/chat", 2), ("GET /api/agents", 1)])
        );
        let expected_rate = (summary.request_count - 1) as f64 / summary.request_count as f64;
        assert!((summary.success_rate - expected_rate).abs() < 1e-9);
        assert_eq!(
            summary.last_used_time.unwrap().seconds,
            app.clock_now().timestamp()
        );
    }
}

#[tokio::test]
async fn invalid_context_is_ignored_and_counted_never_an_error() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("sloppy edge", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        let key = created.key;
        let too_long = "x".repeat(65);
        let cases = [
            ("not-an-ip", "", ""),
            ("", "Germany", ""),
            ("", "D1", ""),
            ("", "", too_long.as_str()),
            ("", "", "tab\there"),
            ("", "", "naïve"),
        ];
        for (client_ip, country, tag) in cases {
            let verdict = verify_with(&app, &key, client_ip, country, tag).await;
            assert!(verdict.valid, "{client_ip:?} {country:?} {tag:?}");
        }
        let metrics = app.keyrack.metrics.render();
        for (field, count) in [("client_ip", 1), ("country", 2), ("tag", 3)] {
            let line = format!("keyrack_verify_context_invalid_total{{field=\"{field}\"}} {count}");
            assert!(metrics.contains(&line), "{line} in\n{metrics}");
        }
        let summary = summary_of(&app, &id).await;
        assert!(summary.by_country.is_empty(), "{:?}", summary.by_country);
        assert!(summary.by_tag.is_empty(), "{:?}", summary.by_tag);
        assert_eq!(summary.failure_count, 0);
    }
}

#[tokio::test]
async fn unknown_keys_are_counted_for_the_deployment_not_for_a_key() {
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.settings.brute_force = BruteForceSettings {
                threshold: 3,
                ..BruteForceSettings::default()
            };
        })
        .await;
        let metrics = app.keyrack.metrics.clone();
        let well_formed_unknown = {
            let created = app.create_key("to revoke", &["chat"], "").await;
            let key = created.key;
            app.client
                .clone()
                .revoke_key(authed(
                    &app.admin_key,
                    v1::RevokeKeyRequest {
                        id: created.api_key.unwrap().id,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap();
            // A revoked key is still known: its verdicts are its own usage, not this metric.
            let before = metrics.unknown_keys(UnknownKeyReason::NotFound);
            assert!(!verify_with(&app, &key, "", "", "").await.valid);
            assert_eq!(metrics.unknown_keys(UnknownKeyReason::NotFound), before);
            // A well-formed key (checksum and all) that this deployment never issued.
            ApiKey::generate(Environment::Live, &SystemRandom::new())
                .unwrap()
                .expose()
                .to_owned()
        };

        let malformed = metrics.unknown_keys(UnknownKeyReason::Malformed);
        let not_found = metrics.unknown_keys(UnknownKeyReason::NotFound);
        let blocked = metrics.unknown_keys(UnknownKeyReason::Blocked);
        assert!(
            !verify_with(&app, "sk_live_abc123...", "", "", "")
                .await
                .valid
        );
        assert!(!verify_with(&app, "", "", "", "").await.valid);
        assert_eq!(
            metrics.unknown_keys(UnknownKeyReason::Malformed),
            malformed + 2
        );

        // Three failures from one address, then the guard blocks it without a lookup.
        for _ in 0..3 {
            let verdict = verify_with(&app, &well_formed_unknown, "198.51.100.9", "", "").await;
            assert_eq!(verdict.reason, "invalid_api_key");
        }
        let refused = verify_with(&app, &well_formed_unknown, "198.51.100.9", "", "").await;
        assert!(!refused.valid);
        assert_eq!(
            metrics.unknown_keys(UnknownKeyReason::NotFound),
            not_found + 3
        );
        assert_eq!(metrics.unknown_keys(UnknownKeyReason::Blocked), blocked + 1);
        let text = metrics.render();
        assert!(
            text.contains("keyrack_unknown_key_verifications_total{reason=\"blocked\"} 1"),
            "{text}"
        );

        // None of it is any key's usage.
        let total = app
            .client
            .clone()
            .list_usage(authed(&app.admin_key, v1::ListUsageRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .summary
            .unwrap();
        assert_eq!(total.failed_by_code, counts(&[("invalid_api_key", 1)]));
    }
}

/// Writes a MaxMind DB country database with `networks` (`"203.0.113.0/24=DE"`) to `path`,
/// with the `mmdb-writer` package from tools/venv.
fn write_country_db(path: &Path, networks: &[&str]) {
    let mut command = Command::new(venv_tool("python"));
    command
        .arg(repo_root().join("tests/geoip/write_country_db.py"))
        .arg(path)
        .args(networks);
    let ran = run_bounded(command, Duration::from_secs(60));
    assert!(ran.status.success(), "{ran:?}");
}

#[tokio::test]
async fn the_country_is_looked_up_from_the_client_address_in_a_real_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countries.mmdb");
    write_country_db(&path, &["203.0.113.0/24=DE", "2001:db8::/32=FR"]);
    let db = CountryDb::open(&path).unwrap();
    assert_eq!(
        db.country("203.0.113.200".parse().unwrap())
            .unwrap()
            .as_str(),
        "DE"
    );
    assert!(db.country("192.0.2.1".parse().unwrap()).is_none());

    // Not a database: refused at start, not at the first lookup.
    let bogus = dir.path().join("bogus.mmdb");
    std::fs::write(&bogus, b"not a maxmind database").unwrap();
    assert!(CountryDb::open(&bogus).is_err());

    for backend in backends() {
        let app =
            spawn_app_configured(&backend, |setup| setup.parts.country_db = Some(db.clone())).await;
        let created = app.create_key("geo", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        let key = created.key;
        // Looked up: an IPv4 and an IPv6 address.
        assert!(verify_with(&app, &key, "203.0.113.7", "", "").await.valid);
        assert!(verify_with(&app, &key, "2001:db8::42", "", "").await.valid);
        // A country named by the caller wins over the database.
        assert!(verify_with(&app, &key, "203.0.113.7", "us", "").await.valid);
        // Not in the database: no country.
        assert!(verify_with(&app, &key, "192.0.2.1", "", "").await.valid);

        let summary = summary_of(&app, &id).await;
        assert_eq!(
            summary.by_country,
            counts(&[("DE", 1), ("FR", 1), ("US", 1)])
        );
    }
}

/// `GET path` on the gateway with the admin key; the JSON body.
async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", app.http))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// A client names whatever country it likes (a thief the key owner's, so that no new-country
/// alert fires): without a trusted proxy in front, the country headers are not believed.
#[tokio::test]
async fn country_headers_count_only_from_a_trusted_proxy() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app.create_key("edge", &["chat"], "").await;
        let id = key.api_key.unwrap().id;
        let response = reqwest::Client::new()
            .get(format!("{}/api/auth/verify?scope=chat", app.http))
            .bearer_auth(&key.key)
            .header("X-Keyrack-Country", "DE")
            .header("CF-IPCountry", "FR")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let usage = get_json(&app, &format!("/api/api-keys/{id}/usage")).await;
        assert_eq!(usage["summary"]["requestCount"], 1, "{usage}");
        assert_eq!(usage["summary"]["byCountry"], json!({}), "{usage}");
    }
}

#[tokio::test]
async fn forward_auth_passes_country_and_tag_and_rest_shows_the_distributions() {
    for backend in backends() {
        // The test client stands for the edge proxy that sets the country headers.
        let app = spawn_app_with_trusted_proxies(&backend, "127.0.0.1".parse().unwrap()).await;
        let a = app.create_key("a", &["chat"], "").await;
        let b = app.create_key("b", &["chat"], "").await;
        let (a_id, b_id) = (a.api_key.unwrap().id, b.api_key.unwrap().id);
        app.clock.advance(TimeDelta::minutes(1));
        let http = reqwest::Client::new();
        let forward_auth = |key: &str, headers: &[(&str, &str)]| {
            let mut request = http
                .get(format!("{}/api/auth/verify?scope=chat", app.http))
                .bearer_auth(key);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send()
        };
        let ok = |response: reqwest::Response| assert_eq!(response.status(), 200);
        ok(forward_auth(
            &a.key,
            &[
                ("X-Keyrack-Country", "fr"),
                ("X-Keyrack-Tag", "GET /api/agents"),
            ],
        )
        .await
        .unwrap());
        // The edge's header when the proxy sets none; ours wins when both are there.
        ok(forward_auth(&a.key, &[("CF-IPCountry", "JP")])
            .await
            .unwrap());
        ok(forward_auth(
            &b.key,
            &[("CF-IPCountry", "JP"), ("X-Keyrack-Country", "BR")],
        )
        .await
        .unwrap());
        // Cloudflare's "unknown" is no country.
        ok(forward_auth(&b.key, &[("CF-IPCountry", "XX")])
            .await
            .unwrap());
        let refused = http
            .get(format!("{}/api/auth/verify?scope=agents:write", app.http))
            .bearer_auth(&b.key)
            .header("X-Keyrack-Tag", "POST /api/agents")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);

        let one = get_json(&app, &format!("/api/api-keys/{a_id}/usage")).await;
        assert_eq!(
            one["summary"]["byCountry"],
            json!({"FR": 1, "JP": 1}),
            "{one}"
        );
        assert_eq!(
            one["summary"]["byTag"],
            json!({"GET /api/agents": 1}),
            "{one}"
        );

        // Both keys, summed, per minute: the minute of the forward-auth calls only.
        let both = get_json(
            &app,
            &format!("/api/usage?key_id={a_id}&key_id={b_id}&granularity=minute"),
        )
        .await;
        let summary = &both["summary"];
        assert_eq!(summary["requestCount"], 5, "{both}");
        assert_eq!(summary["failureCount"], 1, "{both}");
        assert_eq!(summary["failedByCode"], json!({"insufficient_scope": 1}));
        assert_eq!(summary["byCountry"], json!({"FR": 1, "JP": 1, "BR": 1}));
        // The refused call's tag is not counted: tags count for valid verifications only.
        assert_eq!(summary["byTag"], json!({"GET /api/agents": 1}));
        assert!((summary["successRate"].as_f64().unwrap() - 4.0 / 5.0).abs() < 1e-9);
        assert!(summary["lastUsedAt"].is_string());
        let buckets = both["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 1, "{both}");
        assert_eq!(buckets[0]["startTime"], "2026-01-15T10:31:00Z");
        assert_eq!(buckets[0]["requests"], 5);
        assert_eq!(buckets[0]["failed"], 1);
        assert_eq!(buckets[0]["byCountry"], json!({"FR": 1, "JP": 1, "BR": 1}));
        assert_eq!(both["requests"], 5);
    }
}

fn keyrack_serve(data_dir: &Path) -> Command {
    let mut command = keyrack();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .arg("--data-dir")
        .arg(data_dir);
    command
}

#[test]
fn serve_loads_the_country_database_or_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countries.mmdb");
    write_country_db(&path, &["203.0.113.0/24=DE"]);
    let mut serve = keyrack_serve(&dir.path().join("data"));
    serve.env("KEYRACK_GEOIP_DB", &path);
    let mut served = LoggedChild::spawn(serve, "serve --geoip-db");
    served.wait_for_line("country database loaded", Duration::from_secs(30), |line| {
        line.contains("country database loaded").then_some(())
    });
    served.wait_for_line("gRPC server listening", Duration::from_secs(30), |line| {
        line.contains("gRPC server listening").then_some(())
    });
    assert!(served.terminate(Duration::from_secs(30)).success());

    // A file that is not a MaxMind database stops the start, with the reason.
    let bogus = dir.path().join("bogus.mmdb");
    std::fs::write(&bogus, b"not a database").unwrap();
    let mut serve = keyrack_serve(&dir.path().join("data"));
    serve.arg("--geoip-db").arg(&bogus);
    let ran = run_bounded(serve, Duration::from_secs(30));
    assert!(!ran.status.success(), "{ran:?}");
    assert!(
        ran.stderr.contains("cannot read the country database"),
        "{}",
        ran.stderr
    );
}
