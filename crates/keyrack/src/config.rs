//! `keyrack serve`'s configuration, in one place: every flag (each also a `KEYRACK_*`
//! variable), typed as it is used. Durations are humantime (`10s`, `50ms`, `48h`); booleans take
//! `true`/`false` (or `on`/`off`, `yes`/`no`, `1`/`0`). Flags renamed in this release keep
//! working, hidden, for one release: `--drain-timeout-secs N` and `--redis-timeout-ms N`.
//!
//! [`ServeConfig::settings`] turns the flags into the application's `Settings`; the parts that
//! need I/O to build (the Redis limiter, the country database) have their own methods.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context;
use chrono::TimeDelta;
use clap::{ArgAction, Args, builder::BoolishValueParser};
use key_gateway::TrustedProxies;
use key_service::{
    KeyCacheSettings, Metrics, RateLimiter, RedisLimiter, SecretScanningKeys, Settings, SsoConfig,
    UsageRetention, WebhookSettings,
    verify::{
        CountryDb, DEFAULT_NEGATIVE_CACHE_CAPACITY, DEFAULT_NEGATIVE_CACHE_TTL, ExtAuthzRoutes,
    },
};
use key_tls::{Protocols, ServerTls, TlsFiles};

use crate::{
    metrics_endpoint::MetricsListen,
    setup::{DatabaseConfig, MigratePolicy},
};

