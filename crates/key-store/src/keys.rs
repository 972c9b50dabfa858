use chrono::{DateTime, Utc};
use key_core::{
    AuditEvent, CreditPeriod, CreditRefill, Credits, Environment, IpAllowlist, KeyDigest,
    KeyMetadata, KeyRecord, KeyState, KeyType, RateLimits, RedactedKey, Scope, ScopeSet,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::{
    Error, Store,
    audit::insert_audit_event_in,
    entity::api_key::{self, Column, Entity as ApiKeys},
};

/// A key about to be stored. It carries the digest of the key, never the key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The id to store it under (UUIDv7, so that ids sort by creation).
    pub id: Uuid,
    /// The owning organization.
    pub organization_id: Uuid,
    /// The validated name.
    pub name: String,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// What may be shown of the key.
    pub redacted: RedactedKey,
    /// HMAC of the key under the pepper.
    pub digest: KeyDigest,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// The key that created this one, if a key did.
    pub created_by: Option<Uuid>,
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
    /// Its credits; `None`: unlimited.
    pub credits: Option<Credits>,
    /// For an OAuth grant, its client and person (see `Store::issue_oauth_grant`).
    pub oauth: Option<key_core::OauthContext>,
}

/// Which keys a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFilter {
    /// Every key.
    All,
    /// Keys in this state at the listing's `now`.
    State(KeyState),
    /// Keys due for rotation at the listing's `now`: active, not rotated yet, and created at or
    /// before this instant (`now` minus the maximum key age). The same rule as
    /// `KeyRecord::rotation_due`.
    RotationDue {
        /// The latest creation time of a key that is due.
        created_at_or_before: DateTime<Utc>,
    },
}

/// What rotating a key writes, as decided from the old key's record.
#[derive(Debug, Clone)]
pub struct KeyRotation {
    /// The successor. The store links it to the old key (`rotated_from`).
    pub successor: NewKey,
    /// The old key's expiry after the rotation.
    pub old_expires_at: Option<DateTime<Utc>>,
    /// Set to revoke the old key at once, with this reason.
    pub revoke_reason: Option<String>,
    /// The events that describe the rotation, appended in its transaction.
    pub audit: Vec<AuditEvent>,
}

/// The fields an update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// A new, validated name.
    pub name: Option<String>,
    /// New scopes (never empty).
    pub scopes: Option<ScopeSet>,
    /// A new expiry; `Some(None)` removes it.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// New rate limits; `Some(RateLimits::NONE)` removes the key's own.
    pub rate_limits: Option<RateLimits>,
    /// New metadata; `Some(None)` removes it.
    pub metadata: Option<Option<KeyMetadata>>,
    /// A new IP allowlist; `Some(IpAllowlist::EMPTY)` removes it.
    pub ip_allowlist: Option<IpAllowlist>,
    /// New credits (remaining and refill); `Some(None)` removes them (unlimited).
    pub credits: Option<Option<Credits>>,
}

/// What spending a key's credits came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Spent; this many are left.
    Spent(i64),
    /// Fewer than the cost were left (this many); nothing was spent.
    Exceeded(i64),
    /// The key has no credits (any more): unlimited, nothing to spend.
    Unlimited,
}

/// How often a rotation or update is decided again when the key changed between the decision
/// and the write. The guards only move one way (revoked, rotated), so the second decision
/// sees the change and refuses.
const ATTEMPTS: usize = 3;

/// A key found by its digest: its record, the stored digest for the final constant-time
/// check, and its effective rate limits.
pub type FoundKey = (KeyRecord, KeyDigest, RateLimits);

/// The most digests `Store::find_keys_by_digests` puts in one `IN (…)` list. Both backends
/// take far more bind parameters (SQLite 32,766, PostgreSQL 65,535); the cap keeps one
/// statement's size, and the time it holds a pooled connection, small and predictable.
pub const MAX_DIGESTS_PER_QUERY: usize = 256;

