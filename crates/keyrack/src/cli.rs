use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use key_core::{Environment, KeyName, KeyType, Scope, SystemClock};
use key_gateway::{Gateway, Upstream};
use key_grpc::{Actor, GrpcServer, KeyManager, NewKeyRequest, RequestContext};
use ring::rand::SystemRandom;
use tokio::net::TcpListener;

use crate::{
    cache_args::CacheArgs,
    limiter_args::LimiterArgs,
    metrics_endpoint::MetricsArgs,
    proxy_args::ProxyArgs,
    setup::{DatabaseConfig, Shutdown},
    usage_args::UsageArgs,
};

/// Keyrack: issues API keys and answers, with one fast gRPC call, whether a key may do what a
/// request needs.
#[derive(Debug, Parser)]
#[command(name = "keyrack", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. `info` or `key_grpc=debug`.
    #[arg(long, env = "KEYRACK_LOG", default_value = "info", global = true)]
    pub(crate) log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the service: applies migrations, then serves gRPC until SIGTERM or Ctrl-C.
    // Boxed: its options outweigh the other commands' many times over.
    Serve(Box<ServeArgs>),
    /// Runs the REST gateway alone, in front of a KeyService elsewhere.
    Gateway(GatewayArgs),
    /// Applies pending database migrations and exits.
    Migrate(DatabaseConfig),
    /// Recovery: mints keys directly against the database.
    AdminKey {
        #[command(subcommand)]
        command: AdminKeyCommand,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address for the gRPC API.
    #[arg(long, env = "KEYRACK_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Address for the REST gateway, or `off` to run gRPC only.
    #[arg(long, env = "KEYRACK_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: HttpListen,
    /// Seconds that requests in flight may take to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "KEYRACK_DRAIN_TIMEOUT_SECS", default_value_t = 10)]
    drain_timeout_secs: u64,
    /// Accept plain `http://` webhook endpoint URLs. For local development only: events would
    /// cross the network unencrypted.
    #[arg(long, env = "KEYRACK_WEBHOOK_ALLOW_HTTP")]
    webhook_allow_http: bool,
    #[command(flatten)]
    proxies: ProxyArgs,
    #[command(flatten)]
    usage: UsageArgs,
    #[command(flatten)]
    key_cache: CacheArgs,
    #[command(flatten)]
    limiter: LimiterArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    database: DatabaseConfig,
}

#[derive(Debug, Args)]
struct GatewayArgs {
    /// The gRPC KeyService to translate to, e.g. `http://keyrack:50051`.
    #[arg(long, env = "KEYRACK_UPSTREAM")]
    upstream: String,
    /// Address for the REST gateway.
    #[arg(long, env = "KEYRACK_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    proxies: ProxyArgs,
}

/// Where the gateway of `serve` listens, if anywhere.
#[derive(Debug, Clone, Copy)]
enum HttpListen {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for HttpListen {
    type Err = std::net::AddrParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("off") {
            Ok(HttpListen::Off)
        } else {
            value.parse().map(HttpListen::At)
        }
    }
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
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve(*args).await,
            Command::Gateway(args) => gateway(args).await,
            Command::Migrate(database) => {
                database.open_store().await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::AdminKey {
                command:
                    AdminKeyCommand::Create {
                        organization,
                        name,
                        operator,
                        database,
                    },
            } => create_admin_key(&organization, &name, operator, database).await,
        }
    }
}

async fn manager(database: &DatabaseConfig) -> anyhow::Result<KeyManager> {
    let pepper = database.pepper()?;
    let store = database.open_store().await?;
    Ok(KeyManager::new(
        store,
        pepper,
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
    ))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::listen()?;
    let manager = args.usage.apply(manager(&args.database).await?)?;
    let manager = args.limiter.apply(manager).await?;
    let manager = args.key_cache.apply(manager);
    let manager = manager.with_webhook_settings(key_grpc::WebhookSettings {
        allow_http: args.webhook_allow_http,
        ..key_grpc::WebhookSettings::default()
    });
    if let Some((record, key)) = manager.bootstrap("default").await? {
        // Printed on stderr, once: the operator needs it to create every other key.
        eprintln!(
            "\nCreated organization \"default\" and its first admin key (id {}).\n\
             Store this key now; it is shown only this once:\n\n    {}\n\n\
             Lost it? `keyrack admin-key create` mints another.\n",
            record.id,
            key.expose()
        );
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let server = GrpcServer::new(manager.clone(), listener)?
        .with_drain_timeout(std::time::Duration::from_secs(args.drain_timeout_secs));

    // The gateway of this process calls the gRPC service's own stack in memory: the same
    // authentication and handlers as over the network, without a socket in between.
    let gateway = match args.http_listen {
        HttpListen::Off => None,
        HttpListen::At(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            let upstream = Upstream::from_service(server.local_service());
            let gateway = Gateway::new(listener, upstream)?
                .with_trusted_proxies(args.proxies.trusted_proxies());
            Some(tokio::spawn(gateway.run_until(shutdown.wait())))
        }
    };
    let metrics = args
        .metrics
        .bind(manager.metrics().clone())
        .await?
        .map(|endpoint| tokio::spawn(endpoint.run_until(shutdown.wait())));
    server.run_until(shutdown.wait()).await?;
    if let Some(gateway) = gateway {
        gateway.await??;
    }
    if let Some(metrics) = metrics {
        metrics.await??;
    }
    Ok(())
}

async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::listen()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    Gateway::new(listener, Upstream::connect_lazy(&args.upstream)?)?
        .with_trusted_proxies(args.proxies.trusted_proxies())
        .run_until(shutdown.wait())
        .await?;
    Ok(())
}

async fn create_admin_key(
    organization: &str,
    name: &str,
    operator: bool,
    database: DatabaseConfig,
) -> anyhow::Result<()> {
    let manager = manager(&database).await?;
    let org = manager
        .store()
        .find_organization_by_name(organization)
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
    };
    let (record, key) = manager
        .issue(
            org.id,
            request,
            &Actor::Operator,
            &RequestContext::default(),
        )
        .await?;
    eprintln!(
        "Created admin key {} for organization {organization:?}. Store it now; it is shown only once:",
        record.id
    );
    println!("{}", key.expose());
    Ok(())
}