/// The options of `keyrack serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeConfig {
    /// The IP address every listener binds unless its own flag names an address: `0.0.0.0`
    /// (or `::`) in a container, so the gRPC API, the REST gateway, health, readiness and
    /// metrics are all reachable from outside it with this one setting.
    #[arg(long, env = "KEYRACK_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Address for the gRPC API. Default: the host's port 50051.
    #[arg(long, env = "KEYRACK_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address for the REST gateway, or `off` to run gRPC only. Default: the host's port 8080.
    #[arg(long, env = "KEYRACK_HTTP_LISTEN", value_name = "ADDRESS|off")]
    http_listen: Option<Listen>,
    /// Address for the metrics endpoint (`GET /metrics`), or `off`. Default: the host's port
    /// 9464; if that default is taken, serve runs without metrics and logs a warning.
    #[arg(long, env = "KEYRACK_METRICS_LISTEN", value_name = "ADDRESS|off")]
    pub(crate) metrics_listen: Option<MetricsListen>,
    /// How long requests in flight may take to finish after SIGTERM or Ctrl-C, e.g. `10s`.
    #[arg(long, env = "KEYRACK_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Calls the gRPC server serves at once; above it a call is refused at once with
    /// RESOURCE_EXHAUSTED (reason `overloaded`) instead of waiting. Health checks are never
    /// refused.
    #[arg(long, env = "KEYRACK_MAX_IN_FLIGHT", default_value_t = key_grpc::DEFAULT_MAX_IN_FLIGHT)]
    pub(crate) max_in_flight: usize,
    /// Requests the REST gateway serves at once; above it a request is answered 503
    /// `overloaded` with `Retry-After: 1`. `/healthz` and `/readyz` are never refused.
    #[arg(long, env = "KEYRACK_HTTP_MAX_IN_FLIGHT", default_value_t = key_gateway::DEFAULT_MAX_IN_FLIGHT)]
    pub(crate) http_max_in_flight: usize,
    /// Mark the web console's session cookie `Secure` (and name it with the `__Host-` prefix)
    /// although this listener speaks plain HTTP: for a proxy in front that terminates TLS.
    /// Implied by `--http-tls-cert`.
    #[arg(long, env = "KEYRACK_CONSOLE_SECURE_COOKIES", action = ArgAction::Set, value_parser = BoolishValueParser::new(), default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) console_secure_cookies: bool,
    /// The web console's public URL, as people's browsers reach it (through any proxy), e.g.
    /// `https://keys.example.com/console`: sign-in with the identity provider comes back to
    /// `<this>/sign-in/sso/callback`, the redirect URI to register there. Without its trailing
    /// `/console` it is also the OAuth 2.0 issuer (`https://keys.example.com`), which
    /// `/.well-known/oauth-authorization-server` names with its endpoints
    /// (`<issuer>/oauth/authorize`, `/oauth/token`, …). By default the HTTP listener's own
    /// address (`http://127.0.0.1:8080/console`).
    #[arg(long, env = "KEYRACK_CONSOLE_URL", value_name = "URL")]
    pub(crate) console_url: Option<String>,
    /// Sign people in to the web console with this OpenID Connect provider (its issuer URL;
    /// discovery at `<issuer>/.well-known/openid-configuration`), by the authorization code
    /// flow with PKCE. Needs `--oidc-client-id` and `--oidc-client-secret-file`.
    #[arg(long, env = "KEYRACK_OIDC_ISSUER", value_name = "URL", requires_all = ["oidc_client_id", "oidc_client_secret_file"])]
    oidc_issuer: Option<String>,
    /// Keyrack's client id at the OpenID Connect provider.
    #[arg(long, env = "KEYRACK_OIDC_CLIENT_ID", value_name = "ID")]
    oidc_client_id: Option<String>,
    /// File holding Keyrack's client secret at the provider (trailing whitespace ignored).
    #[arg(long, env = "KEYRACK_OIDC_CLIENT_SECRET_FILE", value_name = "FILE")]
    oidc_client_secret_file: Option<PathBuf>,
    /// The ID token claim matched to members' user ids, e.g. `email`, `preferred_username` or
    /// `sub`. An `email` the provider marks unverified (`email_verified: false`) signs no one in.
    #[arg(
        long,
        env = "KEYRACK_OIDC_USER_CLAIM",
        default_value = "email",
        value_name = "CLAIM"
    )]
    oidc_user_claim: String,
    /// Deprecated: `--drain-timeout` in whole seconds.
    #[arg(
        long,
        env = "KEYRACK_DRAIN_TIMEOUT_SECS",
        hide = true,
        conflicts_with = "drain_timeout"
    )]
    drain_timeout_secs: Option<u64>,
    /// Accept plain `http://` webhook endpoint URLs. For local development only: events would
    /// cross the network unencrypted.
    #[arg(long, env = "KEYRACK_WEBHOOK_ALLOW_HTTP", action = ArgAction::Set, value_parser = BoolishValueParser::new(), default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    webhook_allow_http: bool,
    /// Deliver webhooks to private, loopback and link-local addresses too (an endpoint on
    /// your own network). Off by default: a tenant's endpoint must not reach inside.
    #[arg(long, env = "KEYRACK_WEBHOOK_ALLOW_PRIVATE", action = ArgAction::Set, value_parser = BoolishValueParser::new(), default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    webhook_allow_private: bool,
    /// Reverse proxies in front of the REST gateway, comma-separated addresses or CIDR
    /// networks (e.g. `10.0.0.0/8,192.0.2.7`). The client's address, which the brute-force
    /// guard counts failures by, is read from the right of `X-Forwarded-For` through these
    /// proxies only; by default none is trusted and the client is the TCP peer. ext_authz
    /// checks walk the `X-Forwarded-For` of the checked request the same way, from the source
    /// address Envoy reports.
    #[arg(long, env = "KEYRACK_TRUSTED_PROXIES", value_name = "LIST")]
    trusted_proxies: Option<TrustedProxies>,
    /// Serve Envoy's ext_authz API (`envoy.service.auth.v3.Authorization/Check`) on the gRPC
    /// listener, with the routes of this TOML file: which scopes each host, method and path
    /// prefix needs (the first matching route decides; a request matching none is refused).
    /// Read once at start; without it, Check answers UNIMPLEMENTED.
    #[arg(long, env = "KEYRACK_EXT_AUTHZ_ROUTES", value_name = "FILE")]
    ext_authz_routes: Option<PathBuf>,
    /// Accept GitHub secret-scanning reports (`POST /api/secret-scanning/reports`, the
    /// ReportLeakedKeys RPC) signed by the public keys of this JSON file: GitHub's answer at
    /// https://api.github.com/meta/public_keys/secret_scanning, saved as is. Read once at
    /// start, never fetched; without it, every report is refused (401).
    #[arg(long, env = "KEYRACK_SECRET_SCANNING_KEYS", value_name = "FILE")]
    secret_scanning_keys: Option<PathBuf>,
    /// How many keys are cached in memory for verification (a few hundred bytes each).
    #[arg(long, env = "KEYRACK_KEY_CACHE_CAPACITY", default_value_t = key_service::verify::DEFAULT_KEY_CACHE_CAPACITY)]
    key_cache_capacity: usize,
    /// How long a cached key is trusted at most, e.g. `60s`. Changes reach the cache at once
    /// (this process's own, and other replicas' through PostgreSQL's cache notices), so this
    /// only bounds a change that announced nothing. `0` turns the cache off: every
    /// verification reads the database.
    #[arg(long, env = "KEYRACK_KEY_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    key_cache_ttl: Duration,
    /// Redis that keeps rate limits global across replicas, e.g. `redis://127.0.0.1:6379`.
    /// Unset: each process keeps its own limits in memory.
    #[arg(long, env = "KEYRACK_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// How long a rate limit decision waits for Redis before deciding locally, e.g. `50ms`.
    #[arg(long, env = "KEYRACK_REDIS_TIMEOUT", default_value = "50ms", value_parser = humantime::parse_duration)]
    redis_timeout: Duration,
    /// Deprecated: `--redis-timeout` in milliseconds.
    #[arg(
        long,
        env = "KEYRACK_REDIS_TIMEOUT_MS",
        hide = true,
        conflicts_with = "redis_timeout"
    )]
    redis_timeout_ms: Option<u64>,
    /// A MaxMind DB file (GeoIP2/GeoLite2 Country or City) to derive a verification's country
    /// from its client_ip when the request names none. Read once at start.
    #[arg(long, env = "KEYRACK_GEOIP_DB", value_name = "PATH")]
    geoip_db: Option<PathBuf>,
    /// How long per-minute usage is kept, e.g. `48h`.
    #[arg(long, env = "KEYRACK_USAGE_RETENTION_MINUTE", default_value = "48h", value_parser = humantime::parse_duration)]
    usage_retention_minute: Duration,
    /// How long hourly usage is kept, e.g. `90d`.
    #[arg(long, env = "KEYRACK_USAGE_RETENTION_HOUR", default_value = "90d", value_parser = humantime::parse_duration)]
    usage_retention_hour: Duration,
    /// How long daily usage is kept, e.g. `400d`.
    #[arg(long, env = "KEYRACK_USAGE_RETENTION_DAY", default_value = "400d", value_parser = humantime::parse_duration)]
    usage_retention_day: Duration,
    /// How long alert events (and their webhook deliveries, once settled) are kept, e.g. `90d`.
    #[arg(long, env = "KEYRACK_ALERT_RETENTION", default_value = "90d", value_parser = humantime::parse_duration)]
    alert_retention: Duration,
    /// How long audit events are kept, e.g. `400d`, or `keep` (the default): nothing is
    /// deleted.
    #[arg(long, env = "KEYRACK_AUDIT_RETENTION", default_value = "keep")]
    audit_retention: Retention,
    /// How long an OAuth 2.0 access token works, e.g. `1h` (the default) or `15m`: from 1 minute
    /// to 24 hours. Revoking its grant ends it sooner; the lifetime bounds what a leaked one
    /// nobody revoked is worth, and how often clients refresh.
    #[arg(long, env = "KEYRACK_OAUTH_ACCESS_TOKEN_TTL", default_value = "1h", value_parser = access_token_ttl)]
    oauth_access_token_ttl: Duration,
    /// `false` stops counting verifications: no usage, no last-used times, no usage alerts.
    /// Meant for measuring what metering costs (bench/metering.sh).
    #[arg(long, env = "KEYRACK_METERING", action = ArgAction::Set, value_parser = BoolishValueParser::new(), default_value = "true")]
    metering: bool,
    /// The gRPC API's certificate chain (PEM, the server's certificate first): the API is
    /// served over TLS only. Re-read when the file changes (checked every second), as are the
    /// key and the client CA.
    #[arg(
        long,
        env = "KEYRACK_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(
        long,
        env = "KEYRACK_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: the CA certificates (PEM) that sign the callers' client certificates. A
    /// caller without a certificate signed by one of them is refused during the handshake.
    #[arg(
        long,
        env = "KEYRACK_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_client_ca: Option<PathBuf>,
    #[command(flatten)]
    http_tls: HttpTlsArgs,
    /// What to do about pending database migrations at start: `auto` applies them (on
    /// PostgreSQL under a lock, so replicas started together migrate once), `check` refuses to
    /// start unless the schema is current (for deployments that migrate with a job: `keyrack
    /// migrate`), `off` does neither.
    #[arg(long, env = "KEYRACK_MIGRATE", value_enum, default_value = "auto")]
    pub(crate) migrate: MigratePolicy,
    #[command(flatten)]
    pub(crate) database: DatabaseConfig,
}

