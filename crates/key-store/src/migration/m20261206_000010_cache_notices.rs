//! On PostgreSQL, triggers that announce every change that can make a replica's cached key
//! wrong, on the channel `keyrack_cache` (`crate::notices`). A trigger's `pg_notify` belongs to
//! the change's own transaction, so a notice is delivered exactly when the change commits,
//! whichever code path (or operator's `psql`) wrote it. SQLite is one process, whose
//! operations drop their cache entries themselves: nothing to do there.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The function and the triggers. The payloads are parsed by `notices::CacheNotice::parse`:
/// `k:` and a key's digest in hex, `m:` and a member's id, `o:` and an organization's id.
///
/// Columns that no verification reads are left out of the comparison, so the usage flush
/// (which moves `last_used_at` forward every second) and alert rule edits announce nothing.
/// Any other column, including one added later, announces: a needless drop costs one read,
/// a missing one a stale verdict.
const UP: &str = r#"
CREATE FUNCTION keyrack_notify_cache() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_after jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
    row_before jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
    subject jsonb := COALESCE(row_after, row_before);
BEGIN
    IF TG_OP = 'UPDATE'
        AND (row_before - 'last_used_at' - 'alert_rules')
            IS NOT DISTINCT FROM (row_after - 'last_used_at' - 'alert_rules') THEN
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
CREATE TRIGGER api_keys_notify_cache AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION keyrack_notify_cache();
CREATE TRIGGER members_notify_cache AFTER UPDATE OR DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION keyrack_notify_cache();
CREATE TRIGGER organizations_notify_cache AFTER UPDATE OR DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION keyrack_notify_cache();
"#;

const DOWN: &str = r"
DROP TRIGGER organizations_notify_cache ON organizations;
DROP TRIGGER members_notify_cache ON members;
DROP TRIGGER api_keys_notify_cache ON api_keys;
DROP FUNCTION keyrack_notify_cache();
";

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
