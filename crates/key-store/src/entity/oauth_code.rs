//! `oauth_codes`: authorization codes, by digest, kept a day past their minute so that a second
//! use is recognised as one.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub digest: Vec<u8>,
    pub client_id: Uuid,
    pub organization_id: Uuid,
    pub member_id: Uuid,
    pub user_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scopes: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub grant_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