/// The ports of the listeners whose address is not given (the metrics port is the one
/// Prometheus exporters commonly use).
const GRPC_PORT: u16 = 50051;
const HTTP_PORT: u16 = 8080;
const METRICS_PORT: u16 = 9464;

impl ServeConfig {
    /// Where the gRPC API listens.
    pub(crate) fn grpc_listen(&self) -> SocketAddr {
        self.listen.unwrap_or(SocketAddr::new(self.host, GRPC_PORT))
    }

    /// Where the REST gateway listens, if anywhere.
    pub(crate) fn http_listen(&self) -> Listen {
        self.http_listen
            .unwrap_or(Listen::At(SocketAddr::new(self.host, HTTP_PORT)))
    }

    /// Where the metrics endpoint listens when `--metrics-listen` is not given.
    pub(crate) fn default_metrics_listen(&self) -> SocketAddr {
        SocketAddr::new(self.host, METRICS_PORT)
    }

    /// The application's settings. A retention too long for a date is refused here.
    pub(crate) fn settings(&self) -> anyhow::Result<Settings> {
        let delta = |duration: Duration, flag: &str| {
            TimeDelta::from_std(duration).with_context(|| format!("--{flag} is too long"))
        };
        let key_cache = KeyCacheSettings {
            capacity: self.key_cache_capacity,
            ttl: self.key_cache_ttl,
            negative_capacity: DEFAULT_NEGATIVE_CACHE_CAPACITY,
            negative_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
        };
        if key_cache.ttl.is_zero() || key_cache.capacity == 0 {
            tracing::warn!("the key cache is off: every verification reads the database");
        }
        if !self.metering {
            tracing::warn!("metering is off: verifications are not counted");
        }
        Ok(Settings {
            key_cache,
            metering: self.metering,
            usage_retention: UsageRetention {
                minute: delta(self.usage_retention_minute, "usage-retention-minute")?,
                hour: delta(self.usage_retention_hour, "usage-retention-hour")?,
                day: delta(self.usage_retention_day, "usage-retention-day")?,
            },
            alert_retention: delta(self.alert_retention, "alert-retention")?,
            audit_retention: self
                .audit_retention
                .0
                .map(|retention| delta(retention, "audit-retention"))
                .transpose()?,
            access_token_lifetime: delta(self.oauth_access_token_ttl, "oauth-access-token-ttl")?,
            webhooks: WebhookSettings {
                allow_http: self.webhook_allow_http,
                allow_private: self.webhook_allow_private,
                ..WebhookSettings::default()
            },
            ..Settings::default()
        })
    }

