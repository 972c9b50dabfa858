use sea_orm::entity::prelude::*;

/// The columns of `api_keys` that alerting reads and writes: a view of the table beside
/// `api_key`, so the alert rules stay out of the key's other queries (and the verification
/// path).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub rotated_to: Option<Uuid>,
    /// The key's own alert rules, replacing its organization's; NULL: none.
    pub alert_rules: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
