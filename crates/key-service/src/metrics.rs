//! The deployment's counters, exposed in the Prometheus text format (`Metrics::render`), served
//! by the binary on its metrics listener.
//!
//! These are about the deployment, not about keys: per-key usage lives in the store. Counters
//! are atomics, so incrementing one on the verification path takes no lock.

use std::sync::Arc;

use key_core::Verdict;
use key_telemetry::RequestMetrics;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Why a verification of an unknown key failed.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum UnknownKeyReason {
    /// Rejected by the format check, before any lookup.
    Malformed,
    /// Well-formed, but no stored key has its digest.
    NotFound,
    /// Refused by the brute-force guard without a lookup.
    Blocked,
}

const fn reason_name(reason: UnknownKeyReason) -> &'static str {
    match reason {
        UnknownKeyReason::Malformed => "malformed",
        UnknownKeyReason::NotFound => "not_found",
        UnknownKeyReason::Blocked => "blocked",
    }
}

const fn field_name(field: ContextField) -> &'static str {
    match field {
        ContextField::ClientIp => "client_ip",
        ContextField::Country => "country",
        ContextField::Tag => "tag",
    }
}

/// Which field of a verification's context was ignored.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ContextField {
    /// `client_ip` was not an IP address.
    ClientIp,
    /// `country` was not an ISO 3166-1 alpha-2 code.
    Country,
    /// `tag` was too long or not printable ASCII.
    Tag,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabel {
    field: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

/// Every counter of the deployment. Cheap to clone; clones share the counters.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    /// One counter per `UnknownKeyReason`, taken out of their family once: incrementing one is
    /// a single atomic add, without the family's lock (a flood of random keys increments these
    /// at full rate).
    unknown_key_verifications: [Counter; 3],
    /// One counter per `ContextField`, for the same reason.
    invalid_context: [Counter; 3],
    brute_force_blocks: Counter,
    limiter_fallbacks: Counter,
    limiter_remote_up: Gauge,
    usage_flush_failures: Counter,
    alert_events: Family<TypeLabel, Counter>,
    webhook_attempts: Family<OutcomeLabel, Counter>,
    key_cache_hits: Counter,
    key_cache_misses: Counter,
    key_cache_negative_hits: Counter,
    key_lookups: KeyLookupCounters,
    usage_tag_overflow: Counter,
    usage_counts_dropped: Counter,
    auth_refusals: Family<ReasonLabel, Counter>,
    database_up: Gauge,
    /// One counter per verdict (`Verdict::index`), for the same reason as above.
    verifications: [Counter; Verdict::NAMES.len()],
    usage_flush_duration: Histogram,
    usage_last_flush: Gauge,
    build_info: Family<BuildLabels, Gauge>,
    requests: RequestMetrics,
    /// Connections of the database pool, in use and idle.
    database_connections: [Gauge; 2],
    webhook_backlog: Gauge,
    /// The cache notice listener: whether it is subscribed, notices received, losses.
    cache_notices: CacheNoticeMetrics,
}

