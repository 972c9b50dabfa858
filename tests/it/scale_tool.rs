//! The scale benchmark's tool, `key-scale`, run as `bench/scale.sh` runs it, with 200 keys
//! instead of a million: the real binary seeds a SQLite data directory, then a real `keyrack
//! serve` on that directory verifies every seeded key over gRPC, and the in-process cold pass
//! verifies them all with no error. Speed is not asserted; that the figures come from a store
//! the service really uses is.

use std::{collections::HashSet, path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use key_core::ApiKey;

use crate::process::{LoggedChild, TIMEOUT, keyrack, repo_root, run_bounded};

/// The first build of `key-scale` may compile its dependencies.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
const COUNT: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_keys_are_each_valid_on_a_real_server_and_in_the_cold_pass() {
    let binary = key_scale_binary().await;
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // The pepper where `keyrack serve --data-dir` looks for it, so the server hashes alike.
    let pepper = data.path().join("pepper");
    std::fs::write(&pepper, "0123456789abcdef0123456789abcdef-scale-test").unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        data.path().join("keyrack.db").display()
    );
    let keys_file = work.path().join("keys.txt");
    let store_args = |command: &mut Command| {
        command
            .args(["--database-url", &url])
            .arg("--pepper-file")
            .arg(&pepper);
    };

    // Batches of 64: the last one is partial, so batching loses and repeats no key.
    let mut seed = Command::new(&binary);
    seed.args(["seed", "--count", &COUNT.to_string(), "--batch", "64"])
        .arg("--keys-out")
        .arg(&keys_file);
    store_args(&mut seed);
    let seeded = run(seed);
    assert!(seeded.contains(&format!("seeded {COUNT} keys")), "{seeded}");
    let text = std::fs::read_to_string(&keys_file).unwrap();
    let keys: Vec<&str> = text.lines().collect();
    assert_eq!(keys.len(), COUNT);
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        COUNT,
        "duplicate keys"
    );
    for key in &keys {
        ApiKey::parse(key).unwrap();
    }

    let mut command = keyrack();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .args(["--metrics-listen", "off", "--data-dir"])
        .arg(data.path());
    let mut served = LoggedChild::spawn(command, "serve");
    let grpc = served.wait_for_line("gRPC server listening", TIMEOUT, |line| {
        let after = &line[line.find("gRPC server listening")?..];
        let value = &after[after.find("address=")? + "address=".len()..];
        Some(value.split_whitespace().next()?.to_owned())
    });

    let mut health = Command::new(&binary);
    health.args(["health", "--addr", &grpc, "--timeout", "10s"]);
    assert!(run(health).contains("SERVING after"));
    let mut touch = Command::new(&binary);
    touch
        .args(["touch", "--addr", &grpc, "--concurrency", "4"])
        .arg("--keys-file")
        .arg(&keys_file);
    let touched = run(touch);
    assert!(
        touched.contains(&format!("VerifyKey for {COUNT} keys"))
            && touched.contains("not VALID: 0"),
        "{touched}"
    );
    let stopped = served.terminate(TIMEOUT);
    assert!(stopped.success(), "{stopped}: {}", served.stderr());
    assert!(
        !served.stderr().contains("Created organization"),
        "the seeded organization must be the server's \"default\":\n{}",
        served.stderr()
    );

    let json_path = work.path().join("cold.json");
    let mut cold = Command::new(&binary);
    cold.args(["cold", "--samples", &COUNT.to_string()])
        .arg("--keys-file")
        .arg(&keys_file)
        .arg("--json")
        .arg(&json_path);
    store_args(&mut cold);
    let printed = run(cold);
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(figures["cold"]["samples"], COUNT, "{printed}");
    assert_eq!(figures["warm"]["samples"], COUNT, "{printed}");
    assert_eq!(figures["errors"], 0, "{printed}");
    assert_eq!(figures["cached_after_cold"], COUNT, "{printed}");
    assert!(
        figures["cold"]["p99_us"].as_f64().unwrap() > 0.0,
        "{printed}"
    );

    for output in [&seeded, &touched, &printed] {
        assert!(
            keys.iter().all(|key| !output.contains(key)),
            "a key leaked into the output"
        );
    }
}

/// Runs a `key-scale` command that must succeed; returns what it printed on both streams.
fn run(command: Command) -> String {
    let ran = run_bounded(command, TIMEOUT);
    ran.expect_success("key-scale");
    ran.text()
}

/// The `key-scale` binary, built once per test run, as `key-bench` is in bench.rs: Cargo only
/// builds the binaries of the package under test, so this asks Cargo for it.
async fn key_scale_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = BINARY.get() {
        return path.clone();
    }
    let path = tokio::task::spawn_blocking(build_key_scale).await.unwrap();
    BINARY.get_or_init(|| path).clone()
}

fn build_key_scale() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        // `--workspace` resolves features as the test run did, so its dependencies are reused.
        .args(["build", "--workspace", "--bin", "key-scale"])
        .arg("--message-format=json-render-diagnostics");
    let stdout = run_bounded(command, BUILD_TIMEOUT).into_success("cargo build --bin key-scale");
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "key-scale")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no key-scale executable:\n{stdout}"))
}
