//! Keys: create, read, list, revoke, rotate and update, each deciding every rule that is not
//! request shape (owner defaults, the organization's policy, role limits, no escalation) and
//! writing its audit event in the change's own transaction. Also the two operator paths that
//! bypass the API: the bootstrap key and `keyrack admin-key create`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{
    Action, ApiKey, AuditAction, Clock, CreditRefill, Credits, Environment, Error, IpAllowlist,
    KeyMetadata, KeyName, KeyRecord, KeyState, KeyType, OrganizationPolicy, RateLimits, Scope,
    ScopeSet, acts_as_owner, parse_expiry, rotation_grace, within_role,
};
use key_store::{KeyChanges, KeyFilter, KeyRotation, Store};
use uuid::Uuid;

use super::{
    issue::{KeyIssuer, NewKeyRequest},
    organization_policy,
    paging::{Listed, Page, PageRequest},
};
use crate::{
    Actor, RequestContext, Requester,
    access::Access,
    jobs::UsageFlusher,
    requester::audit_event,
    verify::{KeyCache, member_scopes},
};

/// The longest revocation reason, in characters.
const MAX_REVOKE_REASON_CHARS: usize = 500;

/// A key as the API shows it: its record, and its state and rotation status now.
#[derive(Debug, Clone)]
pub struct KeyDetails {
    /// What is stored.
    pub record: KeyRecord,
    /// Active, expired or revoked, now.
    pub state: KeyState,
    /// Whether it is older than its organization's maximum key age.
    pub rotation_due: bool,
}

impl KeyDetails {
    pub(crate) fn at(
        record: KeyRecord,
        now: DateTime<Utc>,
        policy: &OrganizationPolicy,
    ) -> KeyDetails {
        KeyDetails {
            state: record.state(now),
            rotation_due: record.rotation_due(now, policy.max_key_age),
            record,
        }
    }
}

/// A new key and its plaintext, shown once.
#[derive(Debug)]
pub struct IssuedKey {
    /// The key.
    pub key: KeyDetails,
    /// Its plaintext; kept nowhere.
    pub plaintext: ApiKey,
}

/// The outcome of a rotation.
#[derive(Debug)]
pub struct RotatedKey {
    /// The successor, with `rotated_from`.
    pub new: KeyDetails,
    /// The successor's plaintext; kept nowhere.
    pub plaintext: ApiKey,
    /// The old key, with its new expiry (or revocation) and `rotated_to`.
    pub old: KeyDetails,
}

/// CreateKey's request, with its proto enums decoded.
#[derive(Debug, Clone)]
pub struct CreateKey {
    /// 1 to 100 characters.
    pub name: String,
    /// Scope names; at least one.
    pub scopes: Vec<String>,
    /// `YYYY-MM-DD` or RFC 3339, or empty for none.
    pub expires_at: String,
    /// live or test.
    pub environment: Environment,
    /// `None`: the caller's own kind (an organization key creates organization keys, a
    /// personal key personal ones).
    pub key_type: Option<KeyType>,
    /// For a personal key, its member; `None` means the caller's own.
    pub member_id: Option<Uuid>,
    /// Its own limits (none: the organization's default applies).
    pub rate_limits: RateLimits,
    /// Its metadata as JSON text (an object, at most 1 KiB); empty for none.
    pub metadata: String,
    /// Addresses and CIDR networks it may be used from; empty for anywhere.
    pub ip_allowlist: Vec<String>,
    /// Its credits; `None`: unlimited.
    pub credits: Option<SetCredits>,
}

/// Credits as a request sets them: the uses left and the refill, checked by
/// `Credits::parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetCredits {
    /// Uses left.
    pub remaining: i64,
    /// The refill, if any.
    pub refill: Option<CreditRefill>,
}

/// ListKeys' request.
#[derive(Debug, Clone)]
pub struct ListKeys {
    /// AIP-158 paging.
    pub page: PageRequest,
    /// Only keys in this state.
    pub state: Option<KeyState>,
    /// Only active keys older than the organization's maximum key age.
    pub rotation_due: bool,
}

