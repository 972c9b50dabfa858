//! The `keyrack` binary end to end: the real executable on a real socket, driven by the real
//! `grpcurl` through server reflection only, and by `curl` over its REST gateway, the way an
//! operator would use it.
//!
//! Every child process is bounded by [`TIMEOUT`] and killed, with its process group, when a test
//! fails (see [`crate::process`]), because a hanging test is worse than a failing one. Every
//! spawn removes the `KEYRACK_*` variables inherited from the environment, and every `serve`
//! uses a fresh temporary data directory, so the tests are hermetic. Every `serve` also names its
//! HTTP address (`127.0.0.1:0` or `off`): the default, 127.0.0.1:8080, would collide between
//! parallel tests.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use serde_json::{Value, json};

use crate::process::{
    LoggedChild, Ran, TIMEOUT, bootstrap_key, keyrack, loopback_only, on_path, run_bounded, tool,
};

/// The log line that tells the bound port, e.g. `gRPC server listening address=127.0.0.1:4242`.
const LISTENING: &str = "gRPC server listening";
/// The same for the REST gateway, e.g. `HTTP gateway listening address=127.0.0.1:4243`.
const GATEWAY_LISTENING: &str = "HTTP gateway listening";

/// The prefix of every production key; a key is this plus 43 secret and 6 checksum characters.
const LIVE_PREFIX: &str = "sk_live_";
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
const KEY_BODY_LEN: usize = SECRET_LEN + CHECKSUM_LEN;

const CREATE_REQUEST: &str =
    r#"{"name":"Production API","scopes":["chat","agents:read"],"expiresAt":"2099-12-31"}"#;

