use sea_orm::entity::prelude::*;

/// Verifications of one key in one hour with one outcome. Rows are only ever added to
/// (`count = count + n`), so several writers sum correctly.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_hourly")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: Uuid,
    /// Start of the hour, in seconds since the Unix epoch (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket_start: i64,
    /// `valid` or a platform error code such as `insufficient_scope`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    pub organization_id: Uuid,
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
