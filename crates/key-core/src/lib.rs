//! Keyrack's domain: the key format, scopes, key records, expiry, verdicts and errors.
//!
//! This crate does no I/O. Time comes in through [`Clock`] and randomness through
//! [`RandomSource`], so every rule here can be tested with a fixed clock and fixed
//! bytes.

mod alert;
mod api_key;
mod audit;
mod clock;
mod digest;
mod error;
mod expiry;
mod key_view;
mod name;
mod organization;
mod permission;
mod random;
mod ratelimit;
mod record;
mod role;
mod rotation;
mod scope;
mod verdict;
mod webhook;

pub use alert::{
    Alert, AlertPeriod, AlertRules, AlertRulesSource, AlertThreshold, AlertType, DORMANCY,
    EXPIRY_NOTICE, SPIKE_FACTOR, SPIKE_MIN_REQUESTS, SPIKE_TRAILING_HOURS, ThresholdFields,
    expires_soon, is_dormant_use, is_usage_spike,
};
pub use api_key::{ApiKey, Environment, KEY_MAX_INPUT_BYTES, RedactedKey};
pub use audit::{ActorType, AuditAction, AuditEvent, AuditOutcome};
pub use clock::{Clock, FixedClock, SystemClock};
pub use digest::{KeyDigest, MIN_PEPPER_BYTES, Pepper};
pub use error::{Error, ErrorCode};
pub use expiry::parse_expiry;
pub use key_view::KeyView;
pub use name::KeyName;
pub use organization::{
    MAX_POLICY_DAYS, OrganizationName, UserId, max_key_age_from_days, max_key_lifetime_from_days,
};
pub use permission::{Action, Caller, KeyType, PERMISSIONS, Requirement, within_role};
pub use random::RandomSource;
pub use ratelimit::{
    MAX_RATE_LIMIT_REQUESTS, Period, RateDecision, RateLimit, RateLimits, RateWindows,
};
pub use record::{KeyRecord, KeyState};
pub use role::{DEFAULT_ROLE_SCOPES, OrganizationPolicy, Role, RoleScopes};
pub use rotation::{
    DEFAULT_MAX_KEY_AGE, DEFAULT_ROTATION_GRACE, MAX_ROTATION_GRACE, ROTATED_REVOKE_REASON,
    RotatedOldKey, rotation_grace,
};
pub use scope::{Scope, ScopeSet};
pub use verdict::{Verdict, effective_scopes, verify, verify_effective};
pub use webhook::{
    ATTEMPT_HEADER, DEFAULT_SIGNATURE_TOLERANCE, DELIVERY_ID_HEADER, DeliveryState,
    EVENT_ID_HEADER, MAX_WEBHOOK_DESCRIPTION_CHARS, MAX_WEBHOOK_URL_CHARS, RetrySchedule,
    SIGNATURE_HEADER, SignatureCheck, SigningSecret, USER_AGENT, WebhookSecretCipher, WebhookUrl,
    parse_webhook_description,
};
