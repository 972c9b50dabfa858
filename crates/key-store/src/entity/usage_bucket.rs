use sea_orm::entity::prelude::*;

/// Verifications of one key in one bucket (a minute, an hour or a day) with one value of one
/// dimension: `code` (`valid` or a platform error code), `country` or `tag`. Rows are only ever
/// added to (`count = count + n`), so several writers sum correctly.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_buckets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: Uuid,
    /// `minute`, `hour` or `day`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub resolution: String,
    /// Start of the bucket, in seconds since the Unix epoch (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket_start: i64,
    /// `code`, `country` or `tag`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub dimension: String,
    /// The code, the country (ISO 3166-1 alpha-2) or the tag.
    #[sea_orm(primary_key, auto_increment = false)]
    pub value: String,
    pub organization_id: Uuid,
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