    /// How long the servers drain at shutdown.
    pub(crate) fn drain_timeout(&self) -> Duration {
        self.drain_timeout_secs
            .map_or(self.drain_timeout, Duration::from_secs)
    }

    /// The gRPC API's TLS configuration, if it has a certificate. Files that cannot be read
    /// or do not load stop the start.
    pub(crate) fn grpc_tls(&self) -> anyhow::Result<Option<ServerTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.tls_client_ca.clone(),
        };
        let tls = ServerTls::load(files, Protocols::Http2).context("--tls-cert/--tls-key")?;
        Ok(Some(tls))
    }

    /// The REST gateway's TLS configuration, if it has a certificate.
    pub(crate) fn http_tls(&self) -> anyhow::Result<Option<ServerTls>> {
        self.http_tls.load()
    }

    /// The ext_authz routes, if a file is given. One that cannot be read or has a mistake
    /// stops the start.
    pub(crate) fn ext_authz_routes(&self) -> anyhow::Result<Option<ExtAuthzRoutes>> {
        let Some(path) = &self.ext_authz_routes else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--ext-authz-routes: cannot read {}", path.display()))?;
        let routes = ExtAuthzRoutes::parse(&text)
            .with_context(|| format!("--ext-authz-routes {}", path.display()))?;
        tracing::info!(path = %path.display(), routes = routes.len(), "ext_authz routes loaded");
        Ok(Some(routes))
    }

    /// The public keys secret-scanning reports are verified with, if a file is given. One that
    /// cannot be read or lists a key that is not ECDSA P-256 stops the start.
    pub(crate) fn secret_scanning_keys(&self) -> anyhow::Result<Option<SecretScanningKeys>> {
        let Some(path) = &self.secret_scanning_keys else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--secret-scanning-keys: cannot read {}", path.display()))?;
        let keys = SecretScanningKeys::parse(&text)
            .with_context(|| format!("--secret-scanning-keys {}", path.display()))?;
        tracing::info!(path = %path.display(), keys = keys.len(), "secret-scanning keys loaded");
        Ok(Some(keys))
    }

    /// The OpenID Connect provider people sign in with, if one is configured. A secret file
    /// that cannot be read, or is empty, stops the start.
    pub(crate) fn sso(&self) -> anyhow::Result<Option<SsoConfig>> {
        let (Some(issuer), Some(client_id), Some(path)) = (
            &self.oidc_issuer,
            &self.oidc_client_id,
            &self.oidc_client_secret_file,
        ) else {
            return Ok(None);
        };
        let secret = std::fs::read_to_string(path).with_context(|| {
            format!("--oidc-client-secret-file: cannot read {}", path.display())
        })?;
        let secret = secret.trim_end();
        anyhow::ensure!(
            !secret.is_empty(),
            "--oidc-client-secret-file {} is empty",
            path.display()
        );
        tracing::info!(issuer, client_id, claim = %self.oidc_user_claim, "console sign-in with an OpenID Connect provider");
        Ok(Some(SsoConfig {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            client_secret: secret.to_owned(),
            user_claim: self.oidc_user_claim.clone(),
        }))
    }

    /// Whose `X-Forwarded-For` the gateway believes.
    pub(crate) fn trusted_proxies(&self) -> TrustedProxies {
        self.trusted_proxies.clone().unwrap_or_default()
    }

    /// The rate limiter. A malformed Redis URL stops the start (a configuration mistake); an
    /// unreachable Redis does not: the limiter starts on local limits, says so in the log and
    /// in `metrics`, and moves to Redis once it answers.
    pub(crate) async fn limiter(&self, metrics: &Metrics) -> anyhow::Result<RateLimiter> {
        let Some(url) = &self.redis_url else {
            tracing::info!("rate limits are kept in this process's memory (no --redis-url)");
            return Ok(RateLimiter::default());
        };
        let timeout = self
            .redis_timeout_ms
            .map_or(self.redis_timeout, Duration::from_millis);
        let limiter = RedisLimiter::new(url)?.with_timeout(timeout);
        // Logs whether Redis answered; either way the limiter is ready.
        limiter.probe(metrics).await;
        Ok(limiter.into())
    }

    /// The country database, if one is configured. One that cannot be read stops the start:
    /// running silently without the countries the operator asked for would hide it.
    pub(crate) fn country_db(&self) -> anyhow::Result<Option<CountryDb>> {
        let Some(path) = &self.geoip_db else {
            return Ok(None);
        };
        let db = CountryDb::open(path)?;
        tracing::info!(path = %path.display(), "country database loaded");
        Ok(Some(db))
    }
}

