//! Leaked-key reports in GitHub's secret-scanning partner format: a signed JSON array of
//! `{"token", "type", "url", "source"}`, each token something GitHub's pattern for Keyrack keys
//! matched in public. ReportLeakedKeys verifies the signature (`keys`), then for each token:
//! a malformed key (checksum included) is a false positive without a lookup; an unknown digest
//! is a false positive; a key of this server is a true positive, and, unless already revoked,
//! is revoked or flagged as its organization's `leaked_keys` policy says, with a `key.leaked`
//! audit event (in the revocation's transaction when it revokes) and a `key_leaked` alert
//! (once per key), which the alert path delivers to the organization's webhooks. An OAuth
//! access or refresh token (the same format, its own prefix) is looked up among the tokens and
//! stands for its grant: the whole grant is revoked (or flagged), its tokens with it, since
//! whoever holds one of them may hold the other.

mod keys;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use key_core::{
    ActorType, Alert, ApiKey, AuditAction, AuditEvent, AuditOutcome, Clock, CredentialKind, Error,
    KeyRecord, LeakedKeyPolicy, Pepper,
};
use key_store::Store;
use ring::digest::{SHA256, digest};
use serde::Deserialize;
use uuid::Uuid;

pub use self::keys::{SecretScanningKeys, SecretScanningKeysError};
use super::{oauth::stored_token, organization_policy};
use crate::{
    RequestContext,
    alerting::{Alerting, Firing},
    verify::KeyCache,
};

/// The largest report accepted, in bytes: GitHub batches a handful of matches per POST, and
/// the whole report must fit in one gRPC message (64 KiB) beside its headers.
pub const MAX_REPORT_BYTES: usize = 48 * 1024;
/// The most tokens one report may carry; a larger one is refused whole, before any lookup.
pub const MAX_REPORT_TOKENS: usize = 100;
/// The longest `url` kept in an audit reason or an alert (characters); longer ones are cut.
const MAX_URL_CHARS: usize = 300;

/// One reported token, as GitHub sends it.
#[derive(Debug, Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
}

/// The answer for one reported token: GitHub's feedback entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakVerdict {
    /// Lowercase hex SHA-256 of the token as reported (the token itself is never echoed).
    pub token_hash: String,
    /// The report's type for it.
    pub token_type: String,
    /// Whether it is (or was) a key of this server.
    pub true_positive: bool,
}

/// What a report did to one key of this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Revoked,
    Flagged,
    AlreadyRevoked,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Revoked => "revoked",
            Outcome::Flagged => "flagged",
            Outcome::AlreadyRevoked => "already revoked",
        }
    }
}

/// The ReportLeakedKeys operation. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeakReports {
    store: Store,
    clock: Arc<dyn Clock>,
    pepper: Arc<Pepper>,
    key_cache: Arc<KeyCache>,
    alerting: Alerting,
    /// The configured public keys; `None`: every report is refused.
    keys: Option<Arc<SecretScanningKeys>>,
}

