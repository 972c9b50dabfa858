//! [`Application::build`]: everything Keyrack does, assembled once from its parts and its
//! settings. The binary builds it; each front door takes the operations it serves.

use std::sync::Arc;

use key_core::{Clock, Pepper, RandomSource};
use key_store::Store;

use crate::{
    Settings,
    access::Access,
    alerting::Alerting,
    jobs::{
        AlertEvaluator, AlertSweep, CacheNotices, DatabaseProbe, Jobs, RetentionJob, UsageFlusher,
        WebhookDelivery,
    },
    metrics::Metrics,
    ops::{
        Alerts, AuditLog, KeyIssuer, Keys, LeakReports, Oauth, Organizations, SecretScanningKeys,
        Sessions, Sso, SsoConfig, UsageReports, Webhooks,
    },
    rate_limit::{BruteForceGuard, RateLimiter},
    verify::{CountryDb, KeyCache, Meter, Verifier, VerifierParts},
};

/// What the application is made of besides its settings: the store, the pepper, the clock and
/// randomness, and what the binary prepares ahead (the rate limiter, which may be Redis; the
/// country database, read from a file; the metrics registry, which the metrics endpoint shares).
#[derive(Debug)]
pub struct Parts {
    /// The database.
    pub store: Store,
    /// The server secret keys are hashed under.
    pub pepper: Pepper,
    /// Every "now".
    pub clock: Arc<dyn Clock>,
    /// Keys, secrets and jitter.
    pub random: Arc<dyn RandomSource>,
    /// Where rate limit counters live (in memory by default).
    pub limiter: RateLimiter,
    /// Where a verification's country comes from when the request names none.
    pub country_db: Option<CountryDb>,
    /// The deployment's counters.
    pub metrics: Metrics,
    /// The public keys secret-scanning reports are verified with; without them every report is
    /// refused.
    pub secret_scanning_keys: Option<SecretScanningKeys>,
    /// The identity provider people sign in to the console with; without it only keys and
    /// sign-in links sign in.
    pub sso: Option<SsoConfig>,
}

impl Parts {
    /// The parts with an in-memory rate limiter, no country database and fresh metrics.
    pub fn new(
        store: Store,
        pepper: Pepper,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
    ) -> Parts {
        Parts {
            store,
            pepper,
            clock,
            random,
            limiter: RateLimiter::default(),
            country_db: None,
            metrics: Metrics::new(),
            secret_scanning_keys: None,
            sso: None,
        }
    }
}

/// Everything Keyrack does: the verifier on the hot path, authentication, one operations type
/// per resource, and the jobs. A plain record of small parts, each cheap to clone; the
/// clones share caches, counters and connections.
#[derive(Debug, Clone)]
pub struct Application {
    /// VerifyKey's decision.
    pub verifier: Verifier,
    /// Authentication of admin calls, and the permission checks behind every operation.
    pub access: Access,
    /// Keys.
    pub keys: Keys,
    /// Organizations and members.
    pub organizations: Organizations,
    /// ListUsage.
    pub usage: UsageReports,
    /// ListAuditEvents.
    pub audit: AuditLog,
    /// Console sessions and sign-in links.
    pub sessions: Sessions,
    /// Console sign-in with the identity provider.
    pub sso: Sso,
    /// OAuth 2.0: clients, consent, tokens, authorized applications.
    pub oauth: Oauth,
    /// Alert rules and events.
    pub alerts: Alerts,
    /// Webhook endpoints.
    pub webhooks: Webhooks,
    /// Leaked-key reports (GitHub secret scanning).
    pub leaks: LeakReports,
    /// The background jobs, not started.
    pub jobs: Jobs,
    /// The deployment's counters.
    pub metrics: Metrics,
    /// The store, for operator commands and tests that read it directly.
    pub store: Store,
}

