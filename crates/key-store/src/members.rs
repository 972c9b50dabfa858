use chrono::{DateTime, Utc};
use key_core::Role;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{
    Error, Store,
    entity::member::{self, Column, Entity as Members},
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
        Members::find_by_id(id)
            .filter(Column::OrganizationId.eq(organization_id))
            .one(&self.db)
            .await?
            .map(Member::try_from)
            .transpose()
    }
}
