/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed a statement, or cannot be reached.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A stored row cannot be read back into the domain (a bug or a hand-edited database).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table holding the row.
        table: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl From<Error> for key_core::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Database(
                sea_orm::DbErr::Conn(_)
                | sea_orm::DbErr::ConnectionAcquire(_)
                | sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(_)),
            ) => {
                tracing::error!(%error, "database unavailable");
                key_core::Error::Unavailable
            }
            other => key_core::Error::Internal(other.to_string()),
        }
    }
}
