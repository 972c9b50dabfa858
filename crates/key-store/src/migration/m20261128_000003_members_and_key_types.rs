use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    MaxKeyAgeDays,
    MaxKeyLifetimeDays,
    RoleScopes,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    KeyType,
    MemberId,
    Operator,
}

#[derive(DeriveIden)]
enum Members {
    Table,
    Id,
    OrganizationId,
    UserId,
    Role,
    CreatedAt,
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE, and a NOT NULL column needs a default.
        for column in [
            ColumnDef::new(Organizations::MaxKeyAgeDays)
                .integer()
                .not_null()
                .default(90)
                .to_owned(),
            ColumnDef::new(Organizations::MaxKeyLifetimeDays)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(Organizations::RoleScopes)
                .string()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            ColumnDef::new(ApiKeys::KeyType)
                .string()
                .not_null()
                .default("organization")
                .to_owned(),
            ColumnDef::new(ApiKeys::MemberId).uuid().null().to_owned(),
            ColumnDef::new(ApiKeys::Operator)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Members::Table)
                    .col(ColumnDef::new(Members::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Members::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(Members::UserId).string().not_null())
                    .col(ColumnDef::new(Members::Role).string().not_null())
                    .col(
                        ColumnDef::new(Members::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Members::Table, Members::OrganizationId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // A user is a member of an organization at most once.
        manager
            .create_index(
                Index::create()
                    .name("members_organization_id_user_id")
                    .table(Members::Table)
                    .col(Members::OrganizationId)
                    .col(Members::UserId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Members::Table).to_owned())
            .await?;
        for column in [ApiKeys::Operator, ApiKeys::MemberId, ApiKeys::KeyType] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            Organizations::RoleScopes,
            Organizations::MaxKeyLifetimeDays,
            Organizations::MaxKeyAgeDays,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
