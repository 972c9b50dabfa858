//! Migrations and processes sharing a database: replicas started together on an empty
//! PostgreSQL database migrate once and all serve; `serve --migrate check` refuses a schema
//! that is behind and `keyrack migrate status` says what is pending; a second `serve` on one
//! SQLite database is refused.

use std::{path::Path, process::Command};

use crate::{
    helpers::{Backend, TestDatabase, backends},
    process::{LoggedChild, TIMEOUT, keyrack, repo_root, run_bounded},
    redis_limiter::logged_address,
};

const PEPPER: &str = "migration-test-pepper-0123456789abcdef0123";

/// How many migrations the binary has: the files `mYYYYMMDD_NNNNNN_what.rs` in key-store's
/// `migration/` (one each), so adding a migration does not break these tests.
fn migration_count() -> usize {
    std::fs::read_dir(repo_root().join("crates/key-store/src/migration"))
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("m20") && name.ends_with(".rs")
        })
        .count()
}

/// `keyrack serve` (gRPC only) on `data_dir`, with `env` and `args` added.
fn serve(data_dir: &Path, env: &[(&str, String)], args: &[&str]) -> Command {
    let mut command = keyrack();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .args(["--metrics-listen", "off"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().map(|(name, value)| (name, value)));
    command
}

fn listening(serving: &mut LoggedChild) -> String {
    serving.wait_for_line("gRPC server listening", TIMEOUT, |line| {
        logged_address(line, "gRPC server listening")
    })
}

/// `keyrack migrate` or `keyrack migrate status` on `data_dir` with `env`.
fn migrate(data_dir: &Path, env: &[(&str, String)], status: bool) -> crate::process::Ran {
    let mut command = keyrack();
    command.arg("migrate");
    if status {
        command.arg("status");
    }
    command
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().map(|(name, value)| (name, value)));
    run_bounded(command, TIMEOUT)
}

/// Three replicas started at the same moment on an empty PostgreSQL database: one applies the
/// migrations under the advisory lock, the others wait for it and find nothing pending; all
/// three serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_started_together_on_an_empty_database_migrate_once_and_all_serve() {
    let Some(Backend::Postgres(base)) = backends().into_iter().nth(1) else {
        eprintln!("skipped: KEYRACK_TEST_DATABASE_URL is not set");
        return;
    };
    let database = TestDatabase::create(&base).await;
    let env = [
        ("KEYRACK_DATABASE_URL", database.url()),
        ("KEYRACK_PEPPER", PEPPER.to_owned()),
    ];
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas: Vec<LoggedChild> = dirs
        .iter()
        .map(|dir| LoggedChild::spawn(serve(dir.path(), &env, &[]), "serve"))
        .collect();
    for replica in &mut replicas {
        listening(replica);
    }
    let status = migrate(dirs[0].path(), &env, true).into_success("migrate status");
    let all = migration_count();
    assert!(
        status.ends_with(&format!("0 pending of {all}\n")),
        "{status}"
    );
    for mut replica in replicas {
        let stopped = replica.terminate(TIMEOUT);
        assert!(stopped.success(), "{stopped}:\n{}", replica.stderr());
    }
}

/// A deployment that migrates with a job starts its replicas with `--migrate check`: they
/// refuse a schema that is behind, naming what is pending, and start once it is current.
#[test]
fn serve_with_migrate_check_refuses_a_schema_behind_and_status_lists_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let env = [];
    let all = migration_count();
    let status = migrate(dir.path(), &env, true).into_success("migrate status");
    assert!(
        status.contains("pending  m20261128_000001_create_tables")
            && status.ends_with(&format!("{all} pending of {all}\n")),
        "{status}"
    );
    let refused = run_bounded(serve(dir.path(), &env, &["--migrate", "check"]), TIMEOUT);
    assert!(!refused.status.success(), "{}", refused.text());
    assert!(
        refused.stderr.contains(&format!(
            "the database schema is not current: {all} migration(s) pending"
        )) && refused.stderr.contains("run `keyrack migrate` first"),
        "{}",
        refused.stderr
    );
    migrate(dir.path(), &env, false).into_success("migrate");
    let status = migrate(dir.path(), &env, true).into_success("migrate status");
    assert!(
        status.contains("applied  m20261128_000001_create_tables")
            && status.ends_with(&format!("0 pending of {all}\n")),
        "{status}"
    );
    let mut serving = LoggedChild::spawn(serve(dir.path(), &env, &["--migrate", "check"]), "serve");
    listening(&mut serving);
    assert!(serving.terminate(TIMEOUT).success());
}

/// SQLite is one process: a second `serve` on the same database stops with a clear error,
/// and starts once the first has stopped.
#[test]
fn a_second_serve_on_one_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = LoggedChild::spawn(serve(dir.path(), &[], &[]), "serve");
    listening(&mut first);
    let second = run_bounded(serve(dir.path(), &[], &[]), TIMEOUT);
    assert!(!second.status.success(), "{}", second.text());
    assert!(
        second
            .stderr
            .contains("another `keyrack serve` is already running on")
            && second.stderr.contains("use PostgreSQL"),
        "{}",
        second.stderr
    );
    assert!(first.terminate(TIMEOUT).success());
    let mut again = LoggedChild::spawn(serve(dir.path(), &[], &[]), "serve");
    listening(&mut again);
    assert!(again.terminate(TIMEOUT).success());
}
