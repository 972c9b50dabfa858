//! How the store opens its connection pool: the options each backend gets, and the errors a
//! newcomer is likely to meet when connecting explained in words they can act on.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, DbErr, RuntimeErr,
    sqlx::{
        Executor,
        postgres::PgConnectOptions,
        sqlite::{SqliteJournalMode, SqliteSynchronous},
    },
};

/// How much of an SQLite file is read through a memory map: 1 GiB of address space, not of
/// memory (the kernel's page cache backs it, shared with every connection).
pub(crate) const MMAP_SIZE: u64 = 1 << 30;

/// PostgreSQL's SQLSTATE for a database that does not exist (`invalid_catalog_name`).
const INVALID_CATALOG_NAME: &str = "3D000";

/// How long the store waits for the database before it gives up with an error (which callers
/// answer as `unavailable`): to open a connection, to get one from the pool, and for one
/// statement (PostgreSQL's `statement_timeout`; SQLite's busy timeout, the wait for the write
/// lock). An outage then fails calls within about a second instead of piling them up for the
/// 10 to 20 s the pool's defaults wait, longer than most callers' own deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreTimeouts {
    /// Opening a connection.
    pub connect: Duration,
    /// Waiting for a free connection of the pool.
    pub acquire: Duration,
    /// One statement, or SQLite's wait for the write lock.
    pub statement: Duration,
}

impl Default for StoreTimeouts {
    fn default() -> Self {
        StoreTimeouts {
            connect: Duration::from_secs(1),
            acquire: Duration::from_secs(1),
            // Long enough for the largest usage flush batch on a busy disk.
            statement: Duration::from_secs(5),
        }
    }
}

/// The pool options for `url`, whichever backend it names.
///
/// SQLite runs in WAL mode with a busy timeout, so readers never wait for the writer and
/// concurrent writers queue instead of failing, and with `synchronous = FULL`, so a commit is
/// on disk before it is acknowledged: with `NORMAL` an acknowledged revocation could roll back
/// after a power loss. It costs about 0.7 ms per commit here (BENCHMARKS.md, `bench/writes.sh`).
///
/// PostgreSQL connections set `client_min_messages = warning`. sqlx logs every NOTICE the
/// server sends at `info` (target `sqlx::postgres::notice`), and the migrator's
/// `CREATE TABLE IF NOT EXISTS seaql_migrations` draws `relation "seaql_migrations" already
/// exists, skipping` at every start, which reads like a fault. Warnings still arrive, and
/// errors are never affected: the server always reports them. It is a `SET` after connecting
/// rather than an `options=-c …` startup parameter because PgBouncer rejects unknown startup
/// parameters unless configured to ignore them.
pub(crate) fn options(url: &str, timeouts: StoreTimeouts) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    // The after-connect hook runs once per connection and needs its statement for as long as
    // the pool lives: leaked once per store (a few bytes), not per connection.
    let statement_timeout: &'static str = String::leak(format!(
        "SET statement_timeout = {}",
        timeouts.statement.as_millis()
    ));
    options
        .sqlx_logging(false)
        .connect_timeout(timeouts.connect)
        .acquire_timeout(timeouts.acquire)
        .map_sqlx_sqlite_opts(move |opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(timeouts.statement)
                .foreign_keys(true)
                // Reads through a memory map instead of a read() per page: a cold key
                // lookup in a large file walks a few B-tree pages, and at a million keys
                // the system calls were most of its time. Writes still go through the WAL.
                .pragma("mmap_size", MMAP_SIZE.to_string())
        })
        .map_sqlx_postgres_pool_opts(move |pool| {
            pool.after_connect(move |conn, _| {
                Box::pin(async move {
                    conn.execute("SET client_min_messages = warning").await?;
                    conn.execute(statement_timeout).await?;
                    Ok(())
                })
            })
        });
    if url.starts_with("sqlite") {
        // One writer at a time is all SQLite allows; a small pool keeps readers concurrent.
        // No ping before each use: a SQLite connection is a file handle that no peer can drop,
        // and sqlx runs each connection on a thread of its own, so the ping was one more
        // round trip between threads on every query (a cache miss among them).
        options.max_connections(4).test_before_acquire(false);
    }
    options
}

/// Replaces PostgreSQL's bare `database "x" does not exist` with a message that names the
/// database and how to create it. Keyrack never creates the database itself: that takes
/// rights its own role should not need, and a typo in the URL would silently start an empty
/// service. Every other error passes through unchanged.
pub(crate) fn explain_connect_error(url: &str, error: DbErr) -> DbErr {
    let DbErr::Conn(RuntimeErr::SqlxError(sqlx_error)) = &error else {
        return error;
    };
    let missing_database = sqlx_error
        .as_database_error()
        .and_then(|db_error| db_error.code())
        .is_some_and(|code| code == INVALID_CATALOG_NAME);
    if !missing_database {
        return error;
    }
    match url.parse::<PgConnectOptions>() {
        Ok(options) => DbErr::Conn(RuntimeErr::Internal(missing_database_message(&options))),
        Err(_) => error,
    }
}