impl Store {
    /// Spends `cost` of the credits of the key `id` at `now`, exactly: never more spends than
    /// credits, however many replicas spend at once. First, if the key has a refill whose
    /// current period (`CreditPeriod::start`, UTC) began after its last refill, its remaining
    /// count is set to the refill's amount; then one conditional statement subtracts the cost
    /// only where at least the cost is left. Each statement is atomic on its own: the database
    /// judges its `WHERE` on the row as it is when the row's lock is taken (PostgreSQL
    /// re-reads a row another transaction changed; SQLite has one writer at a time), so two
    /// refills of one period are one, and two spends of the last credit are one. This is the
    /// one write on the verification path, and only for keys with credits.
    pub async fn spend_credits(
        &self,
        id: Uuid,
        cost: u32,
        now: DateTime<Utc>,
    ) -> Result<Spend, Error> {
        let due = |per: CreditPeriod| {
            Condition::all()
                .add(Column::CreditsRefillPer.eq(per.as_str()))
                .add(
                    Condition::any()
                        .add(Column::CreditsRefilledAt.is_null())
                        .add(Column::CreditsRefilledAt.lt(per.start(now))),
                )
        };
        ApiKeys::update_many()
            .col_expr(
                Column::CreditsRemaining,
                Expr::col(Column::CreditsRefillAmount),
            )
            .col_expr(Column::CreditsRefilledAt, Expr::value(now))
            .filter(Column::Id.eq(id))
            .filter(Column::CreditsRemaining.is_not_null())
            .filter(Column::CreditsRefillAmount.is_not_null())
            .filter(
                Condition::any()
                    .add(due(CreditPeriod::Day))
                    .add(due(CreditPeriod::Month)),
            )
            .exec(&self.db)
            .await?;
        let cost = i64::from(cost);
        let spent = ApiKeys::update_many()
            .col_expr(
                Column::CreditsRemaining,
                Expr::col(Column::CreditsRemaining).sub(cost),
            )
            .filter(Column::Id.eq(id))
            .filter(Column::CreditsRemaining.gte(cost))
            .exec_with_returning(&self.db)
            .await?;
        if let Some(model) = spent.first() {
            return Ok(model
                .credits_remaining
                .map_or(Spend::Unlimited, Spend::Spent));
        }
        let left = ApiKeys::find_by_id(id)
            .one(&self.db)
            .await?
            .and_then(|model| model.credits_remaining);
        Ok(left.map_or(Spend::Unlimited, Spend::Exceeded))
    }

    /// Stores a new key and its audit event, in one transaction, and returns its record.
    pub async fn insert_key(&self, key: NewKey, audit: &AuditEvent) -> Result<KeyRecord, Error> {
        let txn = self.begin_write().await?;
        let record = insert_key_in(&txn, key).await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(record)
    }

    /// The key stored under `digest`, with the stored digest for the final constant-time check
    /// and its effective rate limits (its own, or else its organization's default), in one
    /// query.
    pub async fn find_key_by_digest(&self, digest: &KeyDigest) -> Result<Option<FoundKey>, Error> {
        if let Some(found) = self.read_key_on_this_thread(digest) {
            return found;
        }
        ApiKeys::find()
            .filter(Column::Digest.eq(digest.as_bytes().to_vec()))
            .find_also_related(crate::entity::organization::Entity)
            .one(&self.db)
            .await?
            .map(|(model, organization)| found_key(model, default_limits_of(organization)))
            .transpose()
    }

    /// On SQLite, [`Store::find_key_by_digest`] read without leaving the calling thread
    /// (`SqliteReads`); `None` where that cannot be done now (PostgreSQL, an in-memory
    /// database, every read connection in use, a busy database): the pool reads it instead.
    fn read_key_on_this_thread(
        &self,
        digest: &KeyDigest,
    ) -> Option<Result<Option<FoundKey>, Error>> {
        let found = self.reads.as_ref()?.find_key_by_digest(digest)?;
        self.queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(found.and_then(|found| {
            found
                .map(|(model, default_limits)| found_key(model, default_limits))
                .transpose()
        }))
    }

