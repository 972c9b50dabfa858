use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::{Error, migration::Migrator};

/// The repository: every read and write Keyrack makes goes through here.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    queries: Arc<AtomicU64>,
}

/// How much of an SQLite file is read through a memory map: 1 GiB of address space, not of
/// memory (the kernel's page cache backs it, shared with every connection).
const MMAP_SIZE: u64 = 1 << 30;

impl Store {
    /// Connects to `url`: `sqlite://path?mode=rwc` or `postgres://…`.
    ///
    /// SQLite runs in WAL mode with a busy timeout, so readers never wait for the writer and
    /// concurrent writers queue instead of failing.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // Reads through a memory map instead of a read() per page: a cold key
                    // lookup in a large file walks a few B-tree pages, and at a million keys
                    // the system calls were most of its time. Writes still go through the WAL.
                    .pragma("mmap_size", MMAP_SIZE.to_string())
            });
        if url.starts_with("sqlite") {
            // One writer at a time is all SQLite allows; a small pool keeps readers concurrent.
            options.max_connections(4);
        }
        let mut db = Database::connect(options).await?;
        let queries = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&queries);
        db.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Ok(Store { db, queries })
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

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), Error> {
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// How many statements this store has sent to the database since it connected. Tests use
    /// it to prove that a path touches no database at all.
    pub fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Closes the connection pool, waiting for statements in flight.
    pub async fn close(self) -> Result<(), Error> {
        self.db.close().await?;
        Ok(())
    }
}
