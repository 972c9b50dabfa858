//! The scheduled rotation job, `scripts/rotate-due-keys.sh`, run as a cron job would run it:
//! the real script, the real grpcurl, against a real server whose clock the test moves.

use std::process::Command;

use crate::{
    helpers::{Backend, spawn_app},
    process::{TIMEOUT, repo_root, run_bounded, tool},
};
use chrono::TimeDelta;

#[tokio::test]
async fn the_scheduled_job_rotates_exactly_the_keys_that_are_due() {
    let app = spawn_app(&Backend::Sqlite).await;
    let old = app.create_key("old", &["chat"], "").await;
    app.clock.advance(TimeDelta::days(60));
    let young = app.create_key("young", &["chat"], "").await;
    app.clock.advance(TimeDelta::days(31));

    let stdout = run_job(&app, &app.admin_key).await;

    // The 91-day-old key and the bootstrap admin key are due; the 31-day-old key is not.
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let rotated: Vec<&str> = lines
        .iter()
        .map(|line| line["rotatedId"].as_str().unwrap())
        .collect();
    let old_id = old.api_key.unwrap().id;
    assert!(rotated.contains(&old_id.as_str()), "{stdout}");
    assert!(
        !rotated.contains(&young.api_key.unwrap().id.as_str()),
        "{stdout}"
    );
    assert_eq!(lines.len(), 2, "{stdout}");

    // Each line's key is the working successor; the old key still works for the grace hour.
    let line = lines
        .iter()
        .find(|line| line["rotatedId"] == old_id.as_str())
        .unwrap();
    let new_key = line["key"].as_str().unwrap();
    assert_eq!(line["name"], "old");
    assert!(app.verify(new_key, &["chat"]).await.valid);
    assert!(app.verify(&old.key, &["chat"]).await.valid);
    app.clock.advance(TimeDelta::minutes(61));
    assert_eq!(
        app.verify(&old.key, &["chat"]).await.reason,
        "expired_api_key"
    );

    // The bootstrap admin key was due too, and its old self has now expired: the next run uses
    // its successor, and finds nothing left to rotate.
    let admin_line = lines
        .iter()
        .find(|line| line["name"] == "Bootstrap admin key")
        .unwrap();
    let new_admin = admin_line["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.verify(&app.admin_key, &[]).await.reason,
        "expired_api_key"
    );
    let second = run_job(&app, &new_admin).await;
    assert_eq!(second.trim(), "", "nothing is due any more");
}

/// Runs the job the way the README's cron line does. grpcurl blocks, so off the runtime.
async fn run_job(app: &crate::helpers::TestApp, admin_key: &str) -> String {
    let address = app.addr.to_string();
    let admin = admin_key.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(repo_root().join("scripts/rotate-due-keys.sh"));
        command
            .args([address.as_str(), "3600s"])
            .env("KEYRACK_ADMIN_KEY", admin)
            .env("GRPCURL", tool("grpcurl", "KEYRACK_GRPCURL"));
        run_bounded(command, TIMEOUT).into_success("rotate-due-keys.sh")
    })
    .await
    .unwrap()
}

/// The job's secrets stay out of other users' reach: the admin key never reaches a command
/// line (where `ps` shows it), and the file of new keys is the owner's alone.
#[tokio::test]
async fn the_job_keeps_the_admin_key_off_command_lines_and_its_output_private() {
    use std::os::unix::fs::PermissionsExt;

    let app = spawn_app(&Backend::Sqlite).await;
    app.create_key("old", &["chat"], "").await;
    app.clock.advance(TimeDelta::days(91));
    let dir = tempfile::tempdir().unwrap();
    // grpcurl, through a wrapper that records every argument list it is given.
    let argv_log = dir.path().join("argv.log");
    let wrapper = dir.path().join("grpcurl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            argv_log.display(),
            tool("grpcurl", "KEYRACK_GRPCURL").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = dir.path().join("rotated.jsonl");

    let address = app.addr.to_string();
    let admin = app.admin_key.clone();
    let (wrapper_path, out_path) = (wrapper.clone(), out.clone());
    let stdout = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(repo_root().join("scripts/rotate-due-keys.sh"));
        command
            .args([address.as_str(), "3600s"])
            .arg(&out_path)
            .env("KEYRACK_ADMIN_KEY", admin)
            .env("GRPCURL", wrapper_path);
        run_bounded(command, TIMEOUT).into_success("rotate-due-keys.sh")
    })
    .await
    .unwrap();

    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert!(argv.contains("RotateKey"), "{argv}");
    assert!(
        !argv.contains(&app.admin_key),
        "the admin key was on a command line"
    );
    assert_eq!(stdout.trim(), "", "new keys go to the file only");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", out.display());
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 2, "{written}");
}
