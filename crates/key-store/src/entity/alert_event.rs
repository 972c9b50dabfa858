use sea_orm::entity::prelude::*;

/// One alert: stored once (its `dedup_key` is unique) and queued for the organization's
/// webhook endpoints in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_events")]
pub struct Model {
    /// UUIDv7, so id order is creation order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// The key concerned; NULL for a test alert.
    pub key_id: Option<Uuid>,
    /// `high_usage`, `failures`, `new_country`, `usage_spike`, `dormant_key_used`,
    /// `key_expiring`, `rotation_due` or `test`.
    pub r#type: String,
    pub message: String,
    pub created_at: DateTimeUtc,
    pub period_start: DateTimeUtc,
    pub observed: i64,
    pub threshold: i64,
    /// ISO 3166-1 alpha-2, for `new_country`.
    pub country: Option<String>,
    /// `{type}:{key}:{what}`, equal for every raising of the same alert.
    #[sea_orm(unique)]
    pub dedup_key: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
