//! `spawn_app`: a real gRPC server and REST gateway on 127.0.0.1:0 over a fresh database, with
//! the application's jobs running beside them as `keyrack serve` runs them, a clock the test
//! controls, and typed helpers to talk to it.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use key_console::Console;
use key_core::{Environment, FixedClock, KeyName, Pepper, Scope};
use key_gateway::{Gateway, TrustedProxies, Upstream};
use key_grpc::GrpcServer;
use key_proto::v1::{self, key_service_client::KeyServiceClient};
use key_service::{Actor, Application, NewKeyRequest, Parts, Settings};
use key_store::Store;
use ring::rand::SystemRandom;
use sea_orm::ConnectionTrait;
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

/// The storage engine a test runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres(String),
}

/// SQLite always; PostgreSQL too when `KEYRACK_TEST_DATABASE_URL` is set.
pub(crate) fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    if let Ok(url) = std::env::var("KEYRACK_TEST_DATABASE_URL") {
        backends.push(Backend::Postgres(url));
    }
    backends
}

/// The instant every test clock starts at.
pub(crate) fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 10, 30, 0).unwrap()
}

pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    /// The REST gateway's base URL, e.g. `http://127.0.0.1:4242`.
    pub(crate) http: String,
    pub(crate) client: KeyServiceClient<Channel>,
    /// The bootstrap admin key of organization `default`.
    pub(crate) admin_key: String,
    pub(crate) clock: FixedClock,
    /// The application behind the servers: its operations, verifier, jobs, metrics and store.
    pub(crate) keyrack: Application,
    /// The settings it was built with.
    pub(crate) settings: Settings,
    /// The SQLite file (SQLite only).
    pub(crate) sqlite_path: Option<PathBuf>,
    /// The database's URL, for a second server on the same database.
    pub(crate) database_url: String,
    /// A PostgreSQL test database, dropped with the app (PostgreSQL only).
    _database: Option<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    gateway_shutdown: Option<oneshot::Sender<()>>,
    gateway: Option<JoinHandle<()>>,
    _dir: TempDir,
}

/// The pepper every test server hashes with.
pub(crate) const TEST_PEPPER: &[u8] = b"integration-test-pepper-0123456789abcdef";

/// What a test application is built from: the settings, and the parts a test may swap (a
/// limiter, a country database, a random source).
pub(crate) struct Setup {
    pub(crate) settings: Settings,
    pub(crate) parts: Parts,
}

/// Starts a server on `backend` with a fresh database and a bootstrapped `default`
/// organization.
pub(crate) async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_configured(backend, |_| {}).await
}

/// `spawn_app`, with the usage flusher running every `flush_interval`.
pub(crate) async fn spawn_app_with_flush_interval(
    backend: &Backend,
    flush_interval: Duration,
) -> TestApp {
    spawn_app_configured(backend, |setup| {
        setup.settings.flush_interval = flush_interval;
    })
    .await
}

/// `spawn_app`, with the setup changed by `configure` before the server starts (a limiter,
/// a flush interval, alert or webhook settings...).
pub(crate) async fn spawn_app_configured(
    backend: &Backend,
    configure: impl FnOnce(&mut Setup),
) -> TestApp {
    spawn_app_with_gateway(backend, configure, TrustedProxies::default()).await
}

/// `spawn_app`, with a gateway that believes the `X-Forwarded-For` of `trusted_proxies`.
pub(crate) async fn spawn_app_with_trusted_proxies(
    backend: &Backend,
    trusted_proxies: TrustedProxies,
) -> TestApp {
    spawn_app_with_gateway(backend, |_| {}, trusted_proxies).await
}

async fn spawn_app_with_gateway(
    backend: &Backend,
    configure: impl FnOnce(&mut Setup),
    trusted_proxies: TrustedProxies,
) -> TestApp {
    eprintln!("--- backend: {backend:?}");
    let dir = tempfile::tempdir().unwrap();
    let (url, sqlite_path, database) = match backend {
        Backend::Sqlite => {
            let path = dir.path().join("keyrack.db");
            (
                format!("sqlite://{}?mode=rwc", path.display()),
                Some(path),
                None,
            )
        }
        Backend::Postgres(base) => {
            let database = TestDatabase::create(base).await;
            (database.url(), None, Some(database))
        }
    };
    spawn_app_at(url, sqlite_path, database, dir, configure, trusted_proxies).await
}

/// A server on a PostgreSQL database of its own reached through `connect_to` (the test's own
/// path to the server, e.g. a proxy it can cut): `base` names the server for creating and
/// dropping the database, `route` turns the database's URL into the one the app uses.
pub(crate) async fn spawn_app_routed(
    base: &str,
    route: impl FnOnce(&str) -> String,
    configure: impl FnOnce(&mut Setup),
) -> TestApp {
    let database = TestDatabase::create(base).await;
    let url = route(&database.url());
    let dir = tempfile::tempdir().unwrap();
    spawn_app_at(
        url,
        None,
        Some(database),
        dir,
        configure,
        TrustedProxies::default(),
    )
    .await
}

