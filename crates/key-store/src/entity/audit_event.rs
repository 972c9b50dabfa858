use sea_orm::entity::prelude::*;

/// One audit log entry. Rows are only ever inserted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub time: DateTimeUtc,
    pub organization_id: Option<Uuid>,
    pub actor_key_id: Option<Uuid>,
    pub actor_member_id: Option<Uuid>,
    pub actor_type: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub client_address: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
