//! People signing in to the console: a session begun with a key, one-time sign-in links for
//! members, signing out, and who a caller is. Sessions are authenticated by
//! `Access::authenticate` like keys; what a session may do is the permission table's answer
//! for what it acts as (the key, or the member with their role's scopes).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{
    Action, AuditAction, Caller, Clock, Error, Pepper, RandomSource, SESSION_LIFETIME,
    SIGN_IN_LINK_LIFETIME, SessionToken, TokenKind, session_ends_at,
};
use key_store::{Member, Store, StoredSession};
use uuid::Uuid;

use crate::{
    Actor, RequestContext, Requester, access::Access, requester::audit_event, verify::role_scopes,
};

/// Who a caller is, as GetCaller answers.
#[derive(Debug, Clone)]
pub struct CallerInfo {
    /// The caller, as the permission table sees it.
    pub caller: Caller,
    /// Its organization's name.
    pub organization_name: String,
    /// Its member's user id, if it has a member.
    pub user_id: Option<String>,
    /// For a session, when it ends at the latest.
    pub session_ends_at: Option<DateTime<Utc>>,
}

/// A new session and its token, shown once.
#[derive(Debug)]
pub struct NewSession {
    /// The token; kept nowhere.
    pub token: SessionToken,
    /// The session.
    pub session: StoredSession,
}

/// The session operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    clock: Arc<dyn Clock>,
    access: Access,
    pepper: Arc<Pepper>,
    random: Arc<dyn RandomSource>,
}

