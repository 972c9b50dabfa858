use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OrganizationId,
    Name,
    Scopes,
    Environment,
    Last4,
    Digest,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    RevokeReason,
    LastUsedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum UsageHourly {
    Table,
    KeyId,
    BucketStart,
    Code,
    OrganizationId,
    Count,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(
                        ColumnDef::new(Organizations::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Organizations::Name)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Organizations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(ApiKeys::Name).string().not_null())
                    .col(ColumnDef::new(ApiKeys::Scopes).string().not_null())
                    .col(ColumnDef::new(ApiKeys::Environment).string().not_null())
                    .col(ColumnDef::new(ApiKeys::Last4).string().not_null())
                    .col(
                        ColumnDef::new(ApiKeys::Digest)
                            .binary()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(ApiKeys::RevokeReason).string().null())
                    .col(
                        ColumnDef::new(ApiKeys::LastUsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(ApiKeys::CreatedBy).uuid().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::OrganizationId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Listing pages through one organization's keys by id, newest first.
        manager
            .create_index(
                Index::create()
                    .name("api_keys_organization_id_id")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OrganizationId)
                    .col(ApiKeys::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageHourly::Table)
                    .col(ColumnDef::new(UsageHourly::KeyId).uuid().not_null())
                    .col(
                        ColumnDef::new(UsageHourly::BucketStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(UsageHourly::Code).string().not_null())
                    .col(
                        ColumnDef::new(UsageHourly::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(UsageHourly::Count).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(UsageHourly::KeyId)
                            .col(UsageHourly::BucketStart)
                            .col(UsageHourly::Code),
                    )
                    .to_owned(),
            )
            .await?;
        // Organization-wide usage reads a time range of one organization.
        manager
            .create_index(
                Index::create()
                    .name("usage_hourly_organization_id_bucket_start")
                    .table(UsageHourly::Table)
                    .col(UsageHourly::OrganizationId)
                    .col(UsageHourly::BucketStart)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageHourly::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Organizations::Table).to_owned())
            .await
    }
}