async fn spawn_app_at(
    url: String,
    sqlite_path: Option<PathBuf>,
    database: Option<TestDatabase>,
    dir: TempDir,
    configure: impl FnOnce(&mut Setup),
    trusted_proxies: TrustedProxies,
) -> TestApp {
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let clock = FixedClock::new(start_time());
    let (keyrack, settings) = build(store, &clock, Settings::default(), configure);
    let (_, admin_key) = keyrack
        .keys
        .bootstrap("default")
        .await
        .unwrap()
        .expect("fresh database");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = GrpcServer::new(&keyrack, listener)
        .unwrap()
        .with_drain_timeout(Duration::from_millis(500))
        .with_readiness(keyrack.jobs.database.readiness());
    let addr = server.local_addr();
    // The REST gateway, in front of this server, as `keyrack serve` runs it: in memory.
    let upstream = Upstream::from_service(server.local_service());
    let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", http_listener.local_addr().unwrap());
    let mut console = Console::new(server.local_service());
    if keyrack.sso.configured() {
        console = console.with_sso(&format!("{http}/console"));
    }
    let (shutdown, server) = run_server(server, &keyrack).await;
    let client = KeyServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    let gateway = Gateway::new(http_listener, upstream)
        .unwrap()
        .with_trusted_proxies(trusted_proxies)
        .with_authorize(console.clone().authorize_router())
        .with_console(console.router());
    let (gateway_shutdown, gateway_stop) = oneshot::channel::<()>();
    let gateway = tokio::spawn(async move {
        gateway
            .run_until(async {
                let _ = gateway_stop.await;
            })
            .await
            .unwrap();
    });
    TestApp {
        addr,
        http,
        client,
        admin_key: admin_key.expose().to_owned(),
        clock,
        keyrack,
        settings,
        sqlite_path,
        database_url: url,
        _database: database,
        shutdown: Some(shutdown),
        server: Some(server),
        gateway_shutdown: Some(gateway_shutdown),
        gateway: Some(gateway),
        _dir: dir,
    }
}

/// The application on `store`, with the test pepper and `clock`, as `configure` sets it up.
fn build(
    store: Store,
    clock: &FixedClock,
    settings: Settings,
    configure: impl FnOnce(&mut Setup),
) -> (Application, Settings) {
    let parts = Parts::new(
        store,
        Pepper::new(TEST_PEPPER).unwrap(),
        Arc::new(clock.clone()),
        Arc::new(SystemRandom::new()),
    );
    let mut setup = Setup { settings, parts };
    configure(&mut setup);
    (
        Application::build(setup.parts, &setup.settings),
        setup.settings,
    )
}

/// An end client's address not handed out before in this test process (10.0.0.0/8 holds 2^24,
/// far more than any run takes), for loads that present many refused keys: from one address
/// the brute-force guard would rightly block the test after 100 refusals.
pub(crate) fn fresh_client_ip() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::net::Ipv4Addr::from(0x0A00_0000 | (n & 0x00FF_FFFF)).to_string()
}

/// Waits until the notices of every change made so far have reached `keyrack`'s key cache.
async fn caught_up(keyrack: &Application) {
    keyrack
        .jobs
        .cache_notices
        .caught_up(crate::process::TIMEOUT)
        .await
        .expect("the cache notices caught up");
}

/// Runs `server`, and `keyrack`'s jobs beside it as `keyrack serve` does, in a task until the
/// returned sender sends (or is dropped); then the jobs stop after the server drained. On
/// PostgreSQL, returns once the cache notice listener is subscribed, so the key cache is in
/// use from the test's first call (as it is within milliseconds of `keyrack serve`'s start).
async fn run_server(
    server: GrpcServer,
    keyrack: &Application,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (shutdown, stop) = oneshot::channel::<()>();
    let jobs = keyrack.jobs.start();
    assert!(
        keyrack
            .jobs
            .cache_notices
            .wait_until_listening(Duration::from_secs(10))
            .await,
        "the cache notice listener did not subscribe"
    );
    let server = tokio::spawn(async move {
        let served = server
            .run_until(async {
                let _ = stop.await;
            })
            .await;
        jobs.stop().await;
        served.unwrap();
    });
    (shutdown, server)
}

/// A second gRPC server, with an application (and usage meter, and key cache) of its own, on
/// the database of a `TestApp`: another replica.
pub(crate) struct SecondServer {
    pub(crate) client: KeyServiceClient<Channel>,
    pub(crate) keyrack: Application,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

/// Starts a second server on `app`'s database, with the same pepper and clock.
pub(crate) async fn spawn_second_server(app: &TestApp) -> SecondServer {
    spawn_second_server_configured(app, |_| {}).await
}

/// `spawn_second_server`, with the setup changed by `configure` before the server starts (a
/// limiter shared with the first server, say). It starts with the first server's settings.
pub(crate) async fn spawn_second_server_configured(
    app: &TestApp,
    configure: impl FnOnce(&mut Setup),
) -> SecondServer {
    let store = Store::connect(&app.database_url).await.unwrap();
    let (keyrack, _) = build(store, &app.clock, app.settings, configure);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = GrpcServer::new(&keyrack, listener)
        .unwrap()
        .with_drain_timeout(Duration::from_millis(500))
        .with_readiness(keyrack.jobs.database.readiness());
    let addr = server.local_addr();
    let (shutdown, server) = run_server(server, &keyrack).await;
    let client = KeyServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    SecondServer {
        client,
        keyrack,
        shutdown,
        server,
    }
}

impl SecondServer {
    /// [`TestApp::caught_up`] for this server.
    pub(crate) async fn caught_up(&self) {
        caught_up(&self.keyrack).await;
    }