#[test]
fn serve_bootstraps_once_and_grpcurl_drives_every_rpc() {
    let dir = tempfile::tempdir().unwrap();

    let mut served = Served::start(dir.path(), &[]);
    let admin = served.bootstrap_key();
    let addr = served.addr.clone();

    // The generated pepper protects every key hash, so only its owner may read it.
    let pepper = dir.path().join("pepper");
    let mode = std::fs::metadata(&pepper).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", pepper.display());

    // Reflection alone is enough for grpcurl to find and describe the services.
    let list = grpcurl(&addr, &[], &["list"]).into_success("grpcurl list");
    assert_contains(&list, "keyrack.v1.KeyService");
    assert_contains(&list, "grpc.health.v1.Health");
    let describe = grpcurl(&addr, &[], &["describe", "keyrack.v1.KeyService"])
        .into_success("grpcurl describe");
    assert_contains(&describe, "VerifyKey");

    // Health answers for the server as a whole and for the key service by name.
    let health =
        grpcurl(&addr, &[], &["grpc.health.v1.Health/Check"]).into_success("grpcurl health");
    // Compared whole, since a substring check would also accept NOT_SERVING.
    assert_eq!(string_at(&json(&health), "/status"), "SERVING");
    let service_health = grpcurl(
        &addr,
        &["-d", r#"{"service":"keyrack.v1.KeyService"}"#],
        &["grpc.health.v1.Health/Check"],
    )
    .into_success("grpcurl health of keyrack.v1.KeyService");
    assert_eq!(string_at(&json(&service_health), "/status"), "SERVING");

    let created =
        call(&addr, Some(&admin), "CreateKey", CREATE_REQUEST).into_success("grpcurl CreateKey");
    let created = json(&created);
    let key = string_at(&created, "/key");
    let id = string_at(&created, "/apiKey/id");
    assert_key_format(&key);
    assert_eq!(string_at(&created, "/apiKey/name"), "Production API");
    assert_eq!(string_at(&created, "/apiKey/state"), "KEY_STATE_ACTIVE");

    let valid = call(&addr, None, "VerifyKey", &verify_request(&key, "chat"))
        .into_success("grpcurl VerifyKey chat");
    assert_eq!(string_at(&json(&valid), "/code"), "VERIFY_CODE_VALID");
    let lacking = call(
        &addr,
        None,
        "VerifyKey",
        &verify_request(&key, "agents:write"),
    )
    .into_success("grpcurl VerifyKey agents:write");
    let lacking = json(&lacking);
    assert_eq!(
        string_at(&lacking, "/code"),
        "VERIFY_CODE_INSUFFICIENT_SCOPE"
    );
    assert_eq!(
        string_at(&lacking, "/message"),
        "API key lacks required scope: agents:write"
    );

    let got = call(
        &addr,
        Some(&admin),
        "GetKey",
        &format!(r#"{{"id":"{id}"}}"#),
    )
    .into_success("grpcurl GetKey");
    assert_eq!(string_at(&json(&got), "/apiKey/id"), id);
    let listed = call(&addr, Some(&admin), "ListKeys", "{}").into_success("grpcurl ListKeys");
    assert_contains(&listed, &id);
    let usage = call(
        &addr,
        Some(&admin),
        "ListUsage",
        &format!(r#"{{"keyId":"{id}"}}"#),
    )
    .into_success("grpcurl ListUsage");
    // The two verifications above were recorded; int64 values are strings in proto3 JSON.
    let usage = json(&usage);
    assert_eq!(string_at(&usage, "/totalSucceeded"), "1", "{usage:#}");
    assert_eq!(string_at(&usage, "/totalFailed"), "1", "{usage:#}");

    let revoked = call(
        &addr,
        Some(&admin),
        "RevokeKey",
        &format!(r#"{{"id":"{id}","reason":"test"}}"#),
    )
    .into_success("grpcurl RevokeKey");
    let revoked = json(&revoked);
    assert_eq!(string_at(&revoked, "/apiKey/state"), "KEY_STATE_REVOKED");
    assert_eq!(string_at(&revoked, "/apiKey/revokeReason"), "test");
    // A rejected key is a verdict in the response, not an RPC error, so grpcurl succeeds.
    let rejected = call(&addr, None, "VerifyKey", &verify_request(&key, "chat"))
        .into_success("grpcurl VerifyKey revoked");
    let rejected = json(&rejected);
    assert_eq!(string_at(&rejected, "/code"), "VERIFY_CODE_INVALID_API_KEY");
    assert_eq!(
        string_at(&rejected, "/message"),
        "The API key provided is invalid"
    );

    // Every RPC but VerifyKey needs an admin key; grpcurl prints the status and its ErrorInfo.
    let anonymous = call(&addr, None, "CreateKey", CREATE_REQUEST);
    let anonymous_text = anonymous.text();
    assert!(
        !anonymous.status.success(),
        "CreateKey without a key succeeded:\n{anonymous_text}"
    );
    assert_contains(&anonymous_text, "Unauthenticated");
    assert_contains(&anonymous_text, "invalid_api_key");

    served.stop_gracefully();

    // A second start on the same data dir reuses the organization and the pepper: no new key
    // is printed, and the bootstrap key still authenticates.
    let mut again = Served::start(dir.path(), &[]);
    let stderr = again.stderr();
    assert!(
        !stderr.contains(LIVE_PREFIX),
        "a restart printed a key:\n{stderr}"
    );
    call(&again.addr, Some(&admin), "ListKeys", "{}")
        .into_success("grpcurl ListKeys after a restart");
    again.stop_gracefully();
}

#[test]
fn admin_key_create_mints_a_working_key() {
    let dir = tempfile::tempdir().unwrap();

    // The first start creates organization `default`, which `admin-key create` requires.
    let mut first = Served::start(dir.path(), &[]);
    let bootstrap = first.bootstrap_key();
    // A health check first, so that this test is about `admin-key create` alone: stopping the
    // instant the server listens is the subject of its own test.
    grpcurl(&first.addr, &[], &["grpc.health.v1.Health/Check"]).into_success("grpcurl health");
    first.stop_gracefully();

    let mut create = keyrack();
    create
        .arg("admin-key")
        .arg("create")
        .arg("--data-dir")
        .arg(dir.path());
    let stdout = run_bounded(create, TIMEOUT).into_success("admin-key create");
    // Only the key goes to stdout, so `KEY=$(keyrack admin-key create …)` works in a script.
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout is not one line:\n{stdout}"
    );
    let minted = stdout.trim().to_owned();
    assert_key_format(&minted);
    assert_ne!(minted, bootstrap);

    let mut served = Served::start(dir.path(), &[]);
    let listed = call(&served.addr, Some(&minted), "ListKeys", "{}")
        .into_success("grpcurl ListKeys with the minted key");
    let keys = json(&listed)["apiKeys"].as_array().map_or(0, Vec::len);
    assert!(
        keys >= 2,
        "expected the bootstrap and the minted key, got {keys}:\n{listed}"
    );
    served.stop_gracefully();
}

/// `keyrack serve` over `data_dir` with `env`, run until it exits (it must refuse to start).
fn refused_start(data_dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Ran {
    let mut serve = keyrack();
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .args(["--metrics-listen", "off"])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().copied());
    let ran = run_bounded(serve, TIMEOUT);
    assert!(!ran.status.success(), "serve started:\n{}", ran.stderr);
    ran
}

#[test]
fn a_lost_pepper_file_is_refused_not_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Served::start(dir.path(), &[]);
    first.bootstrap_key();
    first.stop_gracefully();
    let pepper = dir.path().join("pepper");
    std::fs::remove_file(&pepper).unwrap();

    let refused = refused_start(dir.path(), &[], &[]);
    assert_contains(&refused.stderr, "pepper");
    assert_contains(&refused.stderr, "missing");
    assert!(
        !pepper.exists(),
        "a new pepper was generated for an existing database"
    );
}

#[test]
fn a_different_pepper_is_refused_by_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let original = "an-original-pepper-of-at-least-32-bytes";
    let mut first = Served::start(dir.path(), &[("KEYRACK_PEPPER", original)]);
    first.stop_gracefully();

    let other = "another-pepper-of-at-least-thirty-two-bytes";
    let refused = refused_start(dir.path(), &[("KEYRACK_PEPPER", other)], &[]);
    assert_contains(&refused.stderr, "different pepper");
    // Neither pepper reaches the output.
    assert!(!refused.stderr.contains(original) && !refused.stderr.contains(other));

    let mut again = Served::start(dir.path(), &[("KEYRACK_PEPPER", original)]);
    again.stop_gracefully();
}

#[test]
fn a_pepper_file_others_can_read_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let pepper = dir.path().join("shared-pepper");
    std::fs::write(&pepper, "a-pepper-in-a-file-that-others-can-read-0123").unwrap();
    std::fs::set_permissions(&pepper, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data = dir.path().join("data");
    let pepper_arg = pepper.display().to_string();
    let mut served = Served::start(&data, &[("KEYRACK_PEPPER_FILE", pepper_arg.as_str())]);
    served.stop_gracefully();
    let stderr = served.stderr();
    assert_contains(&stderr, "the pepper file is readable by other users");
}

#[test]
fn a_short_pepper_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = keyrack();
    serve
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("KEYRACK_PEPPER", "short");
    // Were the pepper accepted, serve would run until the bound and the test would fail there.
    let output = run_bounded(serve, TIMEOUT);
    let stderr = &output.stderr;
    assert!(
        !output.status.success(),
        "serve accepted a 5-byte pepper:\n{stderr}"
    );
    assert_contains(stderr, "at least 32");
    // The refusal comes before bootstrapping, so no key was minted with the unusable pepper.
    assert!(
        !stderr.contains(LIVE_PREFIX),
        "a key was printed:\n{stderr}"
    );
}

