use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Members {
    Table,
    UserId,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    KeyId,
    MemberId,
}

/// Signing in looks people up by what they are, not by organization: SSO finds a person's
/// memberships by user id across organizations (`Store::memberships_of_user`; the unique index
/// leads with the organization), and every new session trims its key's or member's oldest
/// sessions (`MAX_SESSIONS_PER_PRINCIPAL`). Without these, both scan their table.
// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("members_user_id")
                    .table(Members::Table)
                    .col(Members::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_key_id")
                    .table(Sessions::Table)
                    .col(Sessions::KeyId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_member_id")
                    .table(Sessions::Table)
                    .col(Sessions::MemberId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("sessions_member_id", Sessions::Table.into_iden()),
            ("sessions_key_id", Sessions::Table.into_iden()),
            ("members_user_id", Members::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