    /// Stops the server gracefully and waits until it has stopped.
    pub(crate) async fn stop(self) {
        let _ = self.shutdown.send(());
        self.server.await.unwrap();
    }
}

/// An empty PostgreSQL database made for one test, dropped when the test ends (with whatever
/// connections are still open to it), so test runs leave nothing behind.
pub(crate) struct TestDatabase {
    base: String,
    name: String,
}

impl TestDatabase {
    /// Creates `keyrack_t_<uuid>` on the server of `base` (a URL ending in `/<database>`).
    pub(crate) async fn create(base: &str) -> TestDatabase {
        let name = format!("keyrack_t_{}", uuid::Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(base).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.unwrap();
        TestDatabase {
            base: base.to_owned(),
            name,
        }
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        let (prefix, _) = self
            .base
            .rsplit_once('/')
            .expect("a database URL ends in /<database>");
        format!("{prefix}/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop cannot await, and the test's runtime may be shutting down: a thread of its own,
        // with a runtime of its own, drops the database. FORCE ends the connections that the
        // test's servers still hold. A failure only leaves the database for `tests/run`'s sweep.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&base)
                    .await
                    .map_err(|error| error.to_string())?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|error| error.to_string())?;
                admin.close().await.map_err(|error| error.to_string())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("test database not dropped: {error}");
        }
    }
}

/// Attaches `authorization: Bearer <key>` to a request.
pub(crate) fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// Asserts a status's code, its ErrorInfo reason (domain `keyrack`) and, if given, its message.
pub(crate) fn assert_status(status: &Status, code: Code, reason: &str, message: Option<&str>) {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status
        .get_details_error_info()
        .expect("every error carries ErrorInfo");
    assert_eq!(info.reason, reason, "{status:?}");
    assert_eq!(info.domain, "keyrack");
    if let Some(message) = message {
        assert_eq!(status.message(), message);
    }
}

impl TestApp {
    /// Creates a key through the API with the admin key; returns the response.
    pub(crate) async fn create_key(
        &self,
        name: &str,
        scopes: &[&str],
        expires_at: &str,
    ) -> v1::CreateKeyResponse {
        let created = self
            .client
            .clone()
            .create_key(authed(
                &self.admin_key,
                v1::CreateKeyRequest {
                    name: name.into(),
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    expires_at: expires_at.into(),
                    environment: 0,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        // The creation's own notice comes back on PostgreSQL: a test's first verification
        // then caches the key for good.
        self.caught_up().await;
        created
    }

    /// Waits until the notices of every change made so far have reached this server's key
    /// cache (on PostgreSQL its own changes come back as notices too, a few milliseconds
    /// after the change, and drop what they name once more), so a test that counts queries
    /// counts only its own.
    pub(crate) async fn caught_up(&self) {
        caught_up(&self.keyrack).await;
    }

    pub(crate) async fn verify(&self, key: &str, scopes: &[&str]) -> v1::VerifyKeyResponse {
        self.client
            .clone()
            .verify_key(v1::VerifyKeyRequest {
                client_ip: String::new(),
                key: key.into(),
                required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Mints an admin key for a second organization, straight through the application.
    pub(crate) async fn other_organization_admin(&self, name: &str) -> String {
        let org = self
            .keyrack
            .store
            .ensure_organization(name, self.clock_now())
            .await
            .unwrap();
        let request = NewKeyRequest {
            rate_limits: key_core::RateLimits::NONE,
            metadata: None,
            credits: None,
            ip_allowlist: key_core::IpAllowlist::EMPTY,
            name: KeyName::parse("other admin").unwrap(),
            scopes: [Scope::Admin].into_iter().collect(),
            expires_at: None,
            environment: Environment::Live,
            key_type: key_core::KeyType::Organization,
            member_id: None,
            operator: false,
        };
        let (_, key) = self
            .keyrack
            .keys
            .issue(org.id, request, &Actor::Operator)
            .await
            .unwrap();
        key.expose().to_owned()
    }

    pub(crate) fn clock_now(&self) -> DateTime<Utc> {
        key_core::Clock::now(&self.clock)
    }

    /// Stops the gateway, then the gRPC server, gracefully, and waits until both have stopped.
    pub(crate) async fn stop(&mut self) {
        self.stop_gateway().await;
        self.stop_grpc().await;
    }

    /// Stops only the gateway.
    pub(crate) async fn stop_gateway(&mut self) {
        if let Some(shutdown) = self.gateway_shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(gateway) = self.gateway.take() {
            gateway.await.unwrap();
        }
    }

    /// Stops only the gRPC server, leaving the gateway up (to see it answer 503).
    pub(crate) async fn stop_grpc(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}
