use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub name: String,
    pub created_at: DateTimeUtc,
    pub max_key_age_days: i32,
    pub max_key_lifetime_days: Option<i32>,
    /// Overrides of the default role scopes, e.g. `member=chat agents:read;viewer=data:read`.
    pub role_scopes: Option<String>,
    /// Default rate limits of its keys, e.g. `100/minute 5000/hour`.
    pub default_rate_limits: Option<String>,
    /// What a leaked-key report does: `revoke` or `flag` (`key_core::LeakedKeyPolicy`).
    pub leaked_keys: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
