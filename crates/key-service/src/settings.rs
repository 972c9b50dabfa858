//! The application's typed configuration: every knob of the verifier, the operations and the
//! jobs, as plain values. The binary builds it from flags and `KEYRACK_*` variables; tests
//! build it by hand. Each default is documented beside its constant.

use std::time::Duration;

use chrono::TimeDelta;

use crate::{
    jobs::{
        DEFAULT_ALERT_RETENTION, DEFAULT_ALERT_SWEEP_INTERVAL, FLUSH_INTERVAL, UsageRetention,
        WebhookSettings,
    },
    rate_limit::BruteForceSettings,
    verify::KeyCacheSettings,
};

/// Everything [`crate::Application::build`] needs to know besides its store, secrets, clock
/// and the parts the binary prepares. `Settings::default()` is what `keyrack serve` runs with
/// when no flag is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// How many keys VerifyKey answers from memory, and for how long.
    pub key_cache: KeyCacheSettings,
    /// Whether verifications are counted. Off means no usage, no `last_used_at`, no usage
    /// alerts: only for measuring what metering costs (`bench/metering.sh`) or for deployments
    /// that must not record usage.
    pub metering: bool,
    /// How often the usage counted in memory is written to the store. A crash loses at most
    /// one interval of counts, plus those made while that interval's write was under way.
    pub flush_interval: Duration,
    /// How long usage is kept at each resolution.
    pub usage_retention: UsageRetention,
    /// How long alert events (and their webhook deliveries) are kept.
    pub alert_retention: TimeDelta,
    /// How long audit events are kept; `None` (the default) keeps them.
    pub audit_retention: Option<TimeDelta>,
    /// How often keys about to expire or due for rotation are looked for.
    pub alert_sweep_interval: Duration,
    /// How webhooks are delivered.
    pub webhooks: WebhookSettings,
    /// When a client network, or a key prefix, failing verifications is refused.
    pub brute_force: BruteForceSettings,
    /// How long an OAuth access token works (`key_core::ACCESS_TOKEN_LIFETIME` by default).
    pub access_token_lifetime: TimeDelta,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            key_cache: KeyCacheSettings::default(),
            metering: true,
            flush_interval: FLUSH_INTERVAL,
            usage_retention: UsageRetention::default(),
            alert_retention: DEFAULT_ALERT_RETENTION,
            audit_retention: None,
            alert_sweep_interval: DEFAULT_ALERT_SWEEP_INTERVAL,
            webhooks: WebhookSettings::default(),
            brute_force: BruteForceSettings::default(),
            access_token_lifetime: key_core::ACCESS_TOKEN_LIFETIME,
        }
    }
}
