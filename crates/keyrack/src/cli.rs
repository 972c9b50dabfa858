//! The commands: `serve`, `gateway`, `migrate`, `admin-key create`. `serve` composes the
//! application, its front doors and its jobs, and stops them in order.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use key_console::{Console, CookiePolicy};
use key_core::{Environment, KeyName, KeyType, Scope, SystemClock};
use key_gateway::{Gateway, Upstream, UpstreamTls};
use key_grpc::GrpcServer;
use key_service::{
    Actor, Application, Metrics, NewKeyRequest, Parts, Settings,
    verify::{ClientAddresses, ExtAuthz},
};
use ring::rand::SystemRandom;
use tokio::net::TcpListener;

use crate::{
    config::{Listen, ServeConfig},
    metrics_endpoint,
    setup::{self, DatabaseConfig, MigratePolicy, Shutdown},
    telemetry::LogFormat,
};

/// Keyrack: issues API keys and answers, with one fast gRPC call, whether a key may do what a
/// request needs.
#[derive(Debug, Parser)]
#[command(name = "keyrack", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. `info` or `key_service=debug`.
    #[arg(long, env = "KEYRACK_LOG", default_value = "info", global = true)]
    pub(crate) log: String,
    /// How log lines are written: `text`, or `json` (one object per line, for log
    /// collectors). Either way each request is one line at `info` (target `keyrack::access`).
    #[arg(
        long,
        env = "KEYRACK_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub(crate) log_format: LogFormat,
    /// Threads that run requests. By default one per core this process may run on: its CPU
    /// affinity (`taskset`, a container's cpuset) and its cgroup's CPU quota, so a replica held
    /// to one core does not time-share it between two threads.
    #[arg(
        long,
        env = "KEYRACK_WORKER_THREADS",
        global = true,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub(crate) worker_threads: Option<u16>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the service: applies migrations, then serves gRPC (and REST, and metrics) until
    /// SIGTERM or Ctrl-C.
    // Boxed: its options outweigh the other commands' many times over.
    Serve(Box<ServeConfig>),
    /// Runs the REST gateway alone, in front of a KeyService elsewhere.
    Gateway(GatewayArgs),
    /// Applies pending database migrations and exits (non-zero if one fails); `migrate status`
    /// lists them.
    #[command(args_conflicts_with_subcommands = true)]
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Recovery: mints keys directly against the database.
    AdminKey {
        #[command(subcommand)]
        command: AdminKeyCommand,
    },
    /// Prints a one-time link that signs a member in to the web console (valid 24 hours), made
    /// straight against the database: for a first admin, or a deployment without SSO.
    SignInLink {
        /// The member's user id, e.g. `alice@example.com`.
        #[arg(long)]
        user: String,
        /// The organization's name.
        #[arg(long, default_value = "default")]
        organization: String,
        /// Where people reach the console; the link is this, `/invite#`, and the code.
        #[arg(
            long,
            env = "KEYRACK_CONSOLE_URL",
            default_value = "http://127.0.0.1:8080/console"
        )]
        console_url: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Offline checks of keys, for secret scanners.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Tells whether each KEY (or each line of stdin) is a well-formed Keyrack key: prefix,
    /// length, alphabet and checksum, offline. Prints one verdict per input, never the key
    /// itself; exits 1 if any input is not a key.
    Check {
        /// The keys to check; none: one per line of stdin.
        keys: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct GatewayArgs {
    /// The gRPC KeyService to translate to, e.g. `http://keyrack:50051`.
    #[arg(long, env = "KEYRACK_UPSTREAM")]
    upstream: String,
    /// Address for the REST gateway.
    #[arg(long, env = "KEYRACK_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Reverse proxies in front of the gateway whose `X-Forwarded-For` it believes (see
    /// `keyrack serve --help`).
    #[arg(long, env = "KEYRACK_TRUSTED_PROXIES", value_name = "LIST")]
    trusted_proxies: Option<key_gateway::TrustedProxies>,
    /// Requests served at once; above it a request is answered 503 `overloaded` with
    /// `Retry-After: 1`. `/healthz` and `/readyz` are never refused.
    #[arg(long, env = "KEYRACK_HTTP_MAX_IN_FLIGHT", default_value_t = key_gateway::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// For an `https://` upstream: the CA certificates (PEM) its certificate must chain to.
    #[arg(long, env = "KEYRACK_UPSTREAM_CA", value_name = "FILE")]
    upstream_ca: Option<PathBuf>,
    /// For an upstream that requires mutual TLS: the gateway's client certificate (PEM).
    #[arg(
        long,
        env = "KEYRACK_UPSTREAM_CERT",
        value_name = "FILE",
        requires = "upstream_key"
    )]
    upstream_cert: Option<PathBuf>,
    /// The private key of `--upstream-cert` (PEM).
    #[arg(
        long,
        env = "KEYRACK_UPSTREAM_KEY",
        value_name = "FILE",
        requires = "upstream_cert"
    )]
    upstream_key: Option<PathBuf>,
    #[command(flatten)]
    http_tls: crate::config::HttpTlsArgs,
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Lists every migration, applied or pending, and exits; changes nothing.
    Status {
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
enum AdminKeyCommand {
    /// Creates a new admin key for an organization and prints it on stdout, once.
    Create {
        /// The organization's name.
        #[arg(long, default_value = "default")]
        organization: String,
        /// The key's name.
        #[arg(long, default_value = "Recovery admin key")]
        name: String,
        /// Make it an operator key (an admin of the whole deployment, which may create
        /// organizations), like the bootstrap key.
        #[arg(long)]
        operator: bool,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

impl Cli {
    /// How long the command lets work under way finish once it is asked to stop: `serve`'s
    /// drain timeout, or its default.
    pub(crate) fn drain_timeout(&self) -> std::time::Duration {
        match &self.command {
            Command::Serve(config) => config.drain_timeout(),
            _ => key_grpc::DEFAULT_DRAIN_TIMEOUT,
        }
    }

    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(config) => serve(*config).await,
            Command::Gateway(args) => gateway(args).await,
            Command::Migrate {
                action: None,
                database,
            } => {
                // On the embedded default, the database and its pepper are made together, as
                // by a first `serve`: a database without its pepper would refuse to start.
                database.pepper()?;
                database.open_store(MigratePolicy::Auto).await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Migrate {
                action: Some(MigrateAction::Status { database }),
                ..
            } => migration_status(&database).await,
            Command::AdminKey {
                command:
                    AdminKeyCommand::Create {
                        organization,
                        name,
                        operator,
                        database,
                    },
            } => create_admin_key(&organization, &name, operator, database).await,
            Command::SignInLink {
                user,
                organization,
                console_url,
                database,
            } => sign_in_link(&user, &organization, &console_url, database).await,
            Command::Key {
                command: KeyCommand::Check { keys },
            } => {
                if crate::key_check::check(keys)? {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "not every input is a well-formed Keyrack key"
                    ))
                }
            }
        }
    }
}

