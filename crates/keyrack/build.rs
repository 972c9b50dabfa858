//! Names the commit the binary is built from (`keyrack_build_info`): `KEYRACK_COMMIT` if set
//! (an image build without `.git`), else `git rev-parse`, else `unknown`.

use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=KEYRACK_COMMIT");
    let git = Path::new("../../.git");
    for watched in ["HEAD", "refs/heads", "packed-refs"] {
        let path = git.join(watched);
        // A path that does not exist would rerun this script on every build.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = std::env::var("KEYRACK_COMMIT")
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .or_else(|| {
            let output = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KEYRACK_COMMIT={commit}");
}
