use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum UsageBuckets {
    Table,
    KeyId,
    Resolution,
    BucketStart,
    Dimension,
    Value,
    OrganizationId,
    Count,
}

/// Migration 000001's hourly table, which this migration folds into `usage_buckets`.
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
        // One row per key, resolution (`minute`, `hour`, `day`), bucket start, and dimension
        // value: `code` (`valid` or an error code; every verification has one, so these rows
        // hold the request counts), `country` and `tag` (only verifications that had one).
        // A flush adds each count to all three resolutions, so the hourly and daily rows are
        // the minute rows rolled up, and each resolution can be pruned on its own schedule.
        manager
            .create_table(
                Table::create()
                    .table(UsageBuckets::Table)
                    .col(ColumnDef::new(UsageBuckets::KeyId).uuid().not_null())
                    .col(
                        ColumnDef::new(UsageBuckets::Resolution)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UsageBuckets::BucketStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UsageBuckets::Dimension)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UsageBuckets::Value)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UsageBuckets::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(UsageBuckets::Count).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(UsageBuckets::KeyId)
                            .col(UsageBuckets::Resolution)
                            .col(UsageBuckets::BucketStart)
                            .col(UsageBuckets::Dimension)
                            .col(UsageBuckets::Value),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("usage_buckets_organization_resolution_bucket")
                    .table(UsageBuckets::Table)
                    .col(UsageBuckets::OrganizationId)
                    .col(UsageBuckets::Resolution)
                    .col(UsageBuckets::BucketStart)
                    .to_owned(),
            )
            .await?;
        // Retention deletes by resolution and age, across all keys.
        manager
            .create_index(
                Index::create()
                    .name("usage_buckets_resolution_bucket")
                    .table(UsageBuckets::Table)
                    .col(UsageBuckets::Resolution)
                    .col(UsageBuckets::BucketStart)
                    .to_owned(),
            )
            .await?;
        // The hourly counts recorded so far become hourly and daily `code` rows.
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO usage_buckets \
               (key_id, resolution, bucket_start, dimension, value, organization_id, count) \
             SELECT key_id, 'hour', bucket_start, 'code', code, organization_id, count \
             FROM usage_hourly",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO usage_buckets \
               (key_id, resolution, bucket_start, dimension, value, organization_id, count) \
             SELECT key_id, 'day', bucket_start - (bucket_start % 86400), 'code', code, \
                    organization_id, SUM(count) \
             FROM usage_hourly \
             GROUP BY key_id, bucket_start - (bucket_start % 86400), code, organization_id",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(UsageHourly::Table).to_owned())
            .await
    }

    /// Brings back `usage_hourly` as migration 000001 made it, filled from the hourly `code`
    /// rows (one per key, hour and code, as it held them; every flush writes them), and drops
    /// `usage_buckets` with its indexes. The minute rows and the `country` and `tag` counts
    /// have no place in the old table and are lost.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
        manager
            .create_index(
                Index::create()
                    .name("usage_hourly_organization_id_bucket_start")
                    .table(UsageHourly::Table)
                    .col(UsageHourly::OrganizationId)
                    .col(UsageHourly::BucketStart)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO usage_hourly (key_id, bucket_start, code, organization_id, count) \
                 SELECT key_id, bucket_start, value, organization_id, count \
                 FROM usage_buckets \
                 WHERE resolution = 'hour' AND dimension = 'code'",
            )
            .await?;
        manager
            .drop_table(Table::drop().table(UsageBuckets::Table).to_owned())
            .await
    }
}