#[test]
fn a_bad_worker_thread_count_is_one_line_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // tokio's own variable, which the runtime reads when --worker-threads is not given.
    for (variable, value) in [
        ("TOKIO_WORKER_THREADS", "abc"),
        ("TOKIO_WORKER_THREADS", "0"),
    ] {
        let ran = refused_start(dir.path(), &[(variable, value)], &[]);
        assert_eq!(ran.status.code(), Some(1), "{}", ran.stderr);
        assert_contains(&ran.stderr, "Error: TOKIO_WORKER_THREADS");
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    }
    let ran = refused_start(dir.path(), &[("KEYRACK_WORKER_THREADS", "0")], &[]);
    assert_eq!(ran.status.code(), Some(2), "{}", ran.stderr);
    assert_contains(&ran.stderr, "--worker-threads");
}

#[test]
fn a_busy_port_is_one_line_with_its_cause_not_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut serve = keyrack();
    serve
        .args(["serve", "--listen", &address, "--http-listen", "off"])
        .args(["--metrics-listen", "off", "--data-dir"])
        .arg(dir.path())
        // Set by many Rust developers; an operator's mistake must not print a stack.
        .env("RUST_BACKTRACE", "1");
    let output = run_bounded(serve, TIMEOUT);
    let stderr = &output.stderr;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|line| line.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert_contains(error, &format!("cannot listen on {address}: "));
    assert_contains(error, "Address already in use");
    assert!(
        !stderr.to_lowercase().contains("backtrace"),
        "a backtrace was printed:\n{stderr}"
    );
}

