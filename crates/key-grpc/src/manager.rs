//! The decisions about keys: issuing, verifying, authenticating. Handlers call these; they
//! hold no rules of their own.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{
    ApiKey, AuditAction, AuditEvent, AuditOutcome, Clock, Environment, Error, KeyDigest, KeyName,
    KeyRecord, KeyState, KeyType, KeyView, OrganizationPolicy, Pepper, RandomSource, RateDecision,
    RateLimits, Scope, ScopeSet, Verdict, effective_scopes, verify_effective,
};
use key_store::{KeyChanges, KeyRotation, NewKey, Store};
use uuid::Uuid;

use crate::{
    Actor, RequestContext,
    alerts::AlertRuntime,
    audit::audit_event,
    context::VerifyContext,
    geoip::CountryDb,
    key_cache::{CachedKey, KeyCache, KeyCacheSettings, Lookup},
    key_lookup::KeyLookups,
    limiter::{BruteForceGuard, RateLimiter},
    meter::{Counted, Meter},
    metrics::{Metrics, UnknownKeyReason},
    retention::{self, UsageRetention},
    webhooks::{WebhookRuntime, WebhookSettings},
};

/// How often, by default, the usage counted in memory is written to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Everything a verification or an issue needs: the store, the pepper, the clock and the
/// random source. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KeyManager {
    store: Store,
    pepper: Arc<Pepper>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn RandomSource>,
    meter: Meter,
    /// Whether verifications are counted (on unless a benchmark turns it off).
    metering: bool,
    flush_interval: Duration,
    usage_retention: UsageRetention,
    country_db: Option<CountryDb>,
    limiter: Arc<RateLimiter>,
    guard: Arc<BruteForceGuard>,
    metrics: Metrics,
    webhooks: WebhookRuntime,
    alerts: AlertRuntime,
    key_cache: Arc<KeyCache>,
    /// The store lookups of cache misses, coalesced under load (one per process).
    key_lookups: Arc<KeyLookups>,
}

/// A validated request for a new key.
#[derive(Debug, Clone)]
pub struct NewKeyRequest {
    /// Its name.
    pub name: KeyName,
    /// Its scopes (never empty).
    pub scopes: ScopeSet,
    /// Its expiry, already checked to be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// live or test.
    pub environment: Environment,
    /// The organization's key, or a member's.
    pub key_type: KeyType,
    /// For a personal key, its member.
    pub member_id: Option<Uuid>,
    /// Whether it is an operator key.
    pub operator: bool,
    /// Its own rate limits (none: the organization's default applies).
    pub rate_limits: RateLimits,
}

/// The outcome of a rotation.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The old key, with its new expiry (or revocation) and `rotated_to`.
    pub old: KeyRecord,
    /// The successor, with `rotated_from`.
    pub new: KeyRecord,
    /// The successor's plaintext; shown once, kept nowhere.
    pub key: ApiKey,
}

/// The outcome of a verification, with the record when the key is known.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The verdict.
    pub verdict: Verdict,
    /// What verification knows of the key, when a stored key matched the presented one (as
    /// the key cache keeps it: copying it out allocates nothing).
    pub record: Option<KeyView>,
    /// What the key may do now: its scopes, limited for a personal key by its member's current
    /// role. Empty when the key is unknown or its member is gone.
    pub scopes: ScopeSet,
}

impl Verification {
    /// The verdict as a domain error, or `None` when valid.
    pub fn error(&self) -> Option<Error> {
        self.verdict
            .into_error(self.record.as_ref().and_then(|record| record.expires_at))
    }
}

impl KeyManager {
    /// A manager over `store`, hashing with `pepper`, telling time by `clock` and drawing
    /// keys from `rng`.
    pub fn new(
        store: Store,
        pepper: Pepper,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn RandomSource>,
    ) -> KeyManager {
        KeyManager {
            meter: Meter::new(store.clone()),
            key_lookups: Arc::new(KeyLookups::new(store.clone())),
            metering: true,
            store,
            pepper: Arc::new(pepper),
            clock,
            rng,
            flush_interval: FLUSH_INTERVAL,
            usage_retention: UsageRetention::default(),
            country_db: None,
            limiter: Arc::new(RateLimiter::default()),
            guard: Arc::new(BruteForceGuard::default()),
            metrics: Metrics::new(),
            webhooks: WebhookRuntime::default(),
            alerts: AlertRuntime::default(),
            key_cache: Arc::new(KeyCache::default()),
        }
    }

