//! Storing many keys at once, for seeding a store with a large number of keys (the scale
//! benchmark's million). The service itself issues keys one at a time (`Store::insert_key`).

use key_core::AuditEvent;
use sea_orm::EntityTrait;

use crate::{
    Error, NewKey, Store,
    audit::event_model,
    entity::{api_key::Entity as ApiKeys, audit_event::Entity as AuditEvents},
    keys::key_model,
};

/// How many rows one INSERT statement carries. An `api_keys` row binds 19 parameters, so a
/// statement stays well below both SQLite's (32,766) and PostgreSQL's (65,535) limits on
/// bound parameters per statement.
const ROWS_PER_STATEMENT: usize = 1_000;

impl Store {
    /// Stores `keys`, each with its audit event, in one transaction, with multi-row INSERTs:
    /// one statement per thousand rows instead of one per row. Returns how many keys were
    /// stored. Like `insert_key`, a key is never stored without its event; the whole batch is
    /// written or none of it is.
    pub async fn insert_keys_bulk(&self, keys: Vec<(NewKey, AuditEvent)>) -> Result<u64, Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let txn = self.begin_write().await?;
        let mut stored = 0;
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let key_rows = chunk.iter().map(|(key, _)| key_model(key));
            stored += ApiKeys::insert_many(key_rows)
                .exec_without_returning(&txn)
                .await?;
            let event_rows = chunk.iter().map(|(_, event)| event_model(event));
            AuditEvents::insert_many(event_rows)
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(stored)
    }
}
