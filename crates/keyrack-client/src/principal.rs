//! Who called: the key behind a request that passed, as VerifyKey described it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::v1;

/// The key that authorized a request, put in the request's extensions by the layer: axum
/// handlers take it with `Extension<Principal>`, tonic methods with
/// `request.extensions().get::<Principal>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The key's id (a UUID), stable across the key's life; never the key itself.
    pub key_id: String,
    /// The organization the key belongs to.
    pub organization_id: String,
    /// The key's name, e.g. `Production API`.
    pub name: String,
    /// The key's scopes. A personal key's are already limited by its member's current role.
    pub scopes: Vec<String>,
    /// `sk_live_…` or `sk_test_…`.
    pub environment: Environment,
    /// Organization or personal.
    pub key_type: KeyType,
    /// For a personal key, its member.
    pub member_id: Option<String>,
    /// The first instant the key no longer works, if it expires.
    pub expires_at: Option<SystemTime>,
    /// The key's metadata, a JSON object's text (e.g. `{"plan":"pro"}`), if it has any. Every
    /// service that verifies the key sees it: it is never a secret.
    pub metadata_json: Option<String>,
    /// For an OAuth access token (`oat_…`): the client (application) it was issued to. The key
    /// is then the person's grant, `key_type` personal and `member_id` the person.
    pub oauth_client_id: Option<String>,
    /// For an OAuth access token: the person's user id, whom the application acts for.
    pub user_id: Option<String>,
}

impl Principal {
    /// Whether the key holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|held| held == scope)
    }

    pub(crate) fn from_verdict(verdict: &v1::VerifyKeyResponse) -> Principal {
        Principal {
            key_id: verdict.key_id.clone(),
            organization_id: verdict.organization_id.clone(),
            name: verdict.name.clone(),
            scopes: verdict.scopes.clone(),
            environment: match v1::Environment::try_from(verdict.environment) {
                Ok(v1::Environment::Live) => Environment::Live,
                Ok(v1::Environment::Test) => Environment::Test,
                _ => Environment::Unspecified,
            },
            key_type: match v1::KeyType::try_from(verdict.key_type) {
                Ok(v1::KeyType::Organization) => KeyType::Organization,
                Ok(v1::KeyType::Personal) => KeyType::Personal,
                _ => KeyType::Unspecified,
            },
            member_id: Some(verdict.member_id.clone()).filter(|id| !id.is_empty()),
            expires_at: verdict.expire_time.as_ref().and_then(system_time),
            metadata_json: Some(verdict.metadata_json.clone()).filter(|json| !json.is_empty()),
            oauth_client_id: Some(verdict.oauth_client_id.clone()).filter(|id| !id.is_empty()),
            user_id: Some(verdict.user_id.clone()).filter(|id| !id.is_empty()),
        }
    }
}

/// A timestamp as a `SystemTime`; `None` before 1970 or out of range.
fn system_time(time: &prost_types::Timestamp) -> Option<SystemTime> {
    let seconds = u64::try_from(time.seconds).ok()?;
    let nanos = u32::try_from(time.nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

/// A key's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Environment {
    /// A production key, `sk_live_…`.
    Live,
    /// A development key, `sk_test_…`.
    Test,
    /// Not said (a Keyrack newer than this crate).
    Unspecified,
}

/// Whom a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// The organization, shared across a team.
    Organization,
    /// One member; its scopes follow the member's role.
    Personal,
    /// Not said (a Keyrack newer than this crate).
    Unspecified,
}