impl Sessions {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        access: Access,
        pepper: Arc<Pepper>,
        random: Arc<dyn RandomSource>,
    ) -> Sessions {
        Sessions {
            store,
            clock,
            access,
            pepper,
            random,
        }
    }

    /// CreateSession: signs in with the requester's key. A session cannot begin another (it
    /// would outlive its idle timeout by renewing itself), so the credential must be a key.
    pub async fn create(&self, by: &Requester) -> Result<NewSession, Error> {
        if by.caller.session_id.is_some() {
            return Err(Error::Forbidden(
                "a session cannot begin another; sign in with a key".to_owned(),
            ));
        }
        let now = self.clock.now();
        let (token, session) = self.draw(
            TokenKind::Session,
            by.caller.organization_id,
            Some(by.caller.key_id),
            None,
            now,
        )?;
        let audit = by.event(AuditAction::SessionCreate, session.id, now);
        self.store.insert_session(&session, &audit).await?;
        tracing::info!(session_id = %session.id, key_id = %by.caller.key_id, "console session begun with a key");
        Ok(NewSession { token, session })
    }

    /// EndSession: ends the requester's session.
    pub async fn end(&self, by: &Requester) -> Result<(), Error> {
        let Some(id) = by.caller.session_id else {
            return Err(Error::InvalidArgument {
                field: "authorization",
                message: "the credential is a key, not a session; there is nothing to end"
                    .to_owned(),
            });
        };
        let audit = by.event(AuditAction::SessionEnd, id, self.clock.now());
        self.store.delete_session(id, Some(&audit)).await?;
        tracing::info!(session_id = %id, "console session ended");
        Ok(())
    }

    /// CreateSignInLink: a one-time sign-in token for member `member_id`. Managing members is
    /// an admin's; and as nobody grants more than it holds, the member's role must be within
    /// the requester's scopes, and an owner's link is an owner's to make.
    pub async fn create_sign_in_link(
        &self,
        by: &Requester,
        member_id: Uuid,
    ) -> Result<(SessionToken, DateTime<Utc>), Error> {
        let caller = &by.caller;
        self.access
            .authorize(by, Action::ManageMembers, None)
            .await?;
        let member = self
            .store
            .get_member(caller.organization_id, member_id)
            .await?
            .ok_or(Error::NotFound("member"))?;
        self.access
            .check(
                by,
                caller.may_change_role(Some(member.role), Some(member.role)),
            )
            .await?;
        let role_scopes = role_scopes(&self.store, caller.organization_id, member.role).await?;
        self.access.check(by, caller.may_grant(role_scopes)).await?;
        let now = self.clock.now();
        let (token, link) = self.draw(
            TokenKind::SignInLink,
            caller.organization_id,
            None,
            Some(member.id),
            now,
        )?;
        let audit = by.event(AuditAction::SignInLinkCreate, member.id, now);
        self.store.insert_session(&link, &audit).await?;
        tracing::info!(member_id = %member.id, created_by = %caller.key_id, "sign-in link created");
        Ok((token, link.expires_at))
    }

    /// A sign-in link made by an operator command (`keyrack sign-in-link`, against the
    /// database), for the member of organization `organization_id` whose user id is `user_id`:
    /// the link and the member's id.
    pub async fn operator_sign_in_link(
        &self,
        organization_id: Uuid,
        user_id: &str,
    ) -> Result<(SessionToken, DateTime<Utc>, Uuid), Error> {
        let member = self
            .store
            .member_by_user(organization_id, user_id)
            .await?
            .ok_or(Error::NotFound("member"))?;
        let now = self.clock.now();
        let (token, link) = self.draw(
            TokenKind::SignInLink,
            organization_id,
            None,
            Some(member.id),
            now,
        )?;
        let audit = audit_event(
            &Actor::Operator,
            Some(organization_id),
            AuditAction::SignInLinkCreate,
            member.id.to_string(),
            key_core::AuditOutcome::Success,
            None,
            &RequestContext::default(),
            now,
        );
        self.store.insert_session(&link, &audit).await?;
        tracing::info!(member_id = %member.id, "sign-in link created by an operator command");
        Ok((token, link.expires_at, member.id))
    }

    /// RedeemSignInLink: trades a sign-in token for a session of its member, once. A token
    /// that is malformed, unknown, used, expired, or whose member is gone is refused alike.
    pub async fn redeem_sign_in_link(
        &self,
        text: &str,
        context: RequestContext,
    ) -> Result<NewSession, Error> {
        let refused =
            || Error::Forbidden("the sign-in link is invalid, used or expired".to_owned());
        let token = SessionToken::parse(TokenKind::SignInLink, text).ok_or_else(refused)?;
        let digest = self.pepper.token_digest(&token);
        let link = self
            .store
            .find_session(TokenKind::SignInLink, &digest)
            .await?
            .filter(|link| self.pepper.token_matches(&token, &link.digest))
            .ok_or_else(refused)?;
        let now = self.clock.now();
        let member_id = link.member_id.ok_or_else(refused)?;
        if now >= link.expires_at {
            self.store.delete_session(link.id, None).await?;
            return Err(refused());
        }
        let member = self
            .store
            .get_member(link.organization_id, member_id)
            .await?
            .ok_or_else(refused)?;
        let (token, session) = self.draw(
            TokenKind::Session,
            link.organization_id,
            None,
            Some(member.id),
            now,
        )?;
        let audit = self.as_member(&member, session.id, &context).await?.event(
            AuditAction::SessionCreate,
            session.id,
            now,
        );
        if !self
            .store
            .redeem_sign_in_link(&link, &session, &audit)
            .await?
        {
            return Err(refused());
        }
        tracing::info!(session_id = %session.id, member_id = %member.id, "console session begun with a sign-in link");
        Ok(NewSession { token, session })
    }

    /// A session of `member`, for a person the identity provider vouched for (`ops/sso.rs`),
    /// audited as that member beginning it (`session.create`, actor `member`).
    pub(crate) async fn begin_member_session(
        &self,
        member: &Member,
        context: RequestContext,
    ) -> Result<NewSession, Error> {
        let now = self.clock.now();
        let (token, session) = self.draw(
            TokenKind::Session,
            member.organization_id,
            None,
            Some(member.id),
            now,
        )?;
        let audit = self.as_member(member, session.id, &context).await?.event(
            AuditAction::SessionCreate,
            session.id,
            now,
        );
        self.store.insert_session(&session, &audit).await?;
        tracing::info!(session_id = %session.id, member_id = %member.id, "console session begun through SSO");
        Ok(NewSession { token, session })
    }

    /// A one-time sign-in token for `member` that works for `lifetime` (and by
    /// RedeemSignInLink, once): one choice of a person the identity provider vouched for who
    /// is a member of several organizations. Audited as that member (`sign_in_link.create`).
    pub(crate) async fn member_choice(
        &self,
        member: &Member,
        lifetime: TimeDelta,
        context: &RequestContext,
    ) -> Result<(SessionToken, DateTime<Utc>), Error> {
        let now = self.clock.now();
        let (token, mut link) = self.draw(
            TokenKind::SignInLink,
            member.organization_id,
            None,
            Some(member.id),
            now,
        )?;
        link.expires_at = now + lifetime;
        let audit = self.as_member(member, link.id, context).await?.event(
            AuditAction::SignInLinkCreate,
            member.id,
            now,
        );
        self.store.insert_session(&link, &audit).await?;
        Ok((token, link.expires_at))
    }

    /// `member` as the requester of its own sign-in, through the session or link `id`.
    async fn as_member(
        &self,
        member: &Member,
        id: Uuid,
        context: &RequestContext,
    ) -> Result<Requester, Error> {
        let scopes = role_scopes(&self.store, member.organization_id, member.role).await?;
        Ok(Requester {
            caller: Caller::member(id, member.organization_id, member.id, member.role, scopes),
            context: context.clone(),
        })
    }

    /// GetCaller: who the requester is.
    pub async fn describe(&self, by: &Requester) -> Result<CallerInfo, Error> {
        let caller = &by.caller;
        let organization = self
            .store
            .get_organization(caller.organization_id)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        let user_id = match caller.member_id {
            Some(member_id) => self
                .store
                .get_member(caller.organization_id, member_id)
                .await?
                .map(|member| member.user_id),
            None => None,
        };
        let session_ends_at = match caller.session_id {
            Some(_) => self.access.session_end(by).await?,
            None => None,
        };
        Ok(CallerInfo {
            caller: caller.clone(),
            organization_name: organization.name,
            user_id,
            session_ends_at,
        })
    }

    /// A new token of `kind` and its row, acting as `key_id` or `member_id`.
    fn draw(
        &self,
        kind: TokenKind,
        organization_id: Uuid,
        key_id: Option<Uuid>,
        member_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(SessionToken, StoredSession), Error> {
        let token = SessionToken::generate(kind, self.random.as_ref())?;
        let lifetime = match kind {
            TokenKind::Session => SESSION_LIFETIME,
            // OAuth's kinds are drawn by the OAuth operations, never here.
            TokenKind::SignInLink | TokenKind::ClientSecret | TokenKind::AuthorizationCode => {
                SIGN_IN_LINK_LIFETIME
            }
        };
        let session = StoredSession {
            id: Uuid::now_v7(),
            kind,
            digest: self.pepper.token_digest(&token),
            organization_id,
            key_id,
            member_id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + lifetime,
        };
        Ok((token, session))
    }
}

/// When `session` ends, as last seen: its idle timeout or its absolute end.
pub(crate) fn ends_at(session: &StoredSession) -> DateTime<Utc> {
    session_ends_at(session.created_at, session.last_seen_at).min(session.expires_at)
}