/// A retention: `keep` (nothing is deleted), or a duration like `400d`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention(Option<Duration>);

impl std::str::FromStr for Retention {
    type Err = humantime::DurationError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("keep") {
            return Ok(Retention(None));
        }
        humantime::parse_duration(value).map(|duration| Retention(Some(duration)))
    }
}

/// Where a server listens, if anywhere.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listen {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = std::net::AddrParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("off") {
            Ok(Listen::Off)
        } else {
            value.parse().map(Listen::At)
        }
    }
}

/// The REST gateway's HTTPS listener, the same flags in `serve` and `gateway`.
#[derive(Debug, Clone, Args)]
pub(crate) struct HttpTlsArgs {
    /// The REST gateway's certificate chain (PEM): the gateway is served over HTTPS only.
    /// Re-read when the file changes, as is the key.
    #[arg(
        long,
        env = "KEYRACK_HTTP_TLS_CERT",
        value_name = "FILE",
        requires = "http_tls_key"
    )]
    http_tls_cert: Option<PathBuf>,
    /// The private key of `--http-tls-cert` (PEM).
    #[arg(
        long,
        env = "KEYRACK_HTTP_TLS_KEY",
        value_name = "FILE",
        requires = "http_tls_cert"
    )]
    http_tls_key: Option<PathBuf>,
}

impl HttpTlsArgs {
    /// The listener's TLS configuration, if it has a certificate. Files that cannot be read
    /// stop the start.
    pub(crate) fn load(&self) -> anyhow::Result<Option<ServerTls>> {
        let (Some(cert), Some(key)) = (&self.http_tls_cert, &self.http_tls_key) else {
            return Ok(None);
        };
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        };
        let tls = ServerTls::load(files, Protocols::Http2AndHttp1)
            .context("--http-tls-cert/--http-tls-key")?;
        Ok(Some(tls))
    }
}

