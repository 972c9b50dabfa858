//! Envoy's ext_authz over gRPC: `envoy.service.auth.v3.Authorization/Check`, called with the
//! client generated from Envoy's protos, on a gRPC server that serves it beside KeyService (the
//! test application's, with the same verifier as VerifyKey), and on `keyrack serve
//! --ext-authz-routes`. What Envoy itself does with the answer (strip and set the headers,
//! send the denial) is Envoy's: see deploy/envoy/ and README.md.

use std::{collections::HashMap, sync::Arc, time::Duration};

use key_gateway::TrustedProxies;
use key_grpc::GrpcServer;
use key_proto::{
    MISSING_API_KEY_MESSAGE,
    envoy::{
        Address, AttributeContext, AuthorizationClient, CheckRequest, HeaderAppendAction,
        HttpResponse, SocketAddress, address, attribute_context,
    },
};
use key_service::verify::{ClientAddresses, ExtAuthz, ExtAuthzRoutes, NO_ROUTE_MESSAGE};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

use crate::{
    bench::{assert_rows_clean, key_bench_binary},
    helpers::{Backend, TestApp, backends, spawn_app},
    process::{LoggedChild, TIMEOUT, bootstrap_key, keyrack, run_bounded},
    ratelimit::{create_limited, limit},
};

/// The routes every test here serves: a stricter rule for one host's writes first, since the
/// first matching route decides.
const ROUTES: &str = r#"
[[route]]
host = "api.example.com"
methods = ["POST", "PUT"]
path_prefix = "/v1/agents"
scopes = ["agents:write"]
tag = "write agents"

[[route]]
path_prefix = "/v1/agents"
scopes = ["agents:read"]

[[route]]
path_prefix = "/v1/chat"
scopes = ["chat"]
"#;

/// The proxy in front of Envoy whose `X-Forwarded-For` entries are believed.
const PROXY: &str = "192.0.2.10";

/// Check served beside KeyService on a server of its own, over `app`'s application.
struct CheckServer {
    addr: std::net::SocketAddr,
    client: AuthorizationClient<Channel>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl CheckServer {
    async fn start(app: &TestApp) -> CheckServer {
        let trusted: TrustedProxies = PROXY.parse().unwrap();
        let clients: ClientAddresses =
            Arc::new(move |source, forwarded| trusted.client_address(source, forwarded));
        let ext_authz = ExtAuthz::new(
            app.keyrack.verifier.clone(),
            ExtAuthzRoutes::parse(ROUTES).unwrap(),
        )
        .with_client_addresses(clients);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = GrpcServer::new(&app.keyrack, listener)
            .unwrap()
            .with_drain_timeout(Duration::from_millis(500))
            .with_ext_authz(ext_authz);
        let addr = server.local_addr();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run_until(async {
                    let _ = stop.await;
                })
                .await
                .unwrap();
        });
        let client = AuthorizationClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        CheckServer {
            addr,
            client,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    async fn check(&self, request: CheckRequest) -> Answer {
        let response = self
            .client
            .clone()
            .check(request)
            .await
            .unwrap()
            .into_inner();
        let grpc_code = response.status.map_or(0, |status| status.code);
        match response.http_response {
            Some(HttpResponse::OkResponse(ok)) => {
                assert_eq!(grpc_code, 0);
                Answer::Allowed {
                    headers: ok
                        .headers
                        .into_iter()
                        .map(|option| {
                            let header = option.header.unwrap();
                            (
                                header.key,
                                (
                                    header.value,
                                    HeaderAppendAction::try_from(option.append_action).unwrap(),
                                ),
                            )
                        })
                        .collect(),
                    removed: ok.headers_to_remove,
                }
            }
            Some(HttpResponse::DeniedResponse(denied)) => Answer::Denied {
                grpc_code,
                status: denied.status.unwrap().code,
                headers: denied
                    .headers
                    .into_iter()
                    .map(|option| {
                        let header = option.header.unwrap();
                        (header.key, header.value)
                    })
                    .collect(),
                body: serde_json::from_str(&denied.body).unwrap(),
            },
            other => panic!("neither allowed nor denied: {other:?}"),
        }
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

#[derive(Debug)]
enum Answer {
    Allowed {
        /// Header → (value, how Envoy is to apply it).
        headers: HashMap<String, (String, HeaderAppendAction)>,
        removed: Vec<String>,
    },
    Denied {
        grpc_code: i32,
        status: i32,
        headers: HashMap<String, String>,
        body: Value,
    },
}

impl Answer {
    #[track_caller]
    fn denied(self) -> (i32, HashMap<String, String>, Value) {
        match self {
            Answer::Denied {
                status,
                headers,
                body,
                grpc_code,
            } => {
                assert_ne!(grpc_code, 0, "a denial must not carry an OK status");
                assert_eq!(headers["content-type"], "application/json");
                (status, headers, body)
            }
            allowed => panic!("expected a denial, got {allowed:?}"),
        }
    }
}

/// A CheckRequest as Envoy sends it: the request's method, host, path and headers (names in
/// lower case), and the downstream peer as the source address.
fn check_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    source: &str,
) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: source.to_owned(),
                        ..SocketAddress::default()
                    })),
                }),
                ..attribute_context::Peer::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: method.to_owned(),
                    host: host.to_owned(),
                    path: path.to_owned(),
                    headers: headers
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                        .collect(),
                    ..attribute_context::HttpRequest::default()
                }),
                ..attribute_context::Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn error_body(code: &str, message: &str, status: u16) -> Value {
    json!({"error": {"code": code, "message": message}, "status": status})
}

