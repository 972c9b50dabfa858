//! OAuth 2.0: clients, authorization codes, grants and tokens.
//!
//! A grant (what one person approved for one client) is an `api_keys` row of the person's,
//! marked by `oauth_client_id`: its access tokens are verified as that personal key, so its
//! usage, last use, limits and alerts are the grant's. The key operations never see such rows
//! (`keys.rs` filters them out). Tokens live in `oauth_tokens` under their grant, by digest.

use chrono::{DateTime, Utc};
use key_core::{
    AuditEvent, Environment, KeyDigest, KeyRecord, OauthClientType, RedirectUri, ScopeSet,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    Error, NewKey, Store,
    audit::insert_audit_event_in,
    entity::{
        api_key::{self, Entity as ApiKeys},
        oauth_client::{self, Entity as OauthClients},
        oauth_code::{self, Entity as OauthCodes},
        oauth_token::{self, Entity as OauthTokens},
    },
    keys::{default_limits_of, found_key, insert_key_in, record_from_model, stored_scopes},
};

/// How long a used or expired authorization code is kept, so that a second use of it is
/// recognised (and its grant revoked) rather than merely unknown.
pub const USED_CODE_RETENTION: chrono::Duration = chrono::Duration::days(1);

/// An OAuth client as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthClient {
    /// Its id, the `client_id`.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its name, shown on the consent page.
    pub name: String,
    /// Confidential or public.
    pub client_type: OauthClientType,
    /// A confidential client's secret, as its keyed digest.
    pub secret_digest: Option<KeyDigest>,
    /// The registered redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// The scopes it may ask for.
    pub scopes: ScopeSet,
    /// The environment of its tokens.
    pub environment: Environment,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// An authorization code as stored: what the person approved, bound to the client, the
/// redirect URI and the PKCE challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// Its id.
    pub id: Uuid,
    /// The digest of the code.
    pub digest: KeyDigest,
    /// The client.
    pub client_id: Uuid,
    /// The person's organization.
    pub organization_id: Uuid,
    /// The person's member.
    pub member_id: Uuid,
    /// The person's user id.
    pub user_id: String,
    /// The redirect URI of the authorization request, exactly.
    pub redirect_uri: String,
    /// The PKCE challenge (S256).
    pub code_challenge: String,
    /// The scopes granted.
    pub scopes: ScopeSet,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// The grant its exchange made.
    pub grant_id: Option<Uuid>,
}

/// What presenting an authorization code came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// Its first use: it is spent now (by this very statement, so of two concurrent uses one
    /// wins).
    First(AuthorizationCode),
    /// It was used before: a replay.
    Again(AuthorizationCode),
    /// No such code (or one retention deleted).
    Unknown,
}

/// An access or a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// Presented to resource servers, verified like a key.
    Access,
    /// Presented to the token endpoint only, for new tokens.
    Refresh,
}

impl TokenUse {
    /// The kind's name in the store.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenUse::Access => "access",
            TokenUse::Refresh => "refresh",
        }
    }

    fn parse(name: &str) -> Option<TokenUse> {
        [TokenUse::Access, TokenUse::Refresh]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// A token about to be stored: its digest, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Its id.
    pub id: Uuid,
    /// The digest of the token.
    pub digest: KeyDigest,
    /// Access or refresh.
    pub kind: TokenUse,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Its id.
    pub id: Uuid,
    /// The digest of the token.
    pub digest: KeyDigest,
    /// Its grant (an `api_keys` row).
    pub grant_id: Uuid,
    /// Access or refresh.
    pub kind: TokenUse,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked (or, for a refresh token, rotated), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// For a rotated refresh token, its successor.
    pub replaced_by: Option<Uuid>,
}

/// An authorized application: a grant with its client's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthGrant {
    /// The grant, as the personal key its access tokens act as.
    pub record: KeyRecord,
    /// Its client's name.
    pub client_name: String,
}

fn corrupt(table: &'static str, detail: String) -> Error {
    Error::Corrupt { table, detail }
}

impl TryFrom<oauth_client::Model> for OauthClient {
    type Error = Error;

