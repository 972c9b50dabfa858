//! The `Store`: the repository every read and write goes through, its connection pool and
//! its migrations. The repository methods live beside their tables (`keys.rs`, `usage.rs`, …).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use sea_orm::{
    ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::{MigrationStatus, MigratorTrait};

use crate::{
    Error, StoreTimeouts, connect,
    migration::Migrator,
    notices::{ListenerOptions, NoticeListener},
    sqlite_reads::SqliteReads,
};

/// The PostgreSQL advisory lock key migrations hold: any 64-bit number no other application
/// on the database uses (the ASCII of "keyrack" with "m").
pub(crate) const MIGRATION_LOCK: i64 = 0x6b65_7972_6163_6b6d;

/// The repository: every read and write Keyrack makes goes through here.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    pub(crate) queries: Arc<AtomicU64>,
    /// Where a [`NoticeListener`] connects; `None` on SQLite.
    listener: Option<ListenerOptions>,
    /// On a SQLite file, the key lookup by digest's own connections ([`SqliteReads`]); `None`
    /// on PostgreSQL and on an in-memory SQLite database.
    pub(crate) reads: Option<Arc<SqliteReads>>,
}

impl Store {
    /// Connects to `url`: `sqlite://path?mode=rwc` or `postgres://…`.
    ///
    /// SQLite runs in WAL mode with a busy timeout, so readers never wait for the writer and
    /// concurrent writers queue instead of failing. A PostgreSQL database that does not exist
    /// is an error that says how to create it; it is never created here.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        Store::connect_with(url, StoreTimeouts::default()).await
    }

    /// [`Store::connect`], waiting at most `timeouts` for the database.
    pub async fn connect_with(url: &str, timeouts: StoreTimeouts) -> Result<Store, Error> {
        let mut db = Database::connect(connect::options(url, timeouts))
            .await
            .map_err(|error| connect::explain_connect_error(url, error))?;
        let queries = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&queries);
        db.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let listener = (db.get_database_backend() == DatabaseBackend::Postgres)
            .then(|| url.parse().ok().map(ListenerOptions::new))
            .flatten();
        let reads = match db.get_database_backend() {
            DatabaseBackend::Sqlite => SqliteReads::open(url, connect::MMAP_SIZE)?.map(Arc::new),
            _ => None,
        };
        Ok(Store {
            db,
            queries,
            listener,
            reads,
        })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at `BEGIN`
    /// (`BEGIN IMMEDIATE`), waiting for it under the busy timeout: a deferred transaction that
    /// has read cannot become a writer once another connection has committed (SQLITE_BUSY, with
    /// no wait), which would turn a busy moment into an internal error. PostgreSQL ignores the
    /// mode. Every write transaction of the store starts here.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, sea_orm::DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
    }

    /// Applies every pending migration. On PostgreSQL they run in one transaction holding an
    /// advisory lock ([`MIGRATION_LOCK`]), so replicas started together migrate once: the
    /// others wait for the lock, then find nothing pending. (SQLite is one process: see the
    /// binary's data-directory lock.)
    pub async fn migrate(&self) -> Result<(), Error> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            Migrator::up(&self.db, None).await?;
            return Ok(());
        }
        let transaction = self.db.begin().await?;
        transaction
            .execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        Migrator::up(&transaction, None).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Every migration, in order, with whether this database has applied it.
    pub async fn migrations(&self) -> Result<Vec<(String, bool)>, Error> {
        Ok(Migrator::get_migration_with_status_read_only(&self.db)
            .await?
            .into_iter()
            .map(|migration| {
                let applied = migration.status() == MigrationStatus::Applied;
                (migration.name().to_owned(), applied)
            })
            .collect())
    }

    /// Whether writes to this database send cache notices (PostgreSQL), so other processes'
    /// changes can reach a key cache; SQLite is one process and sends none.
    pub fn sends_cache_notices(&self) -> bool {
        self.listener.is_some()
    }

    /// On PostgreSQL, a listener for the cache notices of every process that writes to this
    /// database (not yet subscribed); `None` on SQLite, which is one process.
    pub fn notice_listener(&self) -> Option<NoticeListener> {
        self.listener.clone().map(NoticeListener::new)
    }

    /// Sends a cache notice that names nothing but `marker`, after every change committed so
    /// far (PostgreSQL delivers notices in commit order): a listener that receives it has
    /// received theirs. Does nothing on SQLite.
    pub async fn send_cache_marker(&self, marker: &str) -> Result<(), Error> {
        if !self.sends_cache_notices() {
            return Ok(());
        }
        self.db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [crate::notices::CHANNEL.into(), format!("p:{marker}").into()],
            ))
            .await?;
        Ok(())
    }

    /// How many statements this store has sent to the database since it connected. Tests use
    /// it to prove that a path touches no database at all.
    pub fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Whether the database answers: one trivial statement.
    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await?;
        Ok(())
    }

    /// The connection pool now: connections open, and how many of them are idle.
    pub fn pool_connections(&self) -> (u32, usize) {
        match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }

    /// Closes the connection pool, waiting for statements in flight.
    pub async fn close(self) -> Result<(), Error> {
        self.db.close().await?;
        Ok(())
    }
}
