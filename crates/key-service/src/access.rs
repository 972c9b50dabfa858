//! Who may call: authenticating the caller of an admin call by its bearer key, and asking the
//! permission table (`key_core::PERMISSIONS`) whether it may act. Every refusal, of the
//! credential or of the permission, appends an `auth.denied` event to the audit log.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use key_core::{
    Action, AuditAction, AuditOutcome, Caller, Clock, Error, KeyRecord, KeyType, KeyView, Pepper,
    Role, SESSION_TOUCH_INTERVAL, ScopeSet, SessionToken, TokenKind, effective_scopes,
    verify_effective,
};
use key_store::Store;
use uuid::Uuid;

use crate::{
    Actor, RequestContext, Requester,
    metrics::Metrics,
    ops::sessions_end_at,
    requester::audit_event,
    verify::{Mode, Verifier, VerifyContext, member_scopes},
};

/// How much of a refused call's method path the audit event keeps.
const MAX_TARGET_CHARS: usize = 200;

/// At most this many anonymous refusals are written to the audit log a minute, each from
/// another client address; the rest are counted only.
const MAX_ANONYMOUS_RECORDS_PER_MINUTE: usize = 1_000;

/// Which client addresses had an anonymous refusal recorded this minute. A flood of calls
/// without a valid key (no key, a made-up key, an invented method) would otherwise write one
/// audit row each, never deleted, each taking SQLite's write lock ahead of revocations.
#[derive(Debug, Default)]
struct AnonymousRecords {
    minute: i64,
    addresses: HashSet<String>,
}

impl AnonymousRecords {
    /// Whether a refusal from `address` in `minute` is the one to record.
    fn admit(&mut self, address: &str, minute: i64) -> bool {
        if self.minute != minute {
            self.minute = minute;
            self.addresses.clear();
        }
        if self.addresses.len() >= MAX_ANONYMOUS_RECORDS_PER_MINUTE
            || self.addresses.contains(address)
        {
            return false;
        }
        self.addresses.insert(address.to_owned());
        true
    }
}

/// Authentication and authorization. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Access {
    verifier: Verifier,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    pepper: Arc<Pepper>,
    anonymous: Arc<Mutex<AnonymousRecords>>,
}

impl Access {
    pub(crate) fn new(
        verifier: Verifier,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        pepper: Arc<Pepper>,
    ) -> Access {
        Access {
            verifier,
            store,
            clock,
            metrics,
            pepper,
            anonymous: Arc::default(),
        }
    }

    /// Authenticates the caller of an admin call from the bearer credential its transport read
    /// (`Err` when it sent none it could read). Any valid key passes: what it may do is each
    /// operation's decision, by the permission table. A refusal is appended to the audit log,
    /// with the key's id and organization when the key is known (but an unknown or revoked
    /// key is anonymous: its id must not be confirmed to anyone); if even that write fails,
    /// the caller is refused all the same.
    pub async fn authenticate(
        &self,
        credential: Result<&str, Error>,
        context: RequestContext,
    ) -> Result<Requester, Error> {
        let path = context.method.clone().unwrap_or_default();
        let token = match credential {
            Ok(token) => token,
            Err(error) => {
                self.deny(&path, &context, &Actor::Anonymous, None, &error)
                    .await;
                return Err(error);
            }
        };
        if SessionToken::claims(TokenKind::Session, token) {
            // Not behind the brute-force guard: a session is never cached, so a guard would
            // lock the people of a network out of the console while it cools off, and a
            // 256-bit token is not guessed; a wrong one costs one indexed read.
            return match self.session(token, context.clone()).await {
                Ok(requester) => Ok(requester),
                Err(error) => {
                    self.deny(&path, &context, &Actor::Anonymous, None, &error)
                        .await;
                    Err(error)
                }
            };
        }
        // Admin callers are guarded like any client: by the address their request came from.
        let guarded = VerifyContext {
            peer: context.client_ip,
            ..VerifyContext::default()
        };
        let verification = self
            .verifier
            .verify(token, &[], &guarded, Mode::Authenticate)
            .await?;
        // An OAuth access token acts for a person at the platform's APIs, within what they
        // approved for one application; it is no credential for Keyrack's own.
        let error = match (verification.error(), &verification.record) {
            (None, Some(record)) if record.oauth().is_some() => Some(Error::Forbidden(
                "an OAuth access token cannot call Keyrack's admin API".to_owned(),
            )),
            (error, _) => error,
        };
        match (error, &verification.record) {
            (None, Some(record)) => Ok(Requester {
                caller: Caller::new(record, verification.scopes, self.role(record).await?),
                context,
            }),
            (error, record) => {
                let error = error.unwrap_or(Error::InvalidApiKey);
                let known = record
                    .as_ref()
                    .filter(|_| !matches!(error, Error::InvalidApiKey));
                let actor = known.map_or(Actor::Anonymous, |record| {
                    Actor::Key(Caller::new(record, ScopeSet::EMPTY, None))
                });
                let organization_id = known.map(|record| record.organization_id);
                self.deny(&path, &context, &actor, organization_id, &error)
                    .await;
                Err(error)
            }
        }
    }