/// The application on `database`, as `settings` say, with `parts` changed by `prepare`.
async fn application(
    database: &DatabaseConfig,
    migrate: MigratePolicy,
    settings: &Settings,
    prepare: impl AsyncFnOnce(&mut Parts) -> anyhow::Result<()>,
) -> anyhow::Result<Application> {
    let pepper = database.pepper()?;
    let store = database.open_store(migrate).await?;
    setup::check_pepper(&store, &pepper).await?;
    let mut parts = Parts::new(
        store,
        pepper,
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
    );
    prepare(&mut parts).await?;
    Ok(Application::build(parts, settings))
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let shutdown = Shutdown::listen()?;
    let settings = config.settings()?;
    let metrics = Metrics::new();
    metrics.set_build_info(env!("CARGO_PKG_VERSION"), env!("KEYRACK_COMMIT"));
    // SQLite is one process: a second `serve` on the same file stops here, with the lock held
    // until this one exits.
    let _sqlite_lock = config.database.lock_sqlite()?;
    let app = application(&config.database, config.migrate, &settings, async |parts| {
        parts.metrics = metrics.clone();
        parts.limiter = config.limiter(&metrics).await?;
        parts.country_db = config.country_db()?;
        parts.secret_scanning_keys = config.secret_scanning_keys()?;
        parts.sso = config.sso()?;
        Ok(())
    })
    .await?;
    // Every port is bound before anything is bootstrapped: a start that fails on a taken port
    // mints no key that nobody would see.
    let grpc_address = config.grpc_listen();
    let listener = TcpListener::bind(grpc_address)
        .await
        .with_context(|| format!("cannot listen on {grpc_address}"))?;
    let http_listener = match config.http_listen() {
        Listen::Off => None,
        Listen::At(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?,
        ),
    };
    let metrics_endpoint = metrics_endpoint::bind(
        config.metrics_listen,
        config.default_metrics_listen(),
        metrics,
    )
    .await?;
    // Like the ports: a certificate that does not load stops the start before the bootstrap.
    let grpc_tls = config.grpc_tls()?;
    let http_tls = config.http_tls()?;
    let ext_authz_routes = config.ext_authz_routes()?;
    // Where people sign in, printed beside the bootstrap key: the console's public URL, or
    // else the HTTP listener's own.
    let listener_url = http_listener.as_ref().and_then(|listener| {
        let mut address = listener.local_addr().ok()?;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if http_tls.is_some() { "https" } else { "http" };
        Some(format!("{scheme}://{address}/console"))
    });
    let console_url = config.console_url.clone().or(listener_url);
    setup::bootstrap(&app, config.database.data_dir(), console_url.as_deref()).await?;

    let mut server = GrpcServer::new(&app, listener)?
        .with_drain_timeout(config.drain_timeout())
        .with_max_in_flight(config.max_in_flight)
        .with_readiness(app.jobs.database.readiness());
    if let Some(tls) = grpc_tls {
        server = server.with_tls(tls);
    }
    if let Some(routes) = ext_authz_routes {
        // The client of a checked request is found as the gateway finds its own.
        let trusted = config.trusted_proxies();
        let clients: ClientAddresses =
            Arc::new(move |source, forwarded| trusted.client_address(source, forwarded));
        server = server.with_ext_authz(
            ExtAuthz::new(app.verifier.clone(), routes).with_client_addresses(clients),
        );
    }
    // The gateway of this process calls the gRPC service's own stack in memory: the same
    // authentication and handlers as over the network, without a socket in between.
    let gateway = match http_listener {
        None => None,
        Some(listener) => {
            let upstream = Upstream::from_service(server.local_service());
            // The web console: another client of the same in-memory stack.
            let mut console = Console::new(server.local_service()).with_cookies(CookiePolicy {
                secure: http_tls.is_some() || config.console_secure_cookies,
            });
            // The identity provider sends people back to the console's public URL, never to
            // whatever `Host` a request named.
            if let (true, Some(url)) = (app.sso.configured(), console_url.as_deref()) {
                console = console.with_sso(url);
            }
            let mut gateway = Gateway::new(listener, upstream)?
                .with_authorize(console.clone().authorize_router())
                .with_console(console.router())
                .with_trusted_proxies(config.trusted_proxies())
                .with_max_in_flight(config.http_max_in_flight)
                .with_request_metrics(app.metrics.requests());
            // The OAuth issuer is where the console's public URL says people reach this
            // listener, never a request's `Host`.
            if let Some(url) = console_url.as_deref() {
                gateway = gateway.with_oauth_issuer(oauth_issuer(url));
            }
            if let Some(tls) = http_tls {
                gateway = gateway.with_tls(tls);
            }
            Some(tokio::spawn(gateway.run_until(shutdown.wait())))
        }
    };
    let metrics_endpoint =
        metrics_endpoint.map(|endpoint| tokio::spawn(endpoint.run_until(shutdown.wait())));
    // The jobs run beside the servers and stop after them: the last flush counts every
    // verification the servers answered while draining.
    let jobs = app.jobs.start();
    let served = server.run_until(shutdown.wait()).await;
    let gateway_served = match gateway {
        Some(gateway) => gateway
            .await
            .map_err(anyhow::Error::from)
            .and_then(|served| Ok(served?)),
        None => Ok(()),
    };
    jobs.stop().await;
    if let Some(endpoint) = metrics_endpoint {
        endpoint.await??;
    }
    served?;
    gateway_served
}

