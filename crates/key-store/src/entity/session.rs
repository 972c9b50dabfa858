use sea_orm::entity::prelude::*;

/// A console session or a one-time sign-in link. `digest` is HMAC-SHA-256 of the token under
/// the server pepper; the token itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub digest: Vec<u8>,
    /// `session` or `sign_in_link`.
    pub kind: String,
    pub organization_id: Uuid,
    /// For a sign-in with a key, the key it acts as.
    pub key_id: Option<Uuid>,
    /// For a sign-in without a key, the member it acts as.
    pub member_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    /// The absolute end (a session also ends after its idle timeout).
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