#[derive(Debug, Default)]
struct CacheNoticeMetrics {
    listening: Gauge,
    received: Counter,
    losses: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of counters, all zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keyrack");
        let unknown_key_verifications = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "unknown_key_verifications",
            "Verifications of keys that match no stored key (malformed, not found, or refused by the brute-force guard)",
            unknown_key_verifications.clone(),
        );
        let unknown_key_verifications = [
            UnknownKeyReason::Malformed,
            UnknownKeyReason::NotFound,
            UnknownKeyReason::Blocked,
        ]
        .map(|reason| {
            unknown_key_verifications
                .get_or_create(&ReasonLabel {
                    reason: reason_name(reason),
                })
                .clone()
        });
        let invalid_context = Family::<FieldLabel, Counter>::default();
        registry.register(
            "verify_context_invalid",
            "VerifyKey context values (client_ip, country, tag) ignored because they were invalid",
            invalid_context.clone(),
        );
        let invalid_context = [
            ContextField::ClientIp,
            ContextField::Country,
            ContextField::Tag,
        ]
        .map(|field| {
            invalid_context
                .get_or_create(&FieldLabel {
                    field: field_name(field),
                })
                .clone()
        });
        let brute_force_blocks = Counter::default();
        registry.register(
            "brute_force_blocks",
            "Client addresses blocked after too many consecutive failed verifications",
            brute_force_blocks.clone(),
        );
        let limiter_fallbacks = Counter::default();
        registry.register(
            "rate_limiter_fallbacks",
            "Rate limit decisions taken by the local limiter because the shared (Redis) limiter was unreachable",
            limiter_fallbacks.clone(),
        );
        let limiter_remote_up = Gauge::default();
        registry.register(
            "rate_limiter_remote_up",
            "1 when the shared (Redis) limiter answered its last request, 0 when it did not or none is configured",
            limiter_remote_up.clone(),
        );
        let usage_flush_failures = Counter::default();
        registry.register(
            "usage_flush_failures",
            "Usage flushes that failed; their counts were kept for the next flush",
            usage_flush_failures.clone(),
        );
        let alert_events = Family::<TypeLabel, Counter>::default();
        registry.register(
            "alert_events",
            "Alert events created, by type",
            alert_events.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "webhook_delivery_attempts",
            "Webhook delivery attempts, by outcome (succeeded, failed)",
            webhook_attempts.clone(),
        );
        let key_cache_hits = Counter::default();
        registry.register(
            "key_cache_hits",
            "Verifications of well-formed keys answered from the in-process key cache, without a database read",
            key_cache_hits.clone(),
        );
        let key_cache_misses = Counter::default();
        registry.register(
            "key_cache_misses",
            "Verifications of well-formed keys that read the database (not cached, or cached too long ago)",
            key_cache_misses.clone(),
        );
        let key_cache_negative_hits = Counter::default();
        registry.register(
            "key_cache_negative_hits",
            "Verifications of well-formed keys refused as unknown from the negative cache, without a database read",
            key_cache_negative_hits.clone(),
        );
        let key_lookups = KeyLookupCounters::register(&mut registry);
        let auth_refusals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "auth_refusals",
            "Admin calls refused for their credential or their permission, by reason (each is audited, anonymous ones at most once a minute per client address)",
            auth_refusals.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "1 while the database answers the readiness probe, 0 while it does not",
            database_up.clone(),
        );
        let usage_tag_overflow = Counter::default();
        registry.register(
            "usage_tag_overflow",
            "Verifications counted under the tag `other` because their key or organization had counted its most distinct tags this hour",
            usage_tag_overflow.clone(),
        );
        let usage_counts_dropped = Counter::default();
        registry.register(
            "usage_counts_dropped",
            "Verifications not counted in usage because the counts waiting for a flush reached their bound (the database is slow or down)",
            usage_counts_dropped.clone(),
        );
        let verifications = Family::<VerdictLabel, Counter>::default();
        registry.register(
            "verifications",
            "Verifications (VerifyKey, forward-auth and admin authentication), by verdict",
            verifications.clone(),
        );
        let verifications = Verdict::NAMES.map(|verdict| {
            verifications
                .get_or_create(&VerdictLabel { verdict })
                .clone()
        });
        // 1 ms doubling to 16 s: a flush is one transaction per 140 keys.
        let usage_flush_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "usage_flush_duration_seconds",
            "How long each usage flush that wrote counts took, in seconds",
            usage_flush_duration.clone(),
        );
        let usage_last_flush = Gauge::default();
        registry.register(
            "usage_flush_last_success_timestamp_seconds",
            "When usage was last flushed without a failure, in Unix seconds: time() minus this is how far behind the stored usage is",
            usage_last_flush.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "The running build: always 1, its version and commit in the labels",
            build_info.clone(),
        );
        let requests = RequestMetrics::register(&mut registry);
        let database_connections = Family::<StateLabel, Gauge>::default();
        registry.register(
            "database_connections",
            "Connections of the database pool, by state (in_use, idle), sampled every second",
            database_connections.clone(),
        );
        let database_connections = ["in_use", "idle"].map(|state| {
            database_connections
                .get_or_create(&StateLabel { state })
                .clone()
        });
        let webhook_backlog = Gauge::default();
        registry.register(
            "webhook_deliveries_due",
            "Webhook deliveries due and not yet started, at the delivery worker's last poll",
            webhook_backlog.clone(),
        );
        let cache_notices = CacheNoticeMetrics::default();
        registry.register(
            "cache_notices_listening",
            "1 while the key cache hears of every change (always on SQLite, one process; on PostgreSQL while LISTEN is subscribed); 0 while it does not and every verification reads the database",
            cache_notices.listening.clone(),
        );
        registry.register(
            "cache_notices",
            "Cache notices received (changes committed by any process, this one included)",
            cache_notices.received.clone(),
        );
        registry.register(
            "cache_notice_listener_losses",
            "Times the cache notice listener lost its connection (the cache was emptied each time)",
            cache_notices.losses.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                cache_notices,
                database_connections,
                webhook_backlog,
                verifications,
                usage_flush_duration,
                usage_last_flush,
                build_info,
                requests,
                registry,
                unknown_key_verifications,
                invalid_context,
                brute_force_blocks,
                limiter_fallbacks,
                limiter_remote_up,
                usage_flush_failures,
                alert_events,
                webhook_attempts,
                key_cache_hits,
                key_cache_misses,
                key_cache_negative_hits,
                key_lookups,
                usage_tag_overflow,
                usage_counts_dropped,
                auth_refusals,
                database_up,
            }),
        }
    }

    /// The request histograms the front doors record into.
    pub fn requests(&self) -> RequestMetrics {
        self.inner.requests.clone()
    }

    /// Names the running build (`keyrack_build_info{version, commit} 1`).
    pub fn set_build_info(&self, version: &str, commit: &str) {
        self.inner
            .build_info
            .get_or_create(&BuildLabels {
                version: version.to_owned(),
                commit: commit.to_owned(),
            })
            .set(1);
    }

    /// The database pool's connections: `open` in all, `idle` of them unused.
    pub(crate) fn set_database_connections(&self, open: u32, idle: usize) {
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        self.inner.database_connections[0].set(i64::from(open).saturating_sub(idle).max(0));
        self.inner.database_connections[1].set(idle);
    }

    /// The webhook deliveries due and not yet started.
    pub(crate) fn set_webhook_backlog(&self, due: u64) {
        self.inner
            .webhook_backlog
            .set(i64::try_from(due).unwrap_or(i64::MAX));
    }

    /// Counts a verification's verdict.
    pub(crate) fn verification(&self, verdict: &Verdict) {
        self.inner.verifications[verdict.index()].inc();
    }

    /// Records a usage flush that wrote counts for `seconds` (`None`: it had nothing to
    /// write), `succeeded` or not. The time of the last success is the wall clock's, which is
    /// what a scraper's `time()` compares it with.
    pub(crate) fn usage_flushed(&self, seconds: Option<f64>, succeeded: bool) {
        if let Some(seconds) = seconds {
            self.inner.usage_flush_duration.observe(seconds);
        }
        if succeeded {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
                });
            self.inner.usage_last_flush.set(now);
        }
    }

    /// Counts an admin call refused with `reason` (an error code's reason string).
    pub(crate) fn auth_refusal(&self, reason: &'static str) {
        self.inner
            .auth_refusals
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Whether the database answers the readiness probe.
    /// Notes whether the cache notice listener is subscribed.
    pub(crate) fn set_cache_notices_listening(&self, listening: bool) {
        self.inner.cache_notices.listening.set(i64::from(listening));
    }

    /// Counts a cache notice received.
    pub(crate) fn cache_notice_received(&self) {
        self.inner.cache_notices.received.inc();
    }

    /// Counts a loss of the cache notice listener's connection.
    pub(crate) fn cache_notice_listener_lost(&self) {
        self.inner.cache_notices.losses.inc();
    }

    pub(crate) fn set_database_up(&self, up: bool) {
        self.inner.database_up.set(i64::from(up));
    }

    /// Counts a verification whose tag was counted as `other`.
    pub(crate) fn tag_overflow(&self) {
        self.inner.usage_tag_overflow.inc();
    }

    /// Counts a verification the meter had no room for.
    pub(crate) fn usage_count_dropped(&self) {
        self.inner.usage_counts_dropped.inc();
    }

    /// Counts a verification of an unknown key.
    pub fn unknown_key(&self, reason: UnknownKeyReason) {
        self.inner.unknown_key_verifications[reason as usize].inc();
    }

    /// Counts a context value that was ignored.
    pub fn invalid_context(&self, field: ContextField) {
        self.inner.invalid_context[field as usize].inc();
    }

    /// Counts an address blocked by the brute-force guard.
    pub fn brute_force_block(&self) {
        self.inner.brute_force_blocks.inc();
    }

    /// Counts a decision the local limiter took because the shared one was unreachable.
    pub fn limiter_fallback(&self) {
        self.inner.limiter_fallbacks.inc();
    }

    /// Records whether the shared limiter answered its last request.
    pub fn set_limiter_remote_up(&self, up: bool) {
        self.inner.limiter_remote_up.set(i64::from(up));
    }

    /// Counts a failed usage flush.
    pub fn usage_flush_failure(&self) {
        self.inner.usage_flush_failures.inc();
    }

    /// Counts an alert event of `alert_type` (e.g. `high_usage`).
    pub fn alert_event(&self, alert_type: &'static str) {
        self.inner
            .alert_events
            .get_or_create(&TypeLabel { r#type: alert_type })
            .inc();
    }

    /// Counts a webhook delivery attempt.
    pub fn webhook_attempt(&self, succeeded: bool) {
        let outcome = if succeeded { "succeeded" } else { "failed" };
        self.inner
            .webhook_attempts
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts a verification answered from the key cache.
    pub fn key_cache_hit(&self) {
        self.inner.key_cache_hits.inc();
    }

    /// Counts a verification that read the store for its key.
    pub fn key_cache_miss(&self) {
        self.inner.key_cache_misses.inc();
    }

    /// Counts a verification refused from the negative cache.
    pub fn key_cache_negative_hit(&self) {
        self.inner.key_cache_negative_hits.inc();
    }

    /// The key cache's hits, misses and negative hits so far.
    pub fn key_cache_counts(&self) -> (u64, u64, u64) {
        (
            self.inner.key_cache_hits.get(),
            self.inner.key_cache_misses.get(),
            self.inner.key_cache_negative_hits.get(),
        )
    }

    /// How many decisions the local limiter took in place of the shared one.
    pub fn limiter_fallbacks(&self) -> u64 {
        self.inner.limiter_fallbacks.get()
    }

    /// How many verifications of unknown keys were counted for `reason`.
    pub fn unknown_keys(&self, reason: UnknownKeyReason) -> u64 {
        self.inner.unknown_key_verifications[reason as usize].get()
    }

    /// Every counter in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an error here would be an encoder bug, and the
        // scrape then simply gets what was written so far.
        if encode(&mut text, &self.inner.registry).is_err() {
            tracing::warn!("encoding the metrics failed");
        }
        text
    }

    /// Counts a batch of `digests` waiting misses looked up in one query.
    pub fn key_lookup_batch(&self, digests: usize) {
        self.inner.key_lookups.batches.inc();
        self.inner
            .key_lookups
            .batched_digests
            .inc_by(u64::try_from(digests).unwrap_or(u64::MAX));
    }

    /// Counts a miss refused because too many were waiting for a lookup.
    pub fn key_lookup_refused(&self) {
        self.inner.key_lookups.refused.inc();
    }

    /// The batched lookups so far: batches, digests in them, and misses refused.
    pub fn key_lookup_counts(&self) -> (u64, u64, u64) {
        let counters = &self.inner.key_lookups;
        (
            counters.batches.get(),
            counters.batched_digests.get(),
            counters.refused.get(),
        )
    }
}

/// The counters of coalesced key lookups (`key_lookup.rs`).
#[derive(Debug)]
struct KeyLookupCounters {
    batches: Counter,
    batched_digests: Counter,
    refused: Counter,
}

impl KeyLookupCounters {
    fn register(registry: &mut Registry) -> KeyLookupCounters {
        let counters = KeyLookupCounters {
            batches: Counter::default(),
            batched_digests: Counter::default(),
            refused: Counter::default(),
        };
        registry.register(
            "key_lookup_batches",
            "Queries that looked up several cache misses together, because misses came while another lookup was in flight",
            counters.batches.clone(),
        );
        registry.register(
            "key_lookup_batched_digests",
            "Distinct key digests looked up in batches (divide by key_lookup_batches for the mean batch size)",
            counters.batched_digests.clone(),
        );
        registry.register(
            "key_lookup_refusals",
            "Cache misses refused as unavailable because too many were already waiting for a lookup",
            counters.refused.clone(),
        );
        counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_counters_carry_their_labels_and_values() {
        let metrics = Metrics::new();
        metrics.unknown_key(UnknownKeyReason::NotFound);
        metrics.unknown_key(UnknownKeyReason::NotFound);
        metrics.invalid_context(ContextField::Country);
        let text = metrics.render();
        assert!(
            text.contains(r#"keyrack_unknown_key_verifications_total{reason="not_found"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keyrack_verify_context_invalid_total{field="country"} 1"#),
            "{text}"
        );
        assert_eq!(metrics.unknown_keys(UnknownKeyReason::NotFound), 2);
    }
}
