use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// Facts about the deployment, one row each: today the pepper's fingerprint, so a start with
/// another pepper (which would make every key invalid) is refused.
#[derive(DeriveIden)]
enum DeploymentSettings {
    Table,
    Name,
    Value,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeploymentSettings::Table)
                    .col(
                        ColumnDef::new(DeploymentSettings::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DeploymentSettings::Value)
                            .string()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeploymentSettings::Table).to_owned())
            .await
    }
}
