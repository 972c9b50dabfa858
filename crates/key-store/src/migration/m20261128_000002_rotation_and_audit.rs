use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    RotatedFrom,
    RotatedTo,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    Time,
    OrganizationId,
    ActorKeyId,
    ActorType,
    Action,
    Target,
    Outcome,
    Reason,
    ClientAddress,
    RequestId,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [ApiKeys::RotatedFrom, ApiKeys::RotatedTo] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .add_column(ColumnDef::new(column).uuid().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Time)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditEvents::OrganizationId).uuid().null())
                    .col(ColumnDef::new(AuditEvents::ActorKeyId).uuid().null())
                    .col(ColumnDef::new(AuditEvents::ActorType).string().not_null())
                    .col(ColumnDef::new(AuditEvents::Action).string().not_null())
                    .col(ColumnDef::new(AuditEvents::Target).string().not_null())
                    .col(ColumnDef::new(AuditEvents::Outcome).string().not_null())
                    .col(ColumnDef::new(AuditEvents::Reason).string().null())
                    .col(ColumnDef::new(AuditEvents::ClientAddress).string().null())
                    .col(ColumnDef::new(AuditEvents::RequestId).string().null())
                    .to_owned(),
            )
            .await?;
        // The log is read per organization, newest first, by id (UUIDv7: time-ordered).
        manager
            .create_index(
                Index::create()
                    .name("audit_events_organization_id_id")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrganizationId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await?;
        for column in [ApiKeys::RotatedTo, ApiKeys::RotatedFrom] {
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