impl LeakReports {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        pepper: Arc<Pepper>,
        key_cache: Arc<KeyCache>,
        alerting: Alerting,
        keys: Option<SecretScanningKeys>,
    ) -> LeakReports {
        LeakReports {
            store,
            clock,
            pepper,
            key_cache,
            alerting,
            keys: keys.map(Arc::new),
        }
    }

    /// ReportLeakedKeys: `payload` (the raw body) signed as `signature` by the key
    /// `key_identifier`. Refused whole (UNAUTHENTICATED) unless the signature verifies, and
    /// (INVALID_ARGUMENT) when the report is too large or not GitHub's JSON; otherwise one
    /// verdict per token, in order.
    pub async fn report(
        &self,
        payload: &[u8],
        key_identifier: &str,
        signature: &str,
        context: &RequestContext,
    ) -> Result<Vec<LeakVerdict>, Error> {
        let Some(keys) = &self.keys else {
            return Err(Error::Unauthenticated(
                "this server accepts no secret-scanning reports: it has no --secret-scanning-keys",
            ));
        };
        if payload.len() > MAX_REPORT_BYTES {
            return Err(invalid(format!("at most {MAX_REPORT_BYTES} bytes")));
        }
        keys.verify(key_identifier, signature, payload)?;
        let reported: Vec<Reported> = serde_json::from_slice(payload).map_err(|_| {
            invalid(
                "not a JSON array of {\"token\", \"type\", \"url\", \"source\"} objects".to_owned(),
            )
        })?;
        if reported.len() > MAX_REPORT_TOKENS {
            return Err(invalid(format!("at most {MAX_REPORT_TOKENS} tokens")));
        }
        let mut verdicts = Vec::with_capacity(reported.len());
        for entry in &reported {
            let true_positive = self.handle(entry, context).await?;
            verdicts.push(LeakVerdict {
                token_hash: sha256_hex(entry.token.as_bytes()),
                token_type: entry.token_type.clone(),
                true_positive,
            });
        }
        Ok(verdicts)
    }

    /// Looks the token up and applies the policy; whether it is a key of this server.
    async fn handle(&self, entry: &Reported, context: &RequestContext) -> Result<bool, Error> {
        // The checksum tells most look-alikes apart without touching the database.
        let Ok(key) = ApiKey::parse(&entry.token) else {
            return Ok(false);
        };
        let found = match key.kind() {
            CredentialKind::ApiKey => self
                .store
                .find_key_by_digest(&self.pepper.digest(&key))
                .await?
                .map(|(record, _, _)| record),
            CredentialKind::AccessToken | CredentialKind::RefreshToken => {
                stored_token(&self.store, &self.pepper, &key)
                    .await?
                    .map(|(_, grant)| grant)
            }
        };
        let Some(record) = found else {
            return Ok(false);
        };
        let now = self.clock.now();
        let url = printable_url(&entry.url);
        let outcome = if record.revoked_at.is_some() {
            Outcome::AlreadyRevoked
        } else {
            let policy = organization_policy(&self.store, record.organization_id).await?;
            match policy.leaked_keys {
                LeakedKeyPolicy::Revoke => Outcome::Revoked,
                LeakedKeyPolicy::Flag => Outcome::Flagged,
            }
        };
        let audit = leaked_event(&record, outcome, &url, &entry.source, context, now);
        match outcome {
            Outcome::Revoked => {
                let reason = format!("leaked: found in public at {url}");
                // The next verification of this key (or the grant's tokens) in this process
                // must see the revocation.
                let stale = if record.oauth.is_some() {
                    self.store
                        .revoke_oauth_grant(record.organization_id, record.id, &reason, now, &audit)
                        .await?
                        .map(|(_, digests)| digests)
                } else {
                    self.store
                        .revoke_key(record.organization_id, record.id, Some(reason), now, &audit)
                        .await?
                        .map(|(_, stored)| vec![stored])
                };
                for digest in stale.iter().flatten() {
                    self.key_cache.forget(digest);
                }
            }
            Outcome::Flagged | Outcome::AlreadyRevoked => {
                self.store.append_audit_event(&audit).await?;
            }
        }
        tracing::warn!(
            key_id = %record.id,
            organization_id = %record.organization_id,
            outcome = outcome.as_str(),
            "leaked key reported"
        );
        if outcome != Outcome::AlreadyRevoked {
            let alert = Alert::key_leaked(
                record.id,
                &record.name,
                &url,
                outcome == Outcome::Revoked,
                now,
            );
            let firing = Firing {
                organization_id: record.organization_id,
                key_name: Some(&record.name),
                alert,
            };
            // The key is revoked (or flagged) and audited whatever happens to the alert.
            if let Err(error) = self.alerting.fire(Uuid::now_v7(), &firing).await {
                tracing::warn!(%error, key_id = %record.id, "the key_leaked alert was not stored");
            }
        }
        Ok(true)
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidArgument {
        field: "payload",
        message,
    }
}

/// The `key.leaked` event of `record`: the actor is the secret-scanning service, the reason
/// what was done and where the key was found.
fn leaked_event(
    record: &KeyRecord,
    outcome: Outcome,
    url: &str,
    source: &str,
    context: &RequestContext,
    now: DateTime<Utc>,
) -> AuditEvent {
    let source = if key_core::is_free_text(source, false) && source.len() <= 40 {
        source
    } else {
        "unknown"
    };
    AuditEvent {
        id: Uuid::now_v7(),
        time: now,
        organization_id: Some(record.organization_id),
        actor_key_id: None,
        actor_member_id: None,
        actor_type: ActorType::SecretScanning,
        action: AuditAction::KeyLeaked,
        target: record.id.to_string(),
        outcome: AuditOutcome::Success,
        reason: Some(format!("{}: found in {source} at {url}", outcome.as_str())),
        client_address: context.client_address.clone(),
        request_id: context.request_id.clone(),
    }
}

/// The report's `url` as it may be stored and shown: printable, at most [`MAX_URL_CHARS`].
fn printable_url(url: &str) -> String {
    if url.is_empty() || !key_core::is_free_text(url, false) {
        return "an unnamed place".to_owned();
    }
    url.chars().take(MAX_URL_CHARS).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    digest(&SHA256, bytes)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn urls_are_kept_printable_and_short() {
        assert_eq!(
            printable_url("https://github.com/o/r"),
            "https://github.com/o/r"
        );
        assert_eq!(printable_url("a\u{202e}b"), "an unnamed place");
        assert_eq!(
            printable_url(&"x".repeat(1000)).chars().count(),
            MAX_URL_CHARS
        );
    }
}