#[tokio::test]
async fn an_allowed_request_names_the_key_upstream_over_any_client_copy() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let checks = CheckServer::start(&app).await;
        let created = app
            .create_key("agents", &["agents:read", "agents:write"], "")
            .await;
        let key_id = created.api_key.as_ref().unwrap().id.clone();
        let organization_id = app.verify(&created.key, &[]).await.organization_id;
        let authorization = bearer(&created.key);
        // The client sends its own principal headers: the answer overwrites every one.
        let answer = checks
            .check(check_request(
                "POST",
                "API.example.com:443",
                "/v1/agents/7?dry_run=true",
                &[
                    ("authorization", &authorization),
                    ("x-keyrack-key-id", "forged"),
                    ("x-keyrack-org-id", "forged"),
                    ("x-keyrack-scopes", "admin"),
                ],
                "203.0.113.5",
            ))
            .await;
        let Answer::Allowed { headers, removed } = answer else {
            panic!("expected OK, got {answer:?}");
        };
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd;
        assert_eq!(headers["x-keyrack-key-id"], (key_id, overwrite));
        assert_eq!(headers["x-keyrack-org-id"], (organization_id, overwrite));
        assert_eq!(
            headers["x-keyrack-scopes"],
            ("agents:read,agents:write".to_owned(), overwrite)
        );
        assert_eq!(headers.len(), 3);
        // An organization key has no metadata, credits or user context: a client's copy of
        // each header is removed (a forged X-Keyrack-User-Id never reaches the service).
        assert_eq!(
            removed,
            [
                "x-keyrack-metadata",
                "x-keyrack-member-id",
                "x-keyrack-client-id",
                "x-keyrack-user-id",
                "x-keyrack-credits-remaining"
            ]
        );
        checks.stop().await;
    }
}

