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
    let mut script = Command::new(venv_tool("python"));
    script
        .arg(repo_root().join("tests/browser/console.py"))
        .env("KEYRACK_URL", format!("http://{address}"))
        .env(
            "KEYRACK_ADMIN_KEY",
            data_dir.path().join("bootstrap-admin-key"),
        )
        .env("KEYRACK_SCREENSHOTS", &screenshots)
        .env("KEYRACK_CHROMIUM", on_path("chromium"))
        .stdin(Stdio::null());
    loopback_only(&mut script);
    let output = script.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stderr}\n{stdout}\nkeyrack serve's log:\n{}",
        output.status,
        served.stderr()
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("no summary ({error}):\n{stdout}"));
    let pages = summary["pages"].as_array().unwrap();
    assert!(pages.len() >= 10, "{summary}");
    for page in pages {
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
    // No key or token reached the service's log.
    let log = served.stderr();
    for secret in ["sk_live_", "krs_", "krl_"] {
        assert!(!log.contains(secret), "{secret}… in the log:\n{log}");
    }
    served.terminate(Duration::from_secs(10));
}
