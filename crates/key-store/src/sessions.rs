//! Console sessions and sign-in links, by the digest of their token.

use chrono::{DateTime, Utc};
use key_core::{AuditEvent, KeyDigest, TokenKind};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::{
    Error, Store,
    audit::insert_audit_event_in,
    entity::session::{self, Column, Entity as Sessions},
};

/// The live sessions one key or one member may hold; signing in again past it ends the
/// oldest. A script that signs in in a loop then keeps this many rows, not one per call.
pub const MAX_SESSIONS_PER_PRINCIPAL: u64 = 20;

/// A session or a sign-in link as stored. Exactly one of `key_id` and `member_id` is set for a
/// session; a sign-in link has `member_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Its id.
    pub id: Uuid,
    /// A session or a sign-in link.
    pub kind: TokenKind,
    /// The digest of its token.
    pub digest: KeyDigest,
    /// The organization it acts in.
    pub organization_id: Uuid,
    /// The key it acts as.
    pub key_id: Option<Uuid>,
    /// The member it acts as.
    pub member_id: Option<Uuid>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Its last request, as last recorded.
    pub last_seen_at: DateTime<Utc>,
    /// Its absolute end.
    pub expires_at: DateTime<Utc>,
}

fn kind_of(name: &str) -> Option<TokenKind> {
    [TokenKind::Session, TokenKind::SignInLink]
        .into_iter()
        .find(|kind| kind.as_str() == name)
}

impl TryFrom<session::Model> for StoredSession {
    type Error = Error;

    fn try_from(model: session::Model) -> Result<Self, Error> {
        let corrupt = |what: &str| Error::Corrupt {
            table: "sessions",
            detail: format!("session {} has an invalid {what}", model.id),
        };
        Ok(StoredSession {
            id: model.id,
            kind: kind_of(&model.kind).ok_or_else(|| corrupt("kind"))?,
            digest: KeyDigest::from_slice(&model.digest).ok_or_else(|| corrupt("digest"))?,
            organization_id: model.organization_id,
            key_id: model.key_id,
            member_id: model.member_id,
            created_at: model.created_at,
            last_seen_at: model.last_seen_at,
            expires_at: model.expires_at,
        })
    }
}

fn model(session: &StoredSession) -> session::ActiveModel {
    session::ActiveModel {
        id: Set(session.id),
        digest: Set(session.digest.as_bytes().to_vec()),
        kind: Set(session.kind.as_str().to_owned()),
        organization_id: Set(session.organization_id),
        key_id: Set(session.key_id),
        member_id: Set(session.member_id),
        created_at: Set(session.created_at),
        last_seen_at: Set(session.last_seen_at),
        expires_at: Set(session.expires_at),
    }
}

/// Stores `session` and, for a session, ends its principal's oldest ones beyond
/// [`MAX_SESSIONS_PER_PRINCIPAL`].
async fn insert_in(
    db: &impl sea_orm::ConnectionTrait,
    session: &StoredSession,
) -> Result<(), Error> {
    Sessions::insert(model(session))
        .exec_without_returning(db)
        .await?;
    let principal = match (session.key_id, session.member_id) {
        (Some(key), _) => Column::KeyId.eq(key),
        (None, Some(member)) => Column::MemberId.eq(member),
        (None, None) => return Ok(()),
    };
    // Pruned at every insert, so a principal has at most one session over the bound (more
    // only after concurrent sign-ins, which the next one trims).
    let newest_first: Vec<Uuid> = Sessions::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Kind.eq(session.kind.as_str()))
        .filter(principal)
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .limit(MAX_SESSIONS_PER_PRINCIPAL + 100)
        .into_tuple()
        .all(db)
        .await?;
    let surplus: Vec<Uuid> = newest_first
        .into_iter()
        .skip(usize::try_from(MAX_SESSIONS_PER_PRINCIPAL).unwrap_or(usize::MAX))
        .collect();
    if !surplus.is_empty() {
        Sessions::delete_many()
            .filter(Column::Id.is_in(surplus))
            .exec(db)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Stores a new session or sign-in link with its audit event, in one transaction.
    pub async fn insert_session(
        &self,
        session: &StoredSession,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin_write().await?;
        insert_in(&txn, session).await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The session or link of `kind` stored under `digest`, whether or not it has ended.
    pub async fn find_session(
        &self,
        kind: TokenKind,
        digest: &KeyDigest,
    ) -> Result<Option<StoredSession>, Error> {
        Sessions::find()
            .filter(Column::Digest.eq(digest.as_bytes().to_vec()))
            .filter(Column::Kind.eq(kind.as_str()))
            .one(&self.db)
            .await?
            .map(StoredSession::try_from)
            .transpose()
    }

    /// The session or link `id`, whether or not it has ended.
    pub async fn get_session(&self, id: Uuid) -> Result<Option<StoredSession>, Error> {
        Sessions::find_by_id(id)
            .one(&self.db)
            .await?
            .map(StoredSession::try_from)
            .transpose()
    }

    /// Records a request of session `id` at `now`.
    pub async fn touch_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
        Sessions::update_many()
            .col_expr(Column::LastSeenAt, sea_orm::sea_query::Expr::value(now))
            .filter(Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes session (or link) `id`, with `audit` when given, in one transaction; whether it
    /// existed.
    pub async fn delete_session(
        &self,
        id: Uuid,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, Error> {
        let txn = self.begin_write().await?;
        let deleted = Sessions::delete_by_id(id).exec(&txn).await?;
        if let Some(audit) = audit.filter(|_| deleted.rows_affected == 1) {
            insert_audit_event_in(&txn, audit).await?;
        }
        txn.commit().await?;
        Ok(deleted.rows_affected == 1)
    }

    /// Trades sign-in link `link` for `session`, with `audit`, in one transaction: the link is
    /// deleted by the statement that decides, so of two concurrent redemptions one wins and
    /// the other gets `false` (and nothing written).
    pub async fn redeem_sign_in_link(
        &self,
        link: &StoredSession,
        session: &StoredSession,
        audit: &AuditEvent,
    ) -> Result<bool, Error> {
        let txn = self.begin_write().await?;
        let deleted = Sessions::delete_many()
            .filter(Column::Id.eq(link.id))
            .filter(Column::Kind.eq(TokenKind::SignInLink.as_str()))
            .exec(&txn)
            .await?;
        if deleted.rows_affected != 1 {
            return Ok(false);
        }
        insert_in(&txn, session).await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Deletes up to `limit` sessions and links whose absolute end is before `now`; how many.
    pub async fn delete_expired_sessions(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, Error> {
        let ids: Vec<Uuid> = Sessions::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::ExpiresAt.lt(now))
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let deleted = Sessions::delete_many()
            .filter(Column::Id.is_in(ids))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}
