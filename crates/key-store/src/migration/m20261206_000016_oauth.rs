//! OAuth 2.0: clients, authorization codes and tokens. A grant (what one person approved for
//! one client) is an `api_keys` row of the person's, marked by `oauth_client_id`, so that its
//! access tokens are verified, limited, metered and alerted on like a personal key; the tokens
//! themselves live in `oauth_tokens` under it. On PostgreSQL a trigger announces a token's
//! change (its revocation) to every replica's key cache, as `api_keys`' does for keys.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum OauthClients {
    Table,
    Id,
    OrganizationId,
    Name,
    ClientType,
    SecretDigest,
    RedirectUris,
    Scopes,
    Environment,
    CreatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum OauthCodes {
    Table,
    Id,
    Digest,
    ClientId,
    OrganizationId,
    MemberId,
    UserId,
    RedirectUri,
    CodeChallenge,
    Scopes,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    GrantId,
}

#[derive(DeriveIden)]
enum OauthTokens {
    Table,
    Id,
    Digest,
    GrantId,
    Kind,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    ReplacedBy,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    OauthClientId,
    OauthUserId,
}

/// A token's change is announced under its digest (`k:`), which is what a replica caches an
/// access token under. Only revocation changes a token; deletion by retention comes after its
/// expiry, which every replica already judges by itself.
const NOTIFY_UP: &str = r#"
CREATE FUNCTION keyrack_notify_oauth_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        PERFORM pg_notify('keyrack_cache', 'k:' || encode(NEW.digest, 'hex'));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER oauth_tokens_notify_cache AFTER UPDATE ON oauth_tokens
    FOR EACH ROW EXECUTE FUNCTION keyrack_notify_oauth_token();
"#;

const NOTIFY_DOWN: &str = r"
DROP TRIGGER oauth_tokens_notify_cache ON oauth_tokens;
DROP FUNCTION keyrack_notify_oauth_token();
";

fn timestamp(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

// The trait's signature elides SchemaManager's lifetime; the impl must match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthClients::Table)
                    .col(
                        ColumnDef::new(OauthClients::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(OauthClients::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OauthClients::Name).string().not_null())
                    .col(ColumnDef::new(OauthClients::ClientType).string().not_null())
                    .col(ColumnDef::new(OauthClients::SecretDigest).binary().null())
                    .col(ColumnDef::new(OauthClients::RedirectUris).text().not_null())
                    .col(ColumnDef::new(OauthClients::Scopes).string().not_null())
                    .col(
                        ColumnDef::new(OauthClients::Environment)
                            .string()
                            .not_null(),
                    )
                    .col(timestamp(OauthClients::CreatedAt))
                    .col(
                        ColumnDef::new(OauthClients::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("oauth_clients_organization")
                    .table(OauthClients::Table)
                    .col(OauthClients::OrganizationId)
                    .col(OauthClients::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OauthCodes::Table)
                    .col(
                        ColumnDef::new(OauthCodes::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OauthCodes::Digest).binary().not_null())
                    .col(ColumnDef::new(OauthCodes::ClientId).uuid().not_null())
                    .col(ColumnDef::new(OauthCodes::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(OauthCodes::MemberId).uuid().not_null())
                    .col(ColumnDef::new(OauthCodes::UserId).string().not_null())
                    .col(ColumnDef::new(OauthCodes::RedirectUri).text().not_null())
                    .col(
                        ColumnDef::new(OauthCodes::CodeChallenge)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OauthCodes::Scopes).string().not_null())
                    .col(timestamp(OauthCodes::CreatedAt))
                    .col(timestamp(OauthCodes::ExpiresAt))
                    .col(
                        ColumnDef::new(OauthCodes::UsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(OauthCodes::GrantId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("oauth_codes_digest")
                    .table(OauthCodes::Table)
                    .col(OauthCodes::Digest)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("oauth_codes_expires_at")
                    .table(OauthCodes::Table)
                    .col(OauthCodes::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OauthTokens::Table)
                    .col(
                        ColumnDef::new(OauthTokens::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OauthTokens::Digest).binary().not_null())
                    .col(ColumnDef::new(OauthTokens::GrantId).uuid().not_null())
                    .col(ColumnDef::new(OauthTokens::Kind).string().not_null())
                    .col(timestamp(OauthTokens::CreatedAt))
                    .col(timestamp(OauthTokens::ExpiresAt))
                    .col(
                        ColumnDef::new(OauthTokens::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(OauthTokens::ReplacedBy).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("oauth_tokens_digest")
                    .table(OauthTokens::Table)
                    .col(OauthTokens::Digest)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("oauth_tokens_grant")
                    .table(OauthTokens::Table)
                    .col(OauthTokens::GrantId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("oauth_tokens_expires_at")
                    .table(OauthTokens::Table)
                    .col(OauthTokens::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(ColumnDef::new(ApiKeys::OauthClientId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(ColumnDef::new(ApiKeys::OauthUserId).string().null())
                    .to_owned(),
            )
            .await?;
        // Authorized applications are listed per client and per member.
        manager
            .create_index(
                Index::create()
                    .name("api_keys_oauth_client")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OauthClientId)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(NOTIFY_UP)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(NOTIFY_DOWN)
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("api_keys_oauth_client")
                    .table(ApiKeys::Table)
                    .to_owned(),
            )
            .await?;
        for column in [ApiKeys::OauthUserId, ApiKeys::OauthClientId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(OauthTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OauthCodes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OauthClients::Table).to_owned())
            .await
    }
}
