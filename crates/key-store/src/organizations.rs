use chrono::{DateTime, TimeDelta, Utc};
use key_core::{LeakedKeyPolicy, OrganizationPolicy, Role, RoleScopes};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, LockType, OnConflict},
};
use uuid::Uuid;

use crate::{
    Error, NewKey, Store,
    audit::insert_audit_event_in,
    entity::organization::{self, Entity as Organizations},
    keys::insert_key_in,
    keys::stored_scopes,
};

/// An organization: the owner of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Its id.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its rules for keys.
    pub policy: OrganizationPolicy,
}

impl TryFrom<organization::Model> for Organization {
    type Error = Error;

    fn try_from(model: organization::Model) -> Result<Self, Error> {
        let corrupt = |detail: String| Error::Corrupt {
            table: "organizations",
            detail: format!("organization {}: {detail}", model.id),
        };
        let role_scopes =
            parse_role_scopes(model.role_scopes.as_deref().unwrap_or_default()).map_err(corrupt)?;
        let default_rate_limits = key_core::RateLimits::parse(
            "default_rate_limits",
            model.default_rate_limits.as_deref().unwrap_or_default(),
        )
        .map_err(|err| corrupt(err.to_string()))?;
        let leaked_keys = LeakedKeyPolicy::parse(&model.leaked_keys)
            .ok_or_else(|| corrupt(format!("unknown leaked-key policy {:?}", model.leaked_keys)))?;
        Ok(Organization {
            id: model.id,
            name: model.name,
            created_at: model.created_at,
            policy: OrganizationPolicy {
                max_key_age: TimeDelta::days(i64::from(model.max_key_age_days)),
                max_key_lifetime: model
                    .max_key_lifetime_days
                    .map(|days| TimeDelta::days(i64::from(days))),
                role_scopes,
                default_rate_limits,
                leaked_keys,
            },
        })
    }
}

/// Role scope overrides as stored: `member=chat agents:read;viewer=data:read`. Roles not
/// listed keep their defaults.
pub(crate) fn format_role_scopes(role_scopes: &RoleScopes) -> Option<String> {
    let overrides: Vec<String> = Role::ALL
        .into_iter()
        .filter(|role| !role_scopes.is_default(*role))
        .map(|role| {
            format!(
                "{}={}",
                role.as_str(),
                role_scopes.scopes(role).names().join(" ")
            )
        })
        .collect();
    (!overrides.is_empty()).then(|| overrides.join(";"))
}

fn parse_role_scopes(text: &str) -> Result<RoleScopes, String> {
    let mut role_scopes = RoleScopes::default();
    for entry in text.split(';').filter(|entry| !entry.is_empty()) {
        let (role, scopes) = entry
            .split_once('=')
            .ok_or_else(|| format!("malformed role scopes {entry:?}"))?;
        let role = Role::parse(role).map_err(|error| error.to_string())?;
        let scopes = stored_scopes(scopes)?;
        role_scopes.set(role, scopes);
    }
    Ok(role_scopes)
}

impl Store {
    /// The organization `id`, with its policy.
    pub async fn get_organization(&self, id: Uuid) -> Result<Option<Organization>, Error> {
        get_organization_in(&self.db, id).await
    }

    /// Creates the organization `name` and, in the same transaction, its first key and the
    /// audit events that `make_key` describes from the new organization's id (or refuses with
    /// its own error). `None` (and nothing written) when an organization of that name exists.
    pub async fn create_organization<E: From<Error>>(
        &self,
        name: &str,
        now: DateTime<Utc>,
        make_key: impl FnOnce(Uuid) -> Result<(NewKey, Vec<key_core::AuditEvent>), E>,
    ) -> Result<Option<(Organization, key_core::KeyRecord)>, E> {
        let txn = self.begin_write().await.map_err(Error::from)?;
        let Some(id) = insert_organization_if_absent(&txn, name, now).await? else {
            txn.rollback().await.map_err(Error::from)?;
            return Ok(None);
        };
        let (key, audit) = make_key(id)?;
        let record = insert_key_in(&txn, key).await?;
        for event in &audit {
            insert_audit_event_in(&txn, event).await?;
        }
        let organization = get_organization_in(&txn, id)
            .await?
            .ok_or_else(|| vanished(id))?;
        txn.commit().await.map_err(Error::from)?;
        Ok(Some((organization, record)))
    }