/// The OAuth 2.0 issuer of a server whose console's public URL is `console_url`: the same URL
/// without its trailing `/console`, since the console and the OAuth endpoints share the HTTP
/// listener (`https://keys.example.com/console` → `https://keys.example.com`).
fn oauth_issuer(console_url: &str) -> String {
    let url = console_url.trim_end_matches('/');
    url.strip_suffix("/console").unwrap_or(url).to_owned()
}

async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::listen()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let upstream_tls = UpstreamTls {
        ca: args.upstream_ca,
        cert: args.upstream_cert,
        key: args.upstream_key,
    };
    let upstream = Upstream::connect_lazy_with_tls(&args.upstream, &upstream_tls)?;
    let mut gateway = Gateway::new(listener, upstream)?
        .with_trusted_proxies(args.trusted_proxies.unwrap_or_default())
        .with_max_in_flight(args.max_in_flight);
    if let Some(tls) = args.http_tls.load()? {
        gateway = gateway.with_tls(tls);
    }
    gateway.run_until(shutdown.wait()).await?;
    Ok(())
}

async fn create_admin_key(
    organization: &str,
    name: &str,
    operator: bool,
    database: DatabaseConfig,
) -> anyhow::Result<()> {
    let app = application(
        &database,
        MigratePolicy::Auto,
        &Settings::default(),
        async |_| Ok(()),
    )
    .await?;
    let organization_id = app
        .keys
        .organization_named(organization)
        .await?
        .with_context(|| format!("organization {organization:?} does not exist; `keyrack serve` creates \"default\" on first start"))?;
    let request = NewKeyRequest {
        name: KeyName::parse(name)?,
        scopes: [Scope::Admin].into_iter().collect(),
        expires_at: None,
        environment: Environment::Live,
        key_type: KeyType::Organization,
        member_id: None,
        operator,
        rate_limits: key_core::RateLimits::NONE,
        metadata: None,
        ip_allowlist: key_core::IpAllowlist::EMPTY,
        credits: None,
    };
    let (record, key) = app
        .keys
        .issue(organization_id, request, &Actor::Operator)
        .await?;
    eprintln!(
        "Created admin key {} for organization {organization:?}. Store it now; it is shown only once:",
        record.id
    );
    println!("{}", key.expose());
    Ok(())
}

