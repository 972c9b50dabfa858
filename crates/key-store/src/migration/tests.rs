//! Every migration can be undone: all `up`s, then all `down`s, then all `up`s again leave the
//! schema the first `up`s made. A missing `down` (sea-orm-migration's default fails) or one
//! that leaves something behind fails here.

use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};
use sea_orm_migration::{
    MigratorTrait,
    sea_query::{Alias, Query},
};

use super::Migrator;
use crate::{Store, connect};

/// The tables the migrations leave, with sea-orm-migration's own, in name order.
const TABLES: [&str; 15] = [
    "alert_events",
    "api_keys",
    "audit_events",
    "deployment_settings",
    "members",
    "oauth_clients",
    "oauth_codes",
    "oauth_tokens",
    "organizations",
    "seaql_migrations",
    "sessions",
    "usage_buckets",
    "webhook_deliveries",
    "webhook_delivery_attempts",
    "webhook_endpoints",
];

#[tokio::test]
async fn every_migration_is_undone_and_redone_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("keyrack.db").display()
    );
    down_and_up_again(&url).await;
}

/// Runs on a fresh database of the PostgreSQL server `KEYRACK_TEST_DATABASE_URL` names, and
/// drops it afterwards, whether the round trip passed or not.
#[tokio::test]
async fn every_migration_is_undone_and_redone_on_postgres() {
    let Ok(base) = std::env::var("KEYRACK_TEST_DATABASE_URL") else {
        return;
    };
    let name = format!("keyrack_t_{}", uuid::Uuid::now_v7().simple());
    let admin = Database::connect(base.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = connect::with_database(&base, &name);
    let outcome = tokio::spawn(async move { down_and_up_again(&url).await }).await;
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn down_and_up_again(url: &str) {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let db = &store.db;
    assert_eq!(tables(db).await, TABLES);
    if db.get_database_backend() == DatabaseBackend::Postgres {
        // The server keeps its NOTICEs (`relation "seaql_migrations" already exists,
        // skipping` at every start) to itself; see `connect::options`.
        assert_eq!(strings(db, "SHOW client_min_messages").await, ["warning"]);
        // The cache notices' triggers (000010, and 000016's for OAuth tokens).
        assert_eq!(
            strings(
                db,
                "SELECT tgname::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"
            )
            .await,
            [
                "api_keys_notify_cache",
                "members_notify_cache",
                "oauth_tokens_notify_cache",
                "organizations_notify_cache"
            ]
        );
    }
    let first_schema = schema(db).await;

    // 000005 folded `usage_hourly` into `usage_buckets`; undoing it (and every one after it)
    // brings the hourly counts back where 000001 kept them.
    let key_id = uuid::Uuid::now_v7();
    let organization_id = uuid::Uuid::now_v7();
    db.execute(
        Query::insert()
            .into_table(Alias::new("usage_buckets"))
            .columns(
                [
                    "key_id",
                    "resolution",
                    "bucket_start",
                    "dimension",
                    "value",
                    "organization_id",
                    "count",
                ]
                .map(Alias::new),
            )
            .values_panic([
                key_id.into(),
                "hour".into(),
                3600_i64.into(),
                "code".into(),
                "valid".into(),
                organization_id.into(),
                7_i64.into(),
            ])
            .values_panic([
                key_id.into(),
                "minute".into(),
                3600_i64.into(),
                "code".into(),
                "valid".into(),
                organization_id.into(),
                7_i64.into(),
            ]),
    )
    .await
    .unwrap();
    // Every migration after the first four, however many later ones there are.
    let after_000004 = u32::try_from(Migrator::migrations().len() - 4).unwrap();
    Migrator::down(db, Some(after_000004)).await.unwrap();
    let hourly = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT bucket_start, code, count FROM usage_hourly",
        ))
        .await
        .unwrap();
    let hourly: Vec<(i64, String, i64)> = hourly
        .iter()
        .map(|row| {
            (
                row.try_get_by_index(0).unwrap(),
                row.try_get_by_index(1).unwrap(),
                row.try_get_by_index(2).unwrap(),
            )
        })
        .collect();
    assert_eq!(hourly, [(3600, "valid".to_owned(), 7)]);

    Migrator::down(db, None).await.unwrap();
    assert_eq!(tables(db).await, ["seaql_migrations"]);
    assert!(
        Migrator::get_applied_migrations(db)
            .await
            .unwrap()
            .is_empty()
    );

    store.migrate().await.unwrap();
    assert_eq!(tables(db).await, TABLES);
    assert_eq!(schema(db).await, first_schema);
    store.close().await.unwrap();
}

/// The names of the tables in the database, in name order.
async fn tables(db: &DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
              ORDER BY 1"
        }
    };
    strings(db, sql).await
}

/// Every table, column, index and constraint as one line each, in a stable order: equal
/// schemas give equal lists.
async fn schema(db: &DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            "SELECT table_name || '.' || column_name || ' #' || ordinal_position || ' ' || \
                    data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             UNION ALL \
             SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             UNION ALL \
             SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
             FROM pg_constraint WHERE connamespace = current_schema()::regnamespace \
             ORDER BY 1"
        }
        _ => {
            "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master \
              ORDER BY 1"
        }
    };
    strings(db, sql).await
}

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect()
}
