use sea_orm::entity::prelude::*;

/// A key's record. `digest` is HMAC-SHA-256 of the whole key under the server pepper; the
/// plaintext is never stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    /// Scope names separated by spaces, e.g. `chat agents:read`.
    pub scopes: String,
    /// `live` or `test`.
    pub environment: String,
    pub last4: String,
    #[sea_orm(unique)]
    pub digest: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoke_reason: Option<String>,
    pub last_used_at: Option<DateTimeUtc>,
    /// The key that created this one; `None` for keys minted by an operator.
    pub created_by: Option<Uuid>,
    pub rotated_from: Option<Uuid>,
    pub rotated_to: Option<Uuid>,
    /// `organization` or `personal`.
    pub key_type: String,
    /// For a personal key, its member.
    pub member_id: Option<Uuid>,
    /// An operator key: an admin of the whole deployment.
    pub operator: bool,
    /// Its own rate limits, e.g. `100/minute 5000/hour`.
    pub rate_limits: Option<String>,
    /// When it was disabled; `None`: enabled.
    pub disabled_at: Option<DateTimeUtc>,
    /// Its metadata, a JSON object in compact form.
    pub metadata: Option<String>,
    /// Where it may be used from: networks separated by spaces, e.g. `10.0.0.0/8`.
    pub ip_allowlist: Option<String>,
    /// Credits left; `None`: unlimited. Changed only by the atomic spend and refill
    /// (`Store::spend_credits`) and by create and update.
    pub credits_remaining: Option<i64>,
    /// The credits a refill sets; `None`: no refill.
    pub credits_refill_amount: Option<i64>,
    /// The refill's period: `day` or `month`.
    pub credits_refill_per: Option<String>,
    /// When the credits were last refilled or set.
    pub credits_refilled_at: Option<DateTimeUtc>,
    /// For an OAuth grant: the client it was made to.
    pub oauth_client_id: Option<Uuid>,
    /// For an OAuth grant: the person's user id.
    pub oauth_user_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The owning organization (joined by the verification lookup for its default rate
    /// limits).
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrganizationId",
        to = "super::organization::Column::Id"
    )]
    Organization,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