#[test]
fn the_bootstrap_key_waits_for_the_ports_and_stays_off_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // A port that is taken: the start fails before anything is bootstrapped…
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut serve = keyrack();
    serve
        .args(["serve", "--listen", &address, "--http-listen", "off"])
        .args(["--metrics-listen", "off", "--data-dir"])
        .arg(dir.path());
    let failed = run_bounded(serve, TIMEOUT);
    assert!(!failed.status.success(), "{}", failed.stderr);
    assert!(live_keys(&failed.stderr).is_empty(), "{}", failed.stderr);
    let file = dir.path().join("bootstrap-admin-key");
    assert!(
        !file.exists(),
        "a key was bootstrapped for a server that never ran"
    );

    // …so the start that works is the first: its key goes to a file only its owner reads, and
    // stderr (the log stream here, not a terminal) only says where.
    let mut served = Served::start(dir.path(), &[]);
    let key = served.bootstrap_key();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    assert_contains(&served.stderr(), &file.display().to_string());
    let verdict = call(
        &served.addr,
        None,
        "VerifyKey",
        &verify_request(&key, "admin"),
    )
    .into_success("VerifyKey with the bootstrap key");
    assert_eq!(json(&verdict)["valid"], true, "{verdict}");
    served.stop_gracefully();
}

#[test]
fn the_plaintext_key_never_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    // Trace is the most verbose filter, covering every dependency's logging as well as ours.
    let mut served = Served::start(dir.path(), &[("KEYRACK_LOG", "trace")]);
    let admin = served.bootstrap_key();
    let addr = served.addr.clone();

    let created =
        call(&addr, Some(&admin), "CreateKey", CREATE_REQUEST).into_success("grpcurl CreateKey");
    let created = json(&created);
    let key = string_at(&created, "/key");
    let id = string_at(&created, "/apiKey/id");
    assert_key_format(&key);
    call(&addr, None, "VerifyKey", &verify_request(&key, "chat"))
        .into_success("grpcurl VerifyKey chat");
    call(
        &addr,
        None,
        "VerifyKey",
        &verify_request(&key, "agents:write"),
    )
    .into_success("grpcurl VerifyKey agents:write");
    call(
        &addr,
        Some(&admin),
        "RevokeKey",
        &format!(r#"{{"id":"{id}","reason":"test"}}"#),
    )
    .into_success("grpcurl RevokeKey");
    call(&addr, None, "VerifyKey", &verify_request(&key, "chat"))
        .into_success("grpcurl VerifyKey revoked");
    // A revoked key presented as a bearer token goes down the authentication failure path.
    let refused = call(&addr, Some(&key), "ListKeys", "{}");
    assert!(
        !refused.status.success(),
        "a revoked key listed keys:\n{}",
        refused.text()
    );

    // Stopping also waits for the last line of stderr, so the whole log is checked below.
    served.stop_gracefully();
    let stderr = served.stderr();

    // No plaintext key appears, not even the bootstrap key (it went to its file), though the
    // admin key travelled in the authorization header of every admin call.
    assert!(
        !stderr.contains(admin.as_str()),
        "the admin key is logged:\n{stderr}"
    );
    assert!(
        !stderr.contains(&key),
        "the created key is logged:\n{stderr}"
    );
    let secret = &key[LIVE_PREFIX.len()..LIVE_PREFIX.len() + SECRET_LEN];
    assert!(
        !stderr.contains(secret),
        "the created key's secret is logged:\n{stderr}"
    );
}

#[test]
fn sigterm_as_soon_as_it_listens_is_a_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    // A supervisor may stop the server the moment it reports listening, so the SIGTERM handler
    // must be in place by then; otherwise the default action kills the process mid-start. The
    // window is short, hence several rounds.
    for _ in 0..3 {
        Served::start(dir.path(), &[]).stop_gracefully();
    }
}

