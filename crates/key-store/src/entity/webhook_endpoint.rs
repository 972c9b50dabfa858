use sea_orm::entity::prelude::*;

/// A webhook endpoint of an organization. `sealed_secret` is the signing secret encrypted
/// (AES-256-GCM) under a key derived from the server pepper; the plaintext is never stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub description: String,
    pub sealed_secret: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub secret_rotated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    /// How deliveries are signed: `keyrack` or `standard` (`key_core::WebhookSigning`).
    pub signing: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
