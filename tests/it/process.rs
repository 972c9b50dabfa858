//! Child processes for the tests: the external programs they drive (nginx, curl, node, python,
//! schemathesis) and where to find them. Every wait is bounded and every child is killed, with
//! everything it started, when its test ends, because a hanging test is worse than a failing
//! one and a process that outlives its test holds ports and files.
//!
//! Each child runs in a process group of its own, so that killing it also kills what it
//! started: the curl under a bash script, the workers of an nginx master.

use std::{
    ffi::OsStr,
    fs::File,
    io::Read,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// The longest a single step (a start, a script, a shutdown) may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// What `tools/install` puts in place and the tests need.
pub(crate) const INSTALL_HINT: &str = "run tools/install (it installs nginx, and requests and \
     schemathesis into tools/venv, and checks for node)";

/// The repository's root directory.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A program `tools/install` put into `tools/venv/bin`; a missing one fails the test with the
/// fix, since skipping would hide that nothing ran.
pub(crate) fn venv_tool(name: &str) -> PathBuf {
    let path = repo_root().join("tools/venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// A program on `PATH`; a missing one fails the test with the fix.
pub(crate) fn on_path(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH: {INSTALL_HINT}"))
}

/// Proxy settings that curl, requests and schemathesis would follow.
const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// Keeps `command`'s HTTP requests on loopback: no proxy from the environment is followed.
pub(crate) fn loopback_only(command: &mut Command) {
    for name in PROXY_VARS {
        command.env_remove(name);
    }
    command.env("NO_PROXY", "127.0.0.1,localhost");
}

/// A loopback port that was free a moment ago: bound to 127.0.0.1:0, then released. Another
/// process may take it before the caller binds it, so callers retry on "address in use".
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A child process in a process group of its own, killed with its whole group when dropped.
pub(crate) struct ChildGuard {
    child: Child,
    what: String,
}

impl ChildGuard {
    /// Starts `command` in a new process group. `what` names it in failure messages.
    pub(crate) fn spawn(mut command: Command, what: &str) -> ChildGuard {
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what} ({command:?}): {error}"));
        ChildGuard {
            child,
            what: what.to_owned(),
        }
    }

    /// The exit status, if the child has exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the child to exit within `timeout`; kills its group and fails the test
    /// otherwise.
    pub(crate) fn wait_bounded(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("{} did not finish within {timeout:?}", self.what);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the child's process group with SIGKILL and reaps the child.
    pub(crate) fn kill(&mut self) {
        if self.try_wait().is_some() {
            // The leader has exited; members it left behind still carry its group id.
            kill_group(self.child.id());
            return;
        }
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    /// A test that fails halfway must not leave a process running behind it.
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to every process of group `pgid` (the group a [`ChildGuard`] made, whose id is the
/// leader's pid). Errors are ignored: the group may already be gone.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// What a finished program printed, decoded leniently.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    /// Stdout of a run that must have succeeded.
    pub(crate) fn expect_success(&self, what: &str) -> &str {
        assert!(
            self.status.success(),
            "{what} failed with {}:\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

/// Runs `command` to completion within `timeout`, with no stdin, collecting stdout and stderr.
/// On timeout the command and everything it started are killed and the test fails.
pub(crate) fn run_bounded(mut command: Command, timeout: Duration) -> Ran {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = describe(&command);
    let mut child = ChildGuard::spawn(command, &what);
    // Both pipes are drained while the child runs, so a large output cannot block it.
    let stdout = drain(child.child.stdout.take().unwrap());
    let stderr = drain(child.child.stderr.take().unwrap());
    let status = child.wait_bounded(timeout);
    // The leader has exited; a member of its group that still holds a pipe would keep the
    // readers waiting.
    child.kill();
    Ran {
        status,
        stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    }
}

/// The program and its arguments, for messages.
pub(crate) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The contents of a file, or a note that it cannot be read (for failure messages).
pub(crate) fn read_or_note(path: &Path) -> String {
    let mut text = String::new();
    match File::open(path).and_then(|mut file| file.read_to_string(&mut text)) {
        Ok(_) => text,
        Err(error) => format!("<cannot read {}: {error}>", path.display()),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
