//! The operations, one type per resource: each decides every rule that is not request shape
//! (permissions, owner defaults, the organization's policy, role limits, no escalation) and
//! writes its audit event in the change's own transaction. Front doors decode a request, call
//! one operation, and encode its answer.

mod alerts;
mod audit_log;
mod issue;
mod keys;
mod leaks;
mod oauth;
mod organizations;
mod paging;
mod sessions;
mod sso;
mod usage;
mod webhooks;

use key_core::{Error, OrganizationPolicy};
use key_store::Store;
use uuid::Uuid;

pub(crate) use self::issue::KeyIssuer;
pub(crate) use self::sessions::ends_at as sessions_end_at;
pub use self::{
    alerts::{AlertTest, Alerts, RulesInForce},
    audit_log::{AuditLog, AuditQuery},
    issue::NewKeyRequest,
    keys::{CreateKey, IssuedKey, KeyDetails, Keys, ListKeys, RotatedKey, SetCredits, UpdateKey},
    leaks::{
        LeakReports, LeakVerdict, MAX_REPORT_BYTES, MAX_REPORT_TOKENS, SecretScanningKeys,
        SecretScanningKeysError,
    },
    oauth::{
        Authorization, AuthorizationRequest, Consent, CreateClient, Introspection, IssuedTokens,
        Oauth, TokenRequest,
    },
    organizations::{CreatedOrganization, Organizations, PolicyUpdate},
    paging::{Listed, PageRequest},
    sessions::{CallerInfo, NewSession, Sessions},
    sso::{SSO_CHOICE_LIFETIME, Sso, SsoCallback, SsoChoice, SsoConfig, SsoOutcome, SsoStart},
    usage::{UsageBucket, UsageQuery, UsageReport, UsageReports, UsageSummary},
    webhooks::{DeliveryQuery, EndpointWithSecret, Webhooks},
};

/// An id from a request, naming `field` and what it should be (`a key id`) when it is not one.
pub fn parse_uuid(field: &'static str, value: &str, what: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(value).map_err(|_| Error::InvalidArgument {
        field,
        message: format!("{value:?} is not {what}"),
    })
}

/// A key id from a request.
pub fn parse_id(field: &'static str, value: &str) -> Result<Uuid, Error> {
    parse_uuid(field, value, "a key id")
}

/// The policy of `organization_id`. The organization of an authenticated caller exists; its
/// absence is an internal error.
pub(crate) async fn organization_policy(
    store: &Store,
    organization_id: Uuid,
) -> Result<OrganizationPolicy, Error> {
    store
        .get_organization(organization_id)
        .await?
        .map(|organization| organization.policy)
        .ok_or_else(|| {
            Error::Internal(format!(
                "the caller's organization {organization_id} does not exist"
            ))
        })
}