#[tokio::test]
async fn refusals_carry_forward_auths_json_and_status() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let checks = CheckServer::start(&app).await;
        let reader = app.create_key("reader", &["agents:read"], "").await.key;
        let client = "203.0.113.5";

        // No key, or not as a bearer token: 401, before anything is verified.
        for headers in [vec![], vec![("authorization", "Basic dXNlcjpwYXNz")]] {
            let (status, _, body) = checks
                .check(check_request(
                    "GET",
                    "api.example.com",
                    "/v1/agents",
                    &headers,
                    client,
                ))
                .await
                .denied();
            assert_eq!(status, 401);
            assert_eq!(
                body,
                error_body("invalid_api_key", MISSING_API_KEY_MESSAGE, 401)
            );
        }

        // An unknown key: 401, the product's message.
        let unknown = bearer(&format!("sk_live_{}", "a".repeat(48)));
        let (status, _, body) = checks
            .check(check_request(
                "GET",
                "api.example.com",
                "/v1/agents",
                &[("authorization", &unknown)],
                client,
            ))
            .await
            .denied();
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "invalid_api_key");

        // The write route needs agents:write: 403 with the docs' message, exactly what
        // forward-auth answers for the same key and scope.
        let authorization = bearer(&reader);
        let (status, _, body) = checks
            .check(check_request(
                "POST",
                "api.example.com",
                "/v1/agents",
                &[("authorization", &authorization)],
                client,
            ))
            .await
            .denied();
        assert_eq!(status, 403);
        assert_eq!(
            body,
            error_body(
                "insufficient_scope",
                "API key lacks required scope: agents:write",
                403
            )
        );
        let forward_auth: Value = reqwest::Client::new()
            .get(format!("{}/api/auth/verify?scope=agents:write", app.http))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body, forward_auth);
        // The same key reads: another host's POST falls to the read route.
        let answer = checks
            .check(check_request(
                "POST",
                "other.example.com",
                "/v1/agents",
                &[("authorization", &authorization)],
                client,
            ))
            .await;
        assert!(matches!(answer, Answer::Allowed { .. }), "{answer:?}");

        // No route matches: refused by default, whatever the key, before it is read.
        for path in ["/v2/agents", "/v1/agentsx", "/"] {
            let (status, _, body) = checks
                .check(check_request(
                    "GET",
                    "api.example.com",
                    path,
                    &[("authorization", &authorization)],
                    client,
                ))
                .await
                .denied();
            assert_eq!(status, 403, "{path}");
            assert_eq!(
                body,
                error_body("insufficient_scope", NO_ROUTE_MESSAGE, 403),
                "{path}"
            );
        }
        checks.stop().await;
    }
}

#[tokio::test]
async fn a_rate_limited_key_is_refused_with_retry_after() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let checks = CheckServer::start(&app).await;
        let key = create_limited(
            &app,
            "limited",
            vec![limit(1, key_proto::v1::RatePeriod::Minute)],
        )
        .await;
        let authorization = bearer(&key);
        let request = || {
            check_request(
                "GET",
                "api.example.com",
                "/v1/chat",
                &[("authorization", &authorization)],
                "203.0.113.5",
            )
        };
        assert!(matches!(
            checks.check(request()).await,
            Answer::Allowed { .. }
        ));
        let (status, headers, body) = checks.check(request()).await.denied();
        assert_eq!(status, 429);
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(body["status"], 429);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Rate limit exceeded: "), "{message}");
        let retry_after: u64 = headers["retry-after"].parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        assert_eq!(headers["x-ratelimit-limit"], "1");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        checks.stop().await;
    }
}