/// `postgresql database "x" does not exist …`, with a `createdb` command line that reaches the
/// same server as the URL.
fn missing_database_message(options: &PgConnectOptions) -> String {
    // Without a database in the URL, PostgreSQL uses the user's name, as sqlx does.
    let name = options
        .get_database()
        .unwrap_or_else(|| options.get_username());
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => options.get_host().to_owned(),
    };
    format!(
        "postgresql database \"{name}\" does not exist on {host}:{port}; keyrack does not create \
         it: create it with `createdb -h {host} -p {port} -U {user} {shell_name}` or, in psql, \
         `CREATE DATABASE {sql_name};`, then start again",
        port = options.get_port(),
        user = shell_word(options.get_username()),
        shell_name = shell_word(name),
        sql_name = sql_identifier(name),
    )
}

/// `word` as one shell argument: unchanged when it is plain, single-quoted otherwise.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `name` as an SQL identifier: unchanged when PostgreSQL would read it as is (lowercase
/// letters, digits and `_`, not starting with a digit), double-quoted otherwise.
fn sql_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `url` with its database replaced by `name`, keeping any query string: a test's own
/// database on the server `KEYRACK_TEST_DATABASE_URL` names.
#[cfg(test)]
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |scheme| scheme + 3);
    let server = match base[authority..].find('/') {
        Some(path) => &base[..authority + path],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Store};

    /// An acknowledged write survives power loss: every SQLite connection syncs the WAL at
    /// each commit (`synchronous = FULL`; `NORMAL` may roll the last commits back).
    #[tokio::test]
    async fn sqlite_commits_are_durable_before_they_are_acknowledged() {
        use sea_orm::{ConnectionTrait, Statement};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
        let store = Store::connect(&url).await.unwrap();
        for _ in 0..4 {
            let row = store
                .db
                .query_one_raw(Statement::from_string(
                    store.db.get_database_backend(),
                    "PRAGMA synchronous",
                ))
                .await
                .unwrap()
                .unwrap();
            let level: i32 = row.try_get_by_index(0).unwrap();
            assert_eq!(level, 2, "synchronous is FULL (2)");
        }
    }

    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432?sslmode=disable", "t1"),
            "postgres://u:p@db:5432/t1?sslmode=disable"
        );
    }

    /// On the PostgreSQL server `KEYRACK_TEST_DATABASE_URL` names, when it is set: a database
    /// that was never created is reported by name with how to create it, and not created.
    #[tokio::test]
    async fn a_missing_postgres_database_is_named_with_how_to_create_it() {
        let Ok(base) = std::env::var("KEYRACK_TEST_DATABASE_URL") else {
            return;
        };
        let name = format!("keyrack_t_{}", uuid::Uuid::now_v7().simple());
        let error = Store::connect(&with_database(&base, &name))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Database(DbErr::Conn(_))),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("postgresql database \"{name}\" does not exist")),
            "{message}"
        );
        assert!(message.contains(&format!(" {name}` or, in psql, `CREATE DATABASE {name};`")));
        assert!(message.contains("createdb -h "), "{message}");
    }

    #[test]
    fn the_missing_database_message_names_it_and_how_to_create_it() {
        let options: PgConnectOptions = "postgres://keyrack@db.internal:5433/keyrack_prod"
            .parse()
            .unwrap();
        assert_eq!(
            missing_database_message(&options),
            "postgresql database \"keyrack_prod\" does not exist on db.internal:5433; keyrack \
             does not create it: create it with `createdb -h db.internal -p 5433 -U keyrack \
             keyrack_prod` or, in psql, `CREATE DATABASE keyrack_prod;`, then start again"
        );
    }

    #[test]
    fn names_that_need_quoting_are_quoted() {
        assert_eq!(shell_word("Key Rack"), "'Key Rack'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(sql_identifier("KeyRack"), "\"KeyRack\"");
        assert_eq!(sql_identifier("key\"rack"), "\"key\"\"rack\"");
        assert_eq!(sql_identifier("1keyrack"), "\"1keyrack\"");
        assert_eq!(sql_identifier("keyrack_1"), "keyrack_1");
    }

    #[test]
    fn other_errors_pass_through() {
        let error = DbErr::Conn(RuntimeErr::Internal("refused".to_owned()));
        let explained = explain_connect_error("postgres://u@localhost/x", error);
        assert!(matches!(explained, DbErr::Conn(RuntimeErr::Internal(m)) if m == "refused"));
    }
}
