//! The hot path: may the presented key do what the request needs? One entry point,
//! [`Verifier::verify`], owns everything it takes: the pepper, the key cache and the coalesced
//! store lookups behind it, the rate limiter, the brute-force guard, the meter, the country
//! database and the clock.
//!
//! Read [`Verifier::verify`] top to bottom: format, digest, cache (or, past the guard,
//! lookup), verdict, limits, credits, count. Nothing here writes to the store, but for the
//! spend of a key with credits (`Store::spend_credits`), which must be exact across replicas.

mod context;
mod ext_authz;
mod geoip;
mod key_cache;
mod key_lookup;
mod meter;
mod tag_budget;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use key_core::{
    ApiKey, Clock, CredentialKind, Error, KeyDigest, KeyRecord, KeyState, KeyType, KeyView, Pepper,
    RateDecision, RateLimits, Role, Scope, ScopeSet, Verdict, effective_scopes, verify_effective,
};
use key_store::{Resolution, Spend, Store};
use tracing::Instrument;
use uuid::Uuid;

pub use self::{
    context::{Country, MAX_TAG_LEN, VerifyContext},
    ext_authz::{
        AuthzRequest, ClientAddresses, Decision, ExtAuthz, ExtAuthzRoutes, NO_ROUTE_MESSAGE, Route,
        RoutesError,
    },
    geoip::CountryDb,
    key_cache::{
        DEFAULT_KEY_CACHE_CAPACITY, DEFAULT_KEY_CACHE_TTL, DEFAULT_NEGATIVE_CACHE_CAPACITY,
        DEFAULT_NEGATIVE_CACHE_TTL, KeyCacheSettings,
    },
};
pub(crate) use self::{key_cache::KeyCache, meter::Meter};
use self::{
    key_cache::{CachedKey, Lookup},
    key_lookup::{AccessTokens, KeyLookups},
    meter::Counted,
    tag_budget::TagBudget,
};
use crate::{
    metrics::{Metrics, UnknownKeyReason},
    rate_limit::{BruteForceGuard, RateLimiter, Suspect},
};

/// Which checks a verification makes besides the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// VerifyKey (and forward-auth): a valid key then passes its rate limits.
    Request,
    /// Authenticating the caller of an admin call: no rate limit, so an operator is never
    /// locked out of revoking a key by that key's own traffic. (The brute-force guard stands
    /// in both modes.)
    Authenticate,
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
    /// For a key with credits that got as far as spending them: what is left (after the
    /// spend when valid; unchanged when the credits fell short).
    pub credits_remaining: Option<i64>,
}

impl Verification {
    /// The verdict as a domain error, or `None` when valid.
    pub fn error(&self) -> Option<Error> {
        self.verdict
            .into_error(self.record.as_ref().and_then(|record| record.expires_at))
    }
}

/// The verification path. Cheap to clone; clones share the cache, the counters and the limits.
#[derive(Debug, Clone)]
pub struct Verifier {
    store: Store,
    pepper: Arc<Pepper>,
    clock: Arc<dyn Clock>,
    key_cache: Arc<KeyCache>,
    /// The store lookups of cache misses, coalesced under load (one per process).
    key_lookups: Arc<KeyLookups>,
    /// The same for OAuth access tokens, which live in their own table.
    token_lookups: Arc<KeyLookups<AccessTokens>>,
    limiter: Arc<RateLimiter>,
    guard: Arc<BruteForceGuard>,
    meter: Meter,
    /// Whether verifications are counted (on unless a benchmark turns it off).
    metering: bool,
    /// The distinct tags each key and organization may count an hour.
    tag_budget: Arc<TagBudget>,
    country_db: Option<CountryDb>,
    metrics: Metrics,
}

/// What a [`Verifier`] is made of; [`crate::Application::build`] assembles it.
#[derive(Debug)]
pub(crate) struct VerifierParts {
    pub(crate) store: Store,
    pub(crate) pepper: Arc<Pepper>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) key_cache: Arc<KeyCache>,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) guard: Arc<BruteForceGuard>,
    pub(crate) meter: Meter,
    pub(crate) metering: bool,
    pub(crate) country_db: Option<CountryDb>,
    pub(crate) metrics: Metrics,
}

