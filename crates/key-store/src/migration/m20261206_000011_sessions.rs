use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// People's sign-ins to the console: sessions and one-time sign-in links, each stored as the
/// keyed digest of its token (never the token), with whom it acts as and when it ends.
#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Digest,
    Kind,
    OrganizationId,
    KeyId,
    MemberId,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    ActorMemberId,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(ColumnDef::new(Sessions::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Sessions::Digest).binary().not_null())
                    .col(ColumnDef::new(Sessions::Kind).string().not_null())
                    .col(ColumnDef::new(Sessions::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(Sessions::KeyId).uuid().null())
                    .col(ColumnDef::new(Sessions::MemberId).uuid().null())
                    .col(
                        ColumnDef::new(Sessions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::LastSeenAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_digest")
                    .table(Sessions::Table)
                    .col(Sessions::Digest)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Retention deletes by expiry.
        manager
            .create_index(
                Index::create()
                    .name("sessions_expires_at")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(ColumnDef::new(AuditEvents::ActorMemberId).uuid().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .drop_column(AuditEvents::ActorMemberId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}
