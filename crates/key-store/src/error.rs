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

impl Error {
    /// Whether the database could not be reached (retrying later may work), as opposed to a
    /// statement that failed on its own merits (a bug).
    fn is_unavailable(&self) -> bool {
        use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
        match self {
            Error::Database(DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) => true,
            Error::Database(
                DbErr::Exec(RuntimeErr::SqlxError(error))
                | DbErr::Query(RuntimeErr::SqlxError(error)),
            ) => {
                matches!(
                    error.as_ref(),
                    Sqlx::Io(_)
                        | Sqlx::Tls(_)
                        | Sqlx::PoolTimedOut
                        | Sqlx::PoolClosed
                        | Sqlx::WorkerCrashed
                )
            }
            _ => false,
        }
    }
}

impl From<Error> for key_core::Error {
    fn from(error: Error) -> Self {
        if error.is_unavailable() {
            tracing::error!(%error, "database unavailable");
            key_core::Error::Unavailable
        } else {
            key_core::Error::Internal(error.to_string())
        }
    }
}