/// UpdateKey's request: each field left `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateKey {
    /// A new name.
    pub name: Option<String>,
    /// New scopes (empty: unchanged).
    pub scopes: Vec<String>,
    /// A new expiry; an empty string removes it.
    pub expires_at: Option<String>,
    /// New rate limits (`Some(RateLimits::NONE)` clears them).
    pub rate_limits: Option<RateLimits>,
    /// New metadata as JSON text; an empty string (or `{}`) removes it.
    pub metadata: Option<String>,
    /// A new IP allowlist; `Some` of an empty list removes it.
    pub ip_allowlist: Option<Vec<String>>,
    /// New credits (remaining and refill); `Some(None)` removes them (unlimited).
    pub credits: Option<Option<SetCredits>>,
}

/// The key operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Keys {
    store: Store,
    clock: Arc<dyn Clock>,
    access: Access,
    issuer: KeyIssuer,
    key_cache: Arc<KeyCache>,
    usage: UsageFlusher,
}

impl Keys {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        access: Access,
        issuer: KeyIssuer,
        key_cache: Arc<KeyCache>,
        usage: UsageFlusher,
    ) -> Keys {
        Keys {
            store,
            clock,
            access,
            issuer,
            key_cache,
            usage,
        }
    }

    /// CreateKey: an organization key needs `admin`; a personal key belongs to the requester's
    /// own member unless one is named (then `admin`). The key must obey the organization's
    /// policy (expiry), stay within its member's role, and grant nothing the requester lacks; a
    /// key that acts as an owner needs an owner. Rotating, updating and revoking such a key
    /// needs an owner too.
    pub async fn create(&self, by: &Requester, request: CreateKey) -> Result<IssuedKey, Error> {
        let caller = &by.caller;
        let key_type = request.key_type.unwrap_or(caller.key_type);
        // Who may: the permission table, before anything else is looked at.
        let member_id = match key_type {
            KeyType::Organization => {
                self.access
                    .authorize(by, Action::CreateOrganizationKey, None)
                    .await?;
                if request.member_id.is_some() {
                    return Err(Error::InvalidArgument {
                        field: "member_id",
                        message: "only a personal key belongs to a member".to_owned(),
                    });
                }
                None
            }
            KeyType::Personal => {
                // None means the caller's own member; an organization key has none.
                let owner = request.member_id.or(caller.member_id);
                self.access
                    .authorize(by, Action::CreatePersonalKey, owner)
                    .await?;
                Some(owner.ok_or_else(|| Error::InvalidArgument {
                    field: "member_id",
                    message: "a personal key belongs to a member: name one".to_owned(),
                })?)
            }
        };
        let now = self.clock.now();
        let new_key = NewKeyRequest {
            name: KeyName::parse(&request.name)?,
            scopes: ScopeSet::parse_list("scopes", &request.scopes)?,
            expires_at: parse_expiry(&request.expires_at, now)?,
            environment: request.environment,
            key_type,
            member_id,
            operator: false,
            rate_limits: request.rate_limits,
            metadata: KeyMetadata::parse("metadata", &request.metadata)?,
            ip_allowlist: IpAllowlist::parse_list("ip_allowlist", &request.ip_allowlist)?,
            credits: request
                .credits
                .map(|credits| Credits::parse(credits.remaining, credits.refill, now))
                .transpose()?,
        };
        // The organization's policy may require every new key to expire, and soon enough.
        let policy = organization_policy(&self.store, caller.organization_id).await?;
        policy.check_expiry(new_key.expires_at, now)?;
        // A personal key stays within its member's role; and nobody grants what it lacks.
        let mut member_role = None;
        if let Some(member_id) = member_id {
            let (member, allowed) = member_scopes(&self.store, caller.organization_id, member_id)
                .await?
                .ok_or(Error::NotFound("member"))?;
            self.access
                .check(by, within_role(member.role, allowed, new_key.scopes))
                .await?;
            member_role = Some(member.role);
        }
        self.access
            .check(by, caller.may_grant(new_key.scopes))
            .await?;
        // A key that acts as an owner is an owner's to make.
        let owners_key = acts_as_owner(key_type, new_key.scopes, member_role);
        self.access
            .check(by, caller.may_manage_owner_key(owners_key))
            .await?;
        // A key without limits of its own gets the organization's default: a member may set
        // tighter limits, not looser.
        let default_limits = policy.default_rate_limits;
        self.access
            .check(
                by,
                caller.may_set_limits(default_limits, new_key.rate_limits.or(default_limits)),
            )
            .await?;
        let (record, plaintext) = self
            .issuer
            .issue(
                &self.store,
                caller.organization_id,
                new_key,
                &by.actor(),
                &by.context,
            )
            .await?;
        self.key_cache.key_created(&self.issuer.digest(&plaintext));
        tracing::info!(key_id = %record.id, organization_id = %record.organization_id, created_by = %caller.key_id, "key created");
        Ok(IssuedKey {
            key: KeyDetails::at(record, now, &policy),
            plaintext,
        })
    }

    /// GetKey: one key the requester may read.
    pub async fn get(&self, by: &Requester, id: Uuid) -> Result<KeyDetails, Error> {
        // Its last use as this process counted it, too.
        self.usage.flush_before_answering().await;
        let record = self.access.key(by, id, Action::ReadKeys).await?;
        let policy = organization_policy(&self.store, by.caller.organization_id).await?;
        Ok(KeyDetails::at(record, self.clock.now(), &policy))
    }

    /// ListKeys: every key of the organization for `admin`; a personal key's own member's keys
    /// otherwise; nothing for an organization key without `admin`. Newest first.
    pub async fn list(
        &self,
        by: &Requester,
        request: ListKeys,
    ) -> Result<Listed<KeyDetails>, Error> {
        let caller = &by.caller;
        let member_id = match caller.authorize(Action::ReadKeys, None) {
            Ok(()) => None,
            Err(_) => {
                let own = caller.member_id;
                self.access.authorize(by, Action::ReadKeys, own).await?;
                own
            }
        };
        let page = Page::parse(&request.page)?;
        let filter = match request.state {
            None => KeyFilter::All,
            Some(state) => KeyFilter::State(state),
        };
        let policy = organization_policy(&self.store, caller.organization_id).await?;
        let now = self.clock.now();
        let filter = match (request.rotation_due, filter) {
            (false, filter) => filter,
            (true, KeyFilter::All | KeyFilter::State(KeyState::Active)) => KeyFilter::RotationDue {
                created_at_or_before: now - policy.max_key_age,
            },
            (true, _) => {
                return Err(Error::InvalidArgument {
                    field: "rotation_due",
                    message: "only active keys are due for rotation".to_owned(),
                });
            }
        };
        // Their last uses as this process counted them, too.
        self.usage.flush_before_answering().await;
        let records = self
            .store
            .list_keys(
                caller.organization_id,
                member_id,
                filter,
                now,
                page.after,
                page.fetch_limit(),
            )
            .await?;
        Ok(page
            .finish(records, |record| record.id)
            .map(|record| KeyDetails::at(record, now, &policy)))
    }

    /// RevokeKey: takes effect at the next verification. Revoking a revoked key keeps the first
    /// time and reason.
    pub async fn revoke(
        &self,
        by: &Requester,
        id: Uuid,
        reason: String,
    ) -> Result<KeyDetails, Error> {
        if reason.chars().count() > MAX_REVOKE_REASON_CHARS
            || !key_core::is_free_text(&reason, true)
        {
            return Err(Error::InvalidArgument {
                field: "reason",
                message: "at most 500 characters, without control or bidirectional formatting \
                          characters"
                    .to_owned(),
            });
        }
        let caller = &by.caller;
        let current = self.access.key(by, id, Action::ManageKeys).await?;
        self.access
            .check(by, caller.may_manage(current.operator))
            .await?;
        let owners_key = self.acts_as_owner(&current, current.scopes).await?;
        self.access
            .check(by, caller.may_manage_owner_key(owners_key))
            .await?;
        let reason = (!reason.is_empty()).then_some(reason);
        let policy = organization_policy(&self.store, caller.organization_id).await?;
        let now = self.clock.now();
        let audit = by.event(AuditAction::KeyRevoke, id, now);
        // The emergency control waits on nothing else: no usage flush before or after it (its
        // answer's last use may lag by one flush interval).
        let (record, digest) = self
            .store
            .revoke_key(caller.organization_id, id, reason, now, &audit)
            .await?
            .ok_or(Error::NotFound("key"))?;
        // The next verification of this key in this process must see the revocation.
        self.key_cache.forget(&digest);
        tracing::info!(key_id = %record.id, revoked_by = %caller.key_id, "key revoked");
        Ok(KeyDetails::at(record, now, &policy))
    }

    /// DisableKey (`disabled`) or EnableKey: a disabled key is refused at every verification
    /// until it is enabled again, unlike a revocation. Permitted as a revocation is (manage
    /// keys; an operator's or an owner's key only to their peers), audited as `key.disable` or
    /// `key.enable`, and in force before the answer: the key leaves this process's cache once
    /// the change commits (and other replicas' by the store's notice). Disabling a disabled key
    /// keeps its first time; a revoked key cannot be disabled or enabled (`Conflict`).
    pub async fn set_disabled(
        &self,
        by: &Requester,
        id: Uuid,
        disabled: bool,
    ) -> Result<KeyDetails, Error> {
        let caller = &by.caller;
        let current = self.access.key(by, id, Action::ManageKeys).await?;
        self.access
            .check(by, caller.may_manage(current.operator))
            .await?;
        let owners_key = self.acts_as_owner(&current, current.scopes).await?;
        self.access
            .check(by, caller.may_manage_owner_key(owners_key))
            .await?;
        if current.revoked_at.is_some() {
            return Err(Error::Conflict(if disabled {
                "a revoked key cannot be disabled".to_owned()
            } else {
                "a revoked key cannot be enabled".to_owned()
            }));
        }
        let policy = organization_policy(&self.store, caller.organization_id).await?;
        let now = self.clock.now();
        let action = if disabled {
            AuditAction::KeyDisable
        } else {
            AuditAction::KeyEnable
        };
        let audit = by.event(action, id, now);
        let (record, digest) = self
            .store
            .set_key_disabled(caller.organization_id, id, disabled, now, &audit)
            .await?
            .ok_or(Error::NotFound("key"))?;
        // The next verification of this key in this process must see the change.
        self.key_cache.forget(&digest);
        tracing::info!(key_id = %record.id, disabled, changed_by = %caller.key_id, "key disabled or enabled");
        Ok(KeyDetails::at(record, now, &policy))
    }

    /// RotateKey: issues a successor with the same name, type, owner, scopes, environment and
    /// limits (and lifetime, capped by the organization's maximum), and lets the old key work
    /// for `grace` more (`None`: the default; zero revokes it now). The old key's change, the
    /// successor and both audit events (`key.rotate` on the old key, `key.create` on the new
    /// one) are written in one transaction.
    pub async fn rotate(
        &self,
        by: &Requester,
        id: Uuid,
        grace: Option<TimeDelta>,
    ) -> Result<RotatedKey, Error> {
        // The old key's last use as this process counted it, too.
        self.usage.flush_before_answering().await;
        let caller = &by.caller;
        let organization_id = caller.organization_id;
        let current = self.access.key(by, id, Action::ManageKeys).await?;
        self.access
            .check(by, caller.may_manage(current.operator))
            .await?;
        // The successor would act as an owner as the old key does.
        let owners_key = self.acts_as_owner(&current, current.scopes).await?;
        self.access
            .check(by, caller.may_manage_owner_key(owners_key))
            .await?;
        let grace = rotation_grace(grace)?;
        let policy = organization_policy(&self.store, organization_id).await?;
        let now = self.clock.now();
        let actor = by.actor();
        // The plan may be decided more than once; the key of the last decision is the one
        // stored.
        let issued: Mutex<Option<ApiKey>> = Mutex::new(None);
        let rotated = self
            .store
            .rotate_key(organization_id, id, now, |old| {
                let change = old.rotate(now, grace)?;
                let request = NewKeyRequest {
                    name: KeyName::parse(&old.name)?,
                    scopes: old.scopes,
                    expires_at: policy.cap_expiry(old.successor_expiry(now), now),
                    environment: old.environment,
                    key_type: old.key_type,
                    member_id: old.member_id,
                    operator: old.operator,
                    // A successor keeps its predecessor's limits, metadata and allowlist, and
                    // its credits as last written (the old key keeps its own count through
                    // the grace period).
                    rate_limits: old.rate_limits,
                    metadata: old.metadata.clone(),
                    ip_allowlist: old.ip_allowlist.clone(),
                    credits: old.credits,
                };
                let (successor, key) =
                    self.issuer.draw(organization_id, request, actor.key_id())?;
                let audit = vec![
                    audit_event(
                        &actor,
                        Some(organization_id),
                        AuditAction::KeyRotate,
                        old.id.to_string(),
                        key_core::AuditOutcome::Success,
                        None,
                        &by.context,
                        now,
                    ),
                    self.issuer.created_event(&successor, &actor, &by.context),
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
        let plaintext = issued
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or_else(|| Error::Internal("a rotation stored no successor key".to_owned()))?;
        let ((old, old_digest), new) = rotated;
        // The old key's expiry (or revocation) changed.
        self.key_cache.forget(&old_digest);
        self.key_cache.key_created(&self.issuer.digest(&plaintext));
        tracing::info!(
            key_id = %old.id,
            successor_id = %new.id,
            grace_seconds = grace.num_seconds(),
            rotated_by = %caller.key_id,
            "key rotated"
        );
        let now = self.clock.now();
        Ok(RotatedKey {
            new: KeyDetails::at(new, now, &policy),
            plaintext,
            old: KeyDetails::at(old, now, &policy),
        })
    }

    /// UpdateKey: renames a key, changes its scopes, expiry or limits, with its `key.update`
    /// audit event in one transaction. A new expiry obeys the organization's maximum lifetime;
    /// new scopes never escalate, and a personal key's stay within its member's current role.
    /// A revoked or rotated key is refused (`Conflict`).
    pub async fn update(
        &self,
        by: &Requester,
        id: Uuid,
        request: UpdateKey,
    ) -> Result<KeyDetails, Error> {
        // The key's last use as this process counted it, too.
        self.usage.flush_before_answering().await;
        let caller = &by.caller;
        let now = self.clock.now();
        let changes = KeyChanges {
            name: request
                .name
                .as_deref()
                .map(|name| KeyName::parse(name).map(|name| name.as_str().to_owned()))
                .transpose()?,
            scopes: (!request.scopes.is_empty())
                .then(|| ScopeSet::parse_list("scopes", &request.scopes))
                .transpose()?,
            expires_at: request
                .expires_at
                .as_deref()
                .map(|expiry| parse_expiry(expiry, now))
                .transpose()?,
            rate_limits: request.rate_limits,
            metadata: request
                .metadata
                .as_deref()
                .map(|text| KeyMetadata::parse("metadata", text))
                .transpose()?,
            ip_allowlist: request
                .ip_allowlist
                .as_deref()
                .map(|entries| IpAllowlist::parse_list("ip_allowlist", entries))
                .transpose()?,
            credits: request
                .credits
                .map(|credits| {
                    credits
                        .map(|credits| Credits::parse(credits.remaining, credits.refill, now))
                        .transpose()
                })
                .transpose()?,
        };
        let current = self.access.key(by, id, Action::ManageKeys).await?;
        self.access
            .check(by, caller.may_manage(current.operator))
            .await?;
        // A key that acts as an owner, before or after the change, is an owner's to change.
        let owners_key = self.acts_as_owner(&current, current.scopes).await?
            || self
                .acts_as_owner(&current, changes.scopes.unwrap_or(current.scopes))
                .await?;
        self.access
            .check(by, caller.may_manage_owner_key(owners_key))
            .await?;
        let policy = organization_policy(&self.store, caller.organization_id).await?;
        // A new expiry obeys the organization's maximum lifetime; so does removing it. Without
        // `admin` it may only come sooner.
        if let Some(expires_at) = changes.expires_at {
            policy.check_expiry(expires_at, now)?;
            self.access
                .check(by, caller.may_set_expiry(current.expires_at, expires_at))
                .await?;
        }
        // Without `admin`, limits may only tighten (a key without its own has the default).
        if let Some(limits) = changes.rate_limits {
            let default_limits = policy.default_rate_limits;
            let before = current.rate_limits.or(default_limits);
            self.access
                .check(by, caller.may_set_limits(before, limits.or(default_limits)))
                .await?;
        }
        if let Some(scopes) = changes.scopes {
            // Never escalate; and a personal key stays within its member's current role.
            self.access.check(by, caller.may_grant(scopes)).await?;
            if let (KeyType::Personal, Some(member_id)) = (current.key_type, current.member_id) {
                let (member, allowed) =
                    member_scopes(&self.store, caller.organization_id, member_id)
                        .await?
                        .ok_or(Error::NotFound("member"))?;
                self.access
                    .check(by, within_role(member.role, allowed, scopes))
                    .await?;
            }
        }
        let (record, digest) = self
            .store
            .update_key(caller.organization_id, id, |current| {
                current.check_updatable()?;
                Ok::<_, Error>((
                    changes.clone(),
                    by.event(AuditAction::KeyUpdate, current.id, now),
                ))
            })
            .await?
            .ok_or(Error::NotFound("key"))?;
        self.key_cache.forget(&digest);
        tracing::info!(key_id = %record.id, updated_by = %caller.key_id, "key updated");
        Ok(KeyDetails::at(record, self.clock.now(), &policy))
    }

    /// Whether the key `record`, holding `scopes`, acts as an owner (`key_core::acts_as_owner`).
    /// The member of a personal key is read only when the scopes hold `admin`: without it no key
    /// acts as an owner, and most keys a revocation or rotation meets have none.
    async fn acts_as_owner(&self, record: &KeyRecord, scopes: ScopeSet) -> Result<bool, Error> {
        let member_role = match (record.key_type, record.member_id) {
            (KeyType::Personal, Some(member_id)) if scopes.grants(Scope::Admin) => self
                .store
                .get_member(record.organization_id, member_id)
                .await?
                .map(|member| member.role),
            _ => None,
        };
        Ok(acts_as_owner(record.key_type, scopes, member_role))
    }

    /// Creates organization `name` with one operator admin key, unless the organization exists.
    /// Returns the key only to the one caller that created the organization: the first start
    /// of `keyrack serve` prints it once.
    pub async fn bootstrap(&self, name: &str) -> Result<Option<(KeyRecord, ApiKey)>, Error> {
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
            metadata: None,
            ip_allowlist: IpAllowlist::EMPTY,
            credits: None,
        };
        let key = self.issuer.generate(Environment::Live)?;
        let created = self
            .store
            .bootstrap_organization(name, self.clock.now(), |organization_id| {
                let new_key = self.issuer.describe(organization_id, &key, request, None);
                let audit = self.issuer.created_event(
                    &new_key,
                    &Actor::Operator,
                    &RequestContext::default(),
                );
                (new_key, audit)
            })
            .await?;
        if created.is_some() {
            self.key_cache.key_created(&self.issuer.digest(&key));
        }
        Ok(created.map(|record| (record, key)))
    }

    /// Issues a key straight against the store, outside any request: the operator's recovery
    /// path (`keyrack admin-key create`) and tests. The plaintext is returned once.
    pub async fn issue(
        &self,
        organization_id: Uuid,
        request: NewKeyRequest,
        actor: &Actor,
    ) -> Result<(KeyRecord, ApiKey), Error> {
        let issued = self
            .issuer
            .issue(
                &self.store,
                organization_id,
                request,
                actor,
                &RequestContext::default(),
            )
            .await?;
        self.key_cache.key_created(&self.issuer.digest(&issued.1));
        Ok(issued)
    }

    /// The organization whose name is `name`, for operator commands.
    pub async fn organization_named(&self, name: &str) -> Result<Option<Uuid>, Error> {
        Ok(self
            .store
            .find_organization_by_name(name)
            .await?
            .map(|organization| organization.id))
    }
}
