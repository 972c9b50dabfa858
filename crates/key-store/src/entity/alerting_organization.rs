use sea_orm::entity::prelude::*;

/// The columns of `organizations` that alerting reads and writes: a view of the table beside
/// `organization`, so the alert rules stay out of the organization's other queries.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub max_key_age_days: i32,
    /// The organization's alert rules, e.g. `unusual_activity=on high_usage=10000/daily`; NULL:
    /// Keyrack's defaults.
    pub alert_rules: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