    /// Caches key records for verification as `settings` say (`KeyCacheSettings::default()`
    /// otherwise: a million keys for 5 s, a hundred thousand unknown digests for 60 s).
    /// `KeyCacheSettings::DISABLED`, or a zero `ttl`, reads the store at every verification.
    pub fn with_key_cache(mut self, settings: KeyCacheSettings) -> KeyManager {
        self.key_cache = Arc::new(KeyCache::new(settings));
        self
    }

    /// Draws keys and secrets from `rng` instead of the source given to `new`. Tests use it to
    /// know a key before it is issued.
    pub fn with_random_source(mut self, rng: Arc<dyn RandomSource>) -> KeyManager {
        self.rng = rng;
        self
    }

    /// How many keys, and how many unknown digests, this process has cached.
    pub fn cached_keys(&self) -> (usize, usize) {
        (self.key_cache.len(), self.key_cache.unknown_len())
    }

    /// Drops the key stored under `digest` from the key cache. Called after every change to a
    /// key that may alter its verdict (revoke, rotate, update) was written.
    pub(crate) fn forget_key(&self, digest: &KeyDigest) {
        self.key_cache.forget(digest);
    }

    /// Drops every cached key. Called after a change that may alter the verdict of many keys
    /// (a member's role or removal, an organization's policy) was written.
    pub(crate) fn forget_all_keys(&self) {
        self.key_cache.forget_all();
    }

    /// Forgets that `digest` matched no key, once a key with that digest was stored.
    pub(crate) fn key_created(&self, digest: &KeyDigest) {
        self.key_cache.key_created(digest);
    }

    /// Sweeps for keys about to expire or due for rotation every `interval` while a server
    /// runs (every 5 minutes by default).
    pub fn with_alert_sweep_interval(mut self, interval: Duration) -> KeyManager {
        self.alerts = self.alerts.with_sweep_interval(interval);
        self
    }

    /// The alert sweep interval and the evaluations in flight.
    pub(crate) fn alert_runtime(&self) -> &AlertRuntime {
        &self.alerts
    }

    /// Delivers webhooks as `settings` say (`WebhookSettings::default()` otherwise: https only,
    /// retries for 25 h, a poll every second).
    pub fn with_webhook_settings(mut self, settings: WebhookSettings) -> KeyManager {
        self.webhooks = WebhookRuntime::new(settings);
        self
    }

    /// How webhooks are delivered.
    pub fn webhook_settings(&self) -> WebhookSettings {
        self.webhooks.settings
    }

    /// The webhook settings and HTTP client.
    pub(crate) fn webhook_runtime(&self) -> &WebhookRuntime {
        &self.webhooks
    }

    /// The pepper, for keys derived from it (it never leaves key-core as bytes).
    pub(crate) fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    /// The random source, for secrets other than keys.
    pub(crate) fn random(&self) -> &dyn RandomSource {
        self.rng.as_ref()
    }

    /// With `false`, verifications are not counted: no usage, no `last_used_at`, no usage
    /// alerts. Only for measuring what metering costs (`bench/metering.sh`) or for deployments
    /// that must not record usage; on by default.
    pub fn with_metering(mut self, metering: bool) -> KeyManager {
        self.metering = metering;
        self
    }

    /// Counts into `metrics` (a fresh set by default), e.g. to share them with a metrics
    /// endpoint created before the manager.
    pub fn with_metrics(mut self, metrics: Metrics) -> KeyManager {
        self.metrics = metrics;
        self
    }

    /// The deployment's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Keeps rate limit counters in `limiter` (in this process's memory by default; a
    /// `RedisLimiter` shares them between replicas).
    pub fn with_limiter(mut self, limiter: impl Into<RateLimiter>) -> KeyManager {
        self.limiter = Arc::new(limiter.into());
        self
    }

    /// Refuses a client address for `cooling` after `threshold` consecutive failed
    /// verifications (100 and 60 s by default).
    pub fn with_brute_force_guard(mut self, threshold: u32, cooling: TimeDelta) -> KeyManager {
        self.guard = Arc::new(BruteForceGuard::new(threshold, cooling));
        self
    }

    /// How many times the brute-force guard blocked a client address since start.
    pub fn brute_force_blocks(&self) -> u64 {
        self.guard.blocks()
    }

