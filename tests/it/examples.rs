//! The product docs' client examples (authentication.md), kept as real scripts in
//! tests/examples/ with only the base URL and the key replaced, run the way a user runs them:
//! curl from bash, the JavaScript `fetch` example under Node, the Python `requests` example
//! under tools/venv's Python. They talk to a real nginx (tests/nginx/nginx.conf.template) that
//! serves Keyrack's API under `/api/` and protects the platform's `/api/chat` with
//! `auth_request` to the gateway.
//!
//! Each script prints the response body, then the HTTP status on a line of its own.

use std::process::Command;

use serde_json::Value;

use crate::{
    helpers::{Backend, spawn_app},
    process::{
        INSTALL_HINT, Ran, TIMEOUT, loopback_only, on_path, repo_root, run_bounded, venv_tool,
    },
    proxy::{LACKS_CHAT, Nginx, UPSTREAM_REPLY},
};

/// The variables the scripts read: the API's base URL and the key to send.
const URL_VAR: &str = "KEYRACK_URL";
const KEY_VAR: &str = "KEYRACK_KEY";

/// The scripts in tests/examples/.
#[derive(Debug, Clone, Copy)]
enum Example {
    /// create_key.sh: the docs' curl `POST /api/api-keys`.
    CreateKey,
    /// chat.sh: the docs' curl `POST /api/chat`.
    ChatCurl,
    /// chat.mjs: the docs' JavaScript `fetch`, under Node.
    ChatJavaScript,
    /// chat.py: the docs' Python `requests`, under tools/venv's Python.
    ChatPython,
}

impl Example {
    const CHATS: [Example; 3] = [
        Example::ChatCurl,
        Example::ChatJavaScript,
        Example::ChatPython,
    ];

    /// The command that runs this example, with no `KEYRACK_*` variable set yet.
    fn command(self) -> Command {
        let (program, script) = match self {
            Example::CreateKey => (on_path("bash"), "create_key.sh"),
            Example::ChatCurl => (on_path("bash"), "chat.sh"),
            Example::ChatJavaScript => (on_path("node"), "chat.mjs"),
            Example::ChatPython => (venv_tool("python"), "chat.py"),
        };
        let mut command = Command::new(program);
        command.arg(repo_root().join("tests/examples").join(script));
        command
    }

    /// Runs the example against `url` with `key`, bounded, and splits what it printed. Runs
    /// on a blocking thread: the gateway it talks to is served by this test's runtime.
    async fn run(self, url: &str, key: &str) -> Printed {
        let mut command = self.command();
        command.env(URL_VAR, url).env(KEY_VAR, key);
        loopback_only(&mut command);
        let ran = tokio::task::spawn_blocking(move || run_bounded(command, TIMEOUT))
            .await
            .unwrap();
        parse(&format!("{self:?}"), &ran)
    }
}

/// What an example printed: the status line and the body above it.
#[derive(Debug)]
struct Printed {
    status: u16,
    body: String,
}

fn parse(what: &str, ran: &Ran) -> Printed {
    let stdout = ran.expect_success(&format!("{what} ({INSTALL_HINT})"));
    let (body, status) = stdout
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("{what} printed no body and status line:\n{stdout}"));
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what}: the last line is not a status:\n{stdout}"));
    Printed {
        status,
        body: body.trim().to_owned(),
    }
}

fn json(what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{what}: not JSON ({error}):\n{text}"))
}

/// Asserts the docs' error shape, `{"error": {"code", "message"}, "status"}` and nothing else.
fn assert_docs_error(what: &str, body: &str, status: u16, code: &str) {
    let value = json(what, body);
    let object = value.as_object().unwrap();
    assert_eq!(object.len(), 2, "{what}: exactly error and status: {body}");
    assert_eq!(value["status"], status, "{what}: {body}");
    let error = value["error"].as_object().unwrap();
    assert_eq!(error.len(), 2, "{what}: exactly code and message: {body}");
    assert_eq!(error["code"], code, "{what}: {body}");
    assert!(error["message"].is_string(), "{what}: {body}");
}

#[tokio::test]
async fn the_docs_examples_create_a_key_then_chat_through_nginx() {
    // About the docs' clients, not storage: SQLite is enough.
    let app = spawn_app(&Backend::Sqlite).await;
    let http = app.http.clone();
    let nginx = tokio::task::spawn_blocking(move || Nginx::start(&http))
        .await
        .unwrap();

    // The docs' curl create call with the admin key, through nginx to the gateway.
    let created = Example::CreateKey.run(&nginx.url, &app.admin_key).await;
    assert_eq!(created.status, 201, "{created:?}");
    let record = json("create_key.sh", &created.body);
    let key = record["key"]
        .as_str()
        .expect("the plaintext key")
        .to_owned();
    assert!(key.starts_with("sk_live_"), "{record:#}");
    assert_eq!(record["name"], "Production API", "{record:#}");
    assert_eq!(
        record["scopes"],
        serde_json::json!(["chat", "agents:read"]),
        "{record:#}"
    );
    assert!(record["expiresAt"].is_string(), "{record:#}");
    let id = record["id"].as_str().unwrap();

    // A key without `chat` for the refusals.
    let reader = app.create_key("reader", &["agents:read"], "").await.key;

    for example in Example::CHATS {
        let what = format!("{example:?}");
        let passed = example.run(&nginx.url, &key).await;
        assert_eq!(
            passed.status,
            200,
            "{what}: {passed:?}\nnginx error log:\n{}",
            nginx.error_log()
        );
        let reply = json(&what, &passed.body);
        assert_eq!(reply["reply"], UPSTREAM_REPLY, "{what}: {reply}");
        assert_eq!(reply["keyId"], id, "{what}: the upstream saw {reply}");

        let refused = example.run(&nginx.url, &reader).await;
        assert_eq!(refused.status, 403, "{what}: {refused:?}");
        assert_docs_error(&what, &refused.body, 403, "insufficient_scope");
        assert_eq!(refused.body, LACKS_CHAT, "{what}");

        let unknown = example.run(&nginx.url, "sk_live_abc123...").await;
        assert_eq!(unknown.status, 401, "{what}: {unknown:?}");
        assert_docs_error(&what, &unknown.body, 401, "invalid_api_key");
    }
    nginx.stop();
}

/// Run without configuration, each script says what to set instead of calling anything.
#[test]
fn the_examples_ask_for_their_variables() {
    for example in [Example::CreateKey].into_iter().chain(Example::CHATS) {
        let mut command = example.command();
        command.env_remove(URL_VAR).env_remove(KEY_VAR);
        let ran = run_bounded(command, TIMEOUT);
        assert!(!ran.status.success(), "{example:?} ran without {URL_VAR}");
        assert!(
            ran.stderr.contains(URL_VAR),
            "{example:?} does not name {URL_VAR}:\n{}",
            ran.stderr
        );
    }
}