impl Application {
    /// Assembles the application from `parts` as `settings` say. Nothing runs yet: the binary
    /// serves the front doors and starts [`Application::jobs`].
    pub fn build(parts: Parts, settings: &Settings) -> Application {
        let Parts {
            store,
            pepper,
            clock,
            random,
            limiter,
            country_db,
            metrics,
            secret_scanning_keys,
            sso,
        } = parts;
        let pepper = Arc::new(pepper);
        let key_cache = Arc::new(KeyCache::new(settings.key_cache));
        let meter = Meter::new(store.clone());
        let guard = BruteForceGuard::new(settings.brute_force);
        let verifier = Verifier::new(VerifierParts {
            store: store.clone(),
            pepper: Arc::clone(&pepper),
            clock: Arc::clone(&clock),
            key_cache: Arc::clone(&key_cache),
            limiter: Arc::new(limiter),
            guard: Arc::new(guard),
            meter: meter.clone(),
            metering: settings.metering,
            country_db,
            metrics: metrics.clone(),
        });
        let access = Access::new(
            verifier.clone(),
            store.clone(),
            Arc::clone(&clock),
            metrics.clone(),
            Arc::clone(&pepper),
        );
        let alerting = Alerting::new(store.clone(), Arc::clone(&clock), metrics.clone());
        let evaluator = AlertEvaluator::new(alerting.clone());
        let usage = UsageFlusher::new(meter, evaluator.clone(), metrics.clone());
        let issuer = KeyIssuer::new(Arc::clone(&pepper), Arc::clone(&random), Arc::clone(&clock));
        let jobs = Jobs {
            usage: usage.clone(),
            alerts: evaluator,
            retention: RetentionJob::new(
                store.clone(),
                Arc::clone(&clock),
                settings.usage_retention,
                settings.alert_retention,
                settings.audit_retention,
            ),
            alert_sweep: AlertSweep::new(store.clone(), alerting.clone()),
            webhooks: WebhookDelivery::new(
                store.clone(),
                Arc::clone(&clock),
                Arc::clone(&pepper),
                Arc::clone(&random),
                metrics.clone(),
                settings.webhooks,
            ),
            database: DatabaseProbe::new(store.clone(), metrics.clone()),
            cache_notices: CacheNotices::new(
                store.clone(),
                Arc::clone(&key_cache),
                metrics.clone(),
            ),
            verifier: verifier.clone(),
            flush_interval: settings.flush_interval,
            alert_sweep_interval: settings.alert_sweep_interval,
        };
        Application {
            keys: Keys::new(
                store.clone(),
                Arc::clone(&clock),
                access.clone(),
                issuer.clone(),
                Arc::clone(&key_cache),
                usage.clone(),
            ),
            organizations: Organizations::new(
                store.clone(),
                Arc::clone(&clock),
                access.clone(),
                issuer,
                Arc::clone(&key_cache),
            ),
            usage: UsageReports::new(
                store.clone(),
                Arc::clone(&clock),
                access.clone(),
                usage.clone(),
                settings.usage_retention,
            ),
            audit: AuditLog::new(store.clone(), access.clone()),
            sessions: Sessions::new(
                store.clone(),
                Arc::clone(&clock),
                access.clone(),
                Arc::clone(&pepper),
                Arc::clone(&random),
            ),
            sso: Sso::new(
                sso,
                store.clone(),
                Sessions::new(
                    store.clone(),
                    Arc::clone(&clock),
                    access.clone(),
                    Arc::clone(&pepper),
                    Arc::clone(&random),
                ),
                Arc::clone(&clock),
                Arc::clone(&random),
            ),
            oauth: Oauth::new(
                store.clone(),
                Arc::clone(&clock),
                access.clone(),
                Arc::clone(&pepper),
                Arc::clone(&random),
                Arc::clone(&key_cache),
                verifier.clone(),
            )
            .with_access_token_lifetime(settings.access_token_lifetime),
            leaks: LeakReports::new(
                store.clone(),
                Arc::clone(&clock),
                Arc::clone(&pepper),
                Arc::clone(&key_cache),
                alerting.clone(),
                secret_scanning_keys,
            ),
            alerts: Alerts::new(store.clone(), access.clone(), alerting, usage),
            webhooks: Webhooks::new(
                store.clone(),
                clock,
                access.clone(),
                pepper,
                random,
                settings.webhooks.allow_http,
            ),
            verifier,
            access,
            jobs,
            metrics,
            store,
        }
    }
}