    /// Forgets rate limit counters of ended windows and brute-force streaks that went idle or
    /// cooled off, as of now. The server calls it every flush interval, so this memory follows
    /// current traffic instead of growing with every key and address ever seen.
    pub fn prune_rate_limit_state(&self) {
        let now = self.now();
        self.limiter.prune(now);
        self.guard.prune(now);
    }

    /// How many keys have rate limit counters in this process's memory.
    pub fn limiter_entries(&self) -> usize {
        self.limiter.entries()
    }

    /// How many client addresses the brute-force guard tracks.
    pub fn guard_entries(&self) -> usize {
        self.guard.entries()
    }

    /// Writes the usage counted in memory to the store every `interval` while a server runs
    /// (`FLUSH_INTERVAL` by default). A crash loses at most one interval of counts.
    pub fn with_flush_interval(mut self, interval: Duration) -> KeyManager {
        self.flush_interval = interval;
        self
    }

    /// How often the server's flusher writes the usage counted in memory.
    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
    }

    /// Adds every verification counted in memory so far to the store, in one transaction, and
    /// returns how many per-minute counts it wrote (each into its minute, hour and day rows).
    /// Waits for a flush already under way, so usage read from the store afterwards includes
    /// every verification answered before the call. Cheap when nothing was counted. On failure
    /// the counts stay in memory for the next flush. What was written goes to the alert rules.
    pub async fn flush_usage(&self) -> Result<usize, Error> {
        let manager = self.clone();
        self.meter
            .flush(self.metrics.clone(), move |report| {
                crate::alerts::usage_flushed(&manager, report);
            })
            .await
    }

    /// Keeps usage for `retention` at each resolution (48 hours of minutes, 90 days of hours and
    /// 400 days of days by default).
    pub fn with_usage_retention(mut self, retention: UsageRetention) -> KeyManager {
        self.usage_retention = retention;
        self
    }

    /// How long usage is kept at each resolution.
    pub fn usage_retention(&self) -> UsageRetention {
        self.usage_retention
    }

    /// Deletes usage older than its retention, by the manager's clock, in bounded batches; the
    /// server calls it every `RETENTION_INTERVAL`. Returns how many rows it deleted.
    pub async fn prune_usage(&self) -> Result<u64, Error> {
        retention::prune(&self.store, &self.usage_retention, self.now()).await
    }

    /// Derives a verification's country from its client address with `country_db` when the
    /// request names no country.
    pub fn with_country_db(mut self, country_db: CountryDb) -> KeyManager {
        self.country_db = Some(country_db);
        self
    }

    /// The store, for reads that need no decision.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current time on the manager's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Draws a key, stores its digest and returns the record with the plaintext. The plaintext
    /// is not kept anywhere.
    pub async fn issue(
        &self,
        organization_id: Uuid,
        request: NewKeyRequest,
        actor: &Actor,
        context: &RequestContext,
    ) -> Result<(KeyRecord, ApiKey), Error> {
        let key = ApiKey::generate(request.environment, self.rng.as_ref())?;
        let created_by = match actor {
            Actor::Key(principal) => Some(principal.key_id),
            Actor::Operator | Actor::Anonymous => None,
        };
        let new_key = self.new_key(organization_id, &key, request, created_by);
        let digest = new_key.digest;
        let audit = self.created_event(&new_key, actor, context);
        let record = self.store.insert_key(new_key, &audit).await?;
        self.key_created(&digest);
        Ok((record, key))
    }

    fn created_event(&self, key: &NewKey, actor: &Actor, context: &RequestContext) -> AuditEvent {
        audit_event(
            actor,
            Some(key.organization_id),
            AuditAction::KeyCreate,
            key.id.to_string(),
            AuditOutcome::Success,
            None,
            context,
            self.now(),
        )
    }

    /// Rotates the key `id` of `organization_id`: issues a successor with the same name,
    /// scopes, environment and lifetime, created by `actor`, and lets the old key work for
    /// `grace` more (validated by `key_core::rotation_grace`; zero revokes it now). The old
    /// key's change, the successor and both audit events (`key.rotate` on the old key,
    /// `key.create` on the new one) are written in one transaction. The successor's expiry
    /// obeys `policy` (the organization's): capped at its maximum key lifetime, if any.
    pub async fn rotate(
        &self,
        organization_id: Uuid,
        id: Uuid,
        grace: TimeDelta,
        policy: &OrganizationPolicy,
        actor: &Actor,
        context: &RequestContext,
    ) -> Result<Rotation, Error> {
        let now = self.now();
        let created_by = match actor {
            Actor::Key(principal) => Some(principal.key_id),
            Actor::Operator | Actor::Anonymous => None,
        };
        // The plan may be decided more than once; the key of the last decision is the one
        // stored.
        let issued: Mutex<Option<ApiKey>> = Mutex::new(None);
        let rotated = self
            .store
            .rotate_key(organization_id, id, now, |old| {
                let change = old.rotate(now, grace)?;
                let key = ApiKey::generate(old.environment, self.rng.as_ref())?;
                let request = NewKeyRequest {
                    name: KeyName::parse(&old.name)?,
                    scopes: old.scopes,
                    expires_at: policy.cap_expiry(old.successor_expiry(now), now),
                    environment: old.environment,
                    key_type: old.key_type,
                    member_id: old.member_id,
                    operator: old.operator,
                    // A successor keeps its predecessor's limits.
                    rate_limits: old.rate_limits,
                };
                let successor = self.new_key(organization_id, &key, request, created_by);
                let audit = vec![
                    audit_event(
                        actor,
                        Some(organization_id),
                        AuditAction::KeyRotate,
                        old.id.to_string(),
                        AuditOutcome::Success,
                        None,
                        context,
                        now,
                    ),
                    self.created_event(&successor, actor, context),
                ];
                *issued.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
                Ok::<_, Error>(KeyRotation {
                    successor,
                    old_expires_at: change.expires_at,
                    revoke_reason: change.revoke_reason.map(str::to_owned),
                    audit,
                })
            })
            .await?
            .ok_or(Error::NotFound("key"))?;
        let key = issued
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or_else(|| Error::Internal("a rotation stored no successor key".to_owned()))?;
        let ((old, old_digest), new) = rotated;
        // The old key's expiry (or revocation) changed.
        self.forget_key(&old_digest);
        self.key_created(&self.pepper.digest(&key));
        Ok(Rotation { old, new, key })
    }

    /// Changes the key `id` of `organization_id` as `changes` says, with its `key.update`
    /// audit event, in one transaction. A revoked or rotated key is refused (`Conflict`).
    pub async fn update(
        &self,
        organization_id: Uuid,
        id: Uuid,
        changes: KeyChanges,
        actor: &Actor,
        context: &RequestContext,
    ) -> Result<KeyRecord, Error> {
        let now = self.now();
        let (record, digest) = self
            .store
            .update_key(organization_id, id, |current| {
                current.check_updatable()?;
                let audit = audit_event(
                    actor,
                    Some(organization_id),
                    AuditAction::KeyUpdate,
                    current.id.to_string(),
                    AuditOutcome::Success,
                    None,
                    context,
                    now,
                );
                Ok::<_, Error>((changes.clone(), audit))
            })
            .await?
            .ok_or(Error::NotFound("key"))?;
        self.forget_key(&digest);
        Ok(record)
    }

    /// Creates organization `name` with one admin key, unless the organization exists. Returns
    /// the key only to the one caller that created the organization.
    pub async fn bootstrap(&self, name: &str) -> Result<Option<(KeyRecord, ApiKey)>, Error> {
        let key = ApiKey::generate(Environment::Live, self.rng.as_ref())?;
        let request = NewKeyRequest {
            name: KeyName::parse("Bootstrap admin key")?,
            scopes: [Scope::Admin].into_iter().collect(),
            expires_at: None,
            environment: Environment::Live,
            key_type: KeyType::Organization,
            member_id: None,
            // The deployment's first key administers the deployment: it creates organizations.
            operator: true,
            rate_limits: RateLimits::NONE,
        };
        let created = self
            .store
            .bootstrap_organization(name, self.now(), |organization_id| {
                let new_key = self.new_key(organization_id, &key, request, None);
                let audit =
                    self.created_event(&new_key, &Actor::Operator, &RequestContext::default());
                (new_key, audit)
            })
            .await?;
        if created.is_some() {
            self.key_created(&self.pepper.digest(&key));
        }
        Ok(created.map(|record| (record, key)))
    }

    fn new_key(
        &self,
        organization_id: Uuid,
        key: &ApiKey,
        request: NewKeyRequest,
        created_by: Option<Uuid>,
    ) -> NewKey {
        NewKey {
            id: Uuid::now_v7(),
            organization_id,
            name: request.name.as_str().to_owned(),
            scopes: request.scopes,
            redacted: key.redacted(),
            digest: self.pepper.digest(key),
            created_at: self.now(),
            expires_at: request.expires_at,
            created_by,
            key_type: request.key_type,
            member_id: request.member_id,
            operator: request.operator,
            rate_limits: request.rate_limits,
        }
    }

    /// Decides whether `presented` may act under every scope of `required`, and counts the
    /// verification against the key, in memory, when the key is known.
    ///
    /// A malformed key is rejected without touching the database. A key in the key cache (or a
    /// digest in its negative cache) takes no lookup either. Otherwise an organization key
    /// takes one lookup; a personal key two more (its member and the organization's role
    /// scopes), as its effective scopes are its own limited by its member's current role, and
    /// a removed member's keys are invalid; what was read is cached. Nothing is written: the
    /// count is kept in memory until the next flush (`flush_usage`).
    ///
    /// No rate limit applies here: this is how admin RPCs authenticate their caller (an
    /// operator must not be locked out of revoking a key by that key's traffic). VerifyKey
    /// uses [`KeyManager::verify_request`].
    pub async fn verify(&self, presented: &str, required: &[Scope]) -> Result<Verification, Error> {
        let now = self.now();
        self.verify_inner(presented, required, false, &VerifyContext::default(), now)
            .await
    }

    /// [`KeyManager::verify`] for VerifyKey, with rate limits and the brute-force guard.
    ///
    /// A `client_ip` cooling off after too many failures is refused (`TooManyFailures`)
    /// without any lookup. Otherwise only a VALID verdict is rate limited and consumes budget
    /// (an invalid, expired or under-scoped request does not): the key's limits (or its
    /// organization's default) are checked all-or-nothing, and an exhausted one turns the
    /// verdict into `RateLimited`, metered under `rate_limited`.
    ///
    /// `context` (validated by `VerifyContext::parse`) adds the country and the tag to the
    /// key's usage; verifications of unknown keys are counted in the deployment's metrics only.
    pub async fn verify_request(
        &self,
        presented: &str,
        required: &[Scope],
        context: &VerifyContext,
    ) -> Result<Verification, Error> {
        let client_ip = context.client_ip;
        // One clock reading serves the whole decision: reading it costs more than the rest of
        // a cached verification's bookkeeping, and one instant keeps the steps consistent.
        let now = self.now();
        if let Some(ip) = client_ip
            && let Some(reset) = self.guard.blocked_until(ip, now)
        {
            self.metrics.unknown_key(UnknownKeyReason::Blocked);
            return Ok(Verification {
                verdict: Verdict::TooManyFailures {
                    retry_after: reset - now,
                    reset,
                },
                record: None,
                scopes: ScopeSet::EMPTY,
            });
        }
        let verification = self
            .verify_inner(presented, required, true, context, now)
            .await?;
        if let Some(ip) = client_ip {
            let failed = match verification.verdict {
                Verdict::Valid => Some(false),
                Verdict::Invalid => Some(true),
                _ => None,
            };
            self.guard.record(ip, failed, now, &self.metrics);
        }
        Ok(verification)
    }

    async fn verify_inner(
        &self,
        presented: &str,
        required: &[Scope],
        limited: bool,
        context: &VerifyContext,
        now: DateTime<Utc>,
    ) -> Result<Verification, Error> {
        let Ok(key) = ApiKey::parse(presented) else {
            self.metrics.unknown_key(UnknownKeyReason::Malformed);
            return Ok(Verification {
                verdict: Verdict::Invalid,
                record: None,
                scopes: ScopeSet::EMPTY,
            });
        };
        let digest = self.pepper.digest(&key);
        let known = match self.key_cache.lookup(&digest, now) {
            Lookup::Known(cached) => {
                self.metrics.key_cache_hit();
                Some(cached)
            }
            Lookup::Unknown => {
                self.metrics.key_cache_negative_hit();
                None
            }
            Lookup::Miss => {
                self.metrics.key_cache_miss();
                self.read_key(&key, digest, now).await?
            }
        };
        let (record, limits, effective) = match known {
            Some(cached) => (Some(cached.record), cached.limits, cached.effective),
            None => {
                self.metrics.unknown_key(UnknownKeyReason::NotFound);
                (None, RateLimits::NONE, None)
            }
        };
        // Judged now, from the record: a cached key expires at its expiry instant.
        let mut verdict = verify_effective(record.as_ref(), effective, required, now);
        if let (true, Verdict::Valid, Some(record)) = (limited, verdict, &record)
            && let RateDecision::Limited {
                limit,
                retry_after,
                reset,
            } = self
                .limiter
                .acquire(record.id, &limits, now, &self.metrics)
                .await
        {
            verdict = Verdict::RateLimited {
                limit,
                retry_after,
                remaining: 0,
                reset,
            };
        }
        if let (true, Some(record)) = (self.metering, &record) {
            let code = match verdict.into_error(record.expires_at) {
                None => "valid",
                Some(error) => error.code().reason(),
            };
            // The database is consulted only when the caller named no country.
            let country = context.country.or_else(|| {
                let ip = context.client_ip?;
                self.country_db.as_ref()?.country(ip)
            });
            let counted = Counted {
                code,
                country,
                tag: context.tag.as_ref(),
            };
            self.meter
                .record(record.id, record.organization_id, counted, now);
        }
        Ok(Verification {
            verdict,
            record,
            scopes: effective.unwrap_or(ScopeSet::EMPTY),
        })
    }

    /// Reads the key `key` (whose digest is `digest`) from the store and caches what was read,
    /// or that no key has this digest. `None` for an unknown key.
    async fn read_key(
        &self,
        key: &ApiKey,
        digest: KeyDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<CachedKey>, Error> {
        // Noted before the read: a change written meanwhile keeps this read out of the cache.
        let epoch = self.key_cache.epoch();
        // Looked up at once when the store is quiet, with other misses under load.
        let found = self.key_lookups.find(digest, &self.metrics).await?;
        let Some((record, _, limits)) =
            found.filter(|(_, stored, _)| self.pepper.matches(key, stored))
        else {
            self.key_cache.remember_unknown(digest, epoch, now);
            return Ok(None);
        };
        let effective = self.effective_scopes(&record, now).await?;
        let cached = CachedKey {
            record: KeyView::from(&record),
            limits,
            effective,
        };
        self.key_cache.remember(digest, cached.clone(), epoch, now);
        Ok(Some(cached))
    }

    /// What `record` may do now: see `key_core::effective_scopes`. `None` for a personal key
    /// whose member is gone. A revoked key needs no lookup: it is invalid anyway.
    async fn effective_scopes(
        &self,
        record: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<ScopeSet>, Error> {
        let limit = match (record.key_type, record.member_id) {
            (KeyType::Personal, _) if record.state(now) == KeyState::Revoked => None,
            (KeyType::Personal, Some(member_id)) => self
                .member_scopes(record.organization_id, member_id)
                .await?
                .map(|(_, scopes)| scopes),
            (KeyType::Personal, None) | (KeyType::Organization, _) => None,
        };
        Ok(effective_scopes(record, limit))
    }

    /// The policy of `organization_id`. The organization of an authenticated caller exists;
    /// its absence is an internal error.
    pub async fn policy(&self, organization_id: Uuid) -> Result<OrganizationPolicy, Error> {
        self.store
            .get_organization(organization_id)
            .await?
            .map(|organization| organization.policy)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "the caller's organization {organization_id} does not exist"
                ))
            })
    }

    /// The member `member_id` of `organization_id` and the scopes their role may hold under the
    /// organization's policy; `None` if there is no such member.
    pub async fn member_scopes(
        &self,
        organization_id: Uuid,
        member_id: Uuid,
    ) -> Result<Option<(key_store::Member, ScopeSet)>, Error> {
        let Some(member) = self.store.get_member(organization_id, member_id).await? else {
            return Ok(None);
        };
        let policy = self
            .store
            .get_organization(organization_id)
            .await?
            .map(|organization| organization.policy)
            .unwrap_or_default();
        let scopes = policy.role_scopes.scopes(member.role);
        Ok(Some((member, scopes)))
    }
}

/// Organizations: the first admin key of a new organization is drawn here and stored by
/// `Store::create_organization`, in the organization's own transaction.
impl KeyManager {
    /// Draws a key and describes it for `organization_id`, created by the key `created_by`.
    /// Nothing is stored; the plaintext is returned once, for the caller to show.
    pub(crate) fn draw_key(
        &self,
        organization_id: Uuid,
        request: NewKeyRequest,
        created_by: Option<Uuid>,
    ) -> Result<(NewKey, ApiKey), Error> {
        let key = ApiKey::generate(request.environment, self.rng.as_ref())?;
        let new_key = self.new_key(organization_id, &key, request, created_by);
        Ok((new_key, key))
    }
}
