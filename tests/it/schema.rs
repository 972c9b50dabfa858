//! schemathesis (PyPI; `tools/install` puts it in tools/venv) against the gateway's own
//! `/openapi.json`: generated requests, valid and invalid, to every operation, with the
//! bootstrap admin key. It must find no server error and no response that breaks the document:
//! status codes, content types, headers and bodies all as declared.
//!
//! The run is reproducible: a fixed seed, one worker and no example database give the same
//! requests in the same order every time. It reaches only the gateway on 127.0.0.1: the
//! document declares no servers, so the base URL is where the document was loaded from.

use std::{process::Command, time::Duration};

use crate::{
    helpers::{Backend, spawn_app},
    process::{loopback_only, run_bounded, venv_tool},
};

/// The checks, each a way a response can break the document.
const CHECKS: &str = "not_a_server_error,response_schema_conformance,status_code_conformance,\
                      content_type_conformance,response_headers_conformance";
/// Generated cases per operation and phase.
const MAX_EXAMPLES: &str = "20";
/// Any fixed value: the same seed generates the same requests.
const SEED: &str = "20261206";
/// The whole run takes 5–10 s on the 2-core machine; this bounds a stuck one.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    // About the HTTP surface, not storage: SQLite is enough.
    let app = spawn_app(&Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();

    let mut command = Command::new(venv_tool("schemathesis"));
    command
        .arg("run")
        .arg(format!("{}/openapi.json", app.http))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", app.admin_key),
        ])
        .args(["--checks", CHECKS])
        // Disabling takes no body, so any generated call that finds the admin key's id (the
        // key list links to it) disables the key the whole run uses, whatever the seed. Its
        // answer is the key record `enable` answers with, which is fuzzed.
        .args(["--exclude-path", "/api/api-keys/{id}/disable"])
        // A leaked-key report is authenticated by GitHub's signature, which schemathesis cannot
        // make: every call would be refused 401 before the body is read (tests/it/leaked_keys.rs
        // covers the route).
        .args(["--exclude-path", "/api/secret-scanning/reports"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        // No example database: what an earlier run found must not change this one.
        .args(["--generation-database", "none"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .arg("--no-color")
        // Anything schemathesis writes (reports, caches) goes to a directory of this test.
        .current_dir(work.path());
    loopback_only(&mut command);
    // Blocking: the gateway under test is served by this test's runtime.
    let ran = tokio::task::spawn_blocking(move || run_bounded(command, RUN_TIMEOUT))
        .await
        .unwrap();
    assert!(
        ran.status.success(),
        "schemathesis failed ({}):\n{}\n{}",
        ran.status,
        ran.stdout,
        ran.stderr
    );
    // Its summary, for the log of a passing run: operations, phases, cases, warnings.
    let summary = ran
        .stdout
        .find("SUMMARY")
        .map_or("", |at| &ran.stdout[at..]);
    eprintln!("schemathesis {summary}");
    assert!(
        ran.stdout.contains("generated") && ran.stdout.contains("passed"),
        "schemathesis reported no test cases:\n{}",
        ran.stdout
    );

    // Its stateful phase may follow a link from the key list to `DELETE /api/api-keys/{id}`
    // with the admin key's own id; every request after that would be answered 401 and prove
    // little. The seed above keeps the key alive; if a change of the document alters the
    // sequence, pick another seed.
    let verdict = app.verify(&app.admin_key, &["admin"]).await;
    assert!(
        verdict.valid,
        "schemathesis revoked or disabled its own admin key ({}), so part of its run only saw \
         401s: change SEED. Its output:\n{}",
        verdict.reason, ran.stdout
    );
}