    /// The caller of console session `text`: what it acts as, judged now, from the store (a
    /// key revoked, a member removed or demoted, ends or narrows every session at once, on
    /// every replica). A session past its idle timeout or its lifetime is deleted and refused.
    async fn session(&self, text: &str, context: RequestContext) -> Result<Requester, Error> {
        let token = SessionToken::parse(TokenKind::Session, text).ok_or(Error::InvalidApiKey)?;
        let session = self
            .store
            .find_session(TokenKind::Session, &self.pepper.token_digest(&token))
            .await?
            .filter(|session| self.pepper.token_matches(&token, &session.digest))
            .ok_or(Error::InvalidApiKey)?;
        let now = self.clock.now();
        if now >= sessions_end_at(&session) {
            self.store.delete_session(session.id, None).await?;
            return Err(Error::InvalidApiKey);
        }
        let organization_id = session.organization_id;
        let caller = match (session.key_id, session.member_id) {
            (Some(key_id), _) => {
                let record = self
                    .store
                    .get_key(organization_id, key_id)
                    .await?
                    .ok_or(Error::InvalidApiKey)?;
                let view = KeyView::from(&record);
                // A personal key's member, read once: its role's scopes limit the key, and its
                // role is the caller's.
                let member = match (record.key_type, record.member_id) {
                    (KeyType::Personal, Some(member_id)) => {
                        member_scopes(&self.store, organization_id, member_id).await?
                    }
                    _ => None,
                };
                let effective =
                    effective_scopes(&record, member.as_ref().map(|(_, scopes)| *scopes));
                // The key is judged as if presented, from the session's caller: a revoked,
                // expired, disabled or orphaned key's sessions end with it, and an allowlisted
                // one's work only from its addresses.
                if let Some(error) =
                    verify_effective(Some(&view), effective, &[], context.client_ip, now)
                        .into_error(view.expires_at)
                {
                    return Err(error);
                }
                let mut caller = Caller::new(
                    &view,
                    effective.unwrap_or(ScopeSet::EMPTY),
                    member.map(|(member, _)| member.role),
                );
                caller.session_id = Some(session.id);
                caller
            }
            (None, Some(member_id)) => {
                let (member, scopes) = member_scopes(&self.store, organization_id, member_id)
                    .await?
                    .ok_or(Error::InvalidApiKey)?;
                Caller::member(session.id, organization_id, member.id, member.role, scopes)
            }
            (None, None) => return Err(Error::InvalidApiKey),
        };
        if now - session.last_seen_at >= SESSION_TOUCH_INTERVAL {
            self.store.touch_session(session.id, now).await?;
        }
        Ok(Requester { caller, context })
    }

    /// When the requester's session ends at the latest, if it came through one.
    pub(crate) async fn session_end(&self, by: &Requester) -> Result<Option<DateTime<Utc>>, Error> {
        let Some(id) = by.caller.session_id else {
            return Ok(None);
        };
        Ok(self
            .store
            .get_session(id)
            .await?
            .map(|session| session.expires_at))
    }

