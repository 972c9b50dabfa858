//! The key lookup by digest on SQLite, read on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own: a query crosses to it and its
//! rows and its end come back across channels, and the pool pings the connection again when
//! it is returned. A cache miss is one indexed read of a few microseconds, and at a million
//! keys those hand-offs were most of its time and all of its tail (BENCHMARKS.md, "SQLite
//! cold misses"). So the one read on the verification path runs here instead, synchronously,
//! on read-only connections of its own to the same file. WAL mode lets these readers run
//! beside the pool's writer without waiting; a read sees every transaction committed before
//! it started, as a pooled read does.
//!
//! Every other query, and this one when all of these connections are in use or the database
//! is busy, goes through the pool as before.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use key_core::KeyDigest;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;

use crate::{Error, entity::api_key};

/// How many connections: one per thread that may look a key up at the same moment. Tokio's
/// workers are as many as the cores; a caller that finds all of them in use takes the pool.
const CONNECTIONS: usize = 4;

/// The columns of `api_key::Model`, in its order, and the organization's default rate
/// limits: what `found_key` needs, in one indexed read.
const BY_DIGEST: &str = "SELECT k.id, k.organization_id, k.name, k.scopes, k.environment, \
     k.last4, k.digest, k.created_at, k.expires_at, k.revoked_at, k.revoke_reason, \
     k.last_used_at, k.created_by, k.rotated_from, k.rotated_to, k.key_type, k.member_id, \
     k.operator, k.rate_limits, k.disabled_at, k.metadata, k.ip_allowlist, \
     k.credits_remaining, k.credits_refill_amount, k.credits_refill_per, \
     k.credits_refilled_at, k.oauth_client_id, k.oauth_user_id, o.default_rate_limits \
     FROM api_keys k LEFT JOIN organizations o ON o.id = k.organization_id \
     WHERE k.digest = ?1";

/// Read-only connections to one SQLite file, each used by one caller at a time.
pub(crate) struct SqliteReads {
    connections: Vec<Mutex<Connection>>,
    /// Where the next caller starts looking for a free connection, so callers spread out.
    next: AtomicUsize,
}

impl std::fmt::Debug for SqliteReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReads")
            .field("connections", &self.connections.len())
            .finish()
    }
}

/// A key's row and its organization's default rate limits.
pub(crate) type KeyRow = (api_key::Model, Option<String>);

impl SqliteReads {
    /// Opens the read connections to the file behind the SQLite `url` (the pool has already
    /// opened it, created it where asked, and put it in WAL mode). `None` for an in-memory
    /// database, which no second connection can reach.
    pub(crate) fn open(url: &str, mmap_size: u64) -> Result<Option<SqliteReads>, Error> {
        let Some(path) = file_of(url) else {
            return Ok(None);
        };
        let connections = (0..CONNECTIONS)
            .map(|_| open_one(&path, mmap_size).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                sea_orm::DbErr::Custom(format!(
                    "cannot open {} for reading: {error}",
                    path.display()
                ))
            })?;
        Ok(Some(SqliteReads {
            connections,
            next: AtomicUsize::new(0),
        }))
    }

    /// The key stored under `digest` and its organization's default rate limits. `None` when
    /// every connection is in use or the database is busy: the caller asks the pool instead.
    pub(crate) fn find_key_by_digest(
        &self,
        digest: &KeyDigest,
    ) -> Option<Result<Option<KeyRow>, Error>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.connections.len();
        let connection = (0..count)
            .find_map(|offset| self.connections[(start + offset) % count].try_lock().ok())?;
        let found = connection
            .prepare_cached(BY_DIGEST)
            .and_then(|mut statement| {
                statement
                    .query_row([digest.as_bytes().as_slice()], key_row)
                    .optional()
            });
        match found {
            Ok(found) => Some(Ok(found)),
            Err(error) if is_busy(&error) => None,
            Err(error) => Some(Err(failed(error))),
        }
    }
}