#[tokio::test]
async fn checks_are_metered_as_verifications() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let checks = CheckServer::start(&app).await;
        let created = app.create_key("chat", &["chat"], "").await;
        let key_id = created.api_key.unwrap().id;
        let authorization = bearer(&created.key);
        for path in ["/v1/chat", "/v1/chat/completions", "/v1/agents"] {
            checks
                .check(check_request(
                    "GET",
                    "api.example.com",
                    path,
                    &[("authorization", &authorization)],
                    "203.0.113.5",
                ))
                .await;
        }
        // A refusal without a route verifies nothing, so counts nothing.
        checks
            .check(check_request(
                "GET",
                "api.example.com",
                "/elsewhere",
                &[("authorization", &authorization)],
                "203.0.113.5",
            ))
            .await
            .denied();
        let usage = app
            .client
            .clone()
            .list_usage(crate::helpers::authed(
                &app.admin_key,
                key_proto::v1::ListUsageRequest {
                    key_id: key_id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((usage.total_succeeded, usage.total_failed), (2, 1));
        assert_eq!(
            usage.buckets[0].failed_by_code.get("insufficient_scope"),
            Some(&1)
        );
        checks.stop().await;
    }
}

#[tokio::test]
async fn the_guard_judges_the_client_behind_trusted_proxies_only() {
    let backend = &backends()[0];
    let app = spawn_app(backend).await;
    let checks = CheckServer::start(&app).await;
    let guesser = "203.0.113.7";
    let malformed = bearer("sk_live_guess");
    let from = |source: &str, forwarded: &str| {
        check_request(
            "GET",
            "api.example.com",
            "/v1/chat",
            &[
                ("authorization", &malformed),
                ("x-forwarded-for", forwarded),
            ],
            source,
        )
    };
    // Through the trusted proxy, the client is the address it appended: after the guard's
    // threshold of failures, that client is cooling off (429 with Retry-After).
    let mut refused = None;
    for _ in 0..=key_service::DEFAULT_FAILURE_THRESHOLD {
        let (status, headers, body) = checks
            .check(from(PROXY, &format!("198.18.0.1, {guesser}")))
            .await
            .denied();
        if status == 429 {
            refused = Some((headers, body));
            break;
        }
        assert_eq!(status, 401);
    }
    let (headers, body) = refused.expect("the guesser was never refused");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(headers["retry-after"].parse::<u64>().unwrap() >= 1);
    // Another client behind the same proxy is judged on its own.
    let (status, _, _) = checks.check(from(PROXY, "198.51.100.20")).await.denied();
    assert_eq!(status, 401);
    // A source that is no trusted proxy is the client, whatever X-Forwarded-For claims.
    let (status, _, _) = checks.check(from("198.51.100.30", guesser)).await.denied();
    assert_eq!(status, 401);
    checks.stop().await;
}

#[test]
fn serve_answers_check_with_its_routes_file() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        "[[route]]\npath_prefix = \"/\"\nscopes = [\"admin\"]\n",
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let mut command = keyrack();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .args(["--metrics-listen", "off", "--ext-authz-routes"])
        .arg(&routes)
        .arg("--data-dir")
        .arg(&data_dir);
    let mut served = LoggedChild::spawn(command, "serve --ext-authz-routes");
    served.wait_for_line("ext_authz routes loaded", Duration::from_secs(30), |line| {
        line.contains("ext_authz routes loaded").then_some(())
    });
    let addr = served.wait_for_line("gRPC server listening", Duration::from_secs(30), |line| {
        let after = &line[line.find("gRPC server listening")?..];
        let value = &after[after.find("address=")? + "address=".len()..];
        Some(value.split_whitespace().next()?.to_owned())
    });
    let admin = bearer(&bootstrap_key(&data_dir));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = AuthorizationClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        for (authorization, allowed) in [(Some(admin.as_str()), true), (None, false)] {
            let headers: Vec<(&str, &str)> = authorization
                .map(|value| ("authorization", value))
                .into_iter()
                .collect();
            let response = client
                .check(check_request(
                    "DELETE",
                    "keyrack.internal",
                    "/anything",
                    &headers,
                    "127.0.0.1",
                ))
                .await
                .unwrap()
                .into_inner();
            let ok = matches!(response.http_response, Some(HttpResponse::OkResponse(_)));
            assert_eq!(ok, allowed, "{response:?}");
        }
    });
    assert!(served.terminate(Duration::from_secs(30)).success());

    // A mistake in the file stops the start, naming the flag and the route.
    std::fs::write(
        &routes,
        "[[route]]\npath_prefix = \"/\"\nscopes = [\"agents:fly\"]\n",
    )
    .unwrap();
    let mut command = keyrack();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .args(["--metrics-listen", "off", "--ext-authz-routes"])
        .arg(&routes)
        .arg("--data-dir")
        .arg(&data_dir);
    let ran = run_bounded(command, Duration::from_secs(30));
    assert!(!ran.status.success(), "{ran:?}");
    assert!(ran.stderr.contains("--ext-authz-routes"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("route 1: unknown scope \"agents:fly\""),
        "{}",
        ran.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_bench_measures_check_beside_verify_key() {
    let app = spawn_app(&Backend::Sqlite).await;
    let checks = CheckServer::start(&app).await;
    let key = app.create_key("bench", &["chat"], "").await.key;
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("figures.json");
    let mut command = std::process::Command::new(key_bench_binary().await);
    command
        .args(["--addr", &format!("http://{}", checks.addr)])
        .args(["--ext-authz", "/v1/chat/completions"])
        .args(["--duration", "250ms", "--rounds", "2", "--warmup", "100ms"])
        .arg("--json")
        .arg(&json_path)
        .env("KEYRACK_BENCH_KEY", &key);
    let ran = tokio::task::spawn_blocking(move || run_bounded(command, TIMEOUT))
        .await
        .unwrap();
    let table = ran.expect_success("key-bench --ext-authz").to_owned();
    assert!(!ran.text().contains(&key), "the key leaked into the output");
    assert!(table.contains("ext_authz Authorization/Check"), "{table}");
    assert!(
        table.contains("ratio ext_authz Check/VerifyKey throughput: "),
        "{table}"
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{json:#}");
    assert_rows_clean(rows, &json);
    assert!(json["ratio_check_verify_throughput"].as_f64().unwrap() > 0.0);
    checks.stop().await;
}

#[tokio::test]
async fn without_routes_check_is_not_served() {
    let app = spawn_app(&Backend::Sqlite).await;
    let status = AuthorizationClient::connect(format!("http://{}", app.addr))
        .await
        .unwrap()
        .check(check_request("GET", "x", "/", &[], "127.0.0.1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
}

#[test]
fn the_documented_routes_are_the_shipped_file_and_parse() {
    let root = crate::process::repo_root();
    let shipped = std::fs::read_to_string(root.join("deploy/envoy/routes.toml")).unwrap();
    let routes = ExtAuthzRoutes::parse(&shipped).unwrap();
    assert_eq!(routes.len(), 5);
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let documented = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has a toml block");
    assert_eq!(
        documented, shipped,
        "README.md's routes are not deploy/envoy/routes.toml"
    );
    // The routes decide as the README says.
    let scopes = |method: &str, host: &str, path: &str| {
        routes.find(host, method, path).map(|route| {
            route
                .scopes()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        scopes("POST", "api.example.com", "/api/agents/1"),
        Some(vec!["agents:write"])
    );
    assert_eq!(
        scopes("GET", "api.example.com", "/api/agents"),
        Some(vec!["agents:read"])
    );
    assert_eq!(
        scopes("GET", "chat.example.com:443", "/anything"),
        Some(vec!["chat"])
    );
    assert_eq!(
        scopes("GET", "api.example.com", "/api/catalogue/x"),
        Some(vec![])
    );
    assert_eq!(scopes("POST", "api.example.com", "/api/catalogue"), None);
}

/// A key's own controls through Check: its metadata goes upstream in `x-keyrack-metadata`
/// (base64url of the JSON, over any client copy); its IP allowlist judges the client found
/// through the trusted proxy; a disabled key is refused with forward-auth's body.
#[tokio::test]
async fn a_keys_metadata_allowlist_and_disabled_state_hold_for_check() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let checks = CheckServer::start(&app).await;
        let created = app
            .client
            .clone()
            .create_key(crate::helpers::authed(
                &app.admin_key,
                key_proto::v1::CreateKeyRequest {
                    name: "controlled".into(),
                    scopes: vec!["chat".into()],
                    metadata_json: r#"{"plan":"pro"}"#.into(),
                    ip_allowlist: vec!["198.51.100.0/24".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        app.caught_up().await;
        let authorization = bearer(&created.key);
        let chat = |source: &str, forwarded: &str| {
            let mut headers = vec![
                ("authorization", authorization.as_str()),
                ("x-keyrack-metadata", "forged"),
            ];
            if !forwarded.is_empty() {
                headers.push(("x-forwarded-for", forwarded));
            }
            check_request("POST", "chat.example.com", "/v1/chat", &headers, source)
        };
        let answer = checks.check(chat("198.51.100.7", "")).await;
        let Answer::Allowed { headers, .. } = answer else {
            panic!("expected OK, got {answer:?}");
        };
        // base64url of {"plan":"pro"}, without padding.
        assert_eq!(
            headers["x-keyrack-metadata"],
            (
                "eyJwbGFuIjoicHJvIn0".to_owned(),
                HeaderAppendAction::OverwriteIfExistsOrAdd
            )
        );
        // Behind the trusted proxy, the client it names is judged.
        let answer = checks.check(chat(PROXY, "198.51.100.9")).await;
        assert!(matches!(answer, Answer::Allowed { .. }), "{answer:?}");
        for (source, forwarded) in [("203.0.113.5", ""), (PROXY, "203.0.113.5")] {
            let (status, _, body) = checks.check(chat(source, forwarded)).await.denied();
            assert_eq!(status, 403);
            assert_eq!(
                body,
                error_body(
                    "ip_not_allowed",
                    "API key is not allowed from this IP address",
                    403
                )
            );
        }
        let id = created.api_key.unwrap().id;
        app.client
            .clone()
            .disable_key(crate::helpers::authed(
                &app.admin_key,
                key_proto::v1::DisableKeyRequest { id },
            ))
            .await
            .unwrap();
        let (status, _, body) = checks.check(chat("198.51.100.7", "")).await.denied();
        assert_eq!(status, 401);
        assert_eq!(
            body,
            error_body("disabled_api_key", "API key is disabled", 401)
        );
        checks.stop().await;
    }
}