    /// Replaces the policy of organization `id`, with its audit event, in one transaction:
    /// `plan` sees the policy in force and returns the audit event, or refuses with its own
    /// error. Role scopes equal to the defaults are stored as no override. `None` (and no
    /// event) if there is no such organization. The organization's row is locked first, so
    /// that no other change of the policy (or of its members) lands between `plan`'s reading
    /// and the write.
    pub async fn update_organization_policy<E: From<Error>>(
        &self,
        id: Uuid,
        policy: &OrganizationPolicy,
        plan: impl FnOnce(&OrganizationPolicy) -> Result<key_core::AuditEvent, E>,
    ) -> Result<Option<Organization>, E> {
        let days = |delta: TimeDelta| i32::try_from(delta.num_days()).unwrap_or(i32::MAX);
        let txn = self.begin_write().await.map_err(Error::from)?;
        let Some(current) = lock_organization_in(&txn, id).await? else {
            txn.rollback().await.map_err(Error::from)?;
            return Ok(None);
        };
        let audit = plan(&current.policy)?;
        Organizations::update_many()
            .col_expr(
                organization::Column::MaxKeyAgeDays,
                Expr::value(days(policy.max_key_age)),
            )
            .col_expr(
                organization::Column::MaxKeyLifetimeDays,
                Expr::value(policy.max_key_lifetime.map(days)),
            )
            .col_expr(
                organization::Column::RoleScopes,
                Expr::value(format_role_scopes(&policy.role_scopes)),
            )
            .col_expr(
                organization::Column::DefaultRateLimits,
                Expr::value(policy.default_rate_limits.format()),
            )
            .col_expr(
                organization::Column::LeakedKeys,
                Expr::value(policy.leaked_keys.as_str()),
            )
            .filter(organization::Column::Id.eq(id))
            .exec(&txn)
            .await
            .map_err(Error::from)?;
        insert_audit_event_in(&txn, &audit).await?;
        let organization = get_organization_in(&txn, id)
            .await?
            .ok_or_else(|| vanished(id))?;
        txn.commit().await.map_err(Error::from)?;
        Ok(Some(organization))
    }
}

/// Reads the organization `id` and locks its row until the transaction ends, so that changes
/// that decide on what they read of an organization (its policy, how many owners it has) are
/// serialized. PostgreSQL takes the row lock (`FOR NO KEY UPDATE`, which leaves inserts that
/// refer to the organization free); SQLite has none, and needs none: a write transaction
/// there begins `IMMEDIATE`, holding the database's write lock.
pub(crate) async fn lock_organization_in(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<Organization>, Error> {
    Organizations::find_by_id(id)
        .lock(LockType::NoKeyUpdate)
        .one(db)
        .await?
        .map(Organization::try_from)
        .transpose()
}

async fn get_organization_in(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<Organization>, Error> {
    Organizations::find_by_id(id)
        .one(db)
        .await?
        .map(Organization::try_from)
        .transpose()
}

fn vanished(id: Uuid) -> Error {
    Error::Corrupt {
        table: "organizations",
        detail: format!("organization {id} vanished inside its own transaction"),
    }
}

impl Store {
    /// Creates the organization `name` unless it exists, and returns it either way.
    pub async fn ensure_organization(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Organization, Error> {
        insert_organization_if_absent(&self.db, name, now).await?;
        self.find_organization_by_name(name)
            .await?
            .ok_or_else(|| Error::Corrupt {
                table: "organizations",
                detail: format!("organization {name:?} vanished after it was created"),
            })
    }

    /// The organization called `name`, if any.
    pub async fn find_organization_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Organization>, Error> {
        Organizations::find()
            .filter(organization::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(Organization::try_from)
            .transpose()
    }

    /// First-start bootstrap: creates organization `name` and, in the same transaction, the key
    /// `make_key` describes for it. Returns `None` when the organization already existed, so
    /// that exactly one process ever mints (and prints) the bootstrap key.
    pub async fn bootstrap_organization(
        &self,
        name: &str,
        now: DateTime<Utc>,
        make_key: impl FnOnce(Uuid) -> (NewKey, key_core::AuditEvent),
    ) -> Result<Option<key_core::KeyRecord>, Error> {
        let txn = self.begin_write().await?;
        let created = insert_organization_if_absent(&txn, name, now).await?;
        let Some(organization_id) = created else {
            txn.rollback().await?;
            return Ok(None);
        };
        let (key, audit) = make_key(organization_id);
        let record = insert_key_in(&txn, key).await?;
        insert_audit_event_in(&txn, &audit).await?;
        txn.commit().await?;
        Ok(Some(record))
    }
}

/// Inserts the organization unless one of that name exists; returns the new id if it inserted.
async fn insert_organization_if_absent(
    db: &impl sea_orm::ConnectionTrait,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, Error> {
    let id = Uuid::now_v7();
    let model = organization::ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
        created_at: Set(now),
        max_key_age_days: Set(90),
        max_key_lifetime_days: Set(None),
        default_rate_limits: Set(None),
        role_scopes: Set(None),
        leaked_keys: Set(LeakedKeyPolicy::default().as_str().to_owned()),
    };
    let inserted = Organizations::insert(model)
        .on_conflict(
            OnConflict::column(organization::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok((inserted > 0).then_some(id))
}
