//! Child processes for the tests: the external programs they drive (the `keyrack` binary,
//! grpcurl, nginx, curl, node, python, schemathesis) and where to find them. Every wait is
//! bounded and every child is killed, with everything it started, when its test ends, because a
//! hanging test is worse than a failing one and a process that outlives its test holds ports and
//! files.
//!
//! Each child runs in a process group of its own, so that killing it also kills what it
//! started: the curl under a bash script, the workers of an nginx master.

use std::{
    ffi::OsStr,
    fs::File,
    io::{BufRead, BufReader, Read},
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// The longest a single step (a start, a script, a shutdown) may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// What `tools/install` puts in place and the tests need.
pub(crate) const INSTALL_HINT: &str = "run tools/install (it installs nginx and curl, and \
     grpcurl, requests and schemathesis into tools/venv, and checks for node)";

/// The repository's root directory.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A program `tools/install` put into `tools/venv/bin`; a missing one fails the test with the
/// fix, since skipping would hide that nothing ran.
pub(crate) fn venv_tool(name: &str) -> PathBuf {
    let path = venv_path(name);
    assert!(
        path.is_file(),
        "{} is missing: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// A program the developer may point to with the variable `override_var`, else the copy
/// `tools/install` put into `tools/venv/bin`, else the one on `PATH`. A missing one, or an
/// override that names no file, fails the test with the fix.
pub(crate) fn tool(name: &str, override_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{override_var}={} does not exist: {INSTALL_HINT}, or set {override_var}",
            path.display()
        );
        return path;
    }
    let installed = venv_path(name);
    if installed.is_file() {
        return installed;
    }
    find_on_path(name)
        .unwrap_or_else(|| panic!("{name} not found: {INSTALL_HINT}, or set {override_var}"))
}

fn venv_path(name: &str) -> PathBuf {
    repo_root().join("tools/venv/bin").join(name)
}

/// A program on `PATH`; a missing one fails the test with the fix.
pub(crate) fn on_path(name: &str) -> PathBuf {
    find_on_path(name).unwrap_or_else(|| panic!("{name} is not on PATH: {INSTALL_HINT}"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
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

/// The bootstrap admin key `keyrack serve` wrote into `data_dir` at its first start.
pub(crate) fn bootstrap_key(data_dir: &Path) -> String {
    let path = data_dir.join("bootstrap-admin-key");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
        .trim()
        .to_owned()
}

/// The `keyrack` binary under test, with no inherited `KEYRACK_*` configuration (every
/// variable the binary reads starts so: `KEYRACK_LISTEN`, `KEYRACK_HTTP_LISTEN`,
/// `KEYRACK_UPSTREAM`, `KEYRACK_DATA_DIR`, `KEYRACK_PEPPER`, `KEYRACK_LOG`, …).
pub(crate) fn keyrack() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyrack"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYRACK_") {
            command.env_remove(name);
        }
    }
    command
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

    /// Sends `signal` (a name such as `TERM`) to the child alone, not to its group.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = send_signal(signal, &pid)
            .unwrap_or_else(|error| panic!("cannot run kill -{signal} {pid}: {error}"));
        assert!(
            status.success(),
            "kill -{signal} {pid} ({}) failed: {status}",
            self.what
        );
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
    let _ = send_signal("KILL", &format!("-{pgid}"));
}

/// `kill -<signal> -- <target>`, where the target is a pid or a negated process group id.
fn send_signal(signal: &str, target: &str) -> std::io::Result<ExitStatus> {
    Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// A long-running child whose stderr a background thread collects line by line, so that a test
/// can wait for a log line (the one that tells the bound port, say) and quote the whole log when
/// something fails. Stdin and stdout are `/dev/null`. Dropping it kills the child's group.
pub(crate) struct LoggedChild {
    child: ChildGuard,
    log: Arc<Mutex<String>>,
    lines: Receiver<String>,
    reader: Option<JoinHandle<()>>,
}

impl LoggedChild {
    /// Starts `command` in a process group of its own. `what` names it in failure messages.
    pub(crate) fn spawn(mut command: Command, what: &str) -> LoggedChild {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(command, what);
        let pipe = child.child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (sender, lines) = mpsc::channel();
        let reader = collect_lines(pipe, Arc::clone(&log), sender);
        LoggedChild {
            child,
            log,
            lines,
            reader: Some(reader),
        }
    }

    /// The first value that `find` extracts from a line of stderr not yet looked at, waiting
    /// up to `timeout`. `expected` describes the line for the failure message, which quotes the
    /// log: the time ran out, or stderr closed first (the child exited).
    pub(crate) fn wait_for_line<T>(
        &mut self,
        expected: &str,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    if let Some(found) = find(&line) {
                        return found;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} did not log {expected:?} within {timeout:?}; stderr:\n{}",
                    self.child.what,
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait_bounded(timeout);
                    self.join_reader();
                    panic!(
                        "{} exited ({status}) before logging {expected:?}; stderr:\n{}",
                        self.child.what,
                        self.stderr()
                    )
                }
            }
        }
    }

    /// Everything written to stderr so far (all of it once [`LoggedChild::terminate`] returned).
    pub(crate) fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The child's process id, e.g. to read its `/proc` entries.
    pub(crate) fn id(&self) -> u32 {
        self.child.child.id()
    }

    /// Kills the child with SIGKILL, as a crash or the OOM killer would: no handler runs, no
    /// shutdown. Returns once it has exited and the last line of stderr was read.
    pub(crate) fn kill(&mut self) {
        self.join_reader();
    }

    /// Sends SIGTERM, then waits up to `timeout` for the exit and for the last line of stderr.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.child.signal("TERM");
        let status = self.child.wait_bounded(timeout);
        self.join_reader();
        status
    }

    fn join_reader(&mut self) {
        // The leader has exited; a member of its group that still held stderr would keep the
        // reader waiting.
        self.child.kill();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

/// Reads `pipe` line by line into `log` and sends each line, until the pipe closes. Lines are
/// decoded leniently, so that one odd byte cannot stop the reading and block the child.
fn collect_lines(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    lines: Sender<String>,
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
                    // Nobody may be waiting any more; the line is in the log all the same.
                    let _ = lines.send(line.trim_end().to_owned());
                }
            }
        }
    })
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

    /// Stdout of a run that must have succeeded, owned.
    pub(crate) fn into_success(self, what: &str) -> String {
        self.expect_success(what);
        self.stdout
    }

    /// Stdout followed by stderr, for checks on whatever the program printed.
    pub(crate) fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
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