/// The database file named by a SQLite URL, as sqlx reads it; `None` for an in-memory one.
fn file_of(url: &str) -> Option<PathBuf> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if in_memory {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

fn open_one(path: &Path, mmap_size: u64) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Never wait for a lock on the calling thread (rusqlite's default would wait 5 s): a busy
    // database sends the read to the pool, which waits without holding a runtime thread.
    connection.busy_timeout(std::time::Duration::ZERO)?;
    // As the pool's connections: a cold lookup walks a few B-tree pages through the memory
    // map instead of a read() each.
    connection.pragma_update(
        None,
        "mmap_size",
        i64::try_from(mmap_size).unwrap_or(i64::MAX),
    )?;
    Ok(connection)
}

fn key_row(row: &Row<'_>) -> rusqlite::Result<KeyRow> {
    let model = api_key::Model {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        name: row.get(2)?,
        scopes: row.get(3)?,
        environment: row.get(4)?,
        last4: row.get(5)?,
        digest: row.get(6)?,
        created_at: row.get(7)?,
        expires_at: row.get(8)?,
        revoked_at: row.get(9)?,
        revoke_reason: row.get(10)?,
        last_used_at: row.get(11)?,
        created_by: row.get(12)?,
        rotated_from: row.get(13)?,
        rotated_to: row.get(14)?,
        key_type: row.get(15)?,
        member_id: row.get(16)?,
        operator: row.get(17)?,
        rate_limits: row.get(18)?,
        disabled_at: row.get(19)?,
        metadata: row.get(20)?,
        ip_allowlist: row.get(21)?,
        credits_remaining: row.get(22)?,
        credits_refill_amount: row.get(23)?,
        credits_refill_per: row.get(24)?,
        credits_refilled_at: row.get(25)?,
        oauth_client_id: row.get(26)?,
        oauth_user_id: row.get(27)?,
    };
    Ok((model, row.get(28)?))
}

/// Whether SQLite could not take its read lock at once (a checkpoint resetting the WAL, say):
/// the pool, which waits under the busy timeout, takes the read instead.
fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Any other failure of these reads, as the pool's would be: a row that does not decode is
/// corrupt; anything else is the database's error.
fn failed(error: rusqlite::Error) -> Error {
    use rusqlite::Error::{FromSqlConversionFailure, IntegralValueOutOfRange, InvalidColumnType};
    match error {
        FromSqlConversionFailure(..) | IntegralValueOutOfRange(..) | InvalidColumnType(..) => {
            Error::Corrupt {
                table: "api_keys",
                detail: error.to_string(),
            }
        }
        error => Error::Database(sea_orm::DbErr::Custom(format!("reading a key: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
    use uuid::Uuid;

    use super::*;
    use crate::{Store, entity::organization};

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("keyrack.db").display()
        );
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn at(nanos: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 19, 28, 9).unwrap()
            + chrono::Duration::nanoseconds(nanos.into())
    }

    /// A key row with every column set, or with every optional one empty.
    fn key(organization_id: Uuid, digest: u8, full: bool) -> api_key::Model {
        let some = |value: &str| full.then(|| value.to_owned());
        api_key::Model {
            id: Uuid::now_v7(),
            organization_id,
            name: "ci deploy ✓".to_owned(),
            scopes: "chat agents:read".to_owned(),
            environment: "live".to_owned(),
            last4: "a1B2".to_owned(),
            digest: vec![digest; 32],
            created_at: at(707_234_864),
            expires_at: full.then(|| at(1)),
            revoked_at: full.then(|| at(999_999_999)),
            revoke_reason: some("leaked"),
            last_used_at: full.then(|| at(0)),
            created_by: full.then(Uuid::now_v7),
            rotated_from: full.then(Uuid::now_v7),
            rotated_to: full.then(Uuid::now_v7),
            key_type: "personal".to_owned(),
            member_id: full.then(Uuid::now_v7),
            operator: full,
            rate_limits: some("100/minute"),
            disabled_at: full.then(|| at(500)),
            metadata: some(r#"{"team":"ml"}"#),
            ip_allowlist: some("10.0.0.0/8 2001:db8::/32"),
            credits_remaining: full.then_some(-3),
            credits_refill_amount: full.then_some(i64::MAX),
            credits_refill_per: some("month"),
            credits_refilled_at: full.then(|| at(123_456_789)),
            oauth_client_id: full.then(Uuid::now_v7),
            oauth_user_id: some("user-42"),
        }
    }

    /// What the read on the calling thread returns is exactly what sea-orm reads through the
    /// pool, column for column: a row with every column set (times to the nanosecond, UTF-8,
    /// negative and extreme integers), a row with every optional column empty, a key whose
    /// organization has default rate limits, and a digest that matches nothing.
    #[tokio::test]
    async fn a_read_on_the_calling_thread_is_the_pools_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let organization = organization::Model {
            id: Uuid::now_v7(),
            name: "acme".to_owned(),
            created_at: at(5),
            max_key_age_days: 90,
            max_key_lifetime_days: None,
            role_scopes: None,
            default_rate_limits: Some("10/second".to_owned()),
            leaked_keys: "revoke".to_owned(),
        };
        organization
            .clone()
            .into_active_model()
            .insert(&store.db)
            .await
            .unwrap();
        for (digest, full) in [(1, true), (2, false)] {
            key(organization.id, digest, full)
                .into_active_model()
                .insert(&store.db)
                .await
                .unwrap();
        }
        let reads = store.reads.as_ref().expect("a SQLite file has its readers");
        for digest in [1u8, 2, 3] {
            let digest = KeyDigest::from_slice(&[digest; 32]).unwrap();
            let pooled = api_key::Entity::find()
                .filter(api_key::Column::Digest.eq(digest.as_bytes().to_vec()))
                .find_also_related(organization::Entity)
                .one(&store.db)
                .await
                .unwrap()
                .map(|(model, organization)| {
                    (model, organization.and_then(|o| o.default_rate_limits))
                });
            let read = reads.find_key_by_digest(&digest).unwrap().unwrap();
            assert_eq!(read, pooled);
        }
    }

    /// The verification path's lookups take the read on the calling thread and count it as a
    /// query; an in-memory database, which no second connection can open, has no readers and
    /// still finds its keys through the pool.
    #[tokio::test]
    async fn lookups_take_it_and_an_in_memory_database_goes_without() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let digest = KeyDigest::from_slice(&[7; 32]).unwrap();
        let before = store.query_count();
        assert!(
            store
                .find_keys_by_digests(&[digest])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.find_key_by_digest(&digest).await.unwrap().is_none());
        assert_eq!(store.query_count(), before + 2);

        let memory = Store::connect("sqlite::memory:").await.unwrap();
        assert!(memory.reads.is_none());
        memory.migrate().await.unwrap();
        assert!(memory.find_key_by_digest(&digest).await.unwrap().is_none());
    }

    /// A database another connection holds locked sends the read to the pool at once: the
    /// calling thread is a runtime worker, and must not sleep in SQLite's busy handler. (A WAL
    /// reader is almost never locked out, so the lock is taken on a file in rollback-journal
    /// mode, where a writer's exclusive lock keeps readers out.)
    #[test]
    fn a_locked_database_sends_the_read_to_the_pool_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let locker = Connection::open(&path).unwrap();
        locker
            .execute_batch("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
            .unwrap();
        let url = format!("sqlite://{}", path.display());
        let reads = SqliteReads::open(&url, 0).unwrap().unwrap();
        let digest = KeyDigest::from_slice(&[7; 32]).unwrap();
        let started = std::time::Instant::now();
        assert!(reads.find_key_by_digest(&digest).is_none());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "waited {:?}",
            started.elapsed()
        );
    }

    /// A caller that finds every connection in use is sent to the pool, never made to wait.
    #[tokio::test]
    async fn a_caller_finding_every_connection_in_use_is_sent_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let reads = store.reads.as_ref().unwrap();
        let held: Vec<_> = reads
            .connections
            .iter()
            .map(|c| c.lock().unwrap())
            .collect();
        let digest = KeyDigest::from_slice(&[7; 32]).unwrap();
        assert!(reads.find_key_by_digest(&digest).is_none());
        drop(held);
        assert!(matches!(reads.find_key_by_digest(&digest), Some(Ok(None))));
    }
}