/// `--oauth-access-token-ttl`: a duration from a minute to a day.
fn access_token_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if !(Duration::from_secs(60)..=Duration::from_secs(24 * 3600)).contains(&ttl) {
        return Err("an access token lives from 1m to 24h".to_owned());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        config: ServeConfig,
    }

    fn parse(args: &[&str]) -> Result<ServeConfig, clap::Error> {
        let mut argv = vec!["serve"];
        argv.extend_from_slice(args);
        Serve::try_parse_from(argv).map(|serve| serve.config)
    }

    #[test]
    fn durations_are_humantime_and_the_old_flags_still_work() {
        let config = parse(&["--drain-timeout", "1500ms", "--redis-timeout", "2s"]).unwrap();
        assert_eq!(config.drain_timeout(), Duration::from_millis(1500));
        assert_eq!(config.redis_timeout, Duration::from_secs(2));
        let old = parse(&["--drain-timeout-secs", "3", "--redis-timeout-ms", "20"]).unwrap();
        assert_eq!(old.drain_timeout(), Duration::from_secs(3));
        assert_eq!(old.redis_timeout_ms, Some(20));
        assert!(parse(&["--drain-timeout", "2s", "--drain-timeout-secs", "3"]).is_err());
        assert_eq!(parse(&[]).unwrap().drain_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn booleans_are_booleans_and_on_off_still_works() {
        assert!(parse(&[]).unwrap().settings().unwrap().metering);
        for off in ["off", "false", "0", "no"] {
            assert!(!parse(&["--metering", off]).unwrap().metering, "{off}");
        }
        assert!(parse(&["--metering", "on"]).unwrap().metering);
        assert!(parse(&["--metering", "maybe"]).is_err());
        assert!(!parse(&[]).unwrap().webhook_allow_http);
        assert!(parse(&["--webhook-allow-http"]).unwrap().webhook_allow_http);
        assert!(
            !parse(&["--webhook-allow-http", "false"])
                .unwrap()
                .webhook_allow_http
        );
    }

    #[test]
    fn audit_events_are_kept_unless_a_retention_is_set() {
        assert_eq!(
            parse(&[]).unwrap().settings().unwrap().audit_retention,
            None
        );
        let set = parse(&["--audit-retention", "400d"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(set.audit_retention, Some(TimeDelta::days(400)));
        assert!(parse(&["--audit-retention", "forever"]).is_err());
    }

    #[test]
    fn one_host_setting_moves_every_listener_and_explicit_addresses_win() {
        let local = parse(&[]).unwrap();
        assert_eq!(local.grpc_listen().to_string(), "127.0.0.1:50051");
        assert!(
            matches!(local.http_listen(), Listen::At(at) if at.to_string() == "127.0.0.1:8080")
        );
        assert_eq!(local.default_metrics_listen().to_string(), "127.0.0.1:9464");
        let all = parse(&["--host", "0.0.0.0"]).unwrap();
        assert_eq!(all.grpc_listen().to_string(), "0.0.0.0:50051");
        assert!(matches!(all.http_listen(), Listen::At(at) if at.to_string() == "0.0.0.0:8080"));
        assert_eq!(all.default_metrics_listen().to_string(), "0.0.0.0:9464");
        let mixed = parse(&[
            "--host",
            "::",
            "--listen",
            "127.0.0.1:7000",
            "--http-listen",
            "off",
        ])
        .unwrap();
        assert_eq!(mixed.grpc_listen().to_string(), "127.0.0.1:7000");
        assert!(matches!(mixed.http_listen(), Listen::Off));
        assert_eq!(mixed.default_metrics_listen().to_string(), "[::]:9464");
        assert!(parse(&["--host", "example.com"]).is_err());
    }

    #[test]
    fn a_certificate_needs_its_key_and_a_client_ca_needs_a_certificate() {
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
        assert!(parse(&["--tls-client-ca", "ca.pem"]).is_err());
        assert!(parse(&["--http-tls-cert", "c.pem"]).is_err());
        let config = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert!(config.grpc_tls().is_err(), "missing files are an error");
        let plain = parse(&[]).unwrap();
        assert!(plain.grpc_tls().unwrap().is_none() && plain.http_tls().unwrap().is_none());
    }

    #[test]
    fn the_defaults_are_the_applications() {
        let settings = parse(&[]).unwrap().settings().unwrap();
        assert_eq!(settings, Settings::default());
        let short = parse(&["--oauth-access-token-ttl", "15m"]).unwrap();
        assert_eq!(
            short.settings().unwrap().access_token_lifetime,
            TimeDelta::minutes(15)
        );
        assert!(parse(&["--oauth-access-token-ttl", "30s"]).is_err());
        assert!(parse(&["--oauth-access-token-ttl", "2d"]).is_err());
    }
}