#[test]
fn the_gateway_runs_alone_in_front_of_a_remote_key_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::serve(dir.path(), "off", &[]);
    let admin = served.bootstrap_key();
    let mut gateway = Served::gateway(&format!("http://{}", served.addr));
    let url = |path: &str| format!("http://{}{path}", gateway.addr);

    let ready = http("GET", &url("/readyz"), None, None);
    ready.assert_status(200);
    assert_eq!(ready.json(), json!({"status": "ready"}));

    let created = http(
        "POST",
        &url("/api/api-keys"),
        Some(&admin),
        Some(r#"{"name":"via gateway","scopes":["chat"]}"#),
    );
    created.assert_status(201);
    let created = created.json();
    let key = string_at(&created, "/key");
    let id = string_at(&created, "/id");
    assert_key_format(&key);
    assert_eq!(string_at(&created, "/name"), "via gateway", "{created:#}");

    let verified = http("GET", &url("/api/auth/verify?scope=chat"), Some(&key), None);
    verified.assert_status(200);
    assert_eq!(verified.header("x-keyrack-key-id"), Some(id.as_str()));

    served.stop_gracefully();
    // `--http-listen off`: the key service ran no gateway of its own.
    let stderr = served.stderr();
    assert!(
        !stderr.contains(GATEWAY_LISTENING),
        "serve --http-listen off started a gateway:\n{stderr}"
    );

    // With the key service gone the gateway is not ready and cannot verify: 503, which tells
    // the caller to try again, never a 500. The gateway itself is still up.
    for (path, bearer) in [
        ("/readyz", None),
        ("/api/auth/verify?scope=chat", Some(&key)),
    ] {
        let down = http("GET", &url(path), bearer.map(String::as_str), None);
        down.assert_status(503);
        let body = down.json();
        assert_eq!(string_at(&body, "/error/code"), "unavailable", "{body:#}");
        // A message is there too, whatever its wording.
        string_at(&body, "/error/message");
        assert_eq!(body.pointer("/status"), Some(&json!(503)), "{body:#}");
    }
    let healthz = http("GET", &url("/healthz"), None, None);
    healthz.assert_status(200);
    assert_eq!(healthz.json(), json!({"status": "ok"}));

    gateway.stop_gracefully();
    // Its clients came from loopback, and no proxy was trusted: said once, not per request.
    let stderr = gateway.stderr();
    assert_eq!(
        stderr.matches("--trusted-proxies is empty").count(),
        1,
        "{stderr}"
    );
}

/// A running `keyrack serve` or `keyrack gateway`, with its stderr collected.
struct Served {
    process: LoggedChild,
    /// The bound address, e.g. `127.0.0.1:4242`, as read from the listening log line.
    addr: String,
    /// `serve`'s data directory (none for `gateway`).
    data_dir: std::path::PathBuf,
}

impl Served {
    /// Starts `keyrack serve` over `data_dir`, its gRPC API and its gateway each on an
    /// ephemeral port, and waits until the gRPC API listens.
    fn start(data_dir: &Path, env: &[(&str, &str)]) -> Served {
        Served::serve(data_dir, "127.0.0.1:0", env)
    }

    /// Starts `keyrack serve --http-listen <http_listen>` over `data_dir`, its gRPC API on an
    /// ephemeral port, and waits until the gRPC API listens.
    fn serve(data_dir: &Path, http_listen: &str, env: &[(&str, &str)]) -> Served {
        let mut command = keyrack();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--http-listen"])
            .arg(http_listen)
            .arg("--data-dir")
            .arg(data_dir)
            .envs(env.iter().copied());
        let mut served = Served::launch(command, "serve", LISTENING);
        served.data_dir = data_dir.to_owned();
        served
    }

    /// Starts `keyrack gateway` alone on an ephemeral port, in front of the gRPC API at
    /// `upstream` (e.g. `http://127.0.0.1:4242`), and waits until it listens.
    fn gateway(upstream: &str) -> Served {
        let mut command = keyrack();
        command.args(["gateway", "--upstream", upstream, "--listen", "127.0.0.1:0"]);
        Served::launch(command, "gateway", GATEWAY_LISTENING)
    }