async fn sign_in_link(
    user: &str,
    organization: &str,
    console_url: &str,
    database: DatabaseConfig,
) -> anyhow::Result<()> {
    let app = application(
        &database,
        MigratePolicy::Auto,
        &Settings::default(),
        async |_| Ok(()),
    )
    .await?;
    let organization_id = app
        .keys
        .organization_named(organization)
        .await?
        .with_context(|| format!("organization {organization:?} does not exist"))?;
    let (token, expires_at, member_id) = app
        .sessions
        .operator_sign_in_link(organization_id, user)
        .await
        .with_context(|| format!("{user:?} is not a member of {organization:?}"))?;
    eprintln!(
        "Sign-in link for member {member_id} ({user}), valid once until {}. Send it privately:",
        expires_at.format("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "{}/invite#{}",
        console_url.trim_end_matches('/'),
        token.expose()
    );
    Ok(())
}

/// `keyrack migrate status`: every migration and whether it is applied.
async fn migration_status(database: &DatabaseConfig) -> anyhow::Result<()> {
    // Like `migrate`: the embedded database is not made without its pepper.
    database.pepper()?;
    let store = database.open_store(MigratePolicy::Off).await?;
    let migrations = store.migrations().await?;
    let pending = migrations.iter().filter(|(_, applied)| !applied).count();
    for (name, applied) in &migrations {
        println!("{}  {name}", if *applied { "applied" } else { "pending" });
    }
    println!("{pending} pending of {}", migrations.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oauth_issuer_is_the_console_url_without_console() {
        assert_eq!(
            oauth_issuer("https://keys.example.com/console"),
            "https://keys.example.com"
        );
        assert_eq!(
            oauth_issuer("http://127.0.0.1:8080/console/"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            oauth_issuer("https://example.com/keyrack/console"),
            "https://example.com/keyrack"
        );
    }

    #[test]
    fn worker_threads_default_to_the_runtime_s_choice_and_zero_is_refused() {
        let cli = Cli::try_parse_from(["keyrack", "migrate", "status"]).unwrap();
        assert_eq!(cli.worker_threads, None);
        let cli = Cli::try_parse_from(["keyrack", "serve", "--worker-threads", "1"]).unwrap();
        assert_eq!(cli.worker_threads, Some(1));
        let error = Cli::try_parse_from(["keyrack", "serve", "--worker-threads", "0"]).unwrap_err();
        assert!(error.to_string().contains("--worker-threads"), "{error}");
    }
}
