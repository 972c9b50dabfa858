//! A key's credits: the uses it has left, an optional refill (an amount per day or month) and
//! when it was last refilled. NULL `credits_remaining`: unlimited.
//!
//! On PostgreSQL the cache notice trigger of `m20261206_000010_cache_notices` announces every
//! update of an `api_keys` row; a spend changes the row at every verification of a key with
//! credits, and the key cache never holds the count, so the function is replaced by one that
//! also leaves `credits_remaining` and `credits_refilled_at` out of the comparison, as long as
//! the key keeps having credits (gaining or losing them still announces: the cache remembers
//! whether a key has credits, so that a valid verification knows to spend).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    CreditsRemaining,
    CreditsRefillAmount,
    CreditsRefillPer,
    CreditsRefilledAt,
}

/// The notice function with `{IGNORED}` (columns left out of the comparison) and `{SAME}` (a
/// further condition for an update to stay silent) to fill in.
const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION keyrack_notify_cache() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_after jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
    row_before jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
    subject jsonb := COALESCE(row_after, row_before);
BEGIN
    IF TG_OP = 'UPDATE'
        AND (row_before{IGNORED}) IS NOT DISTINCT FROM (row_after{IGNORED}){SAME} THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'api_keys' THEN
        PERFORM pg_notify('keyrack_cache',
            'k:' || encode(COALESCE(NEW.digest, OLD.digest), 'hex'));
        IF TG_OP = 'UPDATE' AND OLD.digest IS DISTINCT FROM NEW.digest THEN
            PERFORM pg_notify('keyrack_cache', 'k:' || encode(OLD.digest, 'hex'));
        END IF;
    ELSIF TG_TABLE_NAME = 'members' THEN
        PERFORM pg_notify('keyrack_cache', 'm:' || (subject ->> 'id'));
    ELSE
        PERFORM pg_notify('keyrack_cache', 'o:' || (subject ->> 'id'));
    END IF;
    RETURN NULL;
END;
$$;
"#;

fn function(with_credits: bool) -> String {
    let (ignored, same) = if with_credits {
        (
            " - 'last_used_at' - 'alert_rules' - 'credits_remaining' - 'credits_refilled_at'",
            "\n        AND jsonb_typeof(row_before -> 'credits_remaining')\n            IS NOT DISTINCT FROM jsonb_typeof(row_after -> 'credits_remaining')",
        )
    } else {
        (" - 'last_used_at' - 'alert_rules'", "")
    };
    FUNCTION
        .replace("{IGNORED}", ignored)
        .replace("{SAME}", same)
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        // Uses left; NULL: unlimited.
        add(
            manager,
            ColumnDef::new(ApiKeys::CreditsRemaining)
                .big_integer()
                .null(),
        )
        .await?;
        // The refill's amount and period (`day` or `month`); NULL: no refill.
        add(
            manager,
            ColumnDef::new(ApiKeys::CreditsRefillAmount)
                .big_integer()
                .null(),
        )
        .await?;
        add(
            manager,
            ColumnDef::new(ApiKeys::CreditsRefillPer).text().null(),
        )
        .await?;
        // When the credits were last refilled or set.
        add(
            manager,
            ColumnDef::new(ApiKeys::CreditsRefilledAt)
                .timestamp_with_time_zone()
                .null(),
        )
        .await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&function(true))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&function(false))
                .await?;
        }
        for column in [
            ApiKeys::CreditsRefilledAt,
            ApiKeys::CreditsRefillPer,
            ApiKeys::CreditsRefillAmount,
            ApiKeys::CreditsRemaining,
        ] {
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
