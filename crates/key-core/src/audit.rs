//! The audit log's entries: who did what to which key, when, from where, and whether it was
//! allowed. An entry never holds key material: no plaintext, no digest.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// `key.create`
    KeyCreate,
    /// `key.rotate`
    KeyRotate,
    /// `key.update`
    KeyUpdate,
    /// `key.revoke`
    KeyRevoke,
    /// `key.disable`: a key disabled (refused until enabled again).
    KeyDisable,
    /// `key.enable`: a disabled key enabled again.
    KeyEnable,
    /// `auth.denied`: an admin call refused for its credential or its scope.
    AuthDenied,
    /// `organization.create`
    OrganizationCreate,
    /// `organization.policy.update`
    OrganizationPolicyUpdate,
    /// `member.add`
    MemberAdd,
    /// `member.update`: a member's role changed.
    MemberUpdate,
    /// `member.remove`
    MemberRemove,
    /// `alert_rules.update`: an organization's or a key's alert rules set or cleared. The
    /// target is the key id, or the organization id for the organization's own rules.
    AlertRulesUpdate,
    /// `webhook_endpoint.create`
    WebhookEndpointCreate,
    /// `webhook_endpoint.delete`
    WebhookEndpointDelete,
    /// `webhook_endpoint.rotate_secret`: an endpoint's signing secret replaced. The event
    /// names the endpoint, never the secret.
    WebhookSecretRotate,
    /// `session.create`: a person signed in to the console. The target is the session's id,
    /// never its token.
    SessionCreate,
    /// `session.end`: a person signed out.
    SessionEnd,
    /// `sign_in_link.create`: a one-time sign-in link made for a member (the target).
    SignInLinkCreate,
    /// `key.leaked`: a secret-scanning report named the key (the target) as found in public;
    /// the reason says what the organization's policy did (`revoked`, `flagged`, or
    /// `already revoked`) and where the key was found.
    KeyLeaked,
    /// `oauth_client.create`: an OAuth client registered (the target), never its secret.
    OauthClientCreate,
    /// `oauth_client.delete`: an OAuth client deleted, with its grants and tokens.
    OauthClientDelete,
    /// `oauth.consent.grant`: a person approved a client's request; the target is the client.
    OauthConsentGrant,
    /// `oauth.consent.deny`: a person denied a client's request; the target is the client.
    OauthConsentDeny,
    /// `oauth.token.issue`: a code exchanged for tokens; the target is the new grant.
    OauthTokenIssue,
    /// `oauth.token.refresh`: a refresh token rotated; the target is the grant.
    OauthTokenRefresh,
    /// `oauth.token.revoke`: one token revoked by its client (RFC 7009); the target is the grant.
    OauthTokenRevoke,
    /// `oauth.grant.revoke`: an authorized application revoked, with every token under it.
    OauthGrantRevoke,
    /// `oauth.reuse_detected`: a code or refresh token presented again after its use; its grant
    /// (the target) was revoked.
    OauthReuseDetected,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 29] = [
        AuditAction::KeyCreate,
        AuditAction::KeyRotate,
        AuditAction::KeyUpdate,
        AuditAction::KeyRevoke,
        AuditAction::KeyDisable,
        AuditAction::KeyEnable,
        AuditAction::AuthDenied,
        AuditAction::OrganizationCreate,
        AuditAction::OrganizationPolicyUpdate,
        AuditAction::MemberAdd,
        AuditAction::MemberUpdate,
        AuditAction::MemberRemove,
        AuditAction::AlertRulesUpdate,
        AuditAction::WebhookEndpointCreate,
        AuditAction::WebhookEndpointDelete,
        AuditAction::WebhookSecretRotate,
        AuditAction::SessionCreate,
        AuditAction::SessionEnd,
        AuditAction::SignInLinkCreate,
        AuditAction::KeyLeaked,
        AuditAction::OauthClientCreate,
        AuditAction::OauthClientDelete,
        AuditAction::OauthConsentGrant,
        AuditAction::OauthConsentDeny,
        AuditAction::OauthTokenIssue,
        AuditAction::OauthTokenRefresh,
        AuditAction::OauthTokenRevoke,
        AuditAction::OauthGrantRevoke,
        AuditAction::OauthReuseDetected,
    ];

    /// The action's name in the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyRotate => "key.rotate",
            AuditAction::KeyUpdate => "key.update",
            AuditAction::KeyRevoke => "key.revoke",
            AuditAction::KeyDisable => "key.disable",
            AuditAction::KeyEnable => "key.enable",
            AuditAction::AuthDenied => "auth.denied",
            AuditAction::OrganizationCreate => "organization.create",
            AuditAction::OrganizationPolicyUpdate => "organization.policy.update",
            AuditAction::MemberAdd => "member.add",
            AuditAction::MemberUpdate => "member.update",
            AuditAction::MemberRemove => "member.remove",
            AuditAction::AlertRulesUpdate => "alert_rules.update",
            AuditAction::WebhookEndpointCreate => "webhook_endpoint.create",
            AuditAction::WebhookEndpointDelete => "webhook_endpoint.delete",
            AuditAction::WebhookSecretRotate => "webhook_endpoint.rotate_secret",
            AuditAction::SessionCreate => "session.create",
            AuditAction::SessionEnd => "session.end",
            AuditAction::SignInLinkCreate => "sign_in_link.create",
            AuditAction::KeyLeaked => "key.leaked",
            AuditAction::OauthClientCreate => "oauth_client.create",
            AuditAction::OauthClientDelete => "oauth_client.delete",
            AuditAction::OauthConsentGrant => "oauth.consent.grant",
            AuditAction::OauthConsentDeny => "oauth.consent.deny",
            AuditAction::OauthTokenIssue => "oauth.token.issue",
            AuditAction::OauthTokenRefresh => "oauth.token.refresh",
            AuditAction::OauthTokenRevoke => "oauth.token.revoke",
            AuditAction::OauthGrantRevoke => "oauth.grant.revoke",
            AuditAction::OauthReuseDetected => "oauth.reuse_detected",
        }
    }

    /// The action with this name, if any.
    pub fn parse(name: &str) -> Option<AuditAction> {
        AuditAction::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorType {
    /// An API key (its id is the actor id).
    Key,
    /// A person signed in to the console without a key (by SSO or a sign-in link): their
    /// member acts, with their role's scopes (the member's id is the actor id).
    Member,
    /// An operator command run against the database, such as `keyrack admin-key create`.
    Operator,
    /// A caller whose credential was missing or matched no key.
    Anonymous,
    /// A secret-scanning service (GitHub's), authenticated by the signature of its report.
    SecretScanning,
    /// An OAuth client at the token or revocation endpoint (its client id is in
    /// `actor_key_id`).
    OauthClient,
}

impl ActorType {
    /// The type's name in the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActorType::Key => "key",
            ActorType::Member => "member",
            ActorType::Operator => "operator",
            ActorType::Anonymous => "anonymous",
            ActorType::SecretScanning => "secret_scanning",
            ActorType::OauthClient => "oauth_client",
        }
    }

    /// The type with this name, if any.
    pub fn parse(name: &str) -> Option<ActorType> {
        [
            ActorType::Key,
            ActorType::Member,
            ActorType::Operator,
            ActorType::Anonymous,
            ActorType::SecretScanning,
            ActorType::OauthClient,
        ]
        .into_iter()
        .find(|actor| actor.as_str() == name)
    }
}