    /// [`Store::find_key_by_digest`] for many digests at once: the keys stored under any of
    /// `digests`, each with its stored digest and effective rate limits, in no particular order;
    /// a digest that matches no key is simply absent. One query per `MAX_DIGESTS_PER_QUERY`
    /// digests, so a batch of misses costs one round trip instead of one each.
    pub async fn find_keys_by_digests(
        &self,
        digests: &[KeyDigest],
    ) -> Result<Vec<FoundKey>, Error> {
        // A lone miss, the common case, is one read on the calling thread where the backend
        // allows it; a batch (a flood of misses) stays one query through the pool.
        if let [digest] = digests
            && let Some(found) = self.read_key_on_this_thread(digest)
        {
            return Ok(found?.into_iter().collect());
        }
        let mut found = Vec::new();
        for chunk in digests.chunks(MAX_DIGESTS_PER_QUERY) {
            let rows = ApiKeys::find()
                .filter(Column::Digest.is_in(chunk.iter().map(|digest| digest.as_bytes().to_vec())))
                .find_also_related(crate::entity::organization::Entity)
                .all(&self.db)
                .await?;
            for (model, organization) in rows {
                found.push(found_key(model, default_limits_of(organization))?);
            }
        }
        Ok(found)
    }

    /// The key `id` of `organization_id`; `None` if it does not exist or belongs to another
    /// organization.
    pub async fn get_key(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<KeyRecord>, Error> {
        get_key_in(&self.db, organization_id, id).await
    }

    /// Up to `limit` keys of `organization_id`, newest first, starting after the key `after`;
    /// with `member_id`, only that member's personal keys.
    pub async fn list_keys(
        &self,
        organization_id: Uuid,
        member_id: Option<Uuid>,
        filter: KeyFilter,
        now: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<KeyRecord>, Error> {
        // OAuth grants are rows of this table, but not keys: their own operations list them.
        let mut query = ApiKeys::find()
            .filter(Column::OrganizationId.eq(organization_id))
            .filter(Column::OauthClientId.is_null());
        if let Some(member_id) = member_id {
            query = query
                .filter(Column::MemberId.eq(member_id))
                .filter(Column::KeyType.eq(KeyType::Personal.as_str()));
        }
        if let Some(after) = after {
            query = query.filter(Column::Id.lt(after));
        }
        query = match filter {
            KeyFilter::All => query,
            KeyFilter::State(KeyState::Revoked) => query.filter(Column::RevokedAt.is_not_null()),
            KeyFilter::State(KeyState::Expired) => query
                .filter(Column::RevokedAt.is_null())
                .filter(Column::ExpiresAt.lte(now)),
            KeyFilter::State(KeyState::Active) => query
                .filter(Column::RevokedAt.is_null())
                .filter(Column::DisabledAt.is_null())
                .filter(
                    Condition::any()
                        .add(Column::ExpiresAt.is_null())
                        .add(Column::ExpiresAt.gt(now)),
                ),
            KeyFilter::State(KeyState::Disabled) => query
                .filter(Column::RevokedAt.is_null())
                .filter(Column::DisabledAt.is_not_null())
                .filter(
                    Condition::any()
                        .add(Column::ExpiresAt.is_null())
                        .add(Column::ExpiresAt.gt(now)),
                ),
            KeyFilter::RotationDue {
                created_at_or_before,
            } => query
                .filter(Column::RevokedAt.is_null())
                .filter(Column::DisabledAt.is_null())
                .filter(Column::RotatedTo.is_null())
                .filter(Column::CreatedAt.lte(created_at_or_before))
                .filter(
                    Condition::any()
                        .add(Column::ExpiresAt.is_null())
                        .add(Column::ExpiresAt.gt(now)),
                ),
        };
        query
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(record_from_model)
            .collect()
    }

    /// Revokes the key `id` of `organization_id` at `now`, with its audit event, in one
    /// transaction. Revoking a revoked key keeps its first revocation time and reason. `None`
    /// (and no event) if there is no such key. The key's digest comes back with its record, so
    /// the caller can drop the key from a cache of verifications without another read.
    pub async fn revoke_key(
        &self,
        organization_id: Uuid,
        id: Uuid,
        reason: Option<String>,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<(KeyRecord, KeyDigest)>, Error> {
        let txn = self.begin_write().await?;
        ApiKeys::update_many()
            .col_expr(Column::RevokedAt, Expr::value(now))
            .col_expr(Column::RevokeReason, Expr::value(reason))
            .filter(Column::Id.eq(id))
            .filter(Column::OrganizationId.eq(organization_id))
            .filter(Column::OauthClientId.is_null())
            .filter(Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        let record = get_key_with_digest_in(&txn, organization_id, id).await?;
        if record.is_some() {
            insert_audit_event_in(&txn, audit).await?;
        }
        txn.commit().await?;
        Ok(record)
    }

    /// Disables (`disabled`) or enables the key `id` of `organization_id` at `now`, with its
    /// audit event, in one transaction. Disabling a disabled key keeps its first time; a
    /// revoked key is left as it is. `None` (and no event) if there is no such key. The digest
    /// comes back with the record, for a cache of verifications to drop the key.
    pub async fn set_key_disabled(
        &self,
        organization_id: Uuid,
        id: Uuid,
        disabled: bool,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<(KeyRecord, KeyDigest)>, Error> {
        let txn = self.begin_write().await?;
        let mut update = ApiKeys::update_many()
            .col_expr(Column::DisabledAt, Expr::value(disabled.then_some(now)))
            .filter(Column::Id.eq(id))
            .filter(Column::OrganizationId.eq(organization_id))
            .filter(Column::OauthClientId.is_null())
            .filter(Column::RevokedAt.is_null());
        if disabled {
            update = update.filter(Column::DisabledAt.is_null());
        }
        update.exec(&txn).await?;
        let record = get_key_with_digest_in(&txn, organization_id, id).await?;
        if record.is_some() {
            insert_audit_event_in(&txn, audit).await?;
        }
        txn.commit().await?;
        Ok(record)
    }
}

impl Store {
    /// Rotates the key `id` of `organization_id` in one transaction: `plan` decides, from the
    /// old key's record, the successor, the old key's new expiry (or its revocation) and the
    /// audit events, or refuses with its own error; the store inserts the successor, links the
    /// two keys and appends the events. Returns the old record with its digest (its expiry
    /// changed, so a cache of verifications must drop it) and the new record, or `None` if
    /// there is no such key.
    pub async fn rotate_key<E: From<Error>>(
        &self,
        organization_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        plan: impl Fn(&KeyRecord) -> Result<KeyRotation, E>,
    ) -> Result<Option<((KeyRecord, KeyDigest), KeyRecord)>, E> {
        for _ in 0..ATTEMPTS {
            let txn = self.begin_write().await.map_err(Error::from)?;
            let Some(old) = get_key_in(&txn, organization_id, id).await? else {
                return Ok(None);
            };
            let rotation = plan(&old)?;
            let successor_id = rotation.successor.id;
            let mut update = ApiKeys::update_many()
                .col_expr(Column::RotatedTo, Expr::value(successor_id))
                .col_expr(Column::ExpiresAt, Expr::value(rotation.old_expires_at));
            if let Some(reason) = rotation.revoke_reason {
                update = update
                    .col_expr(Column::RevokedAt, Expr::value(now))
                    .col_expr(Column::RevokeReason, Expr::value(reason));
            }
            let updated = update
                .filter(Column::Id.eq(id))
                .filter(Column::OrganizationId.eq(organization_id))
                .filter(Column::RevokedAt.is_null())
                .filter(Column::RotatedTo.is_null())
                .exec(&txn)
                .await
                .map_err(Error::from)?;
            if updated.rows_affected == 0 {
                // Revoked or rotated since it was read: decide again on what is stored now.
                txn.rollback().await.map_err(Error::from)?;
                continue;
            }
            insert_key_in(&txn, rotation.successor).await?;
            ApiKeys::update_many()
                .col_expr(Column::RotatedFrom, Expr::value(id))
                .filter(Column::Id.eq(successor_id))
                .exec(&txn)
                .await
                .map_err(Error::from)?;
            for event in &rotation.audit {
                insert_audit_event_in(&txn, event).await?;
            }
            let old = get_key_with_digest_in(&txn, organization_id, id).await?;
            let new = get_key_in(&txn, organization_id, successor_id).await?;
            txn.commit().await.map_err(Error::from)?;
            return match (old, new) {
                (Some(old), Some(new)) => Ok(Some((old, new))),
                _ => Err(vanished(id).into()),
            };
        }
        Err(changing(id).into())
    }

    /// Changes the key `id` of `organization_id` in one transaction: `plan` decides, from its
    /// record, the changes and the audit event, or refuses with its own error. Returns the
    /// updated record with its digest (for a cache of verifications to drop it), or `None` if
    /// there is no such key. A revoked or rotated key is never changed, whatever `plan` says.
    pub async fn update_key<E: From<Error>>(
        &self,
        organization_id: Uuid,
        id: Uuid,
        plan: impl Fn(&KeyRecord) -> Result<(KeyChanges, AuditEvent), E>,
    ) -> Result<Option<(KeyRecord, KeyDigest)>, E> {
        for _ in 0..ATTEMPTS {
            let txn = self.begin_write().await.map_err(Error::from)?;
            let Some(current) = get_key_in(&txn, organization_id, id).await? else {
                return Ok(None);
            };
            let (changes, audit) = plan(&current)?;
            // Setting the name to itself keeps the statement valid when nothing changes.
            let mut update = ApiKeys::update_many().col_expr(
                Column::Name,
                Expr::value(changes.name.unwrap_or(current.name)),
            );
            if let Some(scopes) = changes.scopes {
                update = update.col_expr(Column::Scopes, Expr::value(scopes.names().join(" ")));
            }
            if let Some(limits) = changes.rate_limits {
                update = update.col_expr(Column::RateLimits, Expr::value(limits.format()));
            }
            if let Some(expires_at) = changes.expires_at {
                update = update.col_expr(Column::ExpiresAt, Expr::value(expires_at));
            }
            if let Some(metadata) = changes.metadata {
                let json = metadata.map(|metadata| metadata.as_json().to_owned());
                update = update.col_expr(Column::Metadata, Expr::value(json));
            }
            if let Some(allowlist) = changes.ip_allowlist {
                update = update.col_expr(Column::IpAllowlist, Expr::value(allowlist.format()));
            }
            if let Some(credits) = changes.credits {
                let columns = credit_columns(credits.as_ref());
                update = update
                    .col_expr(Column::CreditsRemaining, Expr::value(columns.0))
                    .col_expr(Column::CreditsRefillAmount, Expr::value(columns.1))
                    .col_expr(Column::CreditsRefillPer, Expr::value(columns.2))
                    .col_expr(Column::CreditsRefilledAt, Expr::value(columns.3));
            }
            let updated = update
                .filter(Column::Id.eq(id))
                .filter(Column::OrganizationId.eq(organization_id))
                .filter(Column::RevokedAt.is_null())
                .filter(Column::RotatedTo.is_null())
                .exec(&txn)
                .await
                .map_err(Error::from)?;
            if updated.rows_affected == 0 {
                txn.rollback().await.map_err(Error::from)?;
                continue;
            }
            insert_audit_event_in(&txn, &audit).await?;
            let record = get_key_with_digest_in(&txn, organization_id, id).await?;
            txn.commit().await.map_err(Error::from)?;
            return record.map(Some).ok_or_else(|| vanished(id).into());
        }
        Err(changing(id).into())
    }
}

fn vanished(id: Uuid) -> Error {
    Error::Corrupt {
        table: "api_keys",
        detail: format!("key {id} vanished inside its own transaction"),
    }
}

fn changing(id: Uuid) -> Error {
    Error::Corrupt {
        table: "api_keys",
        detail: format!("key {id} kept changing while it was being written"),
    }
}

pub(crate) async fn get_key_in(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<KeyRecord>, Error> {
    ApiKeys::find_by_id(id)
        .filter(Column::OrganizationId.eq(organization_id))
        .filter(Column::OauthClientId.is_null())
        .one(db)
        .await?
        .map(record_from_model)
        .transpose()
}

/// [`get_key_in`], with the key's stored digest.
async fn get_key_with_digest_in(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<(KeyRecord, KeyDigest)>, Error> {
    let Some(model) = ApiKeys::find_by_id(id)
        .filter(Column::OrganizationId.eq(organization_id))
        .filter(Column::OauthClientId.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let digest = stored_digest(&model)?;
    Ok(Some((record_from_model(model)?, digest)))
}

/// A key row read for verification, with its organization: the record, the stored digest (for
/// the constant-time check) and the effective rate limits (the key's own, or else the
/// organization's default).
pub(crate) fn found_key(
    model: api_key::Model,
    default_limits: Option<String>,
) -> Result<FoundKey, Error> {
    let stored = stored_digest(&model)?;
    let default = RateLimits::parse(
        "default_rate_limits",
        default_limits.as_deref().unwrap_or_default(),
    )
    .map_err(|err| Error::Corrupt {
        table: "organizations",
        detail: err.to_string(),
    })?;
    let record = record_from_model(model)?;
    let limits = record.rate_limits.or(default);
    Ok((record, stored, limits))
}

/// The organization's default rate limits, as `found_key` takes them.
pub(crate) fn default_limits_of(
    organization: Option<crate::entity::organization::Model>,
) -> Option<String> {
    organization.and_then(|organization| organization.default_rate_limits)
}

fn stored_digest(model: &api_key::Model) -> Result<KeyDigest, Error> {
    KeyDigest::from_slice(&model.digest).ok_or_else(|| Error::Corrupt {
        table: "api_keys",
        detail: format!(
            "key {} has a digest of {} bytes",
            model.id,
            model.digest.len()
        ),
    })
}

pub(crate) async fn insert_key_in(
    db: &impl ConnectionTrait,
    key: NewKey,
) -> Result<KeyRecord, Error> {
    let model = ApiKeys::insert(key_model(&key))
        .exec_with_returning(db)
        .await?;
    record_from_model(model)
}

/// The row of a new key: one mapping for `insert_key_in` and the bulk insert (`bulk.rs`).
pub(crate) fn key_model(key: &NewKey) -> api_key::ActiveModel {
    api_key::ActiveModel {
        id: Set(key.id),
        organization_id: Set(key.organization_id),
        name: Set(key.name.clone()),
        scopes: Set(key.scopes.names().join(" ")),
        environment: Set(key.redacted.environment.as_str().to_owned()),
        last4: Set(key.redacted.last4.clone()),
        digest: Set(key.digest.as_bytes().to_vec()),
        created_at: Set(key.created_at),
        expires_at: Set(key.expires_at),
        revoked_at: Set(None),
        revoke_reason: Set(None),
        last_used_at: Set(None),
        created_by: Set(key.created_by),
        rotated_from: Set(None),
        rotated_to: Set(None),
        key_type: Set(key.key_type.as_str().to_owned()),
        member_id: Set(key.member_id),
        operator: Set(key.operator),
        rate_limits: Set(key.rate_limits.format()),
        disabled_at: Set(None),
        metadata: Set(key
            .metadata
            .as_ref()
            .map(|metadata| metadata.as_json().to_owned())),
        ip_allowlist: Set(key.ip_allowlist.format()),
        credits_remaining: Set(credit_columns(key.credits.as_ref()).0),
        credits_refill_amount: Set(credit_columns(key.credits.as_ref()).1),
        credits_refill_per: Set(credit_columns(key.credits.as_ref()).2),
        credits_refilled_at: Set(credit_columns(key.credits.as_ref()).3),
        oauth_client_id: Set(key.oauth.as_ref().map(|oauth| oauth.client_id)),
        oauth_user_id: Set(key.oauth.as_ref().map(|oauth| oauth.user_id.clone())),
    }
}

/// The four credit columns of `credits` (all NULL for none).
type CreditColumns = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<DateTime<Utc>>,
);

fn credit_columns(credits: Option<&Credits>) -> CreditColumns {
    let Some(credits) = credits else {
        return (None, None, None, None);
    };
    (
        Some(credits.remaining),
        credits.refill.map(|refill| refill.amount),
        credits.refill.map(|refill| refill.per.as_str().to_owned()),
        credits.refilled_at,
    )
}

fn credits_from_model(model: &api_key::Model) -> Result<Option<Credits>, String> {
    let Some(remaining) = model.credits_remaining else {
        return Ok(None);
    };
    let refill = match (model.credits_refill_amount, &model.credits_refill_per) {
        (Some(amount), Some(per)) => Some(CreditRefill {
            amount,
            per: CreditPeriod::parse("credits_refill_per", per).map_err(|err| err.to_string())?,
        }),
        _ => None,
    };
    Ok(Some(Credits {
        remaining,
        refill,
        refilled_at: model.credits_refilled_at,
    }))
}

/// Scopes as a row stores them: their names separated by spaces (`ScopeSet::names` joined).
pub(crate) fn stored_scopes(text: &str) -> Result<ScopeSet, String> {
    text.split_whitespace()
        .map(Scope::parse)
        .collect::<Result<ScopeSet, _>>()
        .map_err(|err| err.to_string())
}

pub(crate) fn record_from_model(model: api_key::Model) -> Result<KeyRecord, Error> {
    let corrupt = |detail: String| Error::Corrupt {
        table: "api_keys",
        detail,
    };
    let scopes =
        stored_scopes(&model.scopes).map_err(|err| corrupt(format!("key {}: {err}", model.id)))?;
    let environment = Environment::parse(&model.environment)
        .map_err(|err| corrupt(format!("key {}: {err}", model.id)))?;
    let key_type = KeyType::parse(&model.key_type).ok_or_else(|| {
        corrupt(format!(
            "key {}: unknown key type {:?}",
            model.id, model.key_type
        ))
    })?;
    let rate_limits = RateLimits::parse("rate_limits", model.rate_limits.as_deref().unwrap_or(""))
        .map_err(|err| corrupt(format!("key {}: {err}", model.id)))?;
    let metadata = KeyMetadata::parse("metadata", model.metadata.as_deref().unwrap_or(""))
        .map_err(|err| corrupt(format!("key {}: {err}", model.id)))?;
    let entries: Vec<&str> = model
        .ip_allowlist
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ip_allowlist = IpAllowlist::parse_list("ip_allowlist", &entries)
        .map_err(|err| corrupt(format!("key {}: {err}", model.id)))?;
    let credits =
        credits_from_model(&model).map_err(|err| corrupt(format!("key {}: {err}", model.id)))?;
    let oauth = match (model.oauth_client_id, model.oauth_user_id) {
        (Some(client_id), Some(user_id)) => Some(key_core::OauthContext { client_id, user_id }),
        _ => None,
    };
    Ok(KeyRecord {
        id: model.id,
        organization_id: model.organization_id,
        name: model.name,
        scopes,
        environment,
        redacted: RedactedKey {
            environment,
            last4: model.last4,
        },
        created_at: model.created_at,
        expires_at: model.expires_at,
        revoked_at: model.revoked_at,
        revoke_reason: model.revoke_reason,
        last_used_at: model.last_used_at,
        rotated_from: model.rotated_from,
        rotated_to: model.rotated_to,
        key_type,
        member_id: model.member_id,
        operator: model.operator,
        rate_limits,
        disabled_at: model.disabled_at,
        metadata,
        ip_allowlist,
        credits,
        oauth,
    })
}