    fn launch(command: Command, what: &str, listening: &str) -> Served {
        // The child is guarded before the wait, so a failed wait kills it.
        let mut process = LoggedChild::spawn(command, what);
        let addr = process.wait_for_line(listening, TIMEOUT, |line| {
            listening_address(line, listening)
        });
        Served {
            process,
            addr,
            data_dir: std::path::PathBuf::new(),
        }
    }

    /// Everything written to stderr so far (all of it once the process was stopped).
    fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// The bootstrap admin key, from the file the first start wrote; never on stderr, which is
    /// not a terminal here (it is the log stream).
    fn bootstrap_key(&self) -> String {
        let stderr = self.stderr();
        assert!(
            live_keys(&stderr).is_empty(),
            "a key reached stderr (the log stream):\n{stderr}"
        );
        let key = bootstrap_key(&self.data_dir);
        assert_key_format(&key);
        key
    }

    /// Sends SIGTERM and asserts that the process shut down cleanly, exit code 0, within
    /// [`TIMEOUT`]; stderr is complete afterwards.
    fn stop_gracefully(&mut self) {
        let status = self.process.terminate(TIMEOUT);
        assert!(
            status.success(),
            "SIGTERM ended the process with {status}:\n{}",
            self.stderr()
        );
    }
}

/// The address in the `listening` log line, if `line` is that line.
fn listening_address(line: &str, listening: &str) -> Option<String> {
    let after = &line[line.find(listening)? + listening.len()..];
    let value = &after[after.find("address=")? + "address=".len()..];
    Some(value.split_whitespace().next()?.to_owned())
}

/// Runs grpcurl against a plaintext server: `grpcurl -plaintext <flags> <addr> <verb>`. It
/// prints responses on stdout and RPC errors on stderr.
fn grpcurl(addr: &str, flags: &[&str], verb: &[&str]) -> Ran {
    let mut command = Command::new(tool("grpcurl", "KEYRACK_GRPCURL"));
    command
        .arg("-plaintext")
        .args(["-max-time", &TIMEOUT.as_secs().to_string()])
        .args(flags)
        .arg(addr)
        .args(verb);
    run_bounded(command, TIMEOUT)
}

/// Calls a KeyService method with a JSON request, with `authorization: Bearer <key>` if given.
fn call(addr: &str, bearer: Option<&str>, method: &str, data: &str) -> Ran {
    let header = bearer.map(|key| format!("authorization: Bearer {key}"));
    let mut flags = vec!["-d", data];
    if let Some(header) = &header {
        flags.extend(["-H", header.as_str()]);
    }
    grpcurl(addr, &flags, &[&format!("keyrack.v1.KeyService/{method}")])
}

/// What an HTTP server answered to curl.
struct HttpReply {
    what: String,
    status: u16,
    /// The header lines, after the status line.
    head: String,
    body: String,
}

impl HttpReply {
    fn assert_status(&self, expected: u16) {
        assert_eq!(
            self.status, expected,
            "{}:\n{}\n\n{}",
            self.what, self.head, self.body
        );
    }

    /// The value of header `name` (case-insensitive); `None` if absent.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field
                .trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}:\n{}",
            self.what,
            self.head
        );
        json(&self.body)
    }
}

/// One HTTP request with curl: `method url`, with `Authorization: Bearer <key>` if given and a
/// JSON body if given. A response of any status is returned; no response fails the test.
fn http(method: &str, url: &str, bearer: Option<&str>, body: Option<&str>) -> HttpReply {
    let mut command = Command::new(on_path("curl"));
    loopback_only(&mut command);
    command
        .args(["--silent", "--show-error", "--include", "--http1.1"])
        .args(["--max-time", &TIMEOUT.as_secs().to_string()])
        .args(["--request", method]);
    if let Some(key) = bearer {
        command
            .arg("--header")
            .arg(format!("Authorization: Bearer {key}"));
    }
    if let Some(body) = body {
        command
            .args(["--header", "Content-Type: application/json"])
            .args(["--data-binary", body]);
    }
    command.arg(url);
    let what = format!("curl {method} {url}");
    let output = run_bounded(command, TIMEOUT).into_success(&what);
    let (head, body) = output
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{what}: no end of the headers in:\n{output}"));
    let (status_line, head) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no status in {status_line:?}"));
    HttpReply {
        status,
        head: head.replace("\r\n", "\n"),
        body: body.to_owned(),
        what,
    }
}

