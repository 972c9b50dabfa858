//! `oauth_clients`: the OAuth clients of organizations. A confidential client's secret is kept
//! as its keyed digest, never in the clear.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub client_type: String,
    pub secret_digest: Option<Vec<u8>>,
    /// The redirect URIs, one per line.
    pub redirect_uris: String,
    pub scopes: String,
    pub environment: String,
    pub created_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
