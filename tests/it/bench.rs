//! The load generator, `key-bench`, run as a user runs it: the real binary, over real gRPC,
//! against a real server, for about a second per run. Speed is not asserted (that belongs to
//! the benchmarks themselves); what is asserted is that a run measures both RPCs, reports their
//! ratio and counts every request, without a single failure.

use std::{path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use crate::{
    helpers::{Backend, TestApp, backends, spawn_app},
    process::{TIMEOUT, repo_root, run_bounded},
};

/// The first build of `key-bench` may compile its dependencies.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_reports_verify_key_against_health_with_their_ratio_and_no_errors() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (table, json) = run_key_bench(
            &app,
            &[
                "--mode",
                "closed",
                "--concurrency",
                "4",
                "--connections",
                "2",
            ],
        )
        .await;

        assert!(table.contains("grpc.health.v1.Health/Check"), "{table}");
        assert!(table.contains("keyrack.v1.KeyService/VerifyKey"), "{table}");
        assert!(
            table.contains("ratio VerifyKey/Health throughput: "),
            "{table}"
        );
        let rows = json["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{json:#}");
        assert_rows_clean(rows, &json);
        assert!(json["ratio_verify_health_throughput"].as_f64().unwrap() > 0.0);
    }
}

/// `--server-pid` reports the server's CPU time per call of each target: here the server runs
/// in this test's own process, so its pid is ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_cpu_time_per_call_is_reported_for_each_target() {
    let backend = backends().remove(0);
    let app = spawn_app(&backend).await;
    let pid = std::process::id().to_string();
    let (table, _) = run_key_bench(&app, &["--server-pid", &pid]).await;
    let section = table
        .split("server CPU per call")
        .nth(1)
        .unwrap_or_else(|| panic!("no server CPU table:\n{table}"));
    let micros = |name: &str| -> f64 {
        let line = section
            .lines()
            .find(|line| line.contains(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{table}"));
        line.split_whitespace()
            .rev()
            .find_map(|word| word.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no figure in {line:?}"))
    };
    assert!(micros("grpc.health.v1.Health/Check") > 0.0, "{table}");
    assert!(section.contains("× Health/Check)"), "{table}");
    assert!(micros("keyrack.v1.KeyService/VerifyKey") > 0.0, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_with_a_flood_reports_the_valid_keys_latency_under_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (table, json) =
            run_key_bench(&app, &["--mode", "open", "--rate", "200", "--flood", "0.5"]).await;

        assert!(
            table.contains("VerifyKey valid key, under flood"),
            "{table}"
        );
        assert!(
            table.contains("ratio valid-key p99 under flood / quiet: "),
            "{table}"
        );
        assert!(table.contains("generator send lag p99"), "{table}");
        let rows = json["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 4, "{json:#}");
        assert_rows_clean(rows, &json);
        assert_eq!(json["rate"], 200.0);
        assert!(json["ratio_flood_valid_p99"].as_f64().unwrap() > 0.0);
        // Half the flood phase's requests carried random keys, each refused as it should be.
        let requests = |name: &str| {
            rows.iter().find(|row| row["name"] == name).unwrap()["requests"]
                .as_u64()
                .unwrap()
        };
        let (valid, random) = (
            requests("VerifyKey valid key, under flood"),
            requests("VerifyKey random keys (flood)"),
        );
        assert!(
            valid.abs_diff(random) <= 1,
            "{valid} valid, {random} random"
        );
    }
}

#[tokio::test]
async fn a_key_the_server_refuses_stops_the_run_before_any_load_with_the_reason() {
    let app = spawn_app(&Backend::Sqlite).await;
    let unknown = key_core::ApiKey::generate(
        key_core::Environment::Live,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let mut command = Command::new(key_bench_binary().await);
    command
        .args(["--addr", &format!("http://{}", app.addr)])
        .env("KEYRACK_BENCH_KEY", unknown.expose());
    let ran = tokio::task::spawn_blocking(move || run_bounded(command, TIMEOUT))
        .await
        .unwrap();

    assert_eq!(ran.status.code(), Some(1), "{}", ran.text());
    assert!(
        ran.stderr.contains(
            "the server does not accept the benchmark key for scope \"chat\": \
             VerifyKey refused the benchmark key: invalid_api_key"
        ),
        "{}",
        ran.text()
    );
    assert!(
        ran.stdout.is_empty(),
        "no table without figures: {}",
        ran.stdout
    );
    assert!(!ran.text().contains(unknown.expose()), "the key leaked");
}

/// Every row counted requests and no errors.
pub(crate) fn assert_rows_clean(rows: &[serde_json::Value], json: &serde_json::Value) {
    for row in rows {
        assert!(row["requests"].as_u64().unwrap() > 0, "{json:#}");
        assert_eq!(row["errors"], 0, "{json:#}");
        assert!(row["p99_us"].as_f64().unwrap() > 0.0, "{json:#}");
    }
}

/// Creates a `chat` key on `app`, runs `key-bench` against it with `extra` flags, 2 rounds of
/// 250 ms per target, and returns the printed table and the JSON figures. The key goes in
/// through the environment and must appear in neither output.
async fn run_key_bench(app: &TestApp, extra: &[&str]) -> (String, serde_json::Value) {
    let key = app.create_key("bench", &["chat"], "").await.key;
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("figures.json");
    let mut command = Command::new(key_bench_binary().await);
    command
        .args(["--addr", &format!("http://{}", app.addr)])
        .args(["--duration", "250ms", "--rounds", "2", "--warmup", "100ms"])
        .arg("--json")
        .arg(&json_path)
        .args(extra)
        .env("KEYRACK_BENCH_KEY", &key);
    let ran = tokio::task::spawn_blocking(move || run_bounded(command, TIMEOUT))
        .await
        .unwrap();
    let table = ran.expect_success("key-bench").to_owned();
    assert!(!ran.text().contains(&key), "the key leaked into the output");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    (table, json)
}

/// The `key-bench` binary, built once per test run. Cargo only builds the binaries of the
/// package under test (`keyrack`), so this asks Cargo for it (only that binary: the `keyrack`
/// binary other tests are running is left alone) and reads its path from Cargo's messages.
pub(crate) async fn key_bench_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = BINARY.get() {
        return path.clone();
    }
    let path = tokio::task::spawn_blocking(build_key_bench).await.unwrap();
    BINARY.get_or_init(|| path).clone()
}

fn build_key_bench() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        // `--workspace` resolves features as `cargo test --workspace` does, so the build reuses
        // the test run's compiled dependencies instead of building variants of its own.
        .args(["build", "--workspace", "--bin", "key-bench"])
        .arg("--message-format=json-render-diagnostics");
    let stdout = run_bounded(command, BUILD_TIMEOUT).into_success("cargo build -p key-bench");
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "key-bench")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no key-bench executable:\n{stdout}"))
}