fn verify_request(key: &str, scope: &str) -> String {
    format!(r#"{{"key":"{key}","requiredScopes":["{scope}"]}}"#)
}

/// A JSON response as grpcurl prints it (proto3 JSON: camelCase names, enums by name).
fn json(response: &str) -> Value {
    serde_json::from_str(response).unwrap_or_else(|error| panic!("not JSON ({error}):\n{response}"))
}

/// The string at a JSON pointer such as `/apiKey/id`.
fn string_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
        .to_owned()
}

/// Every `sk_live_…` token in `text`, each with all the alphanumeric characters that follow it.
fn live_keys(text: &str) -> Vec<String> {
    text.match_indices(LIVE_PREFIX)
        .map(|(at, prefix)| {
            let body: String = text[at + prefix.len()..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            format!("{prefix}{body}")
        })
        .collect()
}

fn assert_key_format(key: &str) {
    let body = key
        .strip_prefix(LIVE_PREFIX)
        .unwrap_or_else(|| panic!("{key:?} is not a live key"));
    assert!(
        body.len() == KEY_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{key:?} does not look like sk_live_ and {KEY_BODY_LEN} alphanumerics"
    );
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

/// Creates, verifies, rotates and revokes keys and makes and rotates a webhook secret through
/// `served`; returns every secret that passed through: the admin key, the keys, the signing
/// secrets, and each one's secret part alone.
fn handle_secrets(served: &Served, admin: &str) -> Vec<String> {
    let addr = &served.addr;
    let created =
        json(&call(addr, Some(admin), "CreateKey", CREATE_REQUEST).into_success("CreateKey"));
    let first = string_at(&created, "/key");
    let id = string_at(&created, "/apiKey/id");
    call(addr, None, "VerifyKey", &verify_request(&first, "chat")).into_success("VerifyKey");
    let rotated = json(
        &call(
            addr,
            Some(admin),
            "RotateKey",
            &format!(r#"{{"id":"{id}","gracePeriod":"0s"}}"#),
        )
        .into_success("RotateKey"),
    );
    let second = string_at(&rotated, "/key");
    let second_id = string_at(&rotated, "/apiKey/id");
    call(addr, None, "VerifyKey", &verify_request(&second, "chat")).into_success("VerifyKey");
    call(
        addr,
        Some(admin),
        "RevokeKey",
        &format!(r#"{{"id":"{second_id}"}}"#),
    )
    .into_success("RevokeKey");
    let endpoint = json(
        &call(
            addr,
            Some(admin),
            "CreateWebhookEndpoint",
            r#"{"url":"https://hooks.example.com/keyrack"}"#,
        )
        .into_success("CreateWebhookEndpoint"),
    );
    let endpoint_id = string_at(&endpoint, "/webhookEndpoint/id");
    let secret = string_at(&endpoint, "/signingSecret");
    let rotated_secret = string_at(
        &json(
            &call(
                addr,
                Some(admin),
                "RotateWebhookSecret",
                &format!(r#"{{"id":"{endpoint_id}"}}"#),
            )
            .into_success("RotateWebhookSecret"),
        ),
        "/signingSecret",
    );
    let mut secrets = Vec::new();
    for key in [admin, first.as_str(), second.as_str()] {
        secrets.push(key.to_owned());
        secrets.push(key[LIVE_PREFIX.len()..LIVE_PREFIX.len() + SECRET_LEN].to_owned());
    }
    for secret in [secret, rotated_secret] {
        secrets.push(secret["whsec_".len()..].to_owned());
        secrets.push(secret);
    }
    secrets
}

fn assert_holds_none(what: &str, haystack: &[u8], secrets: &[String]) {
    for secret in secrets {
        assert!(
            !haystack
                .windows(secret.len())
                .any(|window| window == secret.as_bytes()),
            "{what} holds a secret ({}…)",
            &secret[..6]
        );
    }
}

/// With logging at TRACE, no key, secret part, signing secret or the pepper reaches the log,
/// the SQLite database or its WAL, or a `pg_dump` of the PostgreSQL database.
#[test]
fn no_secret_reaches_the_logs_the_database_files_or_a_dump() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::start(dir.path(), &[("KEYRACK_LOG", "trace")]);
    let admin = served.bootstrap_key();
    let mut secrets = handle_secrets(&served, &admin);
    let pepper = std::fs::read_to_string(dir.path().join("pepper")).unwrap();
    secrets.push(pepper.trim().to_owned());
    // Scanned while running (the WAL holds the latest writes), and after a clean stop.
    let scan_files = |when: &str| {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // The two files whose job is to hold a secret: the pepper and the bootstrap key.
            if name == "pepper" || name == "bootstrap-admin-key" {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert_holds_none(&format!("{name} ({when})"), &bytes, &secrets);
        }
    };
    scan_files("running");
    served.stop_gracefully();
    scan_files("stopped");
    assert_holds_none("the TRACE log", served.stderr().as_bytes(), &secrets);

    let Ok(base) = std::env::var("KEYRACK_TEST_DATABASE_URL") else {
        return;
    };
    let name = format!("keyrack_t_{}", uuid::Uuid::now_v7().simple());
    let psql = |sql: &str| {
        let mut command = Command::new("psql");
        command.args([base.as_str(), "-Atqc", sql]);
        run_bounded(command, TIMEOUT).into_success("psql");
    };
    psql(&format!("CREATE DATABASE {name}"));
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    let pepper = "a-pepper-for-the-dump-test-0123456789abcdef";
    let pg_dir = tempfile::tempdir().unwrap();
    let mut served = Served::start(
        pg_dir.path(),
        &[
            ("KEYRACK_LOG", "trace"),
            ("KEYRACK_DATABASE_URL", url.as_str()),
            ("KEYRACK_PEPPER", pepper),
        ],
    );
    let admin = served.bootstrap_key();
    let mut secrets = handle_secrets(&served, &admin);
    secrets.push(pepper.to_owned());
    served.stop_gracefully();
    let mut dump = Command::new("pg_dump");
    dump.arg(&url);
    let dumped = run_bounded(dump, TIMEOUT).into_success("pg_dump");
    assert!(dumped.contains("api_keys"), "the dump holds the tables");
    assert_holds_none("pg_dump", dumped.as_bytes(), &secrets);
    assert_holds_none("the TRACE log", served.stderr().as_bytes(), &secrets);
    psql(&format!("DROP DATABASE {name} WITH (FORCE)"));
}

/// `keyrack key check` tells a Keyrack key from look-alikes offline (a Stripe-shaped
/// `sk_live_` string, a key with one character changed), one verdict per input line, exit
/// status 1 when any input is not a key, and never prints a key.
#[test]
fn key_check_tells_keys_from_look_alikes_and_prints_no_key() {
    use key_core::{ApiKey, Environment};
    let key = ApiKey::generate(Environment::Live, &ring::rand::SystemRandom::new()).unwrap();
    let key = key.expose().to_owned();
    let mut altered = key.clone().into_bytes();
    altered[10] = if altered[10] == b'a' { b'b' } else { b'a' };
    let altered = String::from_utf8(altered).unwrap();
    let stripe_like = format!("{LIVE_PREFIX}{}", "4eC39HqLyjWDarjtT1zdp7dc");

    let mut good = keyrack();
    good.args(["key", "check", &key]);
    let checked = run_bounded(good, TIMEOUT).into_success("key check");
    assert_eq!(
        checked,
        format!(
            "1: well-formed live key sk_live_…{}\n",
            &key[key.len() - 4..]
        )
    );

    let mut mixed = keyrack();
    mixed.args(["key", "check", &key, &altered, &stripe_like]);
    let ran = run_bounded(mixed, TIMEOUT);
    assert_eq!(ran.status.code(), Some(1), "{}", ran.text());
    assert!(
        ran.stdout.starts_with("1: well-formed live key"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("2: not a Keyrack key"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("3: not a Keyrack key"),
        "{}",
        ran.stdout
    );
    for secret in [&key, &altered, &stripe_like] {
        assert!(!ran.text().contains(secret.as_str()), "{}", ran.text());
    }
}