    fn try_from(model: oauth_client::Model) -> Result<Self, Error> {
        let bad = |what: &str| corrupt("oauth_clients", format!("client {}: {what}", model.id));
        let redirect_uris = model
            .redirect_uris
            .lines()
            .map(|uri| RedirectUri::parse("redirect_uris", uri))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| bad(&err.to_string()))?;
        Ok(OauthClient {
            id: model.id,
            organization_id: model.organization_id,
            name: model.name.clone(),
            client_type: OauthClientType::parse(&model.client_type)
                .ok_or_else(|| bad("unknown client type"))?,
            secret_digest: match &model.secret_digest {
                None => None,
                Some(bytes) => {
                    Some(KeyDigest::from_slice(bytes).ok_or_else(|| bad("bad secret digest"))?)
                }
            },
            redirect_uris,
            scopes: stored_scopes(&model.scopes).map_err(|err| bad(&err))?,
            environment: Environment::parse(&model.environment)
                .map_err(|err| bad(&err.to_string()))?,
            created_at: model.created_at,
        })
    }
}

impl TryFrom<oauth_code::Model> for AuthorizationCode {
    type Error = Error;

    fn try_from(model: oauth_code::Model) -> Result<Self, Error> {
        let bad = |what: &str| corrupt("oauth_codes", format!("code {}: {what}", model.id));
        Ok(AuthorizationCode {
            id: model.id,
            digest: KeyDigest::from_slice(&model.digest).ok_or_else(|| bad("bad digest"))?,
            client_id: model.client_id,
            organization_id: model.organization_id,
            member_id: model.member_id,
            user_id: model.user_id.clone(),
            redirect_uri: model.redirect_uri.clone(),
            code_challenge: model.code_challenge.clone(),
            scopes: stored_scopes(&model.scopes).map_err(|err| bad(&err))?,
            created_at: model.created_at,
            expires_at: model.expires_at,
            used_at: model.used_at,
            grant_id: model.grant_id,
        })
    }
}

impl TryFrom<oauth_token::Model> for StoredToken {
    type Error = Error;

    fn try_from(model: oauth_token::Model) -> Result<Self, Error> {
        let bad = |what: &str| corrupt("oauth_tokens", format!("token {}: {what}", model.id));
        Ok(StoredToken {
            id: model.id,
            digest: KeyDigest::from_slice(&model.digest).ok_or_else(|| bad("bad digest"))?,
            grant_id: model.grant_id,
            kind: TokenUse::parse(&model.kind).ok_or_else(|| bad("unknown kind"))?,
            created_at: model.created_at,
            expires_at: model.expires_at,
            revoked_at: model.revoked_at,
            replaced_by: model.replaced_by,
        })
    }
}

fn token_model(grant_id: Uuid, token: &NewToken) -> oauth_token::ActiveModel {
    oauth_token::ActiveModel {
        id: Set(token.id),
        digest: Set(token.digest.as_bytes().to_vec()),
        grant_id: Set(grant_id),
        kind: Set(token.kind.as_str().to_owned()),
        created_at: Set(token.created_at),
        expires_at: Set(token.expires_at),
        revoked_at: Set(None),
        replaced_by: Set(None),
    }
}