/// Whether the action happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// It was carried out.
    Success,
    /// The caller was refused.
    Denied,
}

impl AuditOutcome {
    /// The outcome's name in the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
        }
    }

    /// The outcome with this name, if any.
    pub fn parse(name: &str) -> Option<AuditOutcome> {
        [AuditOutcome::Success, AuditOutcome::Denied]
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The entry's id.
    pub id: Uuid,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The organization, when the caller's key (or the target) is known.
    pub organization_id: Option<Uuid>,
    /// The caller's key, when known.
    pub actor_key_id: Option<Uuid>,
    /// The member who acted, for a person signed in without a key ([`ActorType::Member`]).
    pub actor_member_id: Option<Uuid>,
    /// What kind of caller.
    pub actor_type: ActorType,
    /// What was attempted.
    pub action: AuditAction,
    /// What it was done to: a key, organization, member or webhook endpoint id, or a refused
    /// RPC's method.
    pub target: String,
    /// Whether it happened.
    pub outcome: AuditOutcome,
    /// For a denial, the platform error code.
    pub reason: Option<String>,
    /// The caller's address as the server saw it.
    pub client_address: Option<String>,
    /// The request id the caller sent.
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(ActorType::parse("operator"), Some(ActorType::Operator));
        assert_eq!(AuditOutcome::parse("denied"), Some(AuditOutcome::Denied));
        assert_eq!(AuditAction::parse("key.delete"), None);
        assert_eq!(
            AuditAction::parse("organization.policy.update"),
            Some(AuditAction::OrganizationPolicyUpdate)
        );
        assert_eq!(
            AuditAction::parse("webhook_endpoint.rotate_secret"),
            Some(AuditAction::WebhookSecretRotate)
        );
        let mut names: Vec<_> = AuditAction::ALL.map(AuditAction::as_str).into();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditAction::ALL.len());
    }
}