    /// A personal key's member's role, read now rather than from the key cache: whether the
    /// caller acts as an owner follows a demotion at once, on every replica.
    async fn role(&self, record: &KeyView) -> Result<Option<Role>, Error> {
        let Some(member_id) = record
            .member_id
            .filter(|_| record.key_type == KeyType::Personal)
        else {
            return Ok(None);
        };
        let member = self
            .store
            .get_member(record.organization_id, member_id)
            .await?;
        Ok(member.map(|member| member.role))
    }

    /// Checks `action` on something of `owner` (a member; `None` for the organization's)
    /// against the permission table; a refusal is audited.
    pub(crate) async fn authorize(
        &self,
        by: &Requester,
        action: Action,
        owner: Option<Uuid>,
    ) -> Result<(), Error> {
        self.check(by, by.caller.authorize(action, owner)).await
    }

    /// Turns a permission decision (`authorize`, `may_grant`, `within_role`) into the
    /// operation's answer: a refusal (`insufficient_scope`, `forbidden`) appends an
    /// `auth.denied` event naming the method. Any other error passes through unaudited.
    pub(crate) async fn check(
        &self,
        by: &Requester,
        decision: Result<(), Error>,
    ) -> Result<(), Error> {
        match decision {
            Ok(()) => Ok(()),
            Err(error @ (Error::InsufficientScope(_) | Error::Forbidden(_))) => {
                let path = by.context.method.as_deref().unwrap_or_default();
                self.deny(
                    path,
                    &by.context,
                    &by.actor(),
                    Some(by.caller.organization_id),
                    &error,
                )
                .await;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// The key `id` of the requester's organization, if the requester may perform `action` on
    /// it (its owner is its member, for a personal key). Another organization's key is
    /// `NotFound`, like a key that does not exist; a key of the organization that the
    /// requester may not touch is refused (and audited) as any refusal.
    pub(crate) async fn key(
        &self,
        by: &Requester,
        id: Uuid,
        action: Action,
    ) -> Result<KeyRecord, Error> {
        let record = self
            .store
            .get_key(by.caller.organization_id, id)
            .await?
            .ok_or(Error::NotFound("key"))?;
        self.authorize(by, action, owner(&record)).await?;
        Ok(record)
    }

    /// Counts a refused call to `path` (`keyrack_auth_refusals_total`) and appends its
    /// `auth.denied` event; if even that write fails, the caller is refused all the same. An
    /// anonymous refusal (no key, or one that matches nothing) is recorded at most once a
    /// minute per client address, and only for the first addresses of the minute: it belongs
    /// to no organization, and a flood of them must not grow the log or hold the write lock.
    async fn deny(
        &self,
        path: &str,
        context: &RequestContext,
        actor: &Actor,
        organization_id: Option<Uuid>,
        error: &Error,
    ) {
        let now = self.clock.now();
        self.metrics.auth_refusal(error.code().reason());
        if let Actor::Anonymous = actor {
            // By address alone: a new connection (a new port) is the same client.
            let address = match context.client_ip {
                Some(ip) => ip.to_string(),
                None => context.client_address.clone().unwrap_or_default(),
            };
            let minute = now.timestamp().div_euclid(60);
            let admitted = self
                .anonymous
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admit(&address, minute);
            if !admitted {
                return;
            }
        }
        let event = audit_event(
            actor,
            organization_id,
            AuditAction::AuthDenied,
            // The path is the caller's to choose (any `/keyrack.v1.…` method is refused
            // before routing), so the log keeps a bounded prefix of it.
            path.chars().take(MAX_TARGET_CHARS).collect(),
            AuditOutcome::Denied,
            Some(error.code().reason()),
            context,
            now,
        );
        if let Err(error) = self.store.append_audit_event(&event).await {
            tracing::error!(%error, "audit event of a refused call not recorded");
        }
    }
}

/// Whose a key is, for the permission table: its member's, for a personal key; the
/// organization's (`None`) otherwise.
pub(crate) fn owner(record: &KeyRecord) -> Option<Uuid> {
    match record.key_type {
        KeyType::Personal => record.member_id,
        KeyType::Organization => None,
    }
}
