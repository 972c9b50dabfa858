//! What a usage flush tells the alert rules: which keys were used, whether a key was silent
//! before, and from which countries it was used for the first time.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One key's activity in one flushed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyActivity {
    /// The key.
    pub key_id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its `last_used_at` before this batch was written; `None` if it had never been used.
    pub previously_used_at: Option<DateTime<Utc>>,
    /// The earliest verification of the key in this batch.
    pub first_used_at: DateTime<Utc>,
    /// The latest verification of the key in this batch.
    pub last_used_at: DateTime<Utc>,
    /// Countries (ISO 3166-1 alpha-2) this batch saw the key used from and no earlier stored
    /// usage did (as far back as daily usage is retained), sorted.
    pub new_countries: Vec<String>,
}

/// Everything one usage flush wrote, per key, for the alert rules to look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Every key with at least one verification in the batch, in key order.
    pub keys: Vec<KeyActivity>,
}
