//! Alerts: the rules of organizations and keys, and the alert events. (The webhook tables are
//! migration 000007's.)

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    AlertRules,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    AlertRules,
}

#[derive(DeriveIden)]
enum AlertEvents {
    Table,
    Id,
    OrganizationId,
    KeyId,
    Type,
    Message,
    CreatedAt,
    PeriodStart,
    Observed,
    Threshold,
    Country,
    DedupKey,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Rules as compact text (`unusual_activity=on high_usage=10000/daily`); NULL: none set,
        // so the organization has Keyrack's defaults and the key follows its organization.
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(ColumnDef::new(Organizations::AlertRules).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(ColumnDef::new(ApiKeys::AlertRules).string().null())
                    .to_owned(),
            )
            .await?;
        // One row per alert. `dedup_key` is unique: every evaluation (and every replica) that
        // raises the same alert computes the same key, and only the first insert stores it.
        manager
            .create_table(
                Table::create()
                    .table(AlertEvents::Table)
                    .col(
                        ColumnDef::new(AlertEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AlertEvents::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AlertEvents::KeyId).uuid().null())
                    .col(ColumnDef::new(AlertEvents::Type).string_len(32).not_null())
                    .col(ColumnDef::new(AlertEvents::Message).text().not_null())
                    .col(
                        ColumnDef::new(AlertEvents::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertEvents::PeriodStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertEvents::Observed)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertEvents::Threshold)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AlertEvents::Country).string_len(2).null())
                    .col(
                        ColumnDef::new(AlertEvents::DedupKey)
                            .string_len(200)
                            .not_null()
                            .unique_key(),
                    )
                    .to_owned(),
            )
            .await?;
        // ListAlertEvents pages an organization's events by id.
        manager
            .create_index(
                Index::create()
                    .name("alert_events_organization_id")
                    .table(AlertEvents::Table)
                    .col(AlertEvents::OrganizationId)
                    .col(AlertEvents::Id)
                    .to_owned(),
            )
            .await?;
        // The sweep skips keys already alerted for, by key and type.
        manager
            .create_index(
                Index::create()
                    .name("alert_events_key_type")
                    .table(AlertEvents::Table)
                    .col(AlertEvents::KeyId)
                    .col(AlertEvents::Type)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AlertEvents::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::AlertRules)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .drop_column(Organizations::AlertRules)
                    .to_owned(),
            )
            .await
    }
}
