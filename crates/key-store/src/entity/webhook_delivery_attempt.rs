use sea_orm::entity::prelude::*;

/// One POST of a delivery and its outcome. Rows are only ever inserted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_delivery_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub attempt_number: i32,
    pub attempted_at: DateTimeUtc,
    /// The HTTP status answered; 0 when there was none.
    pub status_code: i32,
    /// Why it failed; never contains the signing secret.
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
