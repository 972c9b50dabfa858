use sea_orm::entity::prelude::*;

/// One alert event's delivery to one endpoint. `payload` is the JSON body, built once when the
/// event was stored; every attempt POSTs it unchanged.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub event_id: Uuid,
    pub endpoint_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// `pending`, `succeeded` or `failed`.
    pub state: String,
    pub attempt_count: i32,
    /// When the next attempt is due (while pending); a claimed delivery's lease end.
    pub next_attempt_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// Goes up by one at every claim; a worker's writes are conditional on its claim.
    pub claim_count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
