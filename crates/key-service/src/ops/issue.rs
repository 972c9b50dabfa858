//! Drawing keys: a key's plaintext from the random source, its digest under the pepper and the
//! record the store keeps. The plaintext leaves here only to be shown once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use key_core::{
    ApiKey, AuditAction, AuditEvent, AuditOutcome, Clock, Environment, Error, IpAllowlist,
    KeyDigest, KeyMetadata, KeyName, KeyRecord, KeyType, Pepper, RandomSource, RateLimits,
    ScopeSet,
};
use key_store::{NewKey, Store};
use uuid::Uuid;

use crate::{Actor, RequestContext, requester::audit_event};

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
    /// What services learn of it when they verify it.
    pub metadata: Option<KeyMetadata>,
    /// Where it may be used from (empty: anywhere).
    pub ip_allowlist: IpAllowlist,
    /// Its credits (none: unlimited).
    pub credits: Option<key_core::Credits>,
}

/// Draws keys and describes them for the store. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct KeyIssuer {
    pepper: Arc<Pepper>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
}

impl KeyIssuer {
    pub(crate) fn new(
        pepper: Arc<Pepper>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> KeyIssuer {
        KeyIssuer {
            pepper,
            random,
            clock,
        }
    }

    /// A fresh key's plaintext.
    pub(crate) fn generate(&self, environment: Environment) -> Result<ApiKey, Error> {
        ApiKey::generate(environment, self.random.as_ref())
    }

    /// The digest the store keeps of `key`.
    pub(crate) fn digest(&self, key: &ApiKey) -> KeyDigest {
        self.pepper.digest(key)
    }

    /// The stored form of `key` for `organization_id`, created by the key `created_by`.
    pub(crate) fn describe(
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
            created_at: self.clock.now(),
            expires_at: request.expires_at,
            created_by,
            key_type: request.key_type,
            member_id: request.member_id,
            operator: request.operator,
            rate_limits: request.rate_limits,
            metadata: request.metadata,
            ip_allowlist: request.ip_allowlist,
            credits: request.credits,
            oauth: None,
        }
    }

    /// Draws a key and describes it; nothing is stored.
    pub(crate) fn draw(
        &self,
        organization_id: Uuid,
        request: NewKeyRequest,
        created_by: Option<Uuid>,
    ) -> Result<(NewKey, ApiKey), Error> {
        let key = self.generate(request.environment)?;
        let new_key = self.describe(organization_id, &key, request, created_by);
        Ok((new_key, key))
    }

    /// The `key.create` event of `key`.
    pub(crate) fn created_event(
        &self,
        key: &NewKey,
        actor: &Actor,
        context: &RequestContext,
    ) -> AuditEvent {
        audit_event(
            actor,
            Some(key.organization_id),
            AuditAction::KeyCreate,
            key.id.to_string(),
            AuditOutcome::Success,
            None,
            context,
            self.clock.now(),
        )
    }

    /// Draws a key, stores its digest with its `key.create` event, and returns the record with
    /// the plaintext.
    pub(crate) async fn issue(
        &self,
        store: &Store,
        organization_id: Uuid,
        request: NewKeyRequest,
        actor: &Actor,
        context: &RequestContext,
    ) -> Result<(KeyRecord, ApiKey), Error> {
        let (new_key, key) = self.draw(organization_id, request, actor.key_id())?;
        let audit = self.created_event(&new_key, actor, context);
        let record = store.insert_key(new_key, &audit).await?;
        Ok((record, key))
    }
}
