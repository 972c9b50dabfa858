//! The deployment's own facts (`deployment_settings`): the pepper's fingerprint.

use sea_orm::{ConnectionTrait, Statement, Value};

use crate::{Error, Store};

/// The row holding the pepper's fingerprint.
const PEPPER_FINGERPRINT: &str = "pepper_fingerprint";

impl Store {
    /// The fingerprint of the pepper this database's keys were hashed with: `fingerprint` if
    /// none was recorded yet (a new database, or one from before fingerprints), which is then
    /// recorded; the recorded one otherwise. Of two replicas starting at once, the first to
    /// record wins and both read its fingerprint.
    pub async fn pepper_fingerprint_or_record(&self, fingerprint: &str) -> Result<String, Error> {
        let backend = self.db.get_database_backend();
        let insert = match backend {
            sea_orm::DatabaseBackend::Postgres => {
                "INSERT INTO deployment_settings (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING"
            }
            _ => {
                "INSERT INTO deployment_settings (name, value) VALUES (?, ?) \
                 ON CONFLICT (name) DO NOTHING"
            }
        };
        self.db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                insert,
                [
                    Value::from(PEPPER_FINGERPRINT),
                    Value::from(fingerprint.to_owned()),
                ],
            ))
            .await?;
        let select = match backend {
            sea_orm::DatabaseBackend::Postgres => {
                "SELECT value FROM deployment_settings WHERE name = $1"
            }
            _ => "SELECT value FROM deployment_settings WHERE name = ?",
        };
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                select,
                [Value::from(PEPPER_FINGERPRINT)],
            ))
            .await?
            .ok_or_else(|| Error::Corrupt {
                table: "deployment_settings",
                detail: "the pepper fingerprint vanished".to_owned(),
            })?;
        Ok(row.try_get_by_index(0)?)
    }
}
