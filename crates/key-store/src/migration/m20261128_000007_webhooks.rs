use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    OrganizationId,
    Url,
    Description,
    SealedSecret,
    CreatedAt,
    SecretRotatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    OrganizationId,
    EventId,
    EndpointId,
    Payload,
    State,
    AttemptCount,
    NextAttemptAt,
    CreatedAt,
    ClaimCount,
}

#[derive(DeriveIden)]
enum WebhookDeliveryAttempts {
    Table,
    Id,
    DeliveryId,
    AttemptNumber,
    AttemptedAt,
    StatusCode,
    Error,
    DurationMs,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The signing secret is sealed (AES-256-GCM under a key derived from the pepper), never
        // stored in plaintext; it cannot be hashed, as every delivery is signed with it.
        // Deleted endpoints keep their row (`deleted_at`) so their deliveries stay readable.
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(
                        ColumnDef::new(WebhookEndpoints::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                    .col(
                        ColumnDef::new(WebhookEndpoints::Description)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::SealedSecret)
                            .binary()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::SecretRotatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Endpoints are listed per organization, oldest first, by id (UUIDv7: time-ordered).
        manager
            .create_index(
                Index::create()
                    .name("webhook_endpoints_organization_id_id")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::OrganizationId)
                    .col(WebhookEndpoints::Id)
                    .to_owned(),
            )
            .await?;
        // One row per event and endpoint. `claim_count` goes up by one at every claim: a worker
        // owns a delivery only if its compare-and-set on it changed the row, so two replicas
        // never POST the same attempt in the normal case.
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(
                        ColumnDef::new(WebhookDeliveries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::EventId).uuid().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::EndpointId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::Payload).text().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::State)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::AttemptCount)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::ClaimCount)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The workers look for pending deliveries that are due.
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_state_next_attempt_at")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::State)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // Deliveries are listed per organization, newest first, by id.
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_organization_id_id")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::OrganizationId)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await?;
        // Deleting an endpoint abandons its pending deliveries.
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_endpoint_id_state")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveryAttempts::Table)
                    .col(
                        ColumnDef::new(WebhookDeliveryAttempts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveryAttempts::DeliveryId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveryAttempts::AttemptNumber)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveryAttempts::AttemptedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveryAttempts::StatusCode)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveryAttempts::Error).text().null())
                    .col(
                        ColumnDef::new(WebhookDeliveryAttempts::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_delivery_attempts_delivery_id")
                    .table(WebhookDeliveryAttempts::Table)
                    .col(WebhookDeliveryAttempts::DeliveryId)
                    .col(WebhookDeliveryAttempts::AttemptNumber)
                    .to_owned(),
            )
            .await
    }

    /// Drops the three tables, attempts first (they belong to deliveries, which belong to
    /// endpoints); their indexes go with them.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(WebhookDeliveryAttempts::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await
    }
}
