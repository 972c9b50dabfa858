//! The web console in a real browser: `tests/browser/console.py` drives Debian's Chromium with
//! Playwright through every page against a real `keyrack serve` on its embedded default
//! (SQLite), runs axe-core on each, and writes each page's screenshot into
//! `target/console-screenshots/`. The flows are listed at the top of the script.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::process::{LoggedChild, keyrack, loopback_only, on_path, repo_root, venv_tool};

const GATEWAY_LISTENING: &str = "HTTP gateway listening";

#[test]
fn the_console_works_in_chromium_with_no_serious_accessibility_violation() {
    let (summary, mut served, _data_dir) = run_browser_script("tests/browser/console.py");
    let pages = summary["pages"].as_array().unwrap();
    assert!(pages.len() >= 10, "{summary}");
    assert_accessible(&summary);
    // No key or token reached the service's log.
    let log = served.stderr();
    for secret in ["sk_live_", "krs_", "krl_"] {
        assert!(!log.contains(secret), "{secret}… in the log:\n{log}");
    }
    served.terminate(Duration::from_secs(10));
}

/// OAuth 2.0's five steps (`tests/browser/oauth.py`): an application registered on the
/// console's page, authlib's OAuth2Session with PKCE, the person's sign-in and consent in
/// Chromium, the code exchanged at `/oauth/token`, the access token through forward-auth.
#[test]
fn an_oauth_client_gets_a_persons_consent_in_chromium_and_its_token_is_verified() {
    let (summary, mut served, _data_dir) = run_browser_script("tests/browser/oauth.py");
    let pages = summary["pages"].as_array().unwrap();
    assert!(pages.len() >= 5, "{summary}");
    assert_accessible(&summary);
    // No token, code, key or sign-in link reached the service's log.
    let log = served.stderr();
    for secret in ["sk_live_", "krs_", "krl_", "oat_", "ort_", "code="] {
        assert!(!log.contains(secret), "{secret}… in the log:\n{log}");
    }
    served.terminate(Duration::from_secs(10));
}

/// Every page of `summary` has its screenshot and no serious or critical axe-core violation.
fn assert_accessible(summary: &Value) {
    for page in summary["pages"].as_array().unwrap() {
        let name = page["page"].as_str().unwrap();
        assert!(
            std::path::Path::new(page["screenshot"].as_str().unwrap()).is_file(),
            "no screenshot of {name}"
        );
        assert_eq!(
            summary["axe"][name]["serious_or_critical"],
            serde_json::json!([]),
            "{name}"
        );
    }
}

/// Runs the browser `script` against a fresh `keyrack serve` (SQLite, in a temporary data
/// directory); its JSON summary line, the still running server and its data directory.
fn run_browser_script(script: &str) -> (Value, LoggedChild, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = keyrack();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--data-dir",
        ])
        .arg(data_dir.path())
        .env("KEYRACK_LOG", "info");
    let mut served = LoggedChild::spawn(command, "keyrack serve");
    let address = served.wait_for_line(GATEWAY_LISTENING, Duration::from_secs(30), |line| {
        let rest = line.split(GATEWAY_LISTENING).nth(1)?;
        let at = rest.split("address=").nth(1)?;
        Some(at.split_whitespace().next()?.to_owned())
    });
    let screenshots = repo_root().join("target/console-screenshots");
    let mut browser = Command::new(venv_tool("python"));
    browser
        .arg(repo_root().join(script))
        .env("KEYRACK_URL", format!("http://{address}"))
        .env(
            "KEYRACK_ADMIN_KEY",
            data_dir.path().join("bootstrap-admin-key"),
        )
        .env("KEYRACK_SCREENSHOTS", &screenshots)
        .env("KEYRACK_CHROMIUM", on_path("chromium"))
        .stdin(Stdio::null());
    loopback_only(&mut browser);
    let output = browser.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stderr}\n{stdout}\nkeyrack serve's log:\n{}",
        output.status,
        served.stderr()
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("no summary ({error}):\n{stdout}"));
    (summary, served, data_dir)
}
