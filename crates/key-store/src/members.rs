use chrono::{DateTime, Utc};
use key_core::{AuditEvent, Role};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use crate::{
    Error, Store,
    audit::insert_audit_event_in,
    entity::member::{self, Column, Entity as Members},
    organizations::lock_organization_in,
};

/// A user's membership of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: Uuid,
    /// The organization.
    pub organization_id: Uuid,
    /// The user's id in the platform.
    pub user_id: String,
    /// The role.
    pub role: Role,
    /// When the member was added.
    pub created_at: DateTime<Utc>,
}

impl TryFrom<member::Model> for Member {
    type Error = Error;

    fn try_from(model: member::Model) -> Result<Self, Error> {
        let role = Role::parse(&model.role).map_err(|error| Error::Corrupt {
            table: "members",
            detail: format!("member {}: {error}", model.id),
        })?;
        Ok(Member {
            id: model.id,
            organization_id: model.organization_id,
            user_id: model.user_id,
            role,
            created_at: model.created_at,
        })
    }
}

impl Store {
    /// The member `id` of `organization_id`; `None` if there is none (or it was removed).
    pub async fn get_member(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Member>, Error> {
        get_member_in(&self.db, organization_id, id).await
    }

    /// The member of `organization_id` whose user id is `user_id`, if any.
    pub async fn member_by_user(
        &self,
        organization_id: Uuid,
        user_id: &str,
    ) -> Result<Option<Member>, Error> {
        Members::find()
            .filter(Column::OrganizationId.eq(organization_id))
            .filter(Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .map(Member::try_from)
            .transpose()
    }

    /// Adds `member` (its id a UUIDv7, so that ids sort by creation) with its audit event, in
    /// one transaction, and returns it as stored. `None` (and nothing written) when the user is
    /// already a member of the organization.
    pub async fn add_member(
        &self,
        member: &Member,
        audit: &AuditEvent,
    ) -> Result<Option<Member>, Error> {
        let txn = self.begin_write().await?;
        let model = member::ActiveModel {
            id: Set(member.id),
            organization_id: Set(member.organization_id),
            user_id: Set(member.user_id.clone()),
            role: Set(member.role.as_str().to_owned()),
            created_at: Set(member.created_at),
        };
        // The unique index on (organization_id, user_id) decides, so that two concurrent adds
        // of one user cannot both succeed.
        let inserted = Members::insert(model)
            .on_conflict(
                OnConflict::columns([Column::OrganizationId, Column::UserId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        insert_audit_event_in(&txn, audit).await?;
        let stored = get_member_in(&txn, member.organization_id, member.id)
            .await?
            .ok_or_else(|| vanished(member.id))?;
        txn.commit().await?;
        Ok(Some(stored))
    }

    /// Changes the role of the member `id` of `organization_id` in one transaction: `plan`
    /// sees the member as stored and how many owners the organization has, and returns the
    /// audit event, or refuses with its own error. Returns the updated member, or `None` if
    /// there is no such member. Changes of one organization's members are serialized
    /// (`lock_organization_in`), so that the count stays true until the change commits.
    pub async fn update_member<E: From<Error>>(
        &self,
        organization_id: Uuid,
        id: Uuid,
        role: Role,
        plan: impl FnOnce(&Member, u64) -> Result<AuditEvent, E>,
    ) -> Result<Option<Member>, E> {
        let txn = self.begin_write().await.map_err(Error::from)?;
        lock_organization_in(&txn, organization_id).await?;
        let Some(current) = get_member_in(&txn, organization_id, id).await? else {
            return Ok(None);
        };
        let owners = count_owners_in(&txn, organization_id).await?;
        let audit = plan(&current, owners)?;
        Members::update_many()
            .col_expr(Column::Role, Expr::value(role.as_str()))
            .filter(Column::Id.eq(id))
            .filter(Column::OrganizationId.eq(organization_id))
            .exec(&txn)
            .await
            .map_err(Error::from)?;
        insert_audit_event_in(&txn, &audit).await?;
        let updated = get_member_in(&txn, organization_id, id)
            .await?
            .ok_or_else(|| vanished(id))?;
        txn.commit().await.map_err(Error::from)?;
        Ok(Some(updated))
    }

    /// Removes the member `id` of `organization_id` in one transaction: `plan` sees the member
    /// as stored and how many owners the organization has (as for `update_member`), and
    /// returns the audit event, or refuses with its own error. Returns the member as it was,
    /// or `None` if there is no such member. The member's personal keys stay in place;
    /// verification refuses them, since their member is gone.
    pub async fn remove_member<E: From<Error>>(
        &self,
        organization_id: Uuid,
        id: Uuid,
        plan: impl FnOnce(&Member, u64) -> Result<AuditEvent, E>,
    ) -> Result<Option<Member>, E> {
        let txn = self.begin_write().await.map_err(Error::from)?;
        lock_organization_in(&txn, organization_id).await?;
        let Some(current) = get_member_in(&txn, organization_id, id).await? else {
            return Ok(None);
        };
        let owners = count_owners_in(&txn, organization_id).await?;
        let audit = plan(&current, owners)?;
        Members::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::OrganizationId.eq(organization_id))
            .exec(&txn)
            .await
            .map_err(Error::from)?;
        insert_audit_event_in(&txn, &audit).await?;
        txn.commit().await.map_err(Error::from)?;
        Ok(Some(current))
    }

    /// Up to `limit` members of `organization_id`, newest first, starting after the member
    /// `after`.
    pub async fn list_members(
        &self,
        organization_id: Uuid,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Member>, Error> {
        let mut query = Members::find().filter(Column::OrganizationId.eq(organization_id));
        if let Some(after) = after {
            query = query.filter(Column::Id.lt(after));
        }
        query
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Member::try_from)
            .collect()
    }

    /// Every membership of the user `user_id`, across organizations, oldest first: for signing
    /// a person in through the identity provider, before any organization is known (the one
    /// query that does not filter by organization, and no admin call makes it).
    pub async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<Member>, Error> {
        Members::find()
            .filter(Column::UserId.eq(user_id))
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Member::try_from)
            .collect()
    }
}

async fn get_member_in(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<Member>, Error> {
    Members::find_by_id(id)
        .filter(Column::OrganizationId.eq(organization_id))
        .one(db)
        .await?
        .map(Member::try_from)
        .transpose()
}

/// How many members of `organization_id` are owners.
async fn count_owners_in(db: &impl ConnectionTrait, organization_id: Uuid) -> Result<u64, Error> {
    Ok(Members::find()
        .filter(Column::OrganizationId.eq(organization_id))
        .filter(Column::Role.eq(Role::Owner.as_str()))
        .count(db)
        .await?)
}

fn vanished(id: Uuid) -> Error {
    Error::Corrupt {
        table: "members",
        detail: format!("member {id} vanished inside its own transaction"),
    }
}