impl Verifier {
    pub(crate) fn new(parts: VerifierParts) -> Verifier {
        Verifier {
            key_lookups: Arc::new(KeyLookups::new(parts.store.clone())),
            token_lookups: Arc::new(KeyLookups::new(AccessTokens(parts.store.clone()))),
            store: parts.store,
            pepper: parts.pepper,
            clock: parts.clock,
            key_cache: parts.key_cache,
            limiter: parts.limiter,
            guard: parts.guard,
            meter: parts.meter,
            metering: parts.metering,
            tag_budget: Arc::default(),
            country_db: parts.country_db,
            metrics: parts.metrics,
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
    /// count is kept in memory until the next flush.
    ///
    /// The brute-force guard stands before every lookup, in both modes: an `invalid_api_key`
    /// verdict counts against the client's network (`context.client_ip`, or `context.peer`
    /// when the caller named no client) and the key's lead; while either is blocked, a key
    /// that is not in the key cache is refused (`TooManyFailures`) without a lookup. Keys in
    /// the cache are judged as usual, so a block does not lock out the clients that share a
    /// blocked address.
    ///
    /// In [`Mode::Request`] only a VALID verdict is then rate limited and consumes budget: the
    /// key's limits (or its organization's default) are checked all-or-nothing, and an
    /// exhausted one turns the verdict into `RateLimited`, metered under `rate_limited`.
    ///
    /// `context` (validated by `VerifyContext::parse`) adds the country and the tag to the
    /// key's usage; verifications of unknown keys are counted in the deployment's metrics only.
    pub async fn verify(
        &self,
        presented: &str,
        required: &[Scope],
        context: &VerifyContext,
        mode: Mode,
    ) -> Result<Verification, Error> {
        // One clock reading serves the whole decision: reading it costs more than the rest of
        // a cached verification's bookkeeping, and one instant keeps the steps consistent.
        let now = self.clock.now();
        let mut suspect = Suspect {
            client: context.client_ip.or(context.peer),
            lead: None,
        };
        // A refresh token is of the key format but is no credential here: only the token
        // endpoint takes it. Refused like a malformed key, without a lookup.
        let parsed = ApiKey::parse(presented)
            .ok()
            .filter(|key| key.kind() != CredentialKind::RefreshToken);
        let verification = match parsed {
            Some(key) => {
                suspect.lead = Some(key.lead());
                self.judge(&key, required, context, mode, suspect, now)
                    .await?
            }
            None => match self.guard.blocked_until(suspect, now) {
                Some(reset) => self.refused(reset, now),
                None => {
                    self.metrics.unknown_key(UnknownKeyReason::Malformed);
                    Verification {
                        verdict: Verdict::Invalid,
                        record: None,
                        scopes: ScopeSet::EMPTY,
                        credits_remaining: None,
                    }
                }
            },
        };
        self.metrics.verification(&verification.verdict);
        // Only failures count: one success must not wipe out a guesser's record.
        if verification.verdict == Verdict::Invalid {
            self.guard.record_failure(suspect, now, &self.metrics);
        }
        Ok(verification)
    }

    /// The answer to a client the guard is refusing until `reset`.
    fn refused(&self, reset: DateTime<Utc>, now: DateTime<Utc>) -> Verification {
        self.metrics.unknown_key(UnknownKeyReason::Blocked);
        Verification {
            verdict: Verdict::TooManyFailures {
                retry_after: reset - now,
                reset,
            },
            record: None,
            scopes: ScopeSet::EMPTY,
            credits_remaining: None,
        }
    }

    /// Everything after parsing: digest, cache or (unless the guard refuses) lookup, verdict,
    /// limits, count.
    async fn judge(
        &self,
        key: &ApiKey,
        required: &[Scope],
        context: &VerifyContext,
        mode: Mode,
        suspect: Suspect,
        now: DateTime<Utc>,
    ) -> Result<Verification, Error> {
        let digest = self.pepper.digest(key);
        let cached = self.key_cache.lookup(&digest, now);
        if !matches!(cached, Lookup::Known(_))
            && let Some(reset) = self.guard.blocked_until(suspect, now)
        {
            return Ok(self.refused(reset, now));
        }
        let known = match cached {
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
                self.read_key(key, digest, now)
                    .instrument(key_telemetry::child_span(|| {
                        tracing::info_span!("store.read_key")
                    }))
                    .await?
            }
        };
        let (record, limits, effective) = match known {
            Some(cached) => (Some(cached.record), cached.limits, cached.effective),
            None => {
                self.metrics.unknown_key(UnknownKeyReason::NotFound);
                (None, RateLimits::NONE, None)
            }
        };
        // The address an IP allowlist judges: a request's end client as the caller named it (a
        // service's own address says nothing of its clients, so a request that names none is
        // refused by an allowlist); an admin call's own caller.
        let client = match mode {
            Mode::Request => context.client_ip,
            Mode::Authenticate => context.client_ip.or(context.peer),
        };
        // Judged now, from the record: a cached key expires at its expiry instant.
        let mut verdict = verify_effective(record.as_ref(), effective, required, client, now);
        if let (Mode::Request, Verdict::Valid, Some(record)) = (mode, verdict, &record)
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
        // Credits last, so that only an otherwise valid verification spends: a refused one
        // (wrong scope, rate limited, …) costs nothing. The count is read and changed by the
        // store's one atomic statement, never from the cache, so replicas never spend more than
        // there is. Admin calls (Mode::Authenticate) spend nothing.
        let mut credits_remaining = None;
        if let (Mode::Request, Verdict::Valid, Some(record)) = (mode, verdict, &record)
            && record.has_credits
        {
            let spend = self
                .store
                .spend_credits(record.id, context.cost.max(1), now)
                .instrument(key_telemetry::child_span(|| {
                    tracing::info_span!("store.spend_credits")
                }))
                .await?;
            match spend {
                Spend::Spent(left) => credits_remaining = Some(left),
                Spend::Exceeded(left) => {
                    credits_remaining = Some(left);
                    verdict = Verdict::UsageExceeded;
                }
                // The credits were removed since the key was cached: unlimited now.
                Spend::Unlimited => {}
            }
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
            // A tag is counted for valid verifications only (a caller holding a dead key must
            // not grow anyone's usage), and within the key's and its organization's budget.
            let tag = match (code, &context.tag) {
                ("valid", Some(tag)) => Some(self.tag_budget.admit(
                    record.id,
                    record.organization_id,
                    tag,
                    Resolution::Hour.bucket_start(now.timestamp()),
                    &self.metrics,
                )),
                _ => None,
            };
            let counted = Counted {
                code,
                country,
                tag,
                metrics: &self.metrics,
            };
            self.meter
                .record(record.id, record.organization_id, counted, now);
        }
        Ok(Verification {
            verdict,
            record,
            scopes: effective.unwrap_or(ScopeSet::EMPTY),
            credits_remaining,
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
        // Looked up at once when the store is quiet, with other misses under load; an access
        // token in its own table, as the key its grant is.
        let found = match key.kind() {
            CredentialKind::AccessToken => self.token_lookups.find(digest, &self.metrics).await?,
            CredentialKind::ApiKey | CredentialKind::RefreshToken => {
                self.key_lookups.find(digest, &self.metrics).await?
            }
        };
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
            (KeyType::Personal, Some(member_id)) => {
                member_scopes(&self.store, record.organization_id, member_id)
                    .await?
                    .map(|(_, scopes)| scopes)
            }
            (KeyType::Personal, None) | (KeyType::Organization, _) => None,
        };
        Ok(effective_scopes(record, limit))
    }

    /// The deployment's counters, e.g. for `VerifyContext::parse` to count what it ignored.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// How many keys, and how many unknown digests, this process has cached.
    pub fn cached_keys(&self) -> (usize, usize) {
        (self.key_cache.len(), self.key_cache.unknown_len())
    }

    /// How many keys have rate limit counters in this process's memory.
    pub fn limiter_entries(&self) -> usize {
        self.limiter.entries()
    }

    /// How many client addresses the brute-force guard tracks.
    pub fn guard_entries(&self) -> usize {
        self.guard.entries()
    }

    /// How many times the brute-force guard blocked a client address since start.
    pub fn brute_force_blocks(&self) -> u64 {
        self.guard.blocks()
    }

    /// Forgets rate limit counters of ended windows and brute-force streaks that went idle or
    /// cooled off, as of now. A job calls it every flush interval, so this memory follows
    /// current traffic instead of growing with every key and address ever seen.
    pub fn prune_rate_limit_state(&self) {
        let now = self.clock.now();
        self.limiter.prune(now);
        self.guard.prune(now);
        self.tag_budget
            .prune(Resolution::Hour.bucket_start(now.timestamp()));
    }
}

/// The member `member_id` of `organization_id` and the scopes their role may hold under the
/// organization's policy; `None` if there is no such member.
pub(crate) async fn member_scopes(
    store: &Store,
    organization_id: Uuid,
    member_id: Uuid,
) -> Result<Option<(key_store::Member, ScopeSet)>, Error> {
    let Some(member) = store.get_member(organization_id, member_id).await? else {
        return Ok(None);
    };
    let scopes = role_scopes(store, organization_id, member.role).await?;
    Ok(Some((member, scopes)))
}

/// The scopes `role` may hold under the policy of `organization_id` (the defaults if it has
/// none).
pub(crate) async fn role_scopes(
    store: &Store,
    organization_id: Uuid,
    role: Role,
) -> Result<ScopeSet, Error> {
    let organization = store.get_organization(organization_id).await?;
    Ok(scopes_of_role(organization.as_ref(), role))
}

/// The scopes `role` may hold under `organization`'s policy (the defaults for an organization
/// that is gone), for a caller that has read the organization already.
pub(crate) fn scopes_of_role(
    organization: Option<&key_store::Organization>,
    role: Role,
) -> ScopeSet {
    match organization {
        Some(organization) => organization.policy.role_scopes.scopes(role),
        None => key_core::OrganizationPolicy::default()
            .role_scopes
            .scopes(role),
    }
}