async fn insert_tokens_in(
    db: &impl ConnectionTrait,
    grant_id: Uuid,
    tokens: &[NewToken],
) -> Result<(), Error> {
    OauthTokens::insert_many(tokens.iter().map(|token| token_model(grant_id, token)))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Revokes every live token of the grants `grant_ids` at `now`; the digests of the access
/// tokens revoked, for the key cache to drop.
async fn revoke_tokens_of_in(
    db: &impl ConnectionTrait,
    grant_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<KeyDigest>, Error> {
    if grant_ids.is_empty() {
        return Ok(Vec::new());
    }
    let revoked = OauthTokens::update_many()
        .col_expr(oauth_token::Column::RevokedAt, Expr::value(now))
        .filter(oauth_token::Column::GrantId.is_in(grant_ids.iter().copied()))
        .filter(oauth_token::Column::RevokedAt.is_null())
        .exec_with_returning(db)
        .await?;
    Ok(revoked
        .into_iter()
        .filter(|token| token.kind == TokenUse::Access.as_str())
        .filter_map(|token| KeyDigest::from_slice(&token.digest))
        .collect())
}

/// Revokes the grants `grant_ids` (the `api_keys` rows) at `now` with `reason`, and their
/// tokens; the access tokens' digests.
async fn revoke_grants_in(
    db: &impl ConnectionTrait,
    grant_ids: &[Uuid],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<KeyDigest>, Error> {
    if grant_ids.is_empty() {
        return Ok(Vec::new());
    }
    ApiKeys::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .col_expr(api_key::Column::RevokeReason, Expr::value(reason))
        .filter(api_key::Column::Id.is_in(grant_ids.iter().copied()))
        .filter(api_key::Column::OauthClientId.is_not_null())
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    revoke_tokens_of_in(db, grant_ids, now).await
}

impl Store {
    /// Stores a new client with its audit event.
    pub async fn insert_oauth_client(
        &self,
        client: &OauthClient,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin_write().await?;
        OauthClients::insert(oauth_client::ActiveModel {
            id: Set(client.id),
            organization_id: Set(client.organization_id),
            name: Set(client.name.clone()),
            client_type: Set(client.client_type.as_str().to_owned()),
            secret_digest: Set(client
                .secret_digest
                .as_ref()
                .map(|digest| digest.as_bytes().to_vec())),
            redirect_uris: Set(client
                .redirect_uris
                .iter()
                .map(RedirectUri::as_str)
                .collect::<Vec<_>>()
                .join("\n")),
            scopes: Set(client.scopes.names().join(" ")),
            environment: Set(client.environment.as_str().to_owned()),
            created_at: Set(client.created_at),
            deleted_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The client `id`, unless deleted. Any organization's: a client id is public.
    pub async fn get_oauth_client(&self, id: Uuid) -> Result<Option<OauthClient>, Error> {
        OauthClients::find_by_id(id)
            .filter(oauth_client::Column::DeletedAt.is_null())
            .one(&self.db)
            .await?
            .map(OauthClient::try_from)
            .transpose()
    }

    /// Up to `limit` clients of `organization_id`, newest first, after the client `after`.
    pub async fn list_oauth_clients(
        &self,
        organization_id: Uuid,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<OauthClient>, Error> {
        let mut query = OauthClients::find()
            .filter(oauth_client::Column::OrganizationId.eq(organization_id))
            .filter(oauth_client::Column::DeletedAt.is_null());
        if let Some(after) = after {
            query = query.filter(oauth_client::Column::Id.lt(after));
        }
        query
            .order_by_desc(oauth_client::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(OauthClient::try_from)
            .collect()
    }

    /// Deletes the client `id` of `organization_id` at `now` and revokes every grant and token
    /// issued to it, with `audit`, in one transaction. `None` if there is no such client;
    /// otherwise the digests of the access tokens revoked.
    pub async fn delete_oauth_client(
        &self,
        organization_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<Vec<KeyDigest>>, Error> {
        let txn = self.begin_write().await?;
        let deleted = OauthClients::update_many()
            .col_expr(oauth_client::Column::DeletedAt, Expr::value(now))
            .filter(oauth_client::Column::Id.eq(id))
            .filter(oauth_client::Column::OrganizationId.eq(organization_id))
            .filter(oauth_client::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Ok(None);
        }
        let grants: Vec<Uuid> = ApiKeys::find()
            .select_only()
            .column(api_key::Column::Id)
            .filter(api_key::Column::OauthClientId.eq(id))
            .into_tuple()
            .all(&txn)
            .await?;
        let digests = revoke_grants_in(&txn, &grants, "client deleted", now).await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(Some(digests))
    }

    /// Stores a new authorization code with its audit event (the consent).
    pub async fn insert_authorization_code(
        &self,
        code: &AuthorizationCode,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin_write().await?;
        OauthCodes::insert(oauth_code::ActiveModel {
            id: Set(code.id),
            digest: Set(code.digest.as_bytes().to_vec()),
            client_id: Set(code.client_id),
            organization_id: Set(code.organization_id),
            member_id: Set(code.member_id),
            user_id: Set(code.user_id.clone()),
            redirect_uri: Set(code.redirect_uri.clone()),
            code_challenge: Set(code.code_challenge.clone()),
            scopes: Set(code.scopes.names().join(" ")),
            created_at: Set(code.created_at),
            expires_at: Set(code.expires_at),
            used_at: Set(None),
            grant_id: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Spends the code stored under `digest` at `now`: the statement that marks it used decides,
    /// so it is [`CodeRedemption::First`] exactly once, whatever its expiry (the caller judges
    /// that, and the binding to the client).
    pub async fn redeem_authorization_code(
        &self,
        digest: &KeyDigest,
        now: DateTime<Utc>,
    ) -> Result<CodeRedemption, Error> {
        let spent = OauthCodes::update_many()
            .col_expr(oauth_code::Column::UsedAt, Expr::value(now))
            .filter(oauth_code::Column::Digest.eq(digest.as_bytes().to_vec()))
            .filter(oauth_code::Column::UsedAt.is_null())
            .exec_with_returning(&self.db)
            .await?;
        if let Some(model) = spent.into_iter().next() {
            return Ok(CodeRedemption::First(model.try_into()?));
        }
        let again = OauthCodes::find()
            .filter(oauth_code::Column::Digest.eq(digest.as_bytes().to_vec()))
            .one(&self.db)
            .await?;
        Ok(match again {
            Some(model) => CodeRedemption::Again(model.try_into()?),
            None => CodeRedemption::Unknown,
        })
    }

    /// Makes the grant `grant` (a personal key row with its OAuth context) for the code
    /// `code_id`, with its first `tokens` and `audit`, in one transaction.
    pub async fn issue_oauth_grant(
        &self,
        code_id: Uuid,
        grant: NewKey,
        tokens: &[NewToken],
        audit: &AuditEvent,
    ) -> Result<KeyRecord, Error> {
        let txn = self.begin_write().await?;
        let record = insert_key_in(&txn, grant).await?;
        OauthCodes::update_many()
            .col_expr(oauth_code::Column::GrantId, Expr::value(record.id))
            .filter(oauth_code::Column::Id.eq(code_id))
            .exec(&txn)
            .await?;
        insert_tokens_in(&txn, record.id, tokens).await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(record)
    }

    /// The token stored under `digest` (access or refresh, live or not) with its grant.
    pub async fn find_oauth_token(
        &self,
        digest: &KeyDigest,
    ) -> Result<Option<(StoredToken, KeyRecord)>, Error> {
        let Some(token) = OauthTokens::find()
            .filter(oauth_token::Column::Digest.eq(digest.as_bytes().to_vec()))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let token = StoredToken::try_from(token)?;
        let Some(grant) = ApiKeys::find_by_id(token.grant_id).one(&self.db).await? else {
            return Ok(None);
        };
        Ok(Some((token, record_from_model(grant)?)))
    }

    /// The access tokens stored under any of `digests`, each as the key its grant is, for
    /// verification: the grant's record with the token's expiry (the earlier of the two) and
    /// revocation (either's), the token's digest, and the effective rate limits. Two queries.
    pub async fn find_access_tokens_by_digests(
        &self,
        digests: &[KeyDigest],
    ) -> Result<Vec<crate::FoundKey>, Error> {
        let mut found = Vec::new();
        for chunk in digests.chunks(crate::MAX_DIGESTS_PER_QUERY) {
            let tokens = OauthTokens::find()
                .filter(
                    oauth_token::Column::Digest
                        .is_in(chunk.iter().map(|digest| digest.as_bytes().to_vec())),
                )
                .filter(oauth_token::Column::Kind.eq(TokenUse::Access.as_str()))
                .all(&self.db)
                .await?;
            if tokens.is_empty() {
                continue;
            }
            let grants = ApiKeys::find()
                .filter(api_key::Column::Id.is_in(tokens.iter().map(|token| token.grant_id)))
                .find_also_related(crate::entity::organization::Entity)
                .all(&self.db)
                .await?;
            for token in tokens {
                let token = StoredToken::try_from(token)?;
                let Some((grant, organization)) = grants
                    .iter()
                    .find(|(grant, _)| grant.id == token.grant_id)
                    .cloned()
                else {
                    continue;
                };
                let (mut record, _, limits) = found_key(grant, default_limits_of(organization))?;
                record.expires_at = Some(
                    record
                        .expires_at
                        .map_or(token.expires_at, |at| at.min(token.expires_at)),
                );
                record.revoked_at = record.revoked_at.or(token.revoked_at);
                found.push((record, token.digest, limits));
            }
        }
        Ok(found)
    }

    /// Rotates the refresh token `old` of grant `grant_id` at `now`: marks it used (revoked,
    /// replaced by the new refresh token) only if it is still live, then stores `tokens` and
    /// `audit`, in one transaction. `false` (nothing written) if it was used or revoked
    /// meanwhile: a concurrent reuse.
    pub async fn rotate_refresh_token(
        &self,
        old: Uuid,
        grant_id: Uuid,
        tokens: &[NewToken],
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, Error> {
        let successor = tokens
            .iter()
            .find(|token| token.kind == TokenUse::Refresh)
            .map(|token| token.id);
        let txn = self.begin_write().await?;
        let rotated = OauthTokens::update_many()
            .col_expr(oauth_token::Column::RevokedAt, Expr::value(now))
            .col_expr(oauth_token::Column::ReplacedBy, Expr::value(successor))
            .filter(oauth_token::Column::Id.eq(old))
            .filter(oauth_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if rotated.rows_affected != 1 {
            return Ok(false);
        }
        insert_tokens_in(&txn, grant_id, tokens).await?;
        // A grant keeps a bounded number of rows however often it refreshes: the rotated
        // refresh tokens beyond the newest few, and access tokens that no longer work, go.
        let rotated_out: Vec<Uuid> = OauthTokens::find()
            .select_only()
            .column(oauth_token::Column::Id)
            .filter(oauth_token::Column::GrantId.eq(grant_id))
            .filter(oauth_token::Column::Kind.eq(TokenUse::Refresh.as_str()))
            .filter(oauth_token::Column::ReplacedBy.is_not_null())
            .order_by_desc(oauth_token::Column::CreatedAt)
            .order_by_desc(oauth_token::Column::Id)
            .offset(key_core::ROTATED_REFRESH_TOKENS_KEPT)
            .limit(1_000)
            .into_tuple()
            .all(&txn)
            .await?;
        OauthTokens::delete_many()
            .filter(oauth_token::Column::GrantId.eq(grant_id))
            .filter(
                sea_orm::Condition::any()
                    .add(oauth_token::Column::Id.is_in(rotated_out))
                    .add(
                        sea_orm::Condition::all()
                            .add(oauth_token::Column::Kind.eq(TokenUse::Access.as_str()))
                            .add(
                                sea_orm::Condition::any()
                                    .add(oauth_token::Column::RevokedAt.is_not_null())
                                    .add(oauth_token::Column::ExpiresAt.lte(now)),
                            ),
                    ),
            )
            .exec(&txn)
            .await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// How many access tokens grant `grant_id` was issued since `since` (its first included), as
    /// far as they are kept: one per exchange or refresh, each kept while it works (unless
    /// revoked), so an hour's count is the hour's issues.
    pub async fn count_access_tokens_since(
        &self,
        grant_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<u64, Error> {
        Ok(OauthTokens::find()
            .filter(oauth_token::Column::GrantId.eq(grant_id))
            .filter(oauth_token::Column::Kind.eq(TokenUse::Access.as_str()))
            .filter(oauth_token::Column::CreatedAt.gte(since))
            .count(&self.db)
            .await?)
    }

    /// Revokes the grant `id` of `organization_id` and all its tokens at `now` with `reason` and
    /// `audit`, in one transaction. `None` if there is no such grant (or it was revoked
    /// already); otherwise the grant and the digests of the access tokens revoked.
    pub async fn revoke_oauth_grant(
        &self,
        organization_id: Uuid,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<(KeyRecord, Vec<KeyDigest>)>, Error> {
        let txn = self.begin_write().await?;
        let Some(grant) = ApiKeys::find_by_id(id)
            .filter(api_key::Column::OrganizationId.eq(organization_id))
            .filter(api_key::Column::OauthClientId.is_not_null())
            .filter(api_key::Column::RevokedAt.is_null())
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        let digests = revoke_grants_in(&txn, &[id], reason, now).await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        let mut record = record_from_model(grant)?;
        record.revoked_at = Some(now);
        Ok(Some((record, digests)))
    }

    /// Revokes the one token `id` at `now` with `audit`; its digest if it was live.
    pub async fn revoke_oauth_token(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<KeyDigest>, Error> {
        let txn = self.begin_write().await?;
        let revoked = OauthTokens::update_many()
            .col_expr(oauth_token::Column::RevokedAt, Expr::value(now))
            .filter(oauth_token::Column::Id.eq(id))
            .filter(oauth_token::Column::RevokedAt.is_null())
            .exec_with_returning(&txn)
            .await?;
        let Some(token) = revoked.into_iter().next() else {
            return Ok(None);
        };
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(KeyDigest::from_slice(&token.digest))
    }

    /// The grant `id` of `organization_id`, revoked or not.
    pub async fn get_oauth_grant(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<KeyRecord>, Error> {
        ApiKeys::find_by_id(id)
            .filter(api_key::Column::OrganizationId.eq(organization_id))
            .filter(api_key::Column::OauthClientId.is_not_null())
            .one(&self.db)
            .await?
            .map(record_from_model)
            .transpose()
    }

    /// Up to `limit` live grants of `member_id` in `organization_id`, newest first, after the
    /// grant `after`, each with its client's name.
    pub async fn list_oauth_grants(
        &self,
        organization_id: Uuid,
        member_id: Uuid,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<OauthGrant>, Error> {
        let mut query = ApiKeys::find()
            .filter(api_key::Column::OrganizationId.eq(organization_id))
            .filter(api_key::Column::MemberId.eq(member_id))
            .filter(api_key::Column::OauthClientId.is_not_null())
            .filter(api_key::Column::RevokedAt.is_null());
        if let Some(after) = after {
            query = query.filter(api_key::Column::Id.lt(after));
        }
        let rows = query
            .order_by_desc(api_key::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let client_ids: Vec<Uuid> = rows.iter().filter_map(|row| row.oauth_client_id).collect();
        let names: Vec<(Uuid, String)> = OauthClients::find()
            .select_only()
            .column(oauth_client::Column::Id)
            .column(oauth_client::Column::Name)
            .filter(oauth_client::Column::Id.is_in(client_ids))
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                let client_name = names
                    .iter()
                    .find(|(id, _)| Some(*id) == row.oauth_client_id)
                    .map(|(_, name)| name.clone())
                    .unwrap_or_default();
                Ok(OauthGrant {
                    record: record_from_model(row)?,
                    client_name,
                })
            })
            .collect()
    }

    /// Deletes up to `limit` tokens past their expiry and codes past [`USED_CODE_RETENTION`]
    /// after theirs, as of `now`; how many rows. A refresh token's row outlives its rotation
    /// until it expires, so that its reuse is recognised for that long.
    pub async fn delete_expired_oauth(&self, now: DateTime<Utc>, limit: u64) -> Result<u64, Error> {
        let tokens: Vec<Uuid> = OauthTokens::find()
            .select_only()
            .column(oauth_token::Column::Id)
            .filter(oauth_token::Column::ExpiresAt.lt(now))
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut deleted = 0;
        if !tokens.is_empty() {
            deleted += OauthTokens::delete_many()
                .filter(oauth_token::Column::Id.is_in(tokens))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        let codes: Vec<Uuid> = OauthCodes::find()
            .select_only()
            .column(oauth_code::Column::Id)
            .filter(oauth_code::Column::ExpiresAt.lt(now - USED_CODE_RETENTION))
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        if !codes.is_empty() {
            deleted += OauthCodes::delete_many()
                .filter(oauth_code::Column::Id.is_in(codes))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(deleted)
    }
}
