use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Signing,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    LeakedKeys,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // How an endpoint signs its deliveries (`keyrack` or `standard`); existing endpoints keep
        // Keyrack's scheme, whose secrets they hold.
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEndpoints::Table)
                    .add_column(
                        ColumnDef::new(WebhookEndpoints::Signing)
                            .string()
                            .not_null()
                            .default("keyrack"),
                    )
                    .to_owned(),
            )
            .await?;
        // What a leaked-key report does to the organization's keys (`revoke` or `flag`).
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(
                        ColumnDef::new(Organizations::LeakedKeys)
                            .string()
                            .not_null()
                            .default("revoke"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .drop_column(Organizations::LeakedKeys)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEndpoints::Table)
                    .drop_column(WebhookEndpoints::Signing)
                    .to_owned(),
            )
            .await
    }
}
