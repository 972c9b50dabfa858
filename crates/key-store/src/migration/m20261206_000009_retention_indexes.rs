use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AlertEvents {
    Table,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Time,
}

/// Retention deletes alert events and audit events older than a cutoff, in bounded batches:
/// each batch finds its oldest rows by time.
// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("alert_events_created_at")
                    .table(AlertEvents::Table)
                    .col(AlertEvents::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_time")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::Time)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("audit_events_time")
                    .table(AuditEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("alert_events_created_at")
                    .table(AlertEvents::Table)
                    .to_owned(),
            )
            .await
    }
}
