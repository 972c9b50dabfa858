//! A key's own controls: the disabled state, its metadata and its IP allowlist. On PostgreSQL
//! the cache notice trigger of `m20261206_000010_cache_notices` already announces every update
//! of an `api_keys` row, whichever columns it changes, so disabling a key reaches every
//! replica's cache with no trigger of its own.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    DisabledAt,
    Metadata,
    IpAllowlist,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        // NULL: enabled.
        add(
            manager,
            ColumnDef::new(ApiKeys::DisabledAt)
                .timestamp_with_time_zone()
                .null(),
        )
        .await?;
        // The metadata's compact JSON text (an object of at most 1 KiB); NULL: none.
        add(manager, ColumnDef::new(ApiKeys::Metadata).text().null()).await?;
        // Networks separated by spaces, e.g. `10.0.0.0/8 2001:db8::/32`; NULL: anywhere.
        add(manager, ColumnDef::new(ApiKeys::IpAllowlist).text().null()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [ApiKeys::IpAllowlist, ApiKeys::Metadata, ApiKeys::DisabledAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

async fn add(manager: &SchemaManager<'_>, column: &mut ColumnDef) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(ApiKeys::Table)
                .add_column(column)
                .to_owned(),
        )
        .await
}
