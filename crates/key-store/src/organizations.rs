use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::OnConflict,
};
use uuid::Uuid;

use crate::{
    Error, NewKey, Store,
    audit::insert_audit_event_in,
    entity::organization::{self, Entity as Organizations},
    keys::insert_key_in,
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
}

impl From<organization::Model> for Organization {
    fn from(model: organization::Model) -> Self {
        Organization {
            id: model.id,
            name: model.name,
            created_at: model.created_at,
        }
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
        Ok(Organizations::find()
            .filter(organization::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(Organization::from))
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
        let txn = self.db.begin().await?;
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
