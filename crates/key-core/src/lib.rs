//! Keyrack's domain: the key format and key records, scopes, roles and verdicts, rate limits,
//! alerts, webhooks, audit entries and errors.
//!
//! This crate does no I/O. Time comes in through [`Clock`] and randomness through
//! [`RandomSource`], so every rule here can be tested with a fixed clock and fixed
//! bytes.
//!
//! The modules are private and every public name is re-exported here, so callers never depend
//! on where a name lives. What each module owns:
//! - `key`: the key format, its digest, names, expiry, the key record and rotation rules.
//! - `access`: scopes, roles, permissions, organization inputs and the verification verdict.
//! - `limits`: rate limits and the fixed-window algorithm that applies them.
//! - `alerting`: alert rules, spike, dormancy and expiry judgements, and the alerts raised.
//! - `webhook`: signing secrets and signatures, endpoint rules, delivery retries.
//! - `audit`: the audit log's entries.
//! - `session`: the console's sessions and sign-in links.
//! - `oauth`: OAuth 2.0's clients, redirect URIs, PKCE, scopes granted and token lifetimes.
//! - `clock` and `random`: the injected time and randomness.
//! - `error`: the one error type and its stable codes.

mod access;
mod alerting;
mod audit;
mod clock;
mod error;
mod key;
mod limits;
mod oauth;
mod random;
mod session;
mod text;
mod webhook;

pub use access::organization::{
    MAX_POLICY_DAYS, OrganizationName, UserId, max_key_age_from_days, max_key_lifetime_from_days,
};
pub use access::permission::{
    Action, Caller, KeyType, PERMISSIONS, Requirement, acts_as_owner, within_role,
};
pub use access::role::{
    DEFAULT_ROLE_SCOPES, LeakedKeyPolicy, OrganizationPolicy, Role, RoleScopes, keeps_an_owner,
};
pub use access::scope::{Scope, ScopeSet};
pub use access::verdict::{Verdict, effective_scopes, verify, verify_effective};
pub use alerting::alert::{Alert, AlertType};
pub use alerting::judgements::{
    DORMANCY, EXPIRY_NOTICE, SPIKE_FACTOR, SPIKE_MIN_REQUESTS, SPIKE_TRAILING_HOURS, expires_soon,
    is_dormant_use, is_usage_spike,
};
pub use alerting::rules::{
    AlertPeriod, AlertRules, AlertRulesSource, AlertThreshold, ThresholdFields,
};
pub use audit::{ActorType, AuditAction, AuditEvent, AuditOutcome};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{Error, ErrorCode};
pub use key::api_key::{
    ApiKey, CredentialKind, Environment, KEY_LEAD_CHARS, KEY_MAX_INPUT_BYTES, KeyLead, RedactedKey,
};
pub use key::controls::{
    IpAllowlist, KeyControls, KeyMetadata, MAX_IP_ALLOWLIST_ENTRIES, MAX_METADATA_BYTES,
};
pub use key::credits::{
    CreditPeriod, CreditRefill, Credits, MAX_CREDITS, MAX_VERIFY_COST, verify_cost,
};
pub use key::digest::{KeyDigest, MIN_PEPPER_BYTES, Pepper};
pub use key::expiry::{latest_expiry, parse_expiry};
pub use key::key_view::KeyView;
pub use key::name::KeyName;
pub use key::record::{KeyRecord, KeyState};
pub use key::rotation::{
    DEFAULT_MAX_KEY_AGE, DEFAULT_ROTATION_GRACE, MAX_ROTATION_GRACE, ROTATED_REVOKE_REASON,
    RotatedOldKey, rotation_grace,
};
pub use limits::ratelimit::{
    MAX_RATE_LIMIT_REQUESTS, Period, RateDecision, RateLimit, RateLimits, RateWindows,
};
pub use oauth::{
    ACCESS_TOKEN_LIFETIME, AUTHORIZATION_CODE_LIFETIME, CodeChallenge, GrantedScopes,
    MAX_CLIENT_NAME_LEN, MAX_REDIRECT_URI_LEN, MAX_REDIRECT_URIS, MAX_REFRESHES_PER_HOUR,
    MAX_STATE_LEN, OauthClientType, OauthContext, OauthError, REFRESH_TOKEN_IDLE_TIMEOUT,
    ROTATED_REFRESH_TOKENS_KEPT, RedirectUri, grant_scopes, parse_scope_parameter, scope_parameter,
};
pub use random::RandomSource;
pub use session::{
    SESSION_IDLE_TIMEOUT, SESSION_LIFETIME, SESSION_TOUCH_INTERVAL, SIGN_IN_LINK_LIFETIME,
    SessionToken, TokenKind, session_ends_at,
};
pub use text::is_free_text;
pub use webhook::delivery::{DeliveryState, RetrySchedule};
pub use webhook::endpoint::{
    MAX_WEBHOOK_DESCRIPTION_CHARS, MAX_WEBHOOK_URL_CHARS, WebhookUrl, is_public_address,
    parse_webhook_description,
};
pub use webhook::signing::{
    DEFAULT_SIGNATURE_TOLERANCE, SignatureCheck, SigningSecret, WebhookSecretCipher, WebhookSigning,
};
